#!/bin/sh
# shellcheck disable=SC3043  # local: dash and busybox ash (the shells it runs in) have it
# Runs one hook of an OpenWrt procd init script outside OpenWrt, with the
# procd_* and config_* functions replaced by recorders / a small UCI loader.
#
#   UCI_CONFIG_DIR=DIR TBX_LOG=FILE TBX_STATE_DIR=DIR TBX_PROG=PATH \
#     sh procd-harness.sh INIT_SCRIPT start|stop|triggers [ARG]
#
# Every call is appended to TBX_LOG, one line each (TBX_PROG should append its
# own calls to the same file, so the order of everything is visible):
#   procd_open_instance NAME | procd_set_param TYPE ARG|ARG... | procd_close_instance
#   procd_kill ARGS | procd_add_reload_trigger ARGS | procd_running ARGS
#   log PRIORITY MESSAGE
# Exit status: that of the hook.
#
# The UCI loader does what OpenWrt's config_load does with the output of
# `uci export`: it evaluates the file with config/option/list defined as
# functions. Like OpenWrt, a file that does not parse loads as empty, silently.

# (no set -u: init scripts are not written for it, and rc.common does not set it)
[ $# -ge 2 ] || { echo "usage: $0 INIT_SCRIPT start|stop|triggers [ARG]" >&2; exit 2; }
init="$1"
action="$2"
shift 2

rec() { printf '%s\n' "$*" >>"$TBX_LOG"; }

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
	_f="${UCI_CONFIG_DIR:-/etc/config}/$1"
	rec "config_load $1"
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

# ---- procd recorders
procd_open_instance() { rec "procd_open_instance $*"; }
procd_close_instance() { rec "procd_close_instance"; }
procd_set_param() {
	local type="$1" all="" a
	shift
	for a in "$@"; do all="$all|$a"; done
	rec "procd_set_param $type ${all#|}"
}
procd_append_param() { procd_set_param "$@"; }
procd_kill() { rec "procd_kill $*"; }
# whether procd runs instances of the service: TBX_RUNNING=1 says yes
procd_running() {
	rec "procd_running $*"
	[ "${TBX_RUNNING:-0}" = 1 ]
}
procd_add_reload_trigger() { rec "procd_add_reload_trigger $*"; }
procd_add_validation() { :; }

# busybox/util-linux logger stand-in: logger -t TAG -p PRIO -- MESSAGE
logger() {
	local prio=""
	while [ $# -gt 0 ]; do
		case "$1" in
		-t) shift 2 ;;
		-p) prio="$2"; shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	rec "log $prio $*"
}

# shellcheck disable=SC1090
. "$init"
# the script's own paths, pointed at the test's (the rest is used as written)
# shellcheck disable=SC2034  # used by the sourced init script
PROG="$TBX_PROG"
# shellcheck disable=SC2034
STATE_DIR="$TBX_STATE_DIR"

case "$action" in
start) start_service "$@" ;;
stop) stop_service "$@" ;;
triggers) service_triggers ;;
*) echo "unknown action $action" >&2; exit 2 ;;
esac
