#!/usr/bin/env bash
# CI step: cross-build tunbox as static musl binaries and run the test suite under qemu-user.
#
#   bash .ci/cross.sh                      the CI targets (ci=default in targets/targets.tsv:
#                                          aarch64-unknown-linux-musl, mips-unknown-linux-musl)
#   TUNBOX_ALL_TARGETS=1 bash .ci/cross.sh every target in targets/targets.tsv
#   TUNBOX_CROSS_TARGETS="a b" bash .ci/cross.sh   an explicit list
#   TUNBOX_CROSS_SKIP_TESTS=1              release builds + `file` checks only
#
# Installs what it needs (apt: rustc-web cargo-web rust-web-src qemu-user file llvm; PyPI: ziglang),
# idempotently, through targets/build.sh. For each target: release build, `file` check (statically
# linked, right architecture), `cargo test` under qemu-user. Ends with a stripped-size table and
# per-step timings. Exit status: non-zero if any step failed (all targets are still attempted).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build=targets/build.sh
list=targets/list.sh

if [ -n "${TUNBOX_CROSS_TARGETS:-}" ]; then
    read -r -a targets <<<"$TUNBOX_CROSS_TARGETS"
elif [ "${TUNBOX_ALL_TARGETS:-0}" = 1 ]; then
    mapfile -t targets < <("$list")
else
    mapfile -t targets < <("$list" --ci)
fi

failed=()
timings=()
step() { # step NAME CMD...: run, time, record
    local name="$1" t0 rc
    shift
    echo "::: cross: $name"
    t0=$(date +%s)
    "$@"
    rc=$?
    timings+=("$(printf '%-52s %4ds  %s' "$name" $(($(date +%s) - t0)) "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")")")
    [ $rc = 0 ] || failed+=("$name")
    return $rc
}

t_all=$(date +%s)
step "Cross.toml matches targets.tsv" targets/cross-toml.sh --check
# Install once up front (apt-get update first when the package lists are missing, as on a fresh machine).
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    step "apt-get update" apt-get update -q
fi
step "setup toolchain" "$build" "${targets[0]}" setup || {
    echo "cross: toolchain setup failed; skipping cross builds" >&2
    printf '%s\n' "${timings[@]}"
    exit 1
}

for t in "${targets[@]}"; do
    step "$t build (release)" "$build" "$t" build || continue
    if [ "${TUNBOX_CROSS_SKIP_TESTS:-0}" != 1 ]; then
        step "$t test (qemu: $("$list" "$t" qemu))" "$build" "$t" test
    fi
done

echo
echo "=== stripped size of the release binary (opt-level=z, lto, panic=immediate-abort, build-std optimize_for_size)"
# The router budget, checked on the mips targets CI builds so a change that outgrows it
# fails here rather than on a router. Issue 11's goal is at most 480 KiB on mipsel with
# every tool and the design's crates; it is NOT met yet: 575.1 KiB at the end of 2026-12-02 with the
# probe, several tunnel peers, `tunbox status`, the offloads and batching of reflector and tunnel
# (targets/README.md "Size"). Until the bytes are found, the guard sits just above what the
# binary is, so that growth is still caught and every increase is a decision.
budget_kib="${TUNBOX_MIPS_BUDGET_KIB:-590}"
for t in "${targets[@]}"; do
    line="$("$build" "$t" size 2>/dev/null)" || { echo "$t: no binary"; continue; }
    echo "$line"
    bytes="$(awk '{print $2}' <<<"$line")"
    case "$t" in
    mips*)
        if [ "$bytes" -gt $((budget_kib * 1024)) ]; then
            echo "cross: $t is $bytes bytes, over the ${budget_kib} KiB budget (TUNBOX_MIPS_BUDGET_KIB)"
            failed+=("$t size budget")
        fi
        ;;
    esac
done
echo
echo "=== cross timings (total $(($(date +%s) - t_all))s)"
printf '%s\n' "${timings[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "cross: FAILED: ${failed[*]}"
    exit 1
fi
echo "cross: all ${#targets[@]} targets built, checked and tested"
