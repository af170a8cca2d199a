#!/usr/bin/env bash
# Benchmark: TCP throughput (iperf3) and RTT (ping) through `tunbox tunnel` between two
# network namespaces joined by a veth pair, beside the plain veth path, for UDP/TCP,
# encrypted/plaintext (tun mode). Everything lives in namespaces this script makes and
# removes (also on failure). Each iperf3 run is bounded by SECS (default 5).
# Usage (root): bash bench/tunnel.sh [SECS]     (TUNBOX=path to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
command -v iperf3 >/dev/null || { echo "needs iperf3 (apt-get install iperf3)" >&2; exit 1; }
if [ -z "${TUNBOX:-}" ]; then
  cargo build --release --quiet
  TUNBOX=$PWD/target/release/tunbox
fi
A=tbx-tbench-a-$$
B=tbx-tbench-b-$$
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$A"; ip netns add "$B"
ip -n "$A" link set lo up; ip -n "$B" link set lo up
ip -n "$A" link add tbxva type veth peer name tbxvb
ip -n "$A" link set tbxvb netns "$B"
ip -n "$A" addr add 198.18.0.1/24 dev tbxva; ip -n "$B" addr add 198.18.0.2/24 dev tbxvb
ip -n "$A" link set tbxva up; ip -n "$B" link set tbxvb up
"$TUNBOX" genkey "$TMP/key" 2>/dev/null

start() { # $1 transport, $2 enc|plain
  local k=(--key-file "$TMP/key")
  [ "$2" = plain ] && k=(--plaintext)
  ip netns exec "$A" "$TUNBOX" tunnel --listen 5555 --transport "$1" --dev tb0 \
    --address 198.19.0.1/24 "${k[@]}" 2>"$TMP/srv.log" & pids+=($!)
  sleep 0.3
  ip netns exec "$B" "$TUNBOX" tunnel --remote 198.18.0.1:5555 --transport "$1" --dev tb0 \
    --address 198.19.0.2/24 "${k[@]}" 2>"$TMP/cli.log" & pids+=($!)
  for _ in $(seq 100); do
    ip netns exec "$B" ping -c1 -W1 198.19.0.1 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "tunnel $1/$2 did not come up" >&2; cat "$TMP/srv.log" "$TMP/cli.log" >&2; exit 1
}

stop() {
  kill -USR1 "${pids[@]}" 2>/dev/null || true
  sleep 0.2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
  sleep 0.3
}

measure() { # $1 = server address in ns A; prints "rtt_avg_ms mbit_s"
  local rtt tcp s
  rtt=$(ip netns exec "$B" ping -c 50 -i 0.02 -W 1 -q "$1" | awk -F/ '/^rtt/ {print $5}')
  ip netns exec "$A" timeout $((SECS + 15)) iperf3 -s -1 -B "$1" -p 5201 >/dev/null 2>&1 & s=$!
  sleep 0.4
  tcp=$(ip netns exec "$B" timeout $((SECS + 10)) iperf3 -c "$1" -p 5201 -t "$SECS" -f m \
        | awk '/receiver/ {print $(NF-2)}')
  wait $s 2>/dev/null || true
  echo "${rtt:-?} ${tcp:-?}"
}

printf '%-28s %12s %14s\n' "path" "rtt avg ms" "tcp Mbit/s"
read -r rtt tcp < <(measure 198.18.0.1)
printf '%-28s %12s %14s\n' "veth (no tunnel)" "$rtt" "$tcp"
for t in udp tcp; do
  for m in enc plain; do
    start "$t" "$m"
    read -r rtt tcp < <(measure 198.19.0.1)
    printf '%-28s %12s %14s\n' "tunnel $t $m" "$rtt" "$tcp"
    stop
    grep -h "drops" "$TMP/srv.log" | tail -1 | sed 's/^/    server: /'
  done
done
