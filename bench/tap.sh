#!/usr/bin/env bash
# Benchmark of the TAP reflector on a simulated LAN: namespace "laptop" joined by a veth
# pair to namespace "pi" (end named eth0), eth0 and tap0 in a bridge, `tunbox reflect
# --mode tap` on tap0 answering for 198.19.0.0/16 and 2001:2:0:1::/64. From the laptop:
# UDP packets/s (64-byte payloads) and TCP throughput with iperf3 (client and server both
# on the laptop: the reflector turns the client's packets back to the server), and ping
# round trips (min/avg of 500 pings 2 ms apart) with and without --icmp-echo. Everything
# lives in namespaces this script makes and removes; each iperf3 run is bounded by SECS
# (default 5), pings by count. The bridge is made by `tunbox bridge up`.
# Usage (root): bash bench/tap.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
command -v iperf3 >/dev/null || { apt-get update -qq && apt-get install -y -qq iperf3 >/dev/null; }
cargo build --release --quiet
TUNBOX=$PWD/target/release/tunbox
L=tbx-tapbench-l-$$
P=tbx-tapbench-p-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # anything else still in the namespaces (iperf3 servers) was started by this script
  for p in $(ip netns pids "$L" 2>/dev/null) $(ip netns pids "$P" 2>/dev/null); do
    kill "$p" 2>/dev/null || true
  done
  ip netns del "$L" 2>/dev/null || true
  ip netns del "$P" 2>/dev/null || true
}
trap cleanup EXIT
lx() { ip netns exec "$L" "$@"; }

ip netns add "$L"
ip netns add "$P"
ip -n "$L" link set lo up
ip -n "$P" link set lo up
ip -n "$L" link add lap0 type veth peer name eth0 netns "$P"
ip -n "$L" addr add 198.18.0.2/15 dev lap0
ip -n "$L" addr add 2001:2::2/48 dev lap0 nodad
ip -n "$L" link set lap0 up
ip -n "$P" addr add 198.18.0.1/15 dev eth0
ip -n "$P" addr add 2001:2::1/48 dev eth0 nodad
ip -n "$P" link set eth0 up
ip netns exec "$P" "$TUNBOX" bridge up --ifname eth0 --tap tap0 --bridge br-tunbox \
  --state-file "/tmp/$P.state" >/dev/null
rm -f "/tmp/$P.state"

start() { # extra reflector options...
  ip netns exec "$P" "$TUNBOX" reflect --mode tap --dev tap0 --range 198.19.0.0/16 \
    --range 2001:2:0:1::/64 "$@" 2>/dev/null & pids+=($!)
  sleep 0.5
  lx ping -c 1 -W 2 198.19.7.7 >/dev/null || { echo "TAP reflector does not answer" >&2; exit 1; }
}

stop() { kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true; unset 'pids[-1]'; sleep 0.3; }

iperf() { # $1 = target address; prints "pps mbit_s"
  ip netns exec "$L" timeout $((SECS + 15)) iperf3 -s -1 -p 5201 >/dev/null 2>&1 & local s=$!
  sleep 0.3
  local udp tcp
  udp=$(lx timeout $((SECS + 10)) iperf3 -c "$1" -p 5201 -u -b 0 -l 64 -t "$SECS" -J)
  wait $s 2>/dev/null || true
  ip netns exec "$L" timeout $((SECS + 15)) iperf3 -s -1 -p 5202 >/dev/null 2>&1 & s=$!
  sleep 0.3
  tcp=$(lx timeout $((SECS + 10)) iperf3 -c "$1" -p 5202 -t "$SECS" -J)
  wait $s 2>/dev/null || true
  python3 - "$udp" "$tcp" <<'PY'
import json, sys
u = json.loads(sys.argv[1])["end"]["sum"]
t = json.loads(sys.argv[2])["end"]["sum_received"]
got = u["packets"] - u["lost_packets"]
print(f'{got / u["seconds"]:.0f} {t["bits_per_second"] / 1e6:.0f}')
PY
}

rtt() { # $1 = address; prints "min/avg" RTT in microseconds over 500 pings 2 ms apart
  lx ping -q -c 500 -i 0.002 -W 1 "$1" | python3 -c '
import sys, re
m = re.search(r"= ([\d.]+)/([\d.]+)/", sys.stdin.read())
print(f"{float(m.group(1)) * 1000:.0f}/{float(m.group(2)) * 1000:.0f}" if m else "-")'
}

start
read -r p4 t4 <<<"$(iperf 198.19.7.7)"
read -r p6 t6 <<<"$(iperf 2001:2:0:1::7)"
r4=$(rtt 198.19.7.7)
r6=$(rtt 2001:2:0:1::7)
stop
start --icmp-echo
e4=$(rtt 198.19.7.7)
e6=$(rtt 2001:2:0:1::7)
stop
# For comparison: the Pi's own kernel answering ping through the same bridge.
k4=$(rtt 198.18.0.1)

printf '\n%-36s %12s %12s\n' "TAP reflector (${SECS}s each)" "UDP pkts/s" "TCP Mbit/s"
printf '%-36s %12s %12s\n' "IPv4 via 198.19.7.7" "$p4" "$t4"
printf '%-36s %12s %12s\n' "IPv6 via 2001:2:0:1::7" "$p6" "$t6"
printf '\n%-36s %12s %12s\n' "ping RTT min/avg of 500 (us)" "IPv4" "IPv6"
printf '%-36s %12s %12s\n' "reflected (two trips)" "$r4" "$r6"
printf '%-36s %12s %12s\n' "--icmp-echo (one trip)" "$e4" "$e6"
printf '%-36s %12s %12s\n' "the Pi's kernel (bridge only)" "$k4" "-"
