# shellcheck shell=sh disable=SC3043
# Stand-in for OpenWrt's /lib/functions/procd.sh in the packaging tests: instead
# of sending the service to procd over ubus, every call is appended to
# ${TBX_LOG:-/tmp/tbx.log}, one line each:
#   procd_open_service NAME | procd_close_service METHOD
#   procd_open_instance NAME | procd_set_param TYPE ARG|ARG... | procd_close_instance
#   procd_kill ARGS | procd_add_reload_trigger ARGS | procd_running ARGS
# and what procd would then run is kept in ${TBX_PROCD_STATE:-/tmp/tbx.procd}
# (one instance name a line): `set` replaces it, `add` (start NAME) adds to it,
# procd_kill empties it (or drops one instance). procd_running answers from it,
# or from TBX_RUNNING=1/0 when that is set.

tbx_rec() { printf '%s\n' "$*" >>"${TBX_LOG:-/tmp/tbx.log}"; }

TBX_NEW_INSTANCES=""
procd_open_service() {
	TBX_NEW_INSTANCES=""
	tbx_rec "procd_open_service $1"
}
procd_close_service() {
	local st="${TBX_PROCD_STATE:-/tmp/tbx.procd}" i
	tbx_rec "procd_close_service ${1:-set}"
	[ "${1:-set}" = set ] && : >"$st"
	for i in $TBX_NEW_INSTANCES; do
		grep -qx "$i" "$st" 2>/dev/null || echo "$i" >>"$st"
	done
}
procd_open_instance() {
	TBX_NEW_INSTANCES="$TBX_NEW_INSTANCES $1"
	tbx_rec "procd_open_instance $*"
}
procd_close_instance() { tbx_rec "procd_close_instance"; }
procd_set_param() {
	local type="$1" all="" a
	shift
	for a in "$@"; do all="$all|$a"; done
	tbx_rec "procd_set_param $type${all:+ ${all#|}}"
}
procd_append_param() { procd_set_param "$@"; }
procd_kill() {
	local st="${TBX_PROCD_STATE:-/tmp/tbx.procd}"
	tbx_rec "procd_kill $*"
	if [ -n "$2" ]; then
		[ -f "$st" ] && grep -vx "$2" "$st" >"$st.new"
		mv "$st.new" "$st" 2>/dev/null
	else
		rm -f "$st"
	fi
	return 0
}
procd_running() {
	tbx_rec "procd_running $*"
	case "${TBX_RUNNING:-}" in
	1) return 0 ;;
	0) return 1 ;;
	esac
	[ -s "${TBX_PROCD_STATE:-/tmp/tbx.procd}" ]
}
procd_add_reload_trigger() { tbx_rec "procd_add_reload_trigger $*"; }
procd_add_validation() { :; }
