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
#   TUNBOX_BEFORE=path      an older tunbox, measured beside it (reflector)
#   BORINGTUN=path  boringtun-cli (default: cargo install into $CACHE, once)
#   CACHE=dir       where boringtun-cli is installed (default ~/.cache/tunbox-bench)
# Needs: iperf3, openvpn (2.6), socat, wireguard-tools (wg), openssl, gcc, python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
for t in iperf3 openvpn socat wg openssl gcc python3; do
  command -v "$t" >/dev/null || {
    echo "needs $t: apt-get install iperf3 openvpn socat wireguard-tools openssl gcc python3" >&2
    exit 1
  }
done
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
