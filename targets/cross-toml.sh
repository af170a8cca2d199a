#!/usr/bin/env bash
# Print Cross.toml (config for cross-rs, https://github.com/cross-rs/cross) generated from
# targets/targets.tsv, so the target table stays the one source of truth.
#
#   targets/cross-toml.sh > Cross.toml      regenerate
#   targets/cross-toml.sh --check           exit 1 if Cross.toml differs from what the table gives
#
# Per target: build_std=yes -> `build-std = ["std", "panic_abort"]` (tier 3: rustup has no prebuilt
# std, so cross runs cargo with -Zbuild-std, which needs a nightly toolchain: `cross +nightly ...`);
# rustflags -> CARGO_TARGET_<T>_RUSTFLAGS passed into the container (cross forwards `KEY=value`
# passthrough entries as `docker run -e KEY=value`). TUNBOX_SKIP_NETNS=1 for every target: the
# container is neither root nor privileged, so the network-namespace tests skip themselves.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
list="$here/list.sh"

gen() {
    cat <<'EOF'
# Cross.toml for cross-rs (`cross build --release --target T`, `cross test --target T`; needs Docker
# or Podman). GENERATED from targets/targets.tsv by targets/cross-toml.sh: edit the table and run
# `targets/cross-toml.sh > Cross.toml`; CI checks they agree. The Docker-free path used by CI is
# targets/build.sh (see targets/README.md). Keys: https://github.com/cross-rs/cross/blob/main/docs/config_file.md
#
# Targets with build-std are tier 3 (no rustup std): use a nightly toolchain, e.g.
#   rustup toolchain add nightly --component rust-src
#   cross +nightly build --release --target mips-unknown-linux-musl
#
# `cross test`: unit tests run under the image's qemu; tests that start the tunbox binary need the
# host kernel to run foreign binaries (binfmt_misc qemu handlers, e.g. Debian's qemu-user-binfmt);
# network-namespace tests need root and a privileged container, so they skip here.

[build.env]
passthrough = ["TUNBOX_SKIP_NETNS=1", "RUST_BACKTRACE"]
EOF
    local t up bs rf pi
    while IFS= read -r t; do
        up="${t^^}"
        up="${up//-/_}"
        bs="$("$list" "$t" build_std)"
        rf="$("$list" "$t" rustflags)"
        pi="$("$list" "$t" pi_models)"
        echo
        echo "# $pi; OpenWrt: $("$list" "$t" openwrt_arch)"
        echo "[target.$t]"
        if [ "$bs" = yes ]; then
            echo 'build-std = ["std", "panic_abort"]'
        fi
        [ -n "$rf" ] || continue
        echo
        echo "[target.$t.env]"
        echo "passthrough = [\"CARGO_TARGET_${up}_RUSTFLAGS=$rf\"]"
    done < <("$list")
}

if [ "${1:-}" = --check ]; then
    root="$(dirname "$here")"
    if ! diff -u "$root/Cross.toml" <(gen); then
        echo "Cross.toml is out of date with targets/targets.tsv: run targets/cross-toml.sh > Cross.toml" >&2
        exit 1
    fi
    echo "Cross.toml matches targets/targets.tsv"
else
    gen
fi
