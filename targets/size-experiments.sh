#!/usr/bin/env bash
# Rebuild one target with each size setting in turn and print the stripped size of each, to see
# what every step of the release recipe in targets/build.sh buys (README "Size").
#   targets/size-experiments.sh [TARGET]     (default mipsel-unknown-linux-musl; ~2 min per line)
# Uses its own target dir (target/cross-size) so the normal build cache is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${1:-mipsel-unknown-linux-musl}"
export TUNBOX_CROSS_TARGET_DIR="$PWD/target/cross-size"
IA="-Zunstable-options -Cpanic=immediate-abort"
run() {
    local name="$1" log
    shift
    log="$TUNBOX_CROSS_TARGET_DIR/$name.log"
    mkdir -p "$TUNBOX_CROSS_TARGET_DIR"
    if env "$@" targets/build.sh "$T" build >"$log" 2>&1; then
        printf '%-44s %s\n' "$name" "$(tail -1 "$log" | awk '{print $2, $3, $4, $5}')"
    else
        printf '%-44s FAILED (see %s)\n' "$name" "$log"
    fi
}
run "panic=abort only" TUNBOX_BUILD_STD_FEATURES= TUNBOX_RELEASE_RUSTFLAGS= TUNBOX_CROSS_LLVM_STRIP=0
run "+optimize_for_size" TUNBOX_BUILD_STD_FEATURES=optimize_for_size TUNBOX_RELEASE_RUSTFLAGS= TUNBOX_CROSS_LLVM_STRIP=0
run "immediate-abort only" TUNBOX_BUILD_STD_FEATURES= "TUNBOX_RELEASE_RUSTFLAGS=$IA" TUNBOX_CROSS_LLVM_STRIP=0
run "optimize_for_size+immediate-abort" TUNBOX_BUILD_STD_FEATURES=optimize_for_size "TUNBOX_RELEASE_RUSTFLAGS=$IA" TUNBOX_CROSS_LLVM_STRIP=0
run "+force-unwind-tables=no" TUNBOX_CROSS_LLVM_STRIP=0
run "+llvm-strip (default)" TUNBOX_CROSS_LLVM_STRIP=1
