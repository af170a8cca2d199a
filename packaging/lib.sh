# shellcheck shell=bash
# Shared by packaging/build-ipk.sh and packaging/build-deb.sh (sourced, not run).

PKG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# The version of the tunbox package: `version` of [package] in Cargo.toml.
cargo_version() {
	local v
	v="$(awk '
		/^\[/ { in_pkg = ($0 == "[package]") }
		in_pkg && /^version[[:space:]]*=/ {
			sub(/^version[[:space:]]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
		}' "$PKG_ROOT/Cargo.toml")"
	[ -n "$v" ] || die "no version in [package] of $PKG_ROOT/Cargo.toml"
	printf '%s\n' "$v"
}

# targets/targets.tsv (the cross-build table): PKG_TARGETS_TSV overrides.
targets_tsv() {
	printf '%s\n' "${PKG_TARGETS_TSV:-$PKG_ROOT/targets/targets.tsv}"
}

# target_field TRIPLE FIELD: one column of the row for TRIPLE ("-" prints as
# empty), read by the column names in the table's "#rust_target" header line.
target_field() {
	local tsv triple="$1" field="$2"
	tsv="$(targets_tsv)"
	[ -f "$tsv" ] || die "$tsv not found: pass the architecture explicitly (--arch) or set PKG_TARGETS_TSV"
	awk -F'\t' -v t="$triple" -v f="$field" '
		/^#rust_target/ { sub(/^#/, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
		/^#/ || /^[[:space:]]*$/ { next }
		$1 == t {
			if (!(f in col)) { print "no column " f > "/dev/stderr"; exit 3 }
			v = $(col[f]); if (v == "-") v = ""; print v; found = 1; exit
		}
		END { if (!found) exit 2 }' "$tsv" || {
		case $? in
		2) die "target $triple is not in $tsv" ;;
		*) die "cannot read column $field of $tsv" ;;
		esac
	}
}

# What `file` says about the ELF machine of each Rust target's binaries.
elf_pattern() {
	case "$1" in
	aarch64-*) echo 'ELF 64-bit LSB .*ARM aarch64' ;;
	armv7-* | arm-* | armv5te-* | thumbv7*) echo 'ELF 32-bit LSB .*ARM, EABI5' ;;
	mipsel-*) echo 'ELF 32-bit LSB .*MIPS' ;;
	mips-*) echo 'ELF 32-bit MSB .*MIPS' ;;
	mips64el-*) echo 'ELF 64-bit LSB .*MIPS' ;;
	mips64-*) echo 'ELF 64-bit MSB .*MIPS' ;;
	x86_64-*) echo 'ELF 64-bit LSB .*x86-64' ;;
	i686-* | i586-*) echo 'ELF 32-bit LSB .*Intel 80386' ;;
	riscv64*) echo 'ELF 64-bit LSB .*RISC-V' ;;
	*) return 1 ;;
	esac
}

# check_binary PATH TRIPLE ALLOW_DYNAMIC: refuse a binary for another machine,
# and (unless ALLOW_DYNAMIC=1) one that is not statically linked: routers and
# Pis get a single static musl binary with no libc to depend on.
check_binary() {
	local bin="$1" triple="$2" allow_dynamic="$3" desc pat
	[ -f "$bin" ] || die "binary $bin not found"
	command -v file >/dev/null || die "the 'file' command is needed (apt-get install file)"
	desc="$(file -b "$bin")"
	pat="$(elf_pattern "$triple")" || die "unknown target triple $triple"
	printf '%s\n' "$desc" | grep -Eq "$pat" ||
		die "$bin is not a $triple binary: $desc"
	if [ "$allow_dynamic" != 1 ]; then
		printf '%s\n' "$desc" | grep -Eq 'statically linked|static-pie linked' ||
			die "$bin is not statically linked ($desc); build it with targets/build.sh $triple"
	fi
}

# Reproducible timestamps: SOURCE_DATE_EPOCH, else the last commit, else now.
source_date_epoch() {
	if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
		echo "$SOURCE_DATE_EPOCH"
	elif git -C "$PKG_ROOT" log -1 --format=%ct >/dev/null 2>&1; then
		git -C "$PKG_ROOT" log -1 --format=%ct
	else
		date +%s
	fi
}

# deterministic tar of DIR's contents (as ./...), owned by root, to stdout
tar_dir() {
	local dir="$1" mtime="$2"
	(cd "$dir" && tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name \
		--mtime="@$mtime" -cf - .)
}

# ---- OpenWrt package facts, read from openwrt/Makefile (their only home)
openwrt_makefile() { printf '%s\n' "$PKG_ROOT/openwrt/Makefile"; }

# mk_var NAME: the value of a top-level "NAME:=value" line (first one)
mk_var() {
	local v
	v="$(sed -n "s/^$1:=//p" "$(openwrt_makefile)" | head -1)"
	[ -n "$v" ] || die "no $1:= in $(openwrt_makefile)"
	printf '%s\n' "$v"
}

# mk_define NAME: the lines of "define NAME" ... "endef", leading blanks removed
mk_define() {
	awk -v d="define $1" '
		$0 == d { on = 1; next }
		on && /^endef/ { exit }
		on { sub(/^[ \t]+/, ""); print }' "$(openwrt_makefile)"
}

# pkg_field NAME: "  NAME:=value" inside define Package/tunbox (URL, TITLE, ...)
pkg_field() {
	mk_define Package/tunbox | sed -n "s/^$1:=//p" | head -1
}

# The package release (PKG_RELEASE), as apk versions it: VERSION-rRELEASE
openwrt_release() { mk_var PKG_RELEASE; }

# The description on one line, as OpenWrt's build strips it for apk
pkg_description_line() { mk_define Package/tunbox/description | paste -sd' ' - | sed 's/[[:space:]]\{1,\}/ /g; s/ $//'; }

# openwrt_stage DIR BINARY: the files of the OpenWrt package, as
# Package/tunbox/install in openwrt/Makefile lays them out, plus what OpenWrt's
# build adds for every package: /lib/upgrade/keep.d/tunbox with the conffiles
# entries that are not files of the package (the key directory), so sysupgrade
# keeps them.
openwrt_stage() {
	local d="$1" bin="$2" files="$PKG_ROOT/openwrt/files" c keep=""
	install -d -m 0755 "$d/usr/bin" "$d/etc/init.d" "$d/etc/config" "$d/usr/share/tunbox"
	install -m 0755 "$bin" "$d/usr/bin/tunbox"
	install -m 0755 "$files/tunbox.init" "$d/etc/init.d/tunbox"
	# 0600 as OpenWrt's INSTALL_CONF installs UCI files
	install -m 0600 "$files/tunbox.config" "$d/etc/config/tunbox"
	install -d -m 0700 "$d/etc/tunbox"
	install -m 0644 "$files/README" "$d/usr/share/tunbox/README"
	while IFS= read -r c; do
		[ -n "$c" ] || continue
		[ -f "$d/$c" ] || keep="${keep}${c}"$'\n'
	done < <(mk_define Package/tunbox/conffiles)
	if [ -n "$keep" ]; then
		install -d -m 0755 "$d/lib/upgrade/keep.d"
		printf '%s' "$keep" >"$d/lib/upgrade/keep.d/tunbox"
		chmod 0644 "$d/lib/upgrade/keep.d/tunbox"
	fi
}

# openwrt_script KIND: the maintainer scripts OpenWrt's build generates for a
# package without scripts of its own (include/package-pack.mk): they hand over
# to base-files' default_postinst / default_prerm, which enable the init script
# on a first install only (PKG_UPGRADE=1 on an upgrade), start it, stop and
# disable it on removal, run /etc/uci-defaults, and only enable when
# installing into an image root (IPKG_INSTROOT).
#   ipk-postinst ipk-prerm                    (opkg: $0 names the package)
#   apk-post-install apk-post-upgrade apk-pre-deinstall
# shellcheck disable=SC2016  # the $ are the generated scripts', not expanded here
openwrt_script() {
	local head='#!/bin/sh'
	local noscript='[ "${IPKG_NO_SCRIPT}" = "1" ] && exit 0'
	local lib='[ -s "${IPKG_INSTROOT}/lib/functions.sh" ] || exit 0
. "${IPKG_INSTROOT}/lib/functions.sh"'
	local apkvars='export root="${IPKG_INSTROOT}"
export pkgname="tunbox"'
	case "$1" in
	ipk-postinst) printf '%s\n' "$head" "$noscript" "$lib" 'default_postinst "$0" "$@"' ;;
	ipk-prerm) printf '%s\n' "$head" "$lib" 'default_prerm "$0" "$@"' ;;
	apk-post-install) printf '%s\n' "$head" "$noscript" "$lib" "$apkvars" add_group_and_user default_postinst ;;
	apk-post-upgrade) printf '%s\n' "$head" 'export PKG_UPGRADE=1' "$noscript" "$lib" "$apkvars" add_group_and_user default_postinst ;;
	apk-pre-deinstall) printf '%s\n' "$head" "$lib" "$apkvars" default_prerm ;;
	*) die "openwrt_script: unknown kind $1" ;;
	esac
}

# openwrt_archs TRIPLE: the OpenWrt architectures a binary for TRIPLE serves
openwrt_archs() {
	local a
	a="$(target_field "$1" openwrt_arch)"
	[ -n "$a" ] || die "target $1 has no OpenWrt architecture in $(targets_tsv)"
	printf '%s\n' "$a" | tr ',' '\n'
}
