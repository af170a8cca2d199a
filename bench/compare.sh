#!/usr/bin/env bash
# tunbox against its peers in one run: the TUN reflector (C reference) and the tunnel
# (boringtun-cli, OpenVPN AES-256-GCM, simpletun-style C over TCP and UDP, socat, bare
# veth). Prints medians of ROUNDS rounds as Markdown tables (bench/compare.py says what
# is measured). Everything runs in namespaces tbx-cmp-* that are removed afterwards.
# A benchmark, not a test: CI does not run it.
#
# Usage (root): bash bench/compare.sh [ROUNDS]        (default 3)
#   SECS=4          seconds per iperf3 run
#   PINGS=2000      pings 1 ms apart per path (each bounded to 10 s)
#   ONLY=reflector|tunnel   one half only
#   TUNBOX=path     the tunbox to measure (default: cargo build --release)
#   TUNBOX_BEFORE=path      an older tunbox, measured beside it (reflector, enc UDP tunnel)
#   PATHS=a,b       only the paths whose names contain a or b (e.g. PATHS="enc UDP,boringtun")
#   BORINGTUN=path  boringtun-cli (default: cargo install into $CACHE, once)
#   CACHE=dir       where boringtun-cli is installed (default ~/.cache/tunbox-bench)
# Needs (installed with apt when missing): iperf3, openvpn (2.6), socat, wireguard-tools (wg),
# openssl, gcc, python3, iputils-ping, iproute2.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
bash .ci/deps.sh iperf3:iperf3 openvpn:openvpn socat:socat wg:wireguard-tools openssl:openssl \
  gcc:gcc python3:python3 ping:iputils-ping ip:iproute2 >&2 # (stdout is the tables)
if [ -z "${TUNBOX:-}" ]; then
  cargo build --release --quiet
  TUNBOX=$PWD/target/release/tunbox
fi
CACHE=${CACHE:-$HOME/.cache/tunbox-bench}
if [ -z "${BORINGTUN:-}" ]; then
  BORINGTUN=$CACHE/boringtun/bin/boringtun-cli
  if [ ! -x "$BORINGTUN" ]; then
    echo "installing boringtun-cli into $CACHE (once)" >&2
    CARGO_TARGET_DIR=$CACHE/target cargo install boringtun-cli --root "$CACHE/boringtun" >&2 ||
      { echo "boringtun-cli did not build: measuring without it" >&2; BORINGTUN=; }
  fi
fi
BENCH_BIN=$PWD/target/bench
mkdir -p "$BENCH_BIN"
gcc -O3 -o "$BENCH_BIN/reflect_ref" bench/reflect_ref.c
gcc -O3 -o "$BENCH_BIN/simpletun" bench/simpletun.c
export TUNBOX BORINGTUN BENCH_BIN TUNBOX_BEFORE="${TUNBOX_BEFORE:-}"
exec python3 bench/compare.py "$ROUNDS"
