#!/bin/sh
# Runs every fuzz target of fuzz/ for a bounded time each (cargo-fuzz, libFuzzer).
#
#   fuzz/run.sh              CI smoke run: 15 s per target (15 targets: ~4 min of
#                            fuzzing after the build, which takes 2-4 min)
#   fuzz/run.sh 600          release run: 10 min per target (~2.2 h), before a release
#   fuzz/run.sh 60 tunnel_pair noise_messages   some targets only
#
# Needs `cargo install cargo-fuzz`; builds with the stable toolchain through
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags). Seeds come from fuzz/seeds/<target>
# (packets and files of the unit tests; see fuzz/seeds/make.py), the corpus grows in
# fuzz/corpus/<target> (not committed). A crash stops the run with status 1 and leaves
# the input in fuzz/artifacts/<target>/ (reproduce: cargo fuzz run TARGET FILE).
set -eu
cd "$(dirname "$0")"
secs=${1:-15}
[ $# -gt 0 ] && shift
targets=${*:-"ip_reflect tap_transform ndp icmp text_parsers noise_messages tunnel_pair tcp_framing replay_window key_file uci bridge_state netlink command_line gso"}
export RUSTC_BOOTSTRAP=1
python3 seeds/make.py >/dev/null
cargo fuzz build -O
failed=""
for t in $targets; do
    mkdir -p "corpus/$t"
    echo "== $t: $secs s"
    if ! cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=1 2>"run-$t.log"; then
        failed="$failed $t"
        tail -30 "run-$t.log"
    else
        grep -E "stat::number_of_executed_units|Done" "run-$t.log" | tail -2
    fi
done
if [ -n "$failed" ]; then
    echo "FAILED:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "all targets ran $secs s each without a failure"
