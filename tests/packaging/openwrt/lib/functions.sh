# shellcheck shell=sh disable=SC3043,SC2013,SC1090
# (SC2013/SC1090: file lists hold one path a line without blanks; the sourced
# scripts are the package's)
# Stand-in for OpenWrt's /lib/functions.sh (base-files) in the packaging tests,
# written for them: the functions tunbox's init script and package scripts use,
# with the behaviour of OpenWrt's (read in openwrt/openwrt
# package/base-files/files/lib/functions.sh), not its code:
#
#   config_load, config_get, config_get_bool, config_foreach, config_list_foreach
#       config_load evaluates the UCI file with config/option/list as shell
#       functions, as OpenWrt evaluates `uci export`; a file that does not parse
#       loads as nothing, silently; nothing is loaded under IPKG_INSTROOT.
#   default_postinst, default_prerm, add_group_and_user
#       the package scripts' work: the package's file list is
#       /lib/apk/packages/NAME.list (apk) or /usr/lib/opkg/info/NAME.list (opkg);
#       for each /etc/init.d/ script in it: under IPKG_INSTROOT (an image being
#       built) only `rc.common SCRIPT enable|disable`; on a live system enable
#       unless PKG_UPGRADE=1, then start (postinst); disable unless
#       PKG_UPGRADE=1, then stop (prerm). /etc/uci-defaults/ scripts of the
#       package run once on a live system. A NAME.postinst-pkg / prerm-pkg
#       (opkg) runs before the init scripts.

# ---- UCI: sections in order, options in variables TBXC_<section>_<option>
TBX_SECTIONS=""
TBX_CUR=""
TBX_NUM=0
config() {
	TBX_NUM=$((TBX_NUM + 1))
	TBX_CUR="${2:-cfg$TBX_NUM}"
	TBX_SECTIONS="$TBX_SECTIONS $TBX_CUR"
	eval "TBXC_${TBX_CUR}__type=\$1"
}
option() {
	eval "TBXC_${TBX_CUR}_$1=\$2"
}
list() {
	# items separated by newlines, as OpenWrt's LIST_SEP
	eval "_l=\${TBXC_${TBX_CUR}_$1-}"
	# shellcheck disable=SC2154  # _l is set by the eval above
	if [ -n "$_l" ]; then
		eval "TBXC_${TBX_CUR}_$1=\"\$_l
\$2\""
	else
		eval "TBXC_${TBX_CUR}_$1=\$2"
	fi
}
config_load() {
	TBX_SECTIONS=""
	TBX_NUM=0
	[ -n "$IPKG_INSTROOT" ] && return 0
	_f="${UCI_CONFIG_DIR:-/etc/config}/$1"
	command -v tbx_rec >/dev/null && tbx_rec "config_load $1"
	[ -f "$_f" ] || return 0
	# a file that is not valid loads as nothing (OpenWrt: uci export fails)
	sh -n "$_f" 2>/dev/null || return 0
	# shellcheck disable=SC1090
	. "$_f"
}
config_get() {
	# config_get VAR SECTION OPTION [DEFAULT]
	eval "$1=\${TBXC_${2}_$3-\${4-}}"
}
config_get_bool() {
	# (no local: the caller's variable may have any name)
	config_get __tbx_b "$2" "$3" "${4-}"
	case "$__tbx_b" in
	1 | yes | on | true | enabled) __tbx_b=1 ;;
	0 | no | off | false | disabled) __tbx_b=0 ;;
	*) __tbx_b="${4-}" ;;
	esac
	eval "$1=\$__tbx_b"
}
config_foreach() {
	local fn="$1" type="$2" s t
	shift 2
	for s in $TBX_SECTIONS; do
		eval "t=\${TBXC_${s}__type}"
		[ "$t" = "$type" ] || continue
		"$fn" "$s" "$@"
	done
}
config_list_foreach() {
	local items fn="$3" i
	config_get items "$1" "$2"
	shift 3
	printf '%s\n' "$items" | while IFS= read -r i; do
		[ -n "$i" ] && "$fn" "$i" "$@"
	done
}

# ---- package scripts
tbx_pkg_filelist() { # NAME -> the package's list of installed files
	if [ -f "$IPKG_INSTROOT/lib/apk/packages/$1.list" ]; then
		echo "$IPKG_INSTROOT/lib/apk/packages/$1.list"
	else
		echo "$IPKG_INSTROOT/usr/lib/opkg/info/$1.list"
	fi
}

add_group_and_user() {
	# tunbox's package declares no Require-User: nothing to add
	return 0
}

default_postinst() {
	local root="$IPKG_INSTROOT" name="${pkgname:-}" list ret=0 i
	[ -n "$name" ] || name="$(basename "${1%.*}")"
	list="$(tbx_pkg_filelist "$name")"
	if [ -z "$root" ]; then
		for i in $(grep -s '^/etc/uci-defaults/' "$list"); do
			(if [ -f "$i" ]; then cd "$(dirname "$i")" && . "$i"; else false; fi) && rm -f "$i"
		done
	fi
	if [ -f "$root/usr/lib/opkg/info/$name.postinst-pkg" ]; then
		(. "$root/usr/lib/opkg/info/$name.postinst-pkg")
		ret=$?
	fi
	for i in $(grep -s '^/etc/init.d/' "$list"); do
		if [ -n "$root" ]; then
			/bin/sh "$root/etc/rc.common" "$root$i" enable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$i" enable
			"$i" start
		fi
	done
	return $ret
}

default_prerm() {
	local root="$IPKG_INSTROOT" name="${pkgname:-}" list ret=0 i
	[ -n "$name" ] || name="$(basename "${1%.*}")"
	list="$(tbx_pkg_filelist "$name")"
	if [ -f "$root/usr/lib/opkg/info/$name.prerm-pkg" ]; then
		(. "$root/usr/lib/opkg/info/$name.prerm-pkg")
		ret=$?
	fi
	for i in $(grep -s '^/etc/init.d/' "$list"); do
		if [ -n "$root" ]; then
			/bin/sh "$root/etc/rc.common" "$root$i" disable
		else
			[ "$PKG_UPGRADE" = 1 ] || "$i" disable
			"$i" stop
		fi
	done
	return $ret
}
