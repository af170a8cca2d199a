#!/usr/bin/env bash
# Make a Debian / Raspberry Pi OS package of tunbox from a static binary.
#
#   packaging/build-deb.sh [--arch DEBARCH] [--allow-dynamic] BINARY TRIPLE [OUTDIR]
#
# BINARY   the static tunbox binary for TRIPLE (e.g. target/cross/TRIPLE/release/tunbox)
# TRIPLE   its Rust target triple; the Debian architecture comes from the deb_arch
#          column of targets/targets.tsv: aarch64-unknown-linux-musl -> arm64 (Pi 3/4/5,
#          Zero 2 W on a 64-bit OS), arm-unknown-linux-musleabihf -> armhf (the ARMv6
#          build, so the one armhf package runs on a Pi Zero / Pi 1 and on every
#          32-bit Raspberry Pi OS)
# OUTDIR   where the package goes (default: dist/deb)
#
# --arch DEBARCH     Debian architecture (needs no targets.tsv)
# --allow-dynamic    accept a dynamically linked binary (tests with a host build only)
#
# Output: OUTDIR/tunbox_<version>_<debarch>.deb, version from Cargo.toml, made with
# dpkg-deb (root-owned files, no fakeroot needed). Contents: /usr/bin/tunbox,
# /etc/config/tunbox (conffile, all sections disabled), the systemd units
# tunbox@.service and tunbox-bridge@.service (installed, not enabled), a
# sysusers.d entry for the system user `tunbox` the units run as.
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

arch=""
allow_dynamic=0
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) [ $# -ge 2 ] || usage; arch="$2"; shift 2 ;;
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
outdir="${3:-$PKG_ROOT/dist/deb}"

command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (apt-get install dpkg)"
check_binary "$binary" "$triple" "$allow_dynamic"
version="$(cargo_version)"
if [ -z "$arch" ]; then
	arch="$(target_field "$triple" deb_arch)"
	[ -n "$arch" ] || die "target $triple has no Debian architecture in $(targets_tsv) (no .deb for it)"
fi
epoch="$(source_date_epoch)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"

install -d -m 0755 "$root/usr/bin" "$root/etc/config" "$root/usr/lib/systemd/system" \
	"$root/usr/lib/sysusers.d" "$root/usr/share/doc/tunbox" "$root/DEBIAN"
install -m 0755 "$binary" "$root/usr/bin/tunbox"
# readable by the unprivileged user the units run as; keys live in their own files
install -m 0644 "$PKG_ROOT/openwrt/files/tunbox.config" "$root/etc/config/tunbox"
install -m 0644 "$PKG_ROOT/dist/systemd/tunbox@.service" "$PKG_ROOT/dist/systemd/tunbox-bridge@.service" \
	"$root/usr/lib/systemd/system/"
cat >"$root/usr/lib/sysusers.d/tunbox.conf" <<'EOF'
# the user tunbox@.service runs as (with CAP_NET_ADMIN only)
u tunbox - "tunbox daemon" /nonexistent /usr/sbin/nologin
EOF
chmod 0644 "$root/usr/lib/sysusers.d/tunbox.conf"
cat >"$root/usr/share/doc/tunbox/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: tunbox

Files: *
Copyright: the tunbox developers
License: MIT or Apache-2.0
 Dual-licensed under the MIT license or the Apache License, Version 2.0, at
 your option. The Apache License 2.0 is in /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$root/usr/share/doc/tunbox/copyright"

installed_kib="$(du -k -s --apparent-size --exclude=DEBIAN "$root" | cut -f1)"
cat >"$root/DEBIAN/control" <<EOF
Package: tunbox
Version: $version
Architecture: $arch
Maintainer: tunbox developers <tunbox@localhost>
Installed-Size: $installed_kib
Section: net
Priority: optional
Description: TUN/TAP reflector, point-to-point tunnel and eth0-to-tap bridge
 One small static binary with three network tools built on TUN/TAP devices:
 a reflector answering every packet for a subnet with source and destination
 swapped (a loopback for link tests), an encrypted point-to-point tunnel over
 UDP or TCP, and an eth0-to-tap bridge setup that it can undo exactly.
 .
 Configured in /etc/config/tunbox (all sections disabled as installed). The
 systemd units tunbox@SECTION and tunbox-bridge@SECTION are installed but not
 enabled.
EOF
echo "/etc/config/tunbox" >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	# the system user tunbox@.service runs as
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers tunbox.conf
	elif ! getent passwd tunbox >/dev/null; then
		adduser --system --group --no-create-home --home /nonexistent tunbox
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		# upgrade: restart what runs (nothing is enabled or started on install)
		if [ -n "$2" ]; then
			systemctl try-restart 'tunbox@*.service' || true
		fi
	fi
fi
exit 0
EOF
cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	# instances first, then the bridges they may use
	systemctl stop 'tunbox@*.service' || true
	systemctl stop 'tunbox-bridge@*.service' || true
fi
exit 0
EOF
cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

# reproducible: one mtime for everything
find "$root" -exec touch -h -d "@$epoch" {} +
deb="$outdir/tunbox_${version}_${arch}.deb"
SOURCE_DATE_EPOCH="$epoch" dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
printf '%s\n' "$deb"
