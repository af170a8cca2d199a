#!/usr/bin/env bash
# Print the path of an apk-tools 3.x `apk` (the builder of OpenWrt 25.12's .apk
# packages), making one first if needed:
#
#   packaging/apk-tools.sh            -> e.g. /root/.cache/tunbox/apk-tools-3.0.6/apk
#
# 1. $TUNBOX_APK if set (must be apk-tools 3.x), else an `apk` 3.x on PATH;
# 2. else the one built earlier into the cache directory
#    (${TUNBOX_APK_CACHE:-${XDG_CACHE_HOME:-~/.cache}/tunbox/apk-tools-VERSION});
# 3. else built there from the vendored source release
#    (${TUNBOX_APK_TARBALL:-../shared/vendor/apk-tools-VERSION.tar.gz} beside the
#    checkout) with meson and ninja, about half a minute. Its build dependencies
#    (meson ninja-build pkg-config gcc libssl-dev zlib1g-dev libzstd-dev) are
#    installed with apt-get when missing, as root, unless TUNBOX_APK_NO_INSTALL=1;
#    apt-get waits up to 10 minutes for a dpkg lock held by another apt.
# Otherwise it fails, saying what to install.
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APK_VERSION=3.0.6
cache="${TUNBOX_APK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tunbox/apk-tools-$APK_VERSION}"
tarball="${TUNBOX_APK_TARBALL:-$(dirname "$PKG_ROOT")/shared/vendor/apk-tools-$APK_VERSION.tar.gz}"
build_debs=(meson ninja-build pkg-config gcc libssl-dev zlib1g-dev libzstd-dev)

say() { echo "${0##*/}: $*" >&2; }

is_apk3() { # PATH: an apk-tools 3.x that runs here
	local v
	v="$("$1" --version 2>/dev/null | head -1)" || return 1
	case "$v" in "apk-tools 3."*) return 0 ;; *) return 1 ;; esac
}

what_to_install() {
	cat >&2 <<EOF
${0##*/}: no apk-tools 3.x found, and none could be built. Either
  - put an apk-tools 3.x \`apk\` on PATH (or set TUNBOX_APK=/path/to/apk), or
  - provide the source release $tarball (or set TUNBOX_APK_TARBALL) and its build tools:
      apt-get update && apt-get install -y ${build_debs[*]}
    then run this again (it builds into $cache).
EOF
	exit 1
}

if [ -n "${TUNBOX_APK:-}" ]; then
	is_apk3 "$TUNBOX_APK" || die "TUNBOX_APK=$TUNBOX_APK is not an apk-tools 3.x that runs here"
	echo "$TUNBOX_APK"
	exit 0
fi
if command -v apk >/dev/null && is_apk3 "$(command -v apk)"; then
	command -v apk
	exit 0
fi
if [ -x "$cache/apk" ] && is_apk3 "$cache/apk"; then
	echo "$cache/apk"
	exit 0
fi

[ -f "$tarball" ] || { say "source release $tarball not found"; what_to_install; }

missing_tools() {
	local t need=()
	for t in meson ninja pkg-config cc; do command -v "$t" >/dev/null || need+=("$t"); done
	if command -v pkg-config >/dev/null; then
		for t in libssl:openssl zlib:zlib libzstd:libzstd; do
			pkg-config --exists "${t#*:}" || need+=("${t%%:*}")
		done
	fi
	printf '%s\n' "${need[@]}"
}

if [ -n "$(missing_tools)" ]; then
	if [ "${TUNBOX_APK_NO_INSTALL:-0}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		say "missing to build apk-tools: $(missing_tools | tr '\n' ' ')"
		what_to_install
	fi
	say "installing the apk-tools build dependencies: ${build_debs[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || say "apt-get update failed; trying the install anyway"
	apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${build_debs[@]}" >&2 ||
		{ say "apt-get install failed"; what_to_install; }
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "building apk-tools $APK_VERSION from $tarball into $cache"
tar -xzf "$tarball" -C "$work"
src="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -1)"
[ -f "$src/meson.build" ] || die "$tarball does not hold an apk-tools source tree"
if ! (cd "$src" && VERSION="$APK_VERSION" meson setup build -Dlua=disabled -Ddocs=disabled -Dhelp=disabled \
	-Dpython=disabled -Dtests=disabled -Ddefault_library=static >"$work/build.log" 2>&1 &&
	ninja -C build >>"$work/build.log" 2>&1); then
	tail -20 "$work/build.log" >&2
	die "building apk-tools failed (log above)"
fi
mkdir -p "$cache"
install -m 0755 "$src/build/src/apk" "$cache/apk.new"
mv "$cache/apk.new" "$cache/apk"
is_apk3 "$cache/apk" || die "the apk built in $cache does not run"
echo "$cache/apk"
