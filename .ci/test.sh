#!/usr/bin/env bash
# The test command of README.md: installs what the tests need, then runs them all.
# Needs root: the integration tests make their own network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh
cargo test --locked --features test-hooks "$@"
# The workspace's cipher crate (crates/aead): its RFC 8439 vector.
cargo test --locked -p tunbox-aead
