#!/bin/sh
# shellcheck disable=SC3043  # local: dash and busybox ash (the shells it runs in) have it
# Runs one hook of an OpenWrt procd init script outside OpenWrt, with the
# procd_* and config_* functions replaced by recorders / a small UCI loader.
#
#   UCI_CONFIG_DIR=DIR TBX_LOG=FILE TBX_STATE_DIR=DIR TBX_PROG=PATH \
#     sh procd-harness.sh INIT_SCRIPT start|stop|triggers [ARG]
#     sh procd-harness.sh INIT_SCRIPT rc ACTION [ARG]    (through rc.common)
#
# Every call is appended to TBX_LOG, one line each (TBX_PROG should append its
# own calls to the same file, so the order of everything is visible):
#   procd_open_instance NAME | procd_set_param TYPE ARG|ARG... | procd_close_instance
#   procd_kill ARGS | procd_add_reload_trigger ARGS | procd_running ARGS
#   log PRIORITY MESSAGE
# (and procd_open_service / procd_close_service in the rc mode).
# Exit status: that of the hook (rc mode: of the init script's action).
# Stand-ins of OpenWrt's libraries: tests/packaging/openwrt/ (functions.sh with
# the UCI loader, procd.sh, rc.common). TBX_RUNNING=1/0 says whether procd runs
# instances (else ${TBX_PROCD_STATE}); TBX_ENABLED=0 makes `enabled` false for
# the hooks called alone (rc mode: the links in $TBX_STATE_DIR/rc.d).

# (no set -u: init scripts are not written for it, and rc.common does not set it)
[ $# -ge 2 ] || { echo "usage: $0 INIT_SCRIPT start|stop|triggers [ARG]" >&2; exit 2; }
init="$1"
action="$2"
shift 2

here="$(cd "$(dirname "$0")" && pwd)"
# OpenWrt's shell libraries, as stand-ins (tests/packaging/openwrt/): the UCI
# loader and package functions of /lib/functions.sh, the procd.sh recorders
TBX_OPENWRT_LIB="$here/openwrt/lib"
export TBX_OPENWRT_LIB
# shellcheck disable=SC1091  # (run.sh checks the stand-ins on their own)
. "$TBX_OPENWRT_LIB/functions.sh"
# shellcheck disable=SC1091
. "$TBX_OPENWRT_LIB/functions/procd.sh"
rec() { tbx_rec "$@"; }

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

# the script's own paths, pointed at the test's (the rest is used as written)
tbx_paths() {
	# shellcheck disable=SC2034  # used by the sourced init script
	PROG="$TBX_PROG"
	# shellcheck disable=SC2034
	STATE_DIR="$TBX_STATE_DIR"
}

if [ "$action" = rc ]; then
	# the whole of `/etc/init.d/tunbox ACTION ARGS` through the rc.common
	# stand-in: its default actions, the init script, procd's start/stop/reload
	# shellcheck disable=SC2034  # read by the sourced rc.common
	TBX_RC_HOOK=tbx_paths
	TBX_RCD="${TBX_RCD:-$TBX_STATE_DIR/rc.d}"
	mkdir -p "$TBX_RCD" "$TBX_STATE_DIR/init.d"
	# named as on the router: rc.common takes the service name from the path
	cp "$init" "$TBX_STATE_DIR/init.d/tunbox"
	chmod 755 "$TBX_STATE_DIR/init.d/tunbox"
	set -- "$TBX_STATE_DIR/init.d/tunbox" "$@"
	# shellcheck disable=SC1091
	. "$here/openwrt/etc/rc.common"
	exit $?
fi

# rc.common's enabled(), for the hooks called alone: TBX_ENABLED=0 says disabled
enabled() { [ "${TBX_ENABLED:-1}" = 1 ]; }

# shellcheck disable=SC1090
. "$init"
tbx_paths

case "$action" in
start) start_service "$@" ;;
stop) stop_service "$@" ;;
triggers) service_triggers ;;
*) echo "unknown action $action" >&2; exit 2 ;;
esac
