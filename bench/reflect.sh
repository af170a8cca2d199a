#!/usr/bin/env bash
# Benchmark: UDP packets/s (64-byte payloads) and TCP throughput through `tunbox reflect`
# and through the C reference reflector (reflect_ref.c, -O3), in one run, in a network
# namespace this script makes and removes. Each iperf3 run is bounded by SECS (default 5).
# Usage (root): bash bench/reflect.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
cargo build --release --quiet
mkdir -p target/bench
gcc -O3 -o target/bench/reflect_ref bench/reflect_ref.c
TUNBOX=$PWD/target/release/tunbox
REF=$PWD/target/bench/reflect_ref
NS=tbx-bench-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # anything still holding the namespace was started by this script
  for p in $(ip netns pids "$NS" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
nsx() { ip netns exec "$NS" "$@"; }

start() { # $1 = tunbox|ref ; leaves the reflector's pid in pids[-1]
  if [ "$1" = tunbox ]; then
    # started directly, not through nsx: a backgrounded function is a subshell and $!
    # would name it instead of the reflector
    ip netns exec "$NS" "$TUNBOX" reflect --dev tun0 --address 198.18.0.1/15 2>/dev/null & pids+=($!)
  else
    ip netns exec "$NS" "$REF" tun0 & pids+=($!)
    for _ in $(seq 50); do ip -n "$NS" link show tun0 >/dev/null 2>&1 && break; sleep 0.1; done
    ip -n "$NS" addr add 198.18.0.1/15 dev tun0
    ip -n "$NS" link set tun0 up
  fi
  for _ in $(seq 50); do ip -n "$NS" link show tun0 2>/dev/null | grep -q UP && return; sleep 0.1; done
  echo "reflector $1 did not come up" >&2; exit 1
}

stop() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; sleep 0.3; }

measure() { # prints "pps mbit_s"
  ip netns exec "$NS" iperf3 -s -1 -p 5201 >/dev/null 2>&1 & local s=$!
  sleep 0.3
  local udp tcp
  udp=$(nsx timeout $((SECS + 10)) iperf3 -c 198.18.7.7 -p 5201 -u -b 0 -l 64 -t "$SECS" -J)
  wait $s 2>/dev/null || true
  ip netns exec "$NS" iperf3 -s -1 -p 5202 >/dev/null 2>&1 & s=$!
  sleep 0.3
  tcp=$(nsx timeout $((SECS + 10)) iperf3 -c 198.18.7.7 -p 5202 -t "$SECS" -J)
  wait $s 2>/dev/null || true
  python3 - "$udp" "$tcp" <<'PY'
import json, sys
u = json.loads(sys.argv[1])["end"]["sum"]
t = json.loads(sys.argv[2])["end"]["sum_received"]
got = u["packets"] - u["lost_packets"]
print(f'{got / u["seconds"]:.0f} {t["bits_per_second"] / 1e6:.0f}')
PY
}

declare -A res
for impl in ref tunbox; do
  start "$impl"
  res[$impl]=$(measure)
  stop
done
read -r rp rt <<<"${res[ref]}"
read -r tp tt <<<"${res[tunbox]}"
printf '\n%-28s %14s %14s\n' "reflector (${SECS}s each)" "UDP pkts/s" "TCP Mbit/s"
printf '%-28s %14s %14s\n' "C reference (read/write)" "$rp" "$rt"
printf '%-28s %14s %14s\n' "tunbox reflect" "$tp" "$tt"
python3 -c "print(f'%-28s %14.2f %14.2f' % ('ratio tunbox/reference', $tp/$rp, $tt/$rt))"
