#!/usr/bin/env bash
# Docker-free cross build of tunbox for one target from targets/targets.tsv, on Debian 12.
#
#   targets/build.sh TARGET [build|test|setup|env|size] [-- extra cargo args]
#
#   build  (default) release build: static musl binary at target/cross/TARGET/release/tunbox,
#          then checks with `file` that it is statically linked for the right architecture
#   test   `cargo test --target TARGET`: the test binaries run under qemu-user (runner from the table);
#          for the integration tests, which exec the target's tunbox binary, a binfmt_misc entry
#          runs it through the same qemu for the duration of the run (needs root)
#   setup  only install/check the toolchain (apt: rustc-web cargo-web rust-web-src qemu-user file llvm;
#          PyPI: ziglang), idempotent
#   env    print the environment the cargo commands run with (for copy-paste debugging)
#   size   print the stripped size of an already built release binary
#
# Toolchain: Debian's rustc-web/cargo-web >= 1.92, 1.96 today (/usr/bin, put first on PATH only
# inside this script; `setup` runs apt-get update and upgrades it when it is older)
# with its std sources (rust-web-src) and RUSTC_BOOTSTRAP=1 -Zbuild-std, because Debian ships std
# for the host only; zig (from the ziglang wheel) as C compiler and linker with its own musl libc.
#
# Environment knobs:
#   TUNBOX_CROSS_NO_INSTALL=1   never run apt-get/pip; fail with the command to run instead
#   TUNBOX_CROSS_TARGET_DIR     cargo target dir (default: <repo>/target/cross)
#   TUNBOX_BUILD_STD_FEATURES   override -Zbuild-std-features for `build` (default below)
#   TUNBOX_RELEASE_RUSTFLAGS    override the extra rustflags of `build` (default below)
#   TUNBOX_ZIG                  zig binary to use instead of the pinned ziglang wheel's
#   TUNBOX_ZIG_VERSION          ziglang version to install and use (default below)
#   TUNBOX_ZIG_HOME             where it is installed (default ~/.cache/tunbox/ziglang-VERSION)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
list="$here/list.sh"

# zig 0.14.1 (musl 1.2.5 built from its C sources): 15 KB smaller on mipsel than 0.17.1,
# whose libc replaces qsort and malloc with larger Zig versions and keeps .eh_frame.
ZIG_VERSION="${TUNBOX_ZIG_VERSION:-0.14.1}"
ZIGLANG_PIP_SPEC="ziglang==$ZIG_VERSION"
# Installed into a directory of its own, so another ziglang on the machine is left alone.
ZIG_HOME="${TUNBOX_ZIG_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/tunbox/ziglang-$ZIG_VERSION}"
APT_PKGS=(rustc-web cargo-web rust-web-src qemu-user file llvm)
RUST_PKGS=(rustc-web cargo-web rust-web-src)
# Oldest rustc-web that builds the release: -Cpanic=immediate-abort (DEFAULT_RELEASE_RUSTFLAGS)
# is a panic strategy since 1.92; 1.85 (Debian's rustc-web before the 1.96 update) fails.
MIN_RUSTC=1.92
# std features for the release build; see targets/README.md for what each saves.
DEFAULT_BUILD_STD_FEATURES="optimize_for_size"
# extra rustflags for the release build only (tests keep unwinding panics for the harness).
DEFAULT_RELEASE_RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no"

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "targets/build.sh: $*" >&2; exit 1; }
log() { echo "targets/build.sh: $*" >&2; }

[ $# -ge 1 ] || usage
case "$1" in -h | --help) usage ;; esac
T="$1"
shift
ACTION="${1:-build}"
[ $# -ge 1 ] && shift
[ "${1:-}" = "--" ] && shift
EXTRA_CARGO_ARGS=("$@")

# Validate the target and read its row.
"$list" "$T" rust_target >/dev/null || exit 2
get() { "$list" "$T" "$1"; }
ZIG_TARGET="$(get zig_target)"
ZIG_CPU="$(get zig_cpu)"
QEMU="$(get qemu)"
QEMU_CPU="$(get qemu_cpu)"
TARGET_RUSTFLAGS="$(get rustflags)"

TARGET_DIR="${TUNBOX_CROSS_TARGET_DIR:-$root/target/cross}"
DEB_PATH="/usr/bin:/bin:/usr/sbin:/sbin"

# ---------------------------------------------------------------- setup (idempotent)
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root for: $*"
    fi
}

apt_missing() {
    local p missing=()
    for p in "${APT_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    echo "${missing[@]:-}"
}

# "rustc 1.96.0 (...)" -> "1.96.0"
rustc_version() { /usr/bin/rustc --version 2>/dev/null | awk '{print $2}'; }
rustc_version_text() { local v; v="$(rustc_version)"; echo "/usr/bin/rustc ${v:-(not installed)}"; }
# True when /usr/bin/rustc is at least MIN_RUSTC (version sort; 1.96.0 > 1.92).
rustc_new_enough() {
    local v
    v="$(rustc_version)"
    [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_RUSTC" "${v%%-*}" | sort -V | head -n1)" = "$MIN_RUSTC" ]
}

find_zig() {
    if [ -n "${TUNBOX_ZIG:-}" ]; then echo "$TUNBOX_ZIG"; return 0; fi
    [ -x "$ZIG_HOME/ziglang/zig" ] && [ "$("$ZIG_HOME/ziglang/zig" version)" = "$ZIG_VERSION" ] || return 1
    echo "$ZIG_HOME/ziglang/zig"
}

setup() {
    local missing
    missing="$(apt_missing)"
    if [ -n "$missing" ]; then
        [ "${TUNBOX_CROSS_NO_INSTALL:-0}" = 1 ] && die "missing Debian packages; run: apt-get install --no-install-recommends $missing"
        log "installing Debian packages: $missing"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=600 $missing >&2 || {
            as_root apt-get update -q >&2
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                -o DPkg::Lock::Timeout=600 $missing >&2
        }
    fi
    if ! ZIG="$(find_zig)"; then
        [ "${TUNBOX_CROSS_NO_INSTALL:-0}" = 1 ] && die "zig $ZIG_VERSION not found; run: python3 -m pip install --target '$ZIG_HOME' '$ZIGLANG_PIP_SPEC'"
        log "installing $ZIGLANG_PIP_SPEC from PyPI into $ZIG_HOME"
        python3 -m pip install -q --disable-pip-version-check --upgrade --target "$ZIG_HOME" "$ZIGLANG_PIP_SPEC" >&2 ||
            python3 -m pip install -q --disable-pip-version-check --upgrade --break-system-packages --target "$ZIG_HOME" "$ZIGLANG_PIP_SPEC" >&2
        ZIG="$(find_zig)" || die "ziglang installed but its zig binary was not found"
    fi
    [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] || die "/usr/bin/cargo or /usr/bin/rustc missing (cargo-web, rustc-web)"
    if ! rustc_new_enough; then
        [ "${TUNBOX_CROSS_NO_INSTALL:-0}" = 1 ] &&
            die "$(rustc_version_text) is older than $MIN_RUSTC; run: apt-get update && apt-get install --no-install-recommends ${RUST_PKGS[*]}"
        # Stale package lists install an old rustc-web without complaint: refresh and upgrade.
        log "$(rustc_version_text) is older than $MIN_RUSTC: apt-get update and upgrading ${RUST_PKGS[*]}"
        as_root apt-get update -q -o DPkg::Lock::Timeout=600 >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout=600 "${RUST_PKGS[@]}" >&2
        rustc_new_enough || die "$(rustc_version_text) is still older than $MIN_RUSTC after apt-get update: \
the release build needs rustc-web >= $MIN_RUSTC (Debian 12 bookworm-security/updates ship 1.96); \
check /etc/apt/sources.list, or point TUNBOX_RELEASE_RUSTFLAGS at flags your rustc knows"
    fi
    local src
    src="$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
    [ -f "$src/Cargo.lock" ] || die "std sources not found at $src (rust-web-src)"
    [ -z "$QEMU" ] || command -v "$QEMU" >/dev/null || die "$QEMU not found (qemu-user)"
}

# ---------------------------------------------------------------- environment
# Per-target zig wrappers: rustc calls the linker (and the cc crate the C compiler) with one path.
write_wrappers() {
    local dir="$TARGET_DIR/zig-wrappers"
    mkdir -p "$dir"
    local cpu_flag=""
    [ -n "$ZIG_CPU" ] && cpu_flag="-mcpu=$ZIG_CPU"
    CC_WRAPPER="$dir/$T-cc"
    AR_WRAPPER="$dir/$T-ar"
    local want
    want="#!/bin/sh
# generated by targets/build.sh: zig as C compiler/linker for $T
exec '$ZIG' cc -target $ZIG_TARGET $cpu_flag \"\$@\""
    [ "$(cat "$CC_WRAPPER" 2>/dev/null)" = "$want" ] || { printf '%s\n' "$want" >"$CC_WRAPPER"; chmod +x "$CC_WRAPPER"; }
    want="#!/bin/sh
exec '$ZIG' ar \"\$@\""
    [ "$(cat "$AR_WRAPPER" 2>/dev/null)" = "$want" ] || { printf '%s\n' "$want" >"$AR_WRAPPER"; chmod +x "$AR_WRAPPER"; }
}

set_env() {
    ZIG="${ZIG:-$(find_zig)}" || die "zig not found: run targets/build.sh $T setup"
    write_wrappers
    local up="${T^^}"
    up="${up//-/_}"
    # Debian's toolchain only, whatever rustup put on PATH or in the environment.
    export PATH="$DEB_PATH:$PATH"
    export CARGO=/usr/bin/cargo RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
    unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER
    export RUSTC_BOOTSTRAP=1
    export CARGO_TARGET_DIR="$TARGET_DIR"
    export "CARGO_TARGET_${up}_LINKER=$CC_WRAPPER"
    # link-self-contained=no: use zig's crt1.o/libc.a (Debian ships no self-contained musl objects).
    export "CARGO_TARGET_${up}_RUSTFLAGS=-C link-self-contained=no${TARGET_RUSTFLAGS:+ $TARGET_RUSTFLAGS}"
    # No qemu in the table: the target runs natively here (x86_64 musl on an x86_64 host).
    local runner=""
    [ -n "$QEMU" ] && runner="$QEMU${QEMU_CPU:+ -cpu $QEMU_CPU}"
    if [ -n "$runner" ]; then
        export "CARGO_TARGET_${up}_RUNNER=$runner"
    else
        unset "CARGO_TARGET_${up}_RUNNER"
    fi
    local lo="${T//-/_}"
    export "CC_${lo}=$CC_WRAPPER" "AR_${lo}=$AR_WRAPPER"
    ENV_VARS=(PATH CARGO RUSTC RUSTDOC RUSTC_BOOTSTRAP CARGO_TARGET_DIR "CARGO_TARGET_${up}_LINKER"
        "CARGO_TARGET_${up}_RUSTFLAGS" "CARGO_TARGET_${up}_RUNNER" "CC_${lo}" "AR_${lo}")
}

BUILD_STD_FEATURES="${TUNBOX_BUILD_STD_FEATURES-$DEFAULT_BUILD_STD_FEATURES}"
RELEASE_RUSTFLAGS="${TUNBOX_RELEASE_RUSTFLAGS-$DEFAULT_RELEASE_RUSTFLAGS}"

artifact() { echo "$TARGET_DIR/$T/release/tunbox"; }

# `file` must say: ELF, the right machine, statically linked (not static-pie, not dynamic).
check_file() {
    local bin="$1" out want
    out="$(file -b "$bin")"
    case "$T" in
    aarch64-*) want="ELF 64-bit LSB executable, ARM aarch64" ;;
    armv7-* | arm-*) want="ELF 32-bit LSB executable, ARM, EABI5" ;;
    mipsel-*) want="ELF 32-bit LSB executable, MIPS, MIPS32 rel2" ;;
    mips-*) want="ELF 32-bit MSB executable, MIPS, MIPS32 rel2" ;;
    x86_64-*) want="ELF 64-bit LSB executable, x86-64" ;;
    *) die "no expected \`file\` output for $T" ;;
    esac
    case "$out" in
    "$want"*"statically linked"*) log "file: OK: $out" ;;
    *) die "file check failed for $bin: want '$want ... statically linked', got: $out" ;;
    esac
}

size_line() {
    local bin="$1" bytes
    bytes="$(stat -c %s "$bin")"
    printf '%-32s %9d bytes %7.1f KiB\n' "$T" "$bytes" "$(echo "$bytes / 1024" | bc -l 2>/dev/null || awk -v b="$bytes" 'BEGIN{print b/1024}')"
}

# Register a binfmt_misc handler "tunbox-TARGET-PID" that runs ELF files with this target's
# header (built from the header of BIN itself: class, byte order, e_machine) through qemu; removed
# again when this script exits. Set TUNBOX_CROSS_BINFMT=0 to skip (tests that exec the binary then
# fail with "Exec format error").
BINFMT_ENTRY=""
unregister_binfmt() {
    [ -n "$BINFMT_ENTRY" ] && [ -e "$BINFMT_ENTRY" ] && echo -1 >"$BINFMT_ENTRY" 2>/dev/null
    BINFMT_ENTRY=""
}
register_binfmt() {
    local bin="$1" bm=/proc/sys/fs/binfmt_misc
    [ -n "$QEMU" ] || return 0
    [ "${TUNBOX_CROSS_BINFMT:-1}" = 1 ] || { log "binfmt: skipped (TUNBOX_CROSS_BINFMT=0)"; return 0; }
    [ -f "$bin" ] || { log "binfmt: $bin not built"; return 0; }
    if [ ! -e "$bm/register" ]; then
        mount -t binfmt_misc binfmt_misc "$bm" 2>/dev/null ||
            { log "binfmt: binfmt_misc not available; tests that exec $bin will fail"; return 0; }
    fi
    local -a b
    read -r -a b <<<"$(od -An -tx1 -w20 -N20 "$bin")"
    [ "${b[0]}${b[1]}${b[2]}${b[3]}" = 7f454c46 ] || die "binfmt: $bin is not ELF"
    # Compare e_ident[0..7) (magic, class, data, version, OS ABI) and e_machine; ignore the padding
    # and let e_type be EXEC (2) or DYN (3).
    local mask=(ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00 00 fe ff ff ff)
    [ "${b[5]}" = 02 ] && mask[16]=ff mask[17]=fe
    local i magic="" m=""
    for i in $(seq 0 19); do
        magic+="\\x$(printf '%02x' $((0x${b[$i]} & 0x${mask[$i]})))"
        m+="\\x${mask[$i]}"
    done
    local name="tunbox-$T-$$"
    printf ':%s:M:0:%s:%s:%s:\n' "$name" "$magic" "$m" "$(command -v "$QEMU")" >"$bm/register" ||
        { log "binfmt: registering $name failed; tests that exec $bin will fail"; return 0; }
    BINFMT_ENTRY="$bm/$name"
    trap unregister_binfmt EXIT
    # qemu started by the kernel gets no -cpu argument; qemu-user reads QEMU_CPU instead.
    [ -n "$QEMU_CPU" ] && export QEMU_CPU
    log "binfmt: $name -> $(command -v "$QEMU")${QEMU_CPU:+ (QEMU_CPU=$QEMU_CPU)}"
}

case "$ACTION" in
setup) setup ;;
env)
    setup
    set_env
    for v in "${ENV_VARS[@]}"; do printf "export %s='%s'\n" "$v" "${!v}"; done
    ;;
build)
    setup
    set_env
    if [ -n "$RELEASE_RUSTFLAGS" ]; then
        up="${T^^}"
        up="${up//-/_}"
        v="CARGO_TARGET_${up}_RUSTFLAGS"
        export "$v=${!v} $RELEASE_RUSTFLAGS"
    fi
    feats=()
    [ -n "$BUILD_STD_FEATURES" ] && feats=("-Zbuild-std-features=$BUILD_STD_FEATURES")
    (cd "$root" && cargo build --release --locked --target "$T" -Zbuild-std=std,panic_abort "${feats[@]}" \
        --bin tunbox "${EXTRA_CARGO_ARGS[@]}")
    # The linker's --strip-all keeps non-allocated sections such as MIPS .pdr (procedure
    # descriptors LLVM emits for non-PIC code: ~90 KiB on mips); llvm-strip drops them.
    if [ "${TUNBOX_CROSS_LLVM_STRIP:-1}" = 1 ]; then
        llvm-strip --strip-all "$(artifact)"
    fi
    check_file "$(artifact)"
    # Smoke test of the release binary itself on the target's instruction set.
    runner=()
    [ -n "$QEMU" ] && runner=("$QEMU" ${QEMU_CPU:+-cpu "$QEMU_CPU"})
    out="$("${runner[@]}" "$(artifact)" --version)" || die "release binary failed to run: ${runner[*]} $(artifact) --version"
    log "runs: ${runner[*]:+${runner[*]} }tunbox --version -> $out"
    size_line "$(artifact)"
    ;;
test)
    setup
    set_env
    # Tests run in the dev profile (unwinding panics, so #[should_panic] and the harness work).
    # Build first, then let the kernel run the target's tunbox binary through qemu (binfmt_misc),
    # because the integration tests exec it (also via `ip netns exec`, setpriv), and qemu-user
    # does not follow execve into a foreign binary by itself.
    # Dependencies (std, the crypto crates) at opt-level 2: emulated unoptimised ChaCha20/X25519
    # made the tunnel tests take minutes under qemu; tunbox itself stays unoptimised.
    # --features test-hooks as on the host (.ci/test.sh): each test's tunbox keeps its run
    # directory (status sockets, high-water marks) in the test's own place instead of the
    # shared /var/run/tunbox, where tests running side by side met each other's sockets.
    test_args=(--locked --features test-hooks --target "$T" -Zbuild-std --config "profile.dev.package.\"*\".opt-level=${TUNBOX_CROSS_DEPS_OPT:-2}")
    # Integration tests this target's qemu can't run (qemu_skip_tests column): select the rest.
    skip="$(get qemu_skip_tests)"
    if [ -n "$skip" ] && [ -n "$QEMU" ] && [ ${#EXTRA_CARGO_ARGS[@]} -eq 0 ]; then
        test_args+=(--lib --bins)
        for f in "$root"/tests/*.rs; do
            n="$(basename "$f" .rs)"
            case ",$skip," in
            *",$n,"*) log "not run under $QEMU: tests/$n.rs (qemu_skip_tests in targets.tsv)" ;;
            *) test_args+=(--test "$n") ;;
            esac
        done
    fi
    # Tests that cannot run in this setting are reported ignored (build.rs turns these into
    # cfgs): without qemu (x86_64-musl on an x86_64 host) the static tunbox runs natively,
    # so an LD_PRELOAD (libfaketime) never reaches its clock; under qemu-user, file
    # capabilities on the binary do not apply (qemu is the interpreter) and some socket
    # options are not emulated. Set for both cargo runs, so the tests are built once.
    testenv=(TUNBOX_CROSS_QEMU=1)
    [ -z "$QEMU" ] && testenv=(TUNBOX_CROSS_NATIVE_STATIC=1)
    (cd "$root" && env "${testenv[@]}" cargo test "${test_args[@]}" --no-run "${EXTRA_CARGO_ARGS[@]}")
    register_binfmt "$TARGET_DIR/$T/debug/tunbox"
    # qemu-user can leave the forked child of a multi-threaded guest stuck in a futex before
    # its exec (seen once in tests/probe.rs under qemu-mips: no CPU used, never returning).
    # A suite that hangs is stopped after TUNBOX_CROSS_TEST_TIMEOUT seconds (timeout kills
    # its whole process group), the namespaces its tests left (tbx-*) are removed, and it
    # runs once more; a second hang, like any test failure, fails the step.
    limit="${TUNBOX_CROSS_TEST_TIMEOUT:-1500}"
    for attempt in 1 2; do
        rc=0
        (cd "$root" && env "${testenv[@]}" timeout -k 10 "$limit" cargo test "${test_args[@]}" --no-fail-fast "${EXTRA_CARGO_ARGS[@]}") || rc=$?
        if [ "$rc" != 124 ] && [ "$rc" != 137 ]; then
            exit "$rc"
        fi
        log "the tests under ${QEMU:-the native static build} did not finish within $limit s (attempt $attempt); removing their namespaces"
        for ns in $(ip netns list 2>/dev/null | awk '/^tbx-/ {print $1}'); do
            ip netns del "$ns" || true
        done
    done
    die "the tests under ${QEMU:-the native static build} hung twice (TUNBOX_CROSS_TEST_TIMEOUT=$limit)"
    ;;
size)
    [ -f "$(artifact)" ] || die "no release build for $T yet: targets/build.sh $T build"
    size_line "$(artifact)"
    ;;
*) usage ;;
esac
