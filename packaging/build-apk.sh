#!/usr/bin/env bash
# Make OpenWrt .apk packages (apk-tools 3, OpenWrt 25.12 and newer) of tunbox
# from a static binary, without the SDK.
#
#   packaging/build-apk.sh [--arch ARCH]... [--release N] [--depends LIST] [--allow-dynamic] BINARY TRIPLE [OUTDIR]
#
# BINARY   the static tunbox binary for TRIPLE (e.g. target/cross/TRIPLE/release/tunbox)
# TRIPLE   its Rust target triple; the OpenWrt architectures come from the
#          openwrt_arch column of targets/targets.tsv (one .apk per architecture:
#          apk installs only packages whose arch is listed in /etc/apk/arch)
# OUTDIR   where the packages go (default: dist/apk)
#
# --arch ARCH        make a package for ARCH only (repeatable; needs no targets.tsv)
# --release N        package release (default: PKG_RELEASE of openwrt/Makefile)
# --depends LIST     space-separated dependencies (default: "kmod-tun kmod-bridge")
# --allow-dynamic    accept a dynamically linked binary (tests with a host build only)
#
# Output: OUTDIR/<arch>/tunbox-<version>-r<release>.apk (one directory per
# architecture, as the file names are the same), version from Cargo.toml, made
# with `apk mkpkg` (packaging/apk-tools.sh finds or builds it) with the metadata
# and files OpenWrt's include/package-pack.mk gives a package: name, version,
# arch, description, license, origin, url, maintainer, depends; the files of
# Package/tunbox/install in openwrt/Makefile plus /lib/upgrade/keep.d/tunbox and
# /lib/apk/packages/tunbox.{list,conffiles,conffiles_static}; post-install,
# post-upgrade and pre-deinstall scripts that call base-files' default_postinst /
# default_prerm. Unsigned: sign with `apk adbsign --sign-key KEY.pem FILE.apk`.
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

archs=()
depends="kmod-tun kmod-bridge"
release=""
allow_dynamic=0
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) [ $# -ge 2 ] || usage; archs+=("$2"); shift 2 ;;
	--release) [ $# -ge 2 ] || usage; release="$2"; shift 2 ;;
	--depends) [ $# -ge 2 ] || usage; depends="$2"; shift 2 ;;
	--allow-dynamic) allow_dynamic=1; shift ;;
	-h | --help) usage ;;
	--) shift; break ;;
	-*) echo "unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
binary="$1"
triple="$2"
outdir="${3:-$PKG_ROOT/dist/apk}"

check_binary "$binary" "$triple" "$allow_dynamic"
[ -n "$release" ] || release="$(openwrt_release)"
case "$release" in '' | *[!0-9]*) die "--release must be a number, not '$release'" ;; esac
version="$(cargo_version)-r$release"
if [ ${#archs[@]} -eq 0 ]; then
	mapfile -t archs < <(openwrt_archs "$triple")
fi
apk="$("$PKG_ROOT/packaging/apk-tools.sh")" || die "no apk-tools 3.x (see above)"
# files are recorded with the owner mkpkg sees: root, as under OpenWrt's fakeroot
mkpkg=("$apk" mkpkg)
if [ "$(id -u)" != 0 ]; then
	command -v fakeroot >/dev/null || die "run as root, or install fakeroot, so the files are owned by root"
	mkpkg=(fakeroot "$apk" mkpkg)
fi
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH="$(source_date_epoch)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- the files, as package-pack.mk lays them out before calling mkpkg
files="$work/files"
openwrt_stage "$files" "$binary"
meta="$files/lib/apk/packages"
install -d -m 0755 "$meta"
# every file and symlink of the package (not this list itself, nor the conffiles
# lists written after it)
(cd "$files" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort) >"$work/tunbox.list"
install -m 0644 "$work/tunbox.list" "$meta/tunbox.list"
mk_define Package/tunbox/conffiles >"$meta/tunbox.conffiles"
: >"$meta/tunbox.conffiles_static"
while IFS= read -r c; do
	if [ -z "$c" ] || [ ! -f "$files/$c" ]; then continue; fi
	echo "$c $(sha256sum "$files/$c" | cut -d' ' -f1)" >>"$meta/tunbox.conffiles_static"
done <"$meta/tunbox.conffiles"
chmod 0644 "$meta/tunbox.conffiles" "$meta/tunbox.conffiles_static"

# ---- scripts
scripts="$work/scripts"
mkdir -p "$scripts"
for s in post-install post-upgrade pre-deinstall; do
	openwrt_script "apk-$s" >"$scripts/$s"
	chmod 0755 "$scripts/$s"
done

made=()
for arch in "${archs[@]}"; do
	mkdir -p "$outdir/$arch"
	out="$outdir/$arch/tunbox-$version.apk"
	"${mkpkg[@]}" \
		--info "name:tunbox" \
		--info "version:$version" \
		--info "description:$(pkg_description_line)" \
		--info "arch:$arch" \
		--info "license:$(mk_var PKG_LICENSE)" \
		--info "origin:package/tunbox" \
		--info "url:$(pkg_field URL)" \
		--info "maintainer:$(mk_var PKG_MAINTAINER)" \
		--script "post-install:$scripts/post-install" \
		--script "post-upgrade:$scripts/post-upgrade" \
		--script "pre-deinstall:$scripts/pre-deinstall" \
		--info "depends:$depends" \
		--files "$files" \
		--output "$out" >&2 || die "apk mkpkg failed for $arch"
	made+=("$out")
done
printf '%s\n' "${made[@]}"
