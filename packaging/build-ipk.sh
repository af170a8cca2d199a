#!/usr/bin/env bash
# Make OpenWrt .ipk packages of tunbox from a static binary, without the SDK.
#
#   packaging/build-ipk.sh [--arch ARCH]... [--depends LIST] [--allow-dynamic] BINARY TRIPLE [OUTDIR]
#
# BINARY   the static tunbox binary for TRIPLE (e.g. target/cross/TRIPLE/release/tunbox)
# TRIPLE   its Rust target triple; the OpenWrt architectures come from the
#          openwrt_arch column of targets/targets.tsv (one .ipk per architecture,
#          because opkg installs only packages whose Architecture the router lists)
# OUTDIR   where the packages go (default: dist/ipk)
#
# --arch ARCH        make a package for ARCH only (repeatable; needs no targets.tsv)
# --depends LIST     Depends field (default: "kmod-tun, kmod-bridge")
# --allow-dynamic    accept a dynamically linked binary (tests with a host build only)
#
# Output: OUTDIR/tunbox_<version>_<arch>.ipk, version from Cargo.toml. The layout is
# that of OpenWrt's scripts/ipkg-build: a gzip'd tar of ./debian-binary,
# ./data.tar.gz and ./control.tar.gz (not the ar archive of a .deb, which opkg
# on OpenWrt rejects). Contents: those of Package/tunbox/install in openwrt/Makefile
# (/usr/bin/tunbox, /etc/init.d/tunbox, /etc/config/tunbox with all sections
# disabled, /etc/tunbox/, /usr/share/tunbox/README) and /lib/upgrade/keep.d/tunbox;
# conffiles, postinst and prerm as OpenWrt's build makes them.
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

archs=()
depends="kmod-tun, kmod-bridge"
allow_dynamic=0
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) [ $# -ge 2 ] || usage; archs+=("$2"); shift 2 ;;
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
outdir="${3:-$PKG_ROOT/dist/ipk}"

check_binary "$binary" "$triple" "$allow_dynamic"
version="$(cargo_version)"
if [ ${#archs[@]} -eq 0 ]; then
	IFS=',' read -r -a archs <<<"$(target_field "$triple" openwrt_arch)"
	[ ${#archs[@]} -gt 0 ] || die "target $triple has no OpenWrt architecture in $(targets_tsv)"
fi
epoch="$(source_date_epoch)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# ---- data: the files as installed on the router (Package/tunbox/install of
# openwrt/Makefile, plus the keep.d list OpenWrt's build adds)
data="$work/data"
openwrt_stage "$data" "$binary"
tar_dir "$data" "$epoch" >"$work/data.tar"
installed_size="$(stat -c %s "$work/data.tar")" # as ipkg-build: size of the data tar
gzip -n -9 <"$work/data.tar" >"$work/data.tar.gz"

# ---- control: conffiles and the scripts OpenWrt's build generates (they call
# base-files' default_postinst / default_prerm)
control="$work/control"
install -d -m 0755 "$control"
mk_define Package/tunbox/conffiles >"$control/conffiles"
openwrt_script ipk-postinst >"$control/postinst"
openwrt_script ipk-prerm >"$control/prerm"
chmod 0755 "$control/postinst" "$control/prerm"
chmod 0644 "$control/conffiles"

echo "2.0" >"$work/debian-binary"
made=()
for arch in "${archs[@]}"; do
	{
		cat <<EOF
Package: tunbox
Version: $version
Depends: $depends
Source: package/tunbox
SourceName: tunbox
License: $(mk_var PKG_LICENSE)
LicenseFiles: $(mk_var PKG_LICENSE_FILES)
Section: net
URL: $(pkg_field URL)
Maintainer: $(mk_var PKG_MAINTAINER)
Architecture: $arch
Installed-Size: $installed_size
EOF
		# the description block, each line indented by one space
		printf 'Description:'
		mk_define Package/tunbox/description | sed 's/^/ /'
	} >"$control/control"
	chmod 0644 "$control/control"
	tar_dir "$control" "$epoch" | gzip -n -9 >"$work/control.tar.gz"
	ipk="$outdir/tunbox_${version}_${arch}.ipk"
	(cd "$work" && tar --format=gnu --numeric-owner --owner=0 --group=0 \
		--mtime="@$epoch" -cf - ./debian-binary ./data.tar.gz ./control.tar.gz) |
		gzip -n -9 >"$ipk"
	made+=("$ipk")
done
printf '%s\n' "${made[@]}"
