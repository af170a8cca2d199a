#!/bin/sh
# Stand-in for /usr/bin/tunbox in the init-script tests. Records every call in
# TBX_LOG as "tunbox ARGS" (with TUNBOX_CONFIG when set), then:
#   config ...   runs the real binary (REAL_TUNBOX), so checks and `config show`
#                are tunbox's own
#   bridge ...   changes nothing (never touch the host's interfaces); exits 1
#                when the section or bridge is listed in TBX_FAIL_BRIDGE
#   anything else: exits 3 (the init script must not run anything else)
printf 'tunbox %s%s\n' "$*" "${TUNBOX_CONFIG:+ [TUNBOX_CONFIG=$TUNBOX_CONFIG]}" >>"$TBX_LOG"
case "$1" in
config)
	exec "$REAL_TUNBOX" "$@"
	;;
bridge)
	for f in ${TBX_FAIL_BRIDGE:-}; do
		case " $* " in
		*" $f "*)
			echo "tunbox: error: bridge $f: simulated failure" >&2
			exit 1
			;;
		esac
	done
	exit 0
	;;
*)
	exit 3
	;;
esac
