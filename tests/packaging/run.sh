#!/usr/bin/env bash
# SC2015: `cond && ok ... || fail ...` is intended: ok always returns 0.
# SC2016: the single-quoted $(...) are literal Makefile text / scripts for sh -c.
# shellcheck disable=SC2015,SC2016
# Packaging tests: shellcheck, the OpenWrt init script's logic (alone and through
# rc.common), the built .ipk, .apk and .deb, the .apk with the real apk-tools 3
# (offline root, signing, install/upgrade/remove in a busybox root with stand-ins
# of OpenWrt's shell libraries: tests/packaging/openwrt/), the .ipk's scripts
# there too, the shipped config, the systemd units.
#
#   tests/packaging/run.sh [BINARY | TRIPLE=BINARY]...
#
# BINARY: a tunbox binary to package and inspect (e.g. target/cross/TRIPLE/release/tunbox;
# the triple is taken from the path, else from what `file` says; TRIPLE=BINARY names it).
# Without arguments, a host debug build is packaged (dynamically linked, so only
# for the layout checks). The config and init tests run a tunbox built for this
# host (cargo build) or, for a cross binary, under the qemu-user of targets.tsv.
#
# Installs what it needs with apt-get (shellcheck, file, busybox, dpkg, systemd,
# openssl; apk-tools 3 through packaging/apk-tools.sh, which builds it once into
# ~/.cache/tunbox from ../shared/vendor). Changes nothing outside temporary
# directories (and that cache); bridge commands are faked.
# Prints "ok"/"FAIL"/"skip" per check and, last, "N passed, N failed";
# exits 1 if anything failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
INIT="$root/openwrt/files/tunbox.init"
SHIPPED_CONFIG="$root/openwrt/files/tunbox.config"
FAKE="$here/fake-tunbox.sh"
HARNESS="$here/procd-harness.sh"
FIX="$here/fixtures"

PASSED=0
FAILED=0
SKIPPED=0
ok() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() {
	FAILED=$((FAILED + 1))
	echo "FAIL - $1"
	[ $# -ge 2 ] && printf '%s\n' "$2" | sed 's/^/       /'
	return 0
}
skip() { SKIPPED=$((SKIPPED + 1)); echo "skip - $1: $2"; }
# check NAME COMMAND...: ok if the command succeeds, else FAIL with its output
check() {
	local name="$1" out
	shift
	if out="$("$@" 2>&1)"; then ok "$name"; else fail "$name" "$out"; fi
}

WORK="$(mktemp -d /tmp/tunbox-pkgtest.XXXXXX)"
NETNS=""
cleanup() {
	[ -n "$NETNS" ] && ip netns del "$NETNS" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------- tools
need_apt=()
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v file >/dev/null || need_apt+=(file)
command -v busybox >/dev/null || need_apt+=(busybox)
command -v dpkg-deb >/dev/null || need_apt+=(dpkg)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v openssl >/dev/null || need_apt+=(openssl)
# (apk-tools 3 is found or built by packaging/apk-tools.sh, which installs its own
# build dependencies)
if [ ${#need_apt[@]} -gt 0 ]; then
	echo "installing: ${need_apt[*]}"
	# wait for a dpkg lock another apt holds rather than fail
	apt_get() { DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"; }
	if ! apt_get install -y "${need_apt[@]}" >"$WORK/apt.log" 2>&1; then
		apt_get update >>"$WORK/apt.log" 2>&1
		apt_get install -y "${need_apt[@]}" >>"$WORK/apt.log" 2>&1 ||
			echo "apt-get install ${need_apt[*]} failed (see below); the checks needing them fail or skip" &&
			tail -5 "$WORK/apt.log"
	fi
fi

TSV="${PKG_TARGETS_TSV:-$root/targets/targets.tsv}"
[ -f "$TSV" ] || TSV="$FIX/targets.tsv"
export PKG_TARGETS_TSV="$TSV"
echo "target table: $TSV"

# ---------------------------------------------------------------- binaries
host_machine() { file -b -L "$(command -v sh)" | sed -n 's/^ELF [^,]*, \([^,]*\),.*/\1/p'; }
machine_of() { file -b -L "$1" | sed -n 's/^ELF [^,]*, \([^,]*\),.*/\1/p'; }
tsv_field() { # TRIPLE COLUMN-NUMBER
	awk -F'\t' -v t="$1" -v c="$2" '!/^#/ && $1 == t { v = $c; if (v == "-") v = ""; print v; exit }' "$TSV"
}
triple_of() { # PATH -> triple from the path, else from the ELF machine
	local path="$1" t m
	while read -r t; do
		case "/$path/" in */"$t"/*) echo "$t"; return 0 ;; esac
	done < <(awk -F'\t' '!/^#/ && NF > 1 { print $1 }' "$TSV")
	m="$(file -b -L "$path")"
	case "$m" in
	*x86-64*) echo x86_64-unknown-linux-musl ;;
	*"ARM aarch64"*) echo aarch64-unknown-linux-musl ;;
	*"MSB"*MIPS*) echo mips-unknown-linux-musl ;;
	*"LSB"*MIPS*) echo mipsel-unknown-linux-musl ;;
	*) return 1 ;;
	esac
}

BINS=()
TRIPLES=()
for a in "$@"; do
	case "$a" in
	*=*) t="${a%%=*}"; b="${a#*=}" ;;
	*) b="$a"; t="$(triple_of "$b")" || { fail "target of $b" "name it: TRIPLE=$b"; continue; } ;;
	esac
	[ -f "$b" ] || { fail "binary $b exists"; continue; }
	# absolute: the unit checks put it in ExecStart=, chroots copy it
	b="$(cd "$(dirname "$b")" && pwd)/$(basename "$b")"
	BINS+=("$b")
	TRIPLES+=("$t")
done

# a tunbox that runs here, for `config check` / `config show`
HOST_TUNBOX=""
HOST_MACHINE="$(host_machine)"
for b in "${BINS[@]}"; do
	if [ "$(machine_of "$b")" = "$HOST_MACHINE" ] && "$b" --version >/dev/null 2>&1; then
		HOST_TUNBOX="$b"
		break
	fi
done
if [ -z "$HOST_TUNBOX" ]; then
	echo "building a host tunbox (cargo build)"
	if (cd "$root" && cargo build -q 2>"$WORK/cargo.log"); then
		HOST_TUNBOX="$root/target/debug/tunbox"
	else
		fail "cargo build (host tunbox for the config tests)" "$(tail -20 "$WORK/cargo.log")"
	fi
fi
if [ ${#BINS[@]} -eq 0 ] && [ -n "$HOST_TUNBOX" ]; then
	BINS=("$HOST_TUNBOX")
	TRIPLES=("$(triple_of "$HOST_TUNBOX")")
	echo "no binary given: packaging the host build $HOST_TUNBOX as ${TRIPLES[0]} (dynamic: layout checks only)"
fi
echo "host tunbox: ${HOST_TUNBOX:-none}"

# ---------------------------------------------------------------- shellcheck
shellcheck_all() {
	command -v shellcheck >/dev/null || { fail "shellcheck installed"; return; }
	# the init script runs under busybox ash: check it as POSIX sh (its file-wide
	# directive allows only `local`, which ash has)
	check "shellcheck -s sh openwrt/files/tunbox.init" shellcheck -s sh "$INIT"
	check "shellcheck -s sh tests/packaging/{procd-harness,fake-tunbox}.sh" \
		shellcheck -s sh "$HARNESS" "$FAKE"
	check "shellcheck -s sh tests/packaging/openwrt/ (functions.sh, procd.sh, rc.common, logger stand-ins)" \
		shellcheck -s sh "$here/openwrt/lib/functions.sh" "$here/openwrt/lib/functions/procd.sh" \
		"$here/openwrt/etc/rc.common" "$here/openwrt/usr/bin/logger"
	check "shellcheck packaging/*.sh tests/packaging/run.sh" \
		shellcheck -x -P "$root" "$root"/packaging/*.sh "$here/run.sh"
}

# ---------------------------------------------------------------- versions, Makefile
makefile_checks() {
	local cv mv mk="$root/openwrt/Makefile"
	cv="$(awk '/^\[/ { p = ($0 == "[package]") } p && /^version *=/ { gsub(/.*= *"|".*/, ""); print; exit }' "$root/Cargo.toml")"
	mv="$(sed -n 's/^PKG_VERSION:=//p' "$mk")"
	if [ -n "$cv" ] && [ "$cv" = "$mv" ]; then ok "openwrt/Makefile PKG_VERSION = Cargo.toml version ($cv)"; else
		fail "openwrt/Makefile PKG_VERSION ($mv) = Cargo.toml version ($cv)"; fi
	local missing=""
	for want in 'include $(INCLUDE_DIR)/package.mk' 'rust-package.mk' 'PKG_BUILD_DEPENDS:=rust/host' \
		'$(RUST_ARCH_DEPENDS)' '+kmod-tun' '$(eval $(call RustBinPackage,tunbox))' \
		'$(eval $(call BuildPackage,tunbox))' 'define Package/tunbox/conffiles' \
		'./files/tunbox.init $(1)/etc/init.d/tunbox' './files/tunbox.config $(1)/etc/config/tunbox' \
		'$(PKG_INSTALL_DIR)/bin/tunbox $(1)/usr/bin/tunbox' './files/README $(1)/usr/share/tunbox/README' \
		'$(INSTALL_DIR) $(1)/etc/tunbox' 'chmod 0700 $(1)/etc/tunbox'; do
		grep -qF -- "$want" "$mk" || missing="$missing
$want"
	done
	if [ -z "$missing" ]; then ok "openwrt/Makefile has the feed's Rust package parts"; else
		fail "openwrt/Makefile has the feed's Rust package parts" "missing:$missing"; fi
	# conffiles: the UCI file and the key directory (kept by sysupgrade)
	local cf
	cf="$(sed -n '/^define Package\/tunbox\/conffiles/,/^endef/p' "$mk" | sed '1d;$d' | tr '\n' ' ')"
	[ "$cf" = "/etc/config/tunbox /etc/tunbox/ " ] && ok "Makefile conffiles = /etc/config/tunbox /etc/tunbox/" ||
		fail "Makefile conffiles = /etc/config/tunbox /etc/tunbox/" "$cf"
	# the facts the SDK's package-pack.mk puts in .ipk/.apk metadata
	missing=""
	grep -q '^PKG_MAINTAINER:=.* <[^ @>]*@[^ >]*>$' "$mk" || missing="$missing [PKG_MAINTAINER with an address]"
	grep -qx 'PKG_LICENSE_FILES:=LICENSE-APACHE LICENSE-MIT' "$mk" || missing="$missing [PKG_LICENSE_FILES]"
	grep -q '^  URL:=https://' "$mk" || missing="$missing [URL]"
	for f in LICENSE-APACHE LICENSE-MIT; do
		[ -s "$root/$f" ] || missing="$missing [$f missing]"
	done
	grep -q 'Apache License' "$root/LICENSE-APACHE" && grep -q 'Permission is hereby granted' "$root/LICENSE-MIT" ||
		missing="$missing [license texts]"
	[ -z "$missing" ] && ok "openwrt/Makefile: maintainer address, license files (present in the repo), URL" ||
		fail "openwrt/Makefile metadata" "$missing"
}

# ---------------------------------------------------------------- shipped config
shipped_config_checks() {
	[ -n "$HOST_TUNBOX" ] || { skip "shipped config" "no host tunbox"; return; }
	local out rc
	out="$(TUNBOX_CONFIG="$SHIPPED_CONFIG" "$HOST_TUNBOX" config check 2>&1)"
	rc=$?
	[ $rc -eq 0 ] && ok "tunbox config check passes on openwrt/files/tunbox.config" ||
		fail "tunbox config check passes on openwrt/files/tunbox.config (exit $rc)" "$out"
	# every section of the shipped file is disabled, and there is one of each type
	out="$(TUNBOX_CONFIG="$SHIPPED_CONFIG" "$HOST_TUNBOX" config show 2>&1)"
	local sections enabled_bad="" types
	sections="$(printf '%s\n' "$out" | sed -n "s/^tunbox\.\([A-Za-z0-9_]*\)=\(.*\)$/\1 \2/p")"
	types="$(printf '%s\n' "$sections" | awk '{ print $2 }' | sort -u | tr '\n' ' ')"
	while read -r s _; do
		[ -n "$s" ] || continue
		grep -qx "tunbox\.$s\.enabled='0'" <<<"$out" || enabled_bad="$enabled_bad $s"
	done <<<"$sections"
	if [ -n "$sections" ] && [ -z "$enabled_bad" ]; then
		ok "shipped config: every section disabled ($(printf '%s\n' "$sections" | awk '{ printf "%s ", $1 }'))"
	else
		fail "shipped config: every section disabled" "not disabled:${enabled_bad:- (no sections found)}
$out"
	fi
	[ "$types" = "bridge reflect tunnel " ] && ok "shipped config has reflect, tunnel and bridge examples" ||
		fail "shipped config has reflect, tunnel and bridge examples" "types: $types"
	# the usage notes survive `uci commit` (which drops the file's comments): the
	# installed README has README.md's firewall commands, the config points to it
	local doc="$root/openwrt/files/README" cmds missing_cmds=""
	cmds="$(sed -n '/^\*\*Firewall\.\*\*/,/^```$/p' "$root/README.md" | grep '^uci ' | sed 's/ *#.*//')"
	while IFS= read -r c; do
		[ -n "$c" ] && ! grep -qF -- "$c" "$doc" && missing_cmds="$missing_cmds
$c"
	done <<<"$cmds"
	if [ -n "$cmds" ] && [ -z "$missing_cmds" ] && grep -q '/usr/share/tunbox/README' "$SHIPPED_CONFIG"; then
		ok "usage notes: openwrt/files/README has README.md's $(printf '%s\n' "$cmds" | wc -l) firewall uci commands; the shipped config points to it"
	else
		fail "usage notes in /usr/share/tunbox/README" "missing in openwrt/files/README:${missing_cmds:- (none found in README.md)}"
	fi
}

# ---------------------------------------------------------------- init script
# h_run SHELL ACTION [ARG]: run one hook of the init script in the harness;
# the calls go to $H/log (cleared first), the exit status to $H/rc
h_run() {
	local shell="$1"
	shift
	: >"$H/log"
	# shellcheck disable=SC2086  # $shell may be "busybox ash"
	UCI_CONFIG_DIR="$H/uci" TBX_LOG="$H/log" TBX_STATE_DIR="$H/state" TBX_PROG="$FAKE" \
		TBX_PROCD_STATE="$H/procd" REAL_TUNBOX="$HOST_TUNBOX" PATH="$H_PATH" \
		$shell "$HARNESS" "$INIT" "$@" >"$H/out" 2>&1
	echo $? >"$H/rc"
}
h_rc() { cat "$H/rc"; }
h_has() { grep -qxF -- "$1" "$H/log"; }
h_line() { grep -nxF -- "$1" "$H/log" | head -1 | cut -d: -f1; }
h_instances() { sed -n 's/^procd_open_instance //p' "$H/log" | tr '\n' ' '; }
h_show() { printf '%s\n--- log:\n%s\n--- stderr:\n%s\n' "${1:-}" "$(cat "$H/log")" "$(cat "$H/out")"; }
set_opt() { # SECTION OPTION VALUE in $H/uci/tunbox (the option must exist)
	awk -v s="$1" -v o="$2" -v v="$3" '
		/^config / { cur = $3; gsub(/\047/, "", cur) }
		cur == s && $1 == "option" && $2 == o { sub(/\047.*$/, "\047" v "\047") }
		{ print }' "$H/uci/tunbox" >"$H/uci/tunbox.new" && mv "$H/uci/tunbox.new" "$H/uci/tunbox"
}

init_tests() {
	local shell="$1" label="$2" cfg n_first_inst n1 n2 ln
	H="$WORK/init-${label// /-}"
	mkdir -p "$H/uci" "$H/state"
	cfg="$H/uci/tunbox"
	cp "$FIX/multi.uci" "$cfg"
	local P="[$label]"
	local TC="[TUNBOX_CONFIG=$cfg]"

	# -- start: check first, bridges, then instances for enabled reflect/tunnel sections
	h_run "$shell" start
	[ "$(h_rc)" = 0 ] && ok "$P start_service returns 0" || fail "$P start_service returns 0" "$(h_show)"
	[ "$(grep -m1 '^tunbox ' "$H/log")" = "tunbox config check $TC" ] &&
		[ "$(h_line "tunbox config check $TC")" -lt "$(h_line "config_load tunbox")" ] &&
		ok "$P tunbox config check runs first, before config_load" ||
		fail "$P tunbox config check runs first, before config_load" "$(h_show)"
	[ "$(h_instances)" = "r_on t_default p_mon " ] &&
		ok "$P instances: r_on, t_default (enabled; no option = enabled), p_mon (probe with every); r_off, t_off, p_once (probe without every), bridges none" ||
		fail "$P instances: r_on, t_default" "$(h_show "got: $(h_instances)")"
	local want_params missing=""
	for s in r_on t_default p_mon; do
		want_params="procd_set_param command $FAKE|run|$s
procd_set_param env TUNBOX_CONFIG=$cfg
procd_set_param file $H/state/$s.conf|$FAKE
procd_set_param respawn
procd_set_param stdout 1
procd_set_param stderr 1"
		# the params between this instance's open and close
		local block
		block="$(awk -v s="$s" '$0 == "procd_open_instance " s { on = 1; next } on && /^procd_close_instance/ { exit } on' "$H/log")"
		while IFS= read -r p; do
			grep -qxF -- "$p" <<<"$block" || missing="$missing
$s: $p"
		done <<<"$want_params"
	done
	[ -z "$missing" ] && ok "$P each instance: command tunbox run SECTION, env TUNBOX_CONFIG, files (section state + binary), respawn with the system defaults (no values), stdout/stderr to log" ||
		fail "$P instance params" "$(h_show "missing:$missing")"
	# the per-section state file is what tunbox resolves for that section
	if [ "$(cat "$H/state/r_on.conf" 2>/dev/null)" = "$(TUNBOX_CONFIG="$cfg" "$HOST_TUNBOX" config show r_on 2>/dev/null)" ] &&
		[ -s "$H/state/r_on.conf" ]; then
		ok "$P instance file = tunbox config show SECTION"
	else
		fail "$P instance file = tunbox config show SECTION" "$(cat "$H/state/r_on.conf" 2>&1)"
	fi
	n1="$(h_line "tunbox bridge up --section b_one $TC")"
	n2="$(h_line "tunbox bridge up --section b_two $TC")"
	n_first_inst="$(grep -n '^procd_open_instance' "$H/log" | head -1 | cut -d: -f1)"
	if [ -n "$n1" ] && [ -n "$n2" ] && [ -n "$n_first_inst" ] && [ "$n1" -lt "$n2" ] && [ "$n2" -lt "$n_first_inst" ]; then
		ok "$P enabled bridges up in file order (b_one, b_two) before any instance"
	else
		fail "$P enabled bridges up in file order before any instance" "$(h_show)"
	fi
	grep -q 'b_off\|r_off\|t_off\|p_once' "$H/log" &&
		fail "$P disabled sections skipped" "$(h_show)" || ok "$P disabled sections (r_off, t_off, b_off) and a probe without every (p_once) get no call"
	grep -q '^tunbox run' "$H/log" && fail "$P init never runs tunbox run itself" "$(h_show)" ||
		ok "$P tunbox run only as instance command"

	# -- reload with nothing changed: no bridge calls, same instance files
	cp "$H/state/r_on.conf" "$H/r_on.before"
	cp "$H/state/t_default.conf" "$H/t_default.before"
	h_run "$shell" start
	if [ "$(h_rc)" = 0 ] && ! grep -q '^tunbox bridge' "$H/log" && [ "$(h_instances)" = "r_on t_default p_mon " ] &&
		cmp -s "$H/r_on.before" "$H/state/r_on.conf" && cmp -s "$H/t_default.before" "$H/state/t_default.conf"; then
		ok "$P reload, nothing changed: same instances and files (procd restarts nothing), bridges untouched"
	else
		fail "$P reload, nothing changed" "$(h_show)"
	fi

	# -- reload after editing r_on: only r_on's file changes
	set_opt r_on dev tbxr9
	h_run "$shell" start
	if ! cmp -s "$H/r_on.before" "$H/state/r_on.conf" && cmp -s "$H/t_default.before" "$H/state/t_default.conf" &&
		! grep -q '^tunbox bridge' "$H/log"; then
		ok "$P reload after editing r_on: only r_on's instance file changes (procd restarts only r_on)"
	else
		fail "$P reload after editing r_on" "$(h_show)"
	fi

	# -- reload after disabling b_two: b_two down with what was recorded at up time
	set_opt b_two enabled 0
	h_run "$shell" start
	if h_has "tunbox bridge down --bridge br-two --state-file /var/run/tunbox/two.state" &&
		! grep -q '^tunbox bridge up' "$H/log" && ! grep -q 'bridge down --bridge br-one' "$H/log" &&
		[ "$(cut -d'|' -f1 "$H/state/bridges" | tr '\n' ' ')" = "b_one " ]; then
		ok "$P reload after disabling b_two: b_two down (recorded bridge/state file), b_one kept"
	else
		fail "$P reload after disabling b_two" "$(h_show "record: $(cat "$H/state/bridges")")"
	fi

	# -- reload after changing b_one: down (old settings) then up again
	set_opt b_one tap tap7
	h_run "$shell" start
	n1="$(h_line "tunbox bridge down --bridge br-one")"
	n2="$(h_line "tunbox bridge up --section b_one $TC")"
	[ -n "$n1" ] && [ -n "$n2" ] && [ "$n1" -lt "$n2" ] &&
		ok "$P reload after editing b_one: bridge down, then up with the new settings" ||
		fail "$P reload after editing b_one" "$(h_show)"

	# -- a bridge that fails to come up is logged; the instances still start
	set_opt b_two enabled 1
	TBX_FAIL_BRIDGE=b_two h_run "$shell" start
	if grep -q "^log daemon.err bridge section 'b_two': tunbox bridge up failed: .*simulated failure" "$H/log" &&
		[ "$(h_instances)" = "r_on t_default p_mon " ] && ! grep -q '^b_two|' "$H/state/bridges"; then
		ok "$P failing bridge up: error logged, not recorded, instances still start"
	else
		fail "$P failing bridge up" "$(h_show)"
	fi
	h_run "$shell" start # b_two comes up now

	# -- start NAME: only that instance
	h_run "$shell" start t_default
	[ "$(h_instances)" = "t_default " ] && ok "$P start t_default: only that instance" ||
		fail "$P start t_default: only that instance" "$(h_show)"

	# -- stop NAME: bridges stay
	h_run "$shell" stop r_on
	[ "$(h_rc)" = 0 ] && ! grep -q 'bridge down\|procd_kill' "$H/log" &&
		ok "$P stop r_on: bridges stay up (procd stops the instance)" || fail "$P stop r_on" "$(h_show)"

	# -- stop: instances killed, then bridges down, last up first
	h_run "$shell" stop
	ln="$(h_line "procd_kill tunbox")"
	n1="$(h_line "tunbox bridge down --bridge br-one")"
	n2="$(h_line "tunbox bridge down --bridge br-two --state-file /var/run/tunbox/two.state")"
	if [ -n "$ln" ] && [ -n "$n1" ] && [ -n "$n2" ] && [ "$ln" -lt "$n2" ] && [ "$n2" -lt "$n1" ] &&
		[ ! -e "$H/state/bridges" ]; then
		ok "$P stop: instances killed first, then bridges down in reverse order (b_two, b_one)"
	else
		fail "$P stop: instances killed first, then bridges down in reverse order" "$(h_show)"
	fi

	# -- triggers
	h_run "$shell" triggers
	h_has "procd_add_reload_trigger tunbox" && ok "$P service_triggers: reload trigger on config tunbox" ||
		fail "$P service_triggers: reload trigger on config tunbox" "$(h_show)"

	# -- malformed files: the error with FILE:LINE in the log, nothing started
	local bad line_no
	for bad in bad-value bad-syntax; do
		cp "$FIX/$bad.uci" "$cfg"
		rm -f "$H/state/bridges"
		case $bad in
		bad-value) line_no="$(grep -n "option mtu 'abc'" "$cfg" | cut -d: -f1)" ;;
		bad-syntax) line_no="$(grep -n "option dev 'tbxr0$" "$cfg" | cut -d: -f1)" ;;
		esac
		h_run "$shell" start
		if [ "$(h_rc)" != 0 ] && grep -q "^log daemon.err .*$cfg:$line_no: " "$H/log" &&
			[ "$(h_instances)" = "config_error " ] &&
			sed -n '/^procd_set_param error /,/^procd_close_instance/p' "$H/log" | grep -q "$cfg:$line_no: " &&
			! grep -q '^tunbox bridge\|^config_load' "$H/log"; then
			ok "$P $bad.uci: '$cfg:$line_no: ...' logged as error, shown as procd instance error, nothing started"
		else
			fail "$P $bad.uci: error logged with FILE:LINE, nothing started" "$(h_show)"
		fi
	done
	# a reload with a broken file while instances run: they are kept (nothing
	# is sent to procd), the error is logged
	TBX_RUNNING=1 h_run "$shell" start
	if [ "$(h_rc)" != 0 ] && grep -q "^log daemon.err .*$cfg:$line_no: " "$H/log" &&
		h_has "log daemon.err the running tunbox instances are kept as they are" &&
		! grep -q '^procd_open_instance\|^procd_set_param\|^tunbox bridge' "$H/log"; then
		ok "$P reload with a broken file while instances run: error logged, running instances kept"
	else
		fail "$P reload with a broken file while instances run" "$(h_show)"
	fi

	# the premise: without the check, config_load of the broken file loads nothing, silently
	local n
	cp "$FIX/bad-syntax.uci" "$cfg"
	n="$(UCI_CONFIG_DIR="$H/uci" TBX_LOG=/dev/null sh -c '. "$1"; config_load tunbox; echo "${TBX_SECTIONS:-none}"' _ "$here/openwrt/lib/functions.sh" 2>&1)"
	[ "$n" = none ] && ok "$P (premise) a file that does not parse loads as no sections at all" ||
		fail "$P (premise) a file that does not parse loads as no sections" "$n"

	# -- missing file / missing binary: said, not silent
	rm -f "$cfg"
	h_run "$shell" start
	[ "$(h_rc)" != 0 ] && grep -q "^log daemon.err $cfg does not exist" "$H/log" &&
		ok "$P no config file: error logged" || fail "$P no config file: error logged" "$(h_show)"
	cp "$FIX/multi.uci" "$cfg"
	: >"$H/log"
	# shellcheck disable=SC2086
	! UCI_CONFIG_DIR="$H/uci" TBX_LOG="$H/log" TBX_STATE_DIR="$H/state" TBX_PROG="$H/no-such-tunbox" \
		PATH="$H_PATH" $shell "$HARNESS" "$INIT" start >"$H/out" 2>&1 && grep -q "^log daemon.err $H/no-such-tunbox is missing" "$H/log" &&
		ok "$P binary missing: error logged" || fail "$P binary missing: error logged" "$(h_show)"
}

# The init script through rc.common (stand-in of OpenWrt's, same order of
# definitions): exit status of start/restart/reload, restart with a broken file,
# start from a package upgrade of a disabled service.
rc_tests() {
	local shell="$1" label="$2" cfg
	H="$WORK/rc-${label// /-}"
	mkdir -p "$H/uci" "$H/state/rc.d"
	cfg="$H/uci/tunbox"
	cp "$FIX/multi.uci" "$cfg"
	local P="[$label rc.common]"
	rc_enabled() { [ -x "$H/state/rc.d/S90tunbox" ]; }

	h_run "$shell" rc enable
	[ "$(h_rc)" = 0 ] && rc_enabled && [ -L "$H/state/rc.d/K10tunbox" ] &&
		ok "$P enable: S90tunbox and K10tunbox links" || fail "$P enable" "$(h_show "$(ls -l "$H/state/rc.d")")"

	h_run "$shell" rc start
	if [ "$(h_rc)" = 0 ] && h_has "procd_close_service set" && [ "$(h_instances)" = "r_on t_default p_mon " ]; then
		ok "$P start with a good file: exit 0, instances sent to procd"
	else
		fail "$P start with a good file" "$(h_show)"
	fi

	h_run "$shell" rc restart
	local nk ns
	nk="$(h_line "procd_kill tunbox")"
	ns="$(h_line "procd_close_service set")"
	[ "$(h_rc)" = 0 ] && [ -n "$nk" ] && [ -n "$ns" ] && [ "$nk" -lt "$ns" ] &&
		ok "$P restart with a good file: checked, stopped, started, exit 0" || fail "$P restart with a good file" "$(h_show)"

	# broken file while instances run: restart, start, reload keep them, exit non-zero
	local line_no act
	cp "$FIX/bad-value.uci" "$cfg"
	line_no="$(grep -n "option mtu 'abc'" "$cfg" | cut -d: -f1)"
	for act in restart start reload; do
		h_run "$shell" rc "$act"
		if [ "$(h_rc)" != 0 ] && grep -q "^log daemon.err error: $cfg:$line_no: " "$H/log" &&
			grep -q "^log daemon.err .*the running tunbox instances are kept as they are$" "$H/log" &&
			! grep -q '^procd_kill\|^procd_close_service\|^procd_open_instance\|^tunbox bridge' "$H/log" &&
			[ -s "$H/procd" ]; then
			ok "$P $act with a broken file while running: exit $(h_rc), error in the log with FILE:LINE, running instances kept"
		else
			fail "$P $act with a broken file while running: non-zero, logged, kept" "$(h_show "procd state: $(cat "$H/procd" 2>&1)")"
		fi
	done
	grep -q '^log daemon.err tunbox: ' "$H/log" && fail "$P no doubled 'tunbox: tunbox:' in syslog lines" "$(h_show)" ||
		ok "$P logged lines carry no 'tunbox: ' of their own (the syslog tag says it)"

	# broken file, nothing running: start fails, the error instance shows why
	h_run "$shell" rc stop
	h_run "$shell" rc start
	if [ "$(h_rc)" != 0 ] && [ "$(h_instances)" = "config_error " ] && h_has "procd_close_service set"; then
		ok "$P start with a broken file, nothing running: exit $(h_rc), config_error instance with the error"
	else
		fail "$P start with a broken file, nothing running" "$(h_show)"
	fi
	cp "$FIX/multi.uci" "$cfg"

	# package upgrade (PKG_UPGRADE=1, as opkg and apk's post-upgrade set it)
	h_run "$shell" rc stop
	h_run "$shell" rc disable
	PKG_UPGRADE=1 h_run "$shell" rc start
	if [ "$(h_rc)" = 0 ] && ! rc_enabled && ! grep -q '^procd_open_instance\|^procd_close_service\|^tunbox bridge' "$H/log" &&
		h_has "log daemon.info package upgrade: the service is disabled, not starting it"; then
		ok "$P upgrade of a disabled, stopped service: not started, stays disabled"
	else
		fail "$P upgrade of a disabled, stopped service: not started" "$(h_show)"
	fi
	TBX_RUNNING=1 PKG_UPGRADE=1 h_run "$shell" rc start
	[ "$(h_rc)" = 0 ] && [ "$(h_instances)" = "r_on t_default p_mon " ] && ! rc_enabled &&
		ok "$P upgrade of a disabled service that runs: instances sent again (procd restarts changed binaries)" ||
		fail "$P upgrade of a disabled running service" "$(h_show)"
	h_run "$shell" rc enable
	PKG_UPGRADE=1 h_run "$shell" rc start
	[ "$(h_rc)" = 0 ] && [ "$(h_instances)" = "r_on t_default p_mon " ] &&
		ok "$P upgrade of an enabled service: started" || fail "$P upgrade of an enabled service: started" "$(h_show)"
}

run_init_tests() {
	[ -n "$HOST_TUNBOX" ] || { skip "init script tests" "no host tunbox"; return; }
	H_PATH="$PATH"
	init_tests sh "sh=$(readlink -f "$(command -v sh)")"
	rc_tests sh "sh=$(readlink -f "$(command -v sh)")"
	if command -v busybox >/dev/null; then
		# busybox ash with busybox's own applets first in PATH, as on OpenWrt
		local bb="$WORK/busybox-bin"
		mkdir -p "$bb"
		busybox --install -s "$bb" 2>/dev/null
		H_PATH="$bb:$PATH"
		init_tests "busybox ash" "busybox ash"
		rc_tests "busybox ash" "busybox ash"
		H_PATH="$PATH"
	else
		skip "init script under busybox ash" "busybox not installed"
	fi
}

# ---------------------------------------------------------------- packages
elf_check() { # FILE TRIPLE STATIC(1/0) -> ok/fail lines
	local f="$1" t="$2" static="$3" edesc pat
	edesc="$(file -b "$f")"
	# shellcheck source=packaging/lib.sh
	pat="$( . "$root/packaging/lib.sh" && elf_pattern "$t")"
	grep -Eq "$pat" <<<"$edesc" || { echo "not a $t binary: $edesc"; return 1; }
	if [ "$static" = 1 ]; then
		grep -Eq 'statically linked|static-pie linked' <<<"$edesc" || { echo "not static: $edesc"; return 1; }
	fi
	return 0
}

# mode and owner of PATH inside an unpacked tar listing: "MODE OWNER"
tar_entry() { awk -v p="./$2" '$6 == p { print $1, $2 }' "$1"; }

ipk_checks() {
	local bin="$1" triple="$2" static="$3" dyn_flag=() out archs a ipk d
	[ "$static" = 1 ] || dyn_flag=(--allow-dynamic)
	d="$WORK/ipk-$triple"
	mkdir -p "$d"
	if ! out="$("$root/packaging/build-ipk.sh" "${dyn_flag[@]}" "$bin" "$triple" "$d" 2>&1)"; then
		fail "[$triple] build-ipk.sh" "$out"
		return
	fi
	archs="$(tsv_field "$triple" 2 | tr ',' ' ')"
	# reproducible: a second build gives the same bytes
	if out="$("$root/packaging/build-ipk.sh" "${dyn_flag[@]}" "$bin" "$triple" "$d/again" 2>&1)" &&
		(for f in "$d"/*.ipk; do cmp -s "$f" "$d/again/${f##*/}" || exit 1; done); then
		ok "[$triple] build-ipk.sh is reproducible (same bytes twice)"
	else
		fail "[$triple] build-ipk.sh is reproducible" "$out"
	fi
	local version
	version="$(sed -n 's/^PKG_VERSION:=//p' "$root/openwrt/Makefile")"
	for a in $archs; do
		ipk="$d/tunbox_${version}_${a}.ipk"
		local P="[$triple ipk $a]" x="$d/x-$a"
		[ -f "$ipk" ] || { fail "$P tunbox_${version}_${a}.ipk made" "$out"; continue; }
		mkdir -p "$x/c" "$x/d"
		# outer: a gzip'd tar (not ar) of exactly these three members, in this order
		local magic members
		magic="$(head -c 2 "$ipk" | od -An -tx1 | tr -d ' ')"
		members="$(tar -tzf "$ipk" 2>&1 | tr '\n' ' ')"
		[ "$magic" = 1f8b ] && [ "$members" = "./debian-binary ./data.tar.gz ./control.tar.gz " ] &&
			ok "$P outer gzip'd tar: debian-binary, data.tar.gz, control.tar.gz" ||
			fail "$P outer gzip'd tar" "magic $magic, members: $members"
		tar -xzf "$ipk" -C "$x"
		[ "$(cat "$x/debian-binary")" = "2.0" ] && ok "$P debian-binary = 2.0" || fail "$P debian-binary = 2.0"
		tar -xzf "$x/control.tar.gz" -C "$x/c"
		tar -xzf "$x/data.tar.gz" -C "$x/d"
		tar -tvzf "$x/data.tar.gz" >"$x/data.list"
		tar -tvzf "$x/control.tar.gz" >"$x/control.list"
		# data layout and modes
		local files want got bad=""
		files="$(awk '$1 !~ /^d/ { print $6 }' "$x/data.list" | sort | tr '\n' ' ')"
		[ "$files" = "./etc/config/tunbox ./etc/init.d/tunbox ./lib/upgrade/keep.d/tunbox ./usr/bin/tunbox ./usr/share/tunbox/README " ] &&
			[ "$(tar_entry "$x/data.list" etc/tunbox/)" = "drwx------ 0/0" ] &&
			[ "$(cat "$x/d/lib/upgrade/keep.d/tunbox")" = "/etc/tunbox/" ] &&
			ok "$P data: /usr/bin/tunbox, /etc/init.d/tunbox, /etc/config/tunbox, /etc/tunbox/ (0700), README, keep.d/tunbox = /etc/tunbox/" ||
			fail "$P data layout" "$files"
		for want in "usr/bin/tunbox -rwxr-xr-x 0/0" "etc/init.d/tunbox -rwxr-xr-x 0/0" "etc/config/tunbox -rw------- 0/0"; do
			got="$(tar_entry "$x/data.list" "${want%% *}")"
			[ "$got" = "${want#* }" ] || bad="$bad ${want%% *}=$got"
		done
		[ -z "$bad" ] && ok "$P modes: binary/init 0755, UCI file 0600 (as INSTALL_CONF), root-owned" ||
			fail "$P modes" "$bad"
		cmp -s "$x/d/etc/init.d/tunbox" "$INIT" && cmp -s "$x/d/etc/config/tunbox" "$SHIPPED_CONFIG" &&
			cmp -s "$x/d/usr/bin/tunbox" "$bin" && ok "$P files are the init, config and binary given" ||
			fail "$P files are the init, config and binary given"
		# control fields
		local ctl="$x/c/control" field missing=""
		for field in "Package: tunbox" "Version: $version" "Architecture: $a" "Depends: kmod-tun, kmod-bridge"; do
			grep -qxF "$field" "$ctl" || missing="$missing [$field]"
		done
		local isz
		isz="$(sed -n 's/^Installed-Size: //p' "$ctl")"
		[ "$isz" = "$(gzip -dc "$x/data.tar.gz" | wc -c)" ] || missing="$missing [Installed-Size $isz]"
		grep -q '^Description: .' "$ctl" && grep -q '^ ' "$ctl" || missing="$missing [Description]"
		[ -z "$missing" ] && ok "$P control: Package, Version, Architecture, Depends, Installed-Size, Description" ||
			fail "$P control fields" "wrong/missing:$missing
$(cat "$ctl")"
		[ "$(tr '\n' ' ' <"$x/c/conffiles")" = "/etc/config/tunbox /etc/tunbox/ " ] &&
			ok "$P conffiles = /etc/config/tunbox /etc/tunbox/" || fail "$P conffiles" "$(cat "$x/c/conffiles")"
		bad=""
		for want in postinst prerm; do
			[ "$(tar_entry "$x/control.list" "$want" | cut -d' ' -f1)" = "-rwxr-xr-x" ] || bad="$bad $want"
		done
		[ -z "$bad" ] && ok "$P postinst/prerm executable" || fail "$P postinst/prerm executable" "$bad"
		# (they source the router's /lib/functions.sh: SC1091)
		check "$P shellcheck -s sh postinst prerm" shellcheck -s sh -e SC1091 "$x/c/postinst" "$x/c/prerm"
		grep -qx 'default_postinst "$0" "$@"' "$x/c/postinst" && grep -qx 'default_prerm "$0" "$@"' "$x/c/prerm" &&
			ok "$P postinst/prerm hand over to default_postinst/default_prerm, as OpenWrt's build makes them" ||
			fail "$P postinst/prerm as OpenWrt's" "$(cat "$x/c/postinst" "$x/c/prerm")"
		if out="$(elf_check "$x/d/usr/bin/tunbox" "$triple" "$static")"; then
			ok "$P binary is $triple$([ "$static" = 1 ] && echo ", static"): $(file -b "$x/d/usr/bin/tunbox" | cut -d, -f1-2)"
		else
			fail "$P binary architecture" "$out"
		fi
	done
	[ -n "$archs" ] || fail "[$triple] OpenWrt architectures in $TSV"
}

deb_checks() {
	local bin="$1" triple="$2" static="$3" dyn_flag=() out arch deb d P
	[ "$static" = 1 ] || dyn_flag=(--allow-dynamic)
	arch="$(tsv_field "$triple" 3)"
	[ -n "$arch" ] || { echo "     ($triple has no Debian architecture in the table: no .deb)"; return; }
	P="[$triple deb $arch]"
	d="$WORK/deb-$triple"
	mkdir -p "$d"
	if ! out="$("$root/packaging/build-deb.sh" "${dyn_flag[@]}" "$bin" "$triple" "$d" 2>&1)"; then
		fail "$P build-deb.sh" "$out"
		return
	fi
	local version
	version="$(sed -n 's/^PKG_VERSION:=//p' "$root/openwrt/Makefile")"
	deb="$d/tunbox_${version}_${arch}.deb"
	[ -f "$deb" ] || { fail "$P tunbox_${version}_${arch}.deb made" "$out"; return; }
	[ "$(head -c 7 "$deb")" = '!<arch>' ] && ok "$P is an ar archive (.deb)" || fail "$P is an ar archive"
	local field missing=""
	for field in Package=tunbox Version="$version" Architecture="$arch" Section=net Priority=optional; do
		[ "$(dpkg-deb -f "$deb" "${field%%=*}")" = "${field#*=}" ] || missing="$missing [$field]"
	done
	[ -n "$(dpkg-deb -f "$deb" Maintainer)" ] && [ -n "$(dpkg-deb -f "$deb" Description)" ] &&
		[ -n "$(dpkg-deb -f "$deb" Installed-Size)" ] || missing="$missing [Maintainer/Description/Installed-Size]"
	[ -z "$missing" ] && ok "$P control: Package, Version, Architecture, Maintainer, Installed-Size, Section, Description" ||
		fail "$P control fields" "$missing
$(dpkg-deb -f "$deb")"
	local x="$d/x"
	mkdir -p "$x"
	dpkg-deb -e "$deb" "$x/DEBIAN"
	dpkg-deb -x "$deb" "$x/root"
	[ "$(cat "$x/DEBIAN/conffiles")" = "/etc/config/tunbox" ] && ok "$P conffiles = /etc/config/tunbox" ||
		fail "$P conffiles" "$(cat "$x/DEBIAN/conffiles")"
	dpkg-deb -c "$deb" >"$x/list"
	local want got bad=""
	for want in "usr/bin/tunbox -rwxr-xr-x root/root" "etc/config/tunbox -rw-r--r-- root/root" \
		"usr/lib/systemd/system/tunbox@.service -rw-r--r-- root/root" \
		"usr/lib/systemd/system/tunbox-bridge@.service -rw-r--r-- root/root" \
		"usr/lib/sysusers.d/tunbox.conf -rw-r--r-- root/root" \
		"usr/share/doc/tunbox/copyright -rw-r--r-- root/root"; do
		got="$(tar_entry "$x/list" "${want%% *}")"
		[ "$got" = "${want#* }" ] || bad="$bad ${want%% *}=[$got]"
	done
	[ -z "$bad" ] && ok "$P layout and modes: binary 0755, config/units/sysusers 0644, root-owned" ||
		fail "$P layout and modes" "$bad
$(cat "$x/list")"
	# units installed, not enabled: no symlinks anywhere, nothing under /etc/systemd
	if ! grep -q '^l' "$x/list" && ! grep -q '\./etc/systemd' "$x/list" &&
		! grep -q 'systemctl enable\|deb-systemd-helper enable' "$x/DEBIAN/postinst"; then
		ok "$P units installed but not enabled"
	else
		fail "$P units installed but not enabled" "$(cat "$x/list")"
	fi
	cmp -s "$x/root/usr/lib/systemd/system/tunbox@.service" "$root/dist/systemd/tunbox@.service" &&
		cmp -s "$x/root/etc/config/tunbox" "$SHIPPED_CONFIG" && ok "$P units and config are the shipped ones" ||
		fail "$P units and config are the shipped ones"
	grep -qx 'u tunbox - "tunbox daemon" /nonexistent /usr/sbin/nologin' "$x/root/usr/lib/sysusers.d/tunbox.conf" &&
		grep -q '^User=tunbox$' "$x/root/usr/lib/systemd/system/tunbox@.service" &&
		ok "$P the unit's user comes from sysusers.d" || fail "$P sysusers user = unit user"
	# the sysusers.d line makes the user, in a scratch root (not this host's)
	if command -v systemd-sysusers >/dev/null; then
		local sr="$d/sysroot"
		mkdir -p "$sr/etc"
		echo 'root:x:0:0:root:/root:/bin/sh' >"$sr/etc/passwd"
		echo 'root:x:0:' >"$sr/etc/group"
		if out="$(systemd-sysusers --root="$sr" "$x/root/usr/lib/sysusers.d/tunbox.conf" 2>&1)" &&
			grep -q '^tunbox:x:[0-9]*:[0-9]*:tunbox daemon:/nonexistent:/usr/sbin/nologin$' "$sr/etc/passwd" &&
			grep -q '^tunbox:x:' "$sr/etc/group"; then
			ok "$P systemd-sysusers creates system user and group tunbox"
		else
			fail "$P systemd-sysusers creates user tunbox" "$out
$(cat "$sr/etc/passwd")"
		fi
	else
		skip "$P systemd-sysusers" "not installed"
	fi
	check "$P shellcheck -s sh postinst prerm postrm" shellcheck -s sh "$x/DEBIAN/postinst" "$x/DEBIAN/prerm" "$x/DEBIAN/postrm"
	if out="$(elf_check "$x/root/usr/bin/tunbox" "$triple" "$static")"; then
		ok "$P binary is $triple$([ "$static" = 1 ] && echo ", static")"
	else
		fail "$P binary architecture" "$out"
	fi
}

# config check of the shipped file with each given binary (natively or under qemu-user)
binary_config_check() {
	local bin="$1" triple="$2" runner=() qemu out
	if [ "$(machine_of "$bin")" != "$HOST_MACHINE" ]; then
		qemu="$(tsv_field "$triple" 7)"
		if [ -n "$qemu" ] && command -v "$qemu" >/dev/null; then
			runner=("$qemu")
		else
			skip "[$triple] config check with this binary" "${qemu:-qemu-user} not installed"
			return
		fi
	fi
	# it must really check: the broken fixture fails with its FILE:LINE
	local bad="$FIX/bad-value.uci" line
	line="$(grep -n "option mtu 'abc'" "$bad" | cut -d: -f1)"
	if out="$(TUNBOX_CONFIG="$bad" "${runner[@]}" "$bin" config check 2>&1)" || ! grep -qF "$bad:$line:" <<<"$out"; then
		fail "[$triple] this binary's config check rejects bad-value.uci with $bad:$line" "$out"
		return
	fi
	if out="$(TUNBOX_CONFIG="$SHIPPED_CONFIG" "${runner[@]}" "$bin" config check 2>&1)"; then
		ok "[$triple] this binary's config check passes on the shipped config, rejects a bad one with FILE:LINE${runner:+ (under ${runner[0]})}"
	else
		fail "[$triple] config check on the shipped config" "$out"
	fi
}

# ---------------------------------------------------------------- .apk (OpenWrt 25.12)
APK=""
find_apk() {
	[ -n "$APK" ] && return 0
	local out
	if out="$("$root/packaging/apk-tools.sh" 2>&1)"; then
		APK="$(printf '%s\n' "$out" | tail -1)"
		echo "apk-tools: $APK ($("$APK" --version | head -1))"
		return 0
	fi
	fail "packaging/apk-tools.sh finds or builds apk-tools 3" "$out"
	return 1
}

# stub_kmods DIR ARCH: kmod-tun and kmod-bridge packages for ARCH (the feed's
# are kernel modules; only their names matter to the solver)
stub_kmods() {
	local d="$1" a="$2" k
	mkdir -p "$d/empty"
	for k in kmod-tun kmod-bridge; do
		[ -f "$d/$k.apk" ] || "$APK" mkpkg --info "name:$k" --info "version:6.12.0-r1" --info "arch:$a" \
			--info "description:test stand-in" --files "$d/empty" --output "$d/$k.apk" >/dev/null || return 1
	done
}

# adb_field DUMP FIELD: the value of "  FIELD: value" in the info block
adb_field() { awk -v f="  $2: " 'index($0, f) == 1 { print substr($0, length(f) + 1); exit }' "$1"; }

# Signing with a key of one's own (packaging/sign-apk.sh = apk adbsign): a root
# that trusts the key installs the package without --allow-untrusted, refuses
# it unsigned or signed by another key.
apk_sign_test() {
	local pkg="$1" a="$2" d="$3" P="[apk signing $2]" out k
	command -v openssl >/dev/null || { skip "$P" "openssl not installed"; return; }
	mkdir -p "$d/sign"
	for k in mine other; do
		openssl ecparam -name prime256v1 -genkey -noout -out "$d/sign/$k.pem" 2>/dev/null &&
			openssl ec -in "$d/sign/$k.pem" -pubout -out "$d/sign/$k.pub" 2>/dev/null ||
			{ fail "$P openssl key"; return; }
	done
	stub_kmods "$d/sign/kmods" "$a"
	cp "$pkg" "$d/sign/tunbox.apk"
	cp "$pkg" "$d/sign/tunbox-other.apk"
	if ! out="$("$root/packaging/sign-apk.sh" "$d/sign/mine.pem" "$d/sign/tunbox.apk" \
		"$d/sign/kmods/kmod-tun.apk" "$d/sign/kmods/kmod-bridge.apk" 2>&1 &&
		"$root/packaging/sign-apk.sh" "$d/sign/other.pem" "$d/sign/tunbox-other.apk" 2>&1)"; then
		fail "$P packaging/sign-apk.sh" "$out"
		return
	fi
	trusting_root() { # DIR: a root of arch $a trusting mine.pub
		mkdir -p "$1/etc/apk/keys"
		echo "$a" >"$1/etc/apk/arch"
		cp "$d/sign/mine.pub" "$1/etc/apk/keys/"
	}
	local kmods=("$d/sign/kmods/kmod-tun.apk" "$d/sign/kmods/kmod-bridge.apk")
	trusting_root "$d/sign/r-ok"
	if out="$("$APK" add --root "$d/sign/r-ok" --initdb --no-network --no-scripts "${kmods[@]}" "$d/sign/tunbox.apk" 2>&1)" &&
		cmp -s "$d/sign/r-ok/usr/bin/tunbox" "$d/x-$a/root/usr/bin/tunbox"; then
		ok "$P signed with the user's key: installed without --allow-untrusted where /etc/apk/keys has the public key"
	else
		fail "$P signed package installs with the key trusted" "$out"
	fi
	trusting_root "$d/sign/r-unsigned"
	if out="$("$APK" add --root "$d/sign/r-unsigned" --initdb --no-network --no-scripts "${kmods[@]}" "$pkg" 2>&1)"; then
		fail "$P the unsigned package is refused without --allow-untrusted" "$out"
	else
		grep -q UNTRUSTED <<<"$out" && ok "$P unsigned: refused without --allow-untrusted (UNTRUSTED)" ||
			fail "$P unsigned refused for its signature" "$out"
	fi
	trusting_root "$d/sign/r-other"
	if out="$("$APK" add --root "$d/sign/r-other" --initdb --no-network --no-scripts "${kmods[@]}" "$d/sign/tunbox-other.apk" 2>&1)"; then
		fail "$P a package signed by another key is refused" "$out"
	else
		grep -q UNTRUSTED <<<"$out" && ok "$P signed by another key: refused (UNTRUSTED)" ||
			fail "$P other key refused for its signature" "$out"
	fi
}

apk_checks() {
	local bin="$1" triple="$2" static="$3" dyn_flag=() out archs a pkg d
	find_apk || return
	[ "$static" = 1 ] || dyn_flag=(--allow-dynamic)
	d="$WORK/apk-$triple"
	mkdir -p "$d"
	if ! out="$("$root/packaging/build-apk.sh" "${dyn_flag[@]}" "$bin" "$triple" "$d" 2>&1)"; then
		fail "[$triple] build-apk.sh" "$out"
		return
	fi
	if out="$("$root/packaging/build-apk.sh" "${dyn_flag[@]}" "$bin" "$triple" "$d/again" 2>&1)" &&
		(for f in "$d"/*/*.apk; do cmp -s "$f" "$d/again/${f#"$d"/}" || exit 1; done); then
		ok "[$triple] build-apk.sh is reproducible (same bytes twice)"
	else
		fail "[$triple] build-apk.sh is reproducible" "$out"
	fi
	archs="$(tsv_field "$triple" 2 | tr ',' ' ')"
	local version release mk="$root/openwrt/Makefile"
	version="$(sed -n 's/^PKG_VERSION:=//p' "$mk")"
	release="$(sed -n 's/^PKG_RELEASE:=//p' "$mk")"
	for a in $archs; do
		local P="[$triple apk $a]" x="$d/x-$a" field want got missing=""
		pkg="$d/$a/tunbox-$version-r$release.apk"
		[ -f "$pkg" ] || { fail "$P $a/tunbox-$version-r$release.apk made" "$out"; continue; }
		mkdir -p "$x"
		"$APK" adbdump "$pkg" >"$x/dump" 2>&1 || { fail "$P apk adbdump" "$(cat "$x/dump")"; continue; }
		for field in "name=tunbox" "version=$version-r$release" "arch=$a" \
			"license=$(sed -n 's/^PKG_LICENSE:=//p' "$mk")" "origin=package/tunbox" \
			"url=$(sed -n 's/^  URL:=//p' "$mk")" "maintainer=$(sed -n 's/^PKG_MAINTAINER:=//p' "$mk")"; do
			got="$(adb_field "$x/dump" "${field%%=*}")"
			[ "$got" = "${field#*=}" ] || missing="$missing [${field%%=*}: '$got' != '${field#*=}']"
		done
		grep -A1 '^  description: ' "$x/dump" | grep -q 'reflector' || missing="$missing [description]"
		[ "$(awk '/^  depends:/ { on = 1; next } on && /^    - / { print $2; next } { on = 0 }' "$x/dump" | tr '\n' ' ')" = "kmod-bridge kmod-tun " ] ||
			missing="$missing [depends kmod-tun kmod-bridge]"
		for want in post-install post-upgrade pre-deinstall; do
			grep -q "^  $want: " "$x/dump" || missing="$missing [script $want]"
		done
		[ -z "$missing" ] && ok "$P adbdump: name, version, arch, description, license, origin, url, maintainer, depends, post-install/post-upgrade/pre-deinstall" ||
			fail "$P adbdump fields" "$missing
$(sed -n '1,20p' "$x/dump")"
		# scripts: OpenWrt's form (post-upgrade = post-install with PKG_UPGRADE=1)
		awk '/^  post-upgrade: /{ on = 1; next } on && /^  [a-z-]*: / { exit } on { sub(/^    /, ""); print }' "$x/dump" >"$x/post-upgrade"
		if grep -qx 'export PKG_UPGRADE=1' "$x/post-upgrade" && grep -qx 'default_postinst' "$x/post-upgrade" &&
			grep -A8 '^  pre-deinstall: ' "$x/dump" | grep -q '^    default_prerm$'; then
			ok "$P scripts: post-install/post-upgrade call default_postinst (PKG_UPGRADE=1 on upgrade), pre-deinstall default_prerm"
		else
			fail "$P scripts as OpenWrt's" "$(sed -n '/^scripts:/,$p' "$x/dump")"
		fi

		# into an offline root of this arch (as the image builder does: no
		# scripts run, they are recorded)
		local r="$x/root"
		mkdir -p "$r/etc/apk"
		echo "$a" >"$r/etc/apk/arch"
		stub_kmods "$d/kmods-$a" "$a" || { fail "$P stub kmod packages"; continue; }
		if ! out="$("$APK" add --root "$r" --initdb --allow-untrusted --no-network --no-scripts \
			"$d/kmods-$a/kmod-tun.apk" "$d/kmods-$a/kmod-bridge.apk" "$pkg" 2>&1)"; then
			fail "$P apk add --root (arch $a)" "$out"
			continue
		fi
		local bad="" f
		for f in usr/bin/tunbox etc/init.d/tunbox etc/config/tunbox usr/share/tunbox/README \
			lib/upgrade/keep.d/tunbox lib/apk/packages/tunbox.list lib/apk/packages/tunbox.conffiles \
			lib/apk/packages/tunbox.conffiles_static; do
			[ -f "$r/$f" ] || bad="$bad [$f]"
		done
		[ -d "$r/etc/tunbox" ] && [ "$(stat -c %a "$r/etc/tunbox")" = 700 ] || bad="$bad [etc/tunbox 0700]"
		[ "$(stat -c %a "$r/etc/config/tunbox")" = 600 ] && [ "$(stat -c %a "$r/usr/bin/tunbox")" = 755 ] || bad="$bad [modes]"
		cmp -s "$r/usr/bin/tunbox" "$bin" && cmp -s "$r/etc/init.d/tunbox" "$INIT" && cmp -s "$r/etc/config/tunbox" "$SHIPPED_CONFIG" ||
			bad="$bad [contents]"
		[ -z "$bad" ] && ok "$P apk add --root: files in place (binary, init, config 0600, /etc/tunbox 0700, README, keep.d, lib/apk/packages)" ||
			fail "$P apk add --root: files in place" "$bad
$(cd "$r" && find . | sort)"
		# the lists OpenWrt's build writes
		want="$(cd "$r" && { find etc lib usr -type f -o -type l; } | grep -v '^lib/apk/packages/tunbox\.\(list\|conffiles\)' |
			grep -v '^lib/apk/db\|^etc/apk' | sed 's#^#/#' | LC_ALL=C sort)"
		if [ "$(cat "$r/lib/apk/packages/tunbox.list")" = "$want" ] &&
			[ "$(tr '\n' ' ' <"$r/lib/apk/packages/tunbox.conffiles")" = "/etc/config/tunbox /etc/tunbox/ " ] &&
			[ "$(cat "$r/lib/apk/packages/tunbox.conffiles_static")" = "/etc/config/tunbox $(sha256sum <"$SHIPPED_CONFIG" | cut -d' ' -f1)" ] &&
			[ "$(cat "$r/lib/upgrade/keep.d/tunbox")" = "/etc/tunbox/" ]; then
			ok "$P tunbox.list = the package's files; .conffiles = config + key dir; .conffiles_static = config's sha256; keep.d = /etc/tunbox/"
		else
			fail "$P lib/apk/packages lists" "list:
$(cat "$r/lib/apk/packages/tunbox.list")
want:
$want
conffiles: $(cat "$r/lib/apk/packages/tunbox.conffiles")
static: $(cat "$r/lib/apk/packages/tunbox.conffiles_static")"
		fi
		if tar -tzf "$r/lib/apk/db/scripts.tar.gz" 2>/dev/null | sort | tr '\n' ' ' |
			grep -q "^tunbox-$version-r$release\.[^ ]*\.post-install tunbox-$version-r$release\.[^ ]*\.post-upgrade tunbox-$version-r$release\.[^ ]*\.pre-deinstall $"; then
			ok "$P scripts recorded in the root's database (lib/apk/db/scripts.tar.gz)"
		else
			fail "$P scripts recorded" "$(tar -tzvf "$r/lib/apk/db/scripts.tar.gz" 2>&1)"
		fi
		# the image builder then runs post-install with IPKG_INSTROOT: enable only
		mkdir -p "$r/etc/rc.d" "$r/lib/functions"
		cp "$here/openwrt/lib/functions.sh" "$r/lib/functions.sh"
		cp "$here/openwrt/lib/functions/procd.sh" "$r/lib/functions/procd.sh"
		cp "$here/openwrt/etc/rc.common" "$r/etc/rc.common"
		tar -xzOf "$r/lib/apk/db/scripts.tar.gz" --wildcards '*.post-install' >"$x/post-install"
		if out="$(cd "$r" && env -i PATH="$PATH" IPKG_INSTROOT="$r" TBX_LOG="$x/instroot.log" sh "$x/post-install" 2>&1)" &&
			[ -L "$r/etc/rc.d/S90tunbox" ] && [ ! -s "$x/instroot.log" ]; then
			ok "$P post-install under IPKG_INSTROOT (image build): enables (rc.d/S90tunbox), starts nothing"
		else
			fail "$P post-install under IPKG_INSTROOT" "$out
$(ls -l "$r/etc/rc.d"; cat "$x/instroot.log" 2>/dev/null)"
		fi
	done
	[ -n "$archs" ] || fail "[$triple] OpenWrt architectures in $TSV"
	a="${archs%% *}"
	apk_sign_test "$d/$a/tunbox-$version-r$release.apk" "$a" "$d"
	# a package for another arch is refused
	local r2="$d/wrongroot" other=x86_64
	[ "$a" = x86_64 ] && other=mips_24kc
	mkdir -p "$r2/etc/apk"
	echo "$other" >"$r2/etc/apk/arch"
	stub_kmods "$d/kmods-$other" "$other"
	if out="$("$APK" add --root "$r2" --initdb --allow-untrusted --no-network --no-scripts \
		"$d/kmods-$other/kmod-tun.apk" "$d/kmods-$other/kmod-bridge.apk" "$d/$a/tunbox-$version-r$release.apk" 2>&1)"; then
		fail "[$triple apk $a] refused by a root of arch $other" "$out"
	elif grep -q "arch: $a" <<<"$out" && [ ! -e "$r2/usr/bin/tunbox" ]; then
		ok "[$triple apk $a] refused by a root of arch $other (apk: uninstallable, arch $a)"
	else
		fail "[$triple apk $a] refused for its arch" "$out"
	fi
}

# ---------------------------------------------------------------- busybox root
# openwrt_root DIR BINARY...: a root to chroot into with busybox as /bin/sh and
# its applets, OpenWrt's shell libraries as stand-ins (tests/packaging/openwrt:
# /lib/functions.sh, /lib/functions/procd.sh, /etc/rc.common, logger) and the
# shared libraries BINARY... need (a host tunbox may be dynamically linked).
# Calls to procd and syslog land in DIR/tmp/tbx.log.
openwrt_root() {
	local r="$1" b lib
	shift
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/etc/rc.d" "$r/etc/config" "$r/tmp" \
		"$r/var/run" "$r/var/lock" "$r/lib/functions" "$r/etc/apk"
	cp "$(command -v busybox)" "$r/bin/busybox"
	for b in $("$r/bin/busybox" --list); do
		[ -e "$r/bin/$b" ] || ln -s busybox "$r/bin/$b"
	done
	for lib in $(ldd "$(command -v busybox)" "$@" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
		[ -f "$lib" ] && cp -L --parents "$lib" "$r/"
	done
	cp "$here/openwrt/lib/functions.sh" "$r/lib/functions.sh"
	cp "$here/openwrt/lib/functions/procd.sh" "$r/lib/functions/procd.sh"
	cp "$here/openwrt/etc/rc.common" "$r/etc/rc.common"
	cp "$here/openwrt/usr/bin/logger" "$r/usr/bin/logger"
	chmod 755 "$r/etc/rc.common" "$r/usr/bin/logger"
	: >"$r/tmp/tbx.log"
}
rlog() { cat "$1/tmp/tbx.log"; }
rlog_clear() { : >"$1/tmp/tbx.log"; }
# in_root ROOT CMD...: run CMD in the root as OpenWrt would (PATH only)
in_root() { local r="$1"; shift; chroot "$r" /bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# host_root_ready LABEL: whether the busybox-root tests can run (root, chroot,
# busybox, a host tunbox); sets HR_TRIPLE, HR_ARCH (its first OpenWrt arch) and
# HR_FLAGS (--allow-dynamic for a dynamically linked host build)
host_root_ready() {
	[ -n "$HOST_TUNBOX" ] || { skip "$1" "no host tunbox"; return 1; }
	if [ "$(id -u)" != 0 ] || ! command -v busybox >/dev/null || ! command -v chroot >/dev/null; then
		skip "$1" "needs root, chroot and busybox"
		return 1
	fi
	HR_TRIPLE="$(triple_of "$HOST_TUNBOX")"
	HR_FLAGS=()
	file -b -L "$HOST_TUNBOX" | grep -Eq 'statically linked|static-pie linked' || HR_FLAGS=(--allow-dynamic)
	HR_ARCH="$(tsv_field "$HR_TRIPLE" 2 | cut -d, -f1)"
}

# A host-runnable tunbox packaged for the host's OpenWrt arch, installed,
# upgraded and removed by the real apk in a busybox root: the package scripts
# and the init script run there as on a router.
apk_lifecycle_tests() {
	local P="[apk lifecycle]" bin="$HOST_TUNBOX" triple d r out a static_flag=()
	find_apk || return
	host_root_ready "$P" || return
	triple="$HR_TRIPLE" a="$HR_ARCH" static_flag=("${HR_FLAGS[@]}")
	d="$WORK/lifecycle"
	r="$d/root"
	mkdir -p "$d"
	for rel in 1 2 3; do
		out="$("$root/packaging/build-apk.sh" "${static_flag[@]}" --arch "$a" --release "$rel" "$bin" "$triple" "$d/r$rel" 2>&1)" ||
			{ fail "$P build-apk.sh --release $rel" "$out"; return; }
	done
	local v1 v2 v3 ver
	ver="$(sed -n 's/^PKG_VERSION:=//p' "$root/openwrt/Makefile")"
	v1="$d/r1/$a/tunbox-$ver-r1.apk"
	v2="$d/r2/$a/tunbox-$ver-r2.apk"
	v3="$d/r3/$a/tunbox-$ver-r3.apk"
	openwrt_root "$r" "$bin"
	echo "$a" >"$r/etc/apk/arch"
	stub_kmods "$d/kmods" "$a"
	apk_r() { "$APK" --root "$r" --allow-untrusted --no-network "$@"; }

	# -- first install: post-install enables and starts (the shipped file: every section disabled)
	if out="$(apk_r add --initdb "$d/kmods/kmod-tun.apk" "$d/kmods/kmod-bridge.apk" "$v1" 2>&1)" &&
		[ -L "$r/etc/rc.d/S90tunbox" ] && grep -q "^procd_close_service set$" "$r/tmp/tbx.log" &&
		! grep -q '^log daemon.err' "$r/tmp/tbx.log"; then
		ok "$P apk add: post-install ran in the root: service enabled (rc.d/S90tunbox) and started, config check ok"
	else
		fail "$P apk add: post-install enables and starts" "$out
$(ls -l "$r/etc/rc.d" 2>&1)
$(rlog "$r")"
	fi

	# -- the user enables a section, adds a key, starts it
	sed -i "/^config reflect 'lab'/,/^config/ s/option enabled '0'/option enabled '1'/; s/option dev 'tbxr0'/option dev 'tbxr7'/" \
		"$r/etc/config/tunbox"
	echo "test key" >"$r/etc/tunbox/tunnel.key"
	# sysupgrade saves what the keep.d lists name (files found under listed
	# directories), besides the changed conffiles
	out="$(in_root "$r" sh -c 'find $(sed -e "/^[[:space:]]*$/d; /^#/d" /lib/upgrade/keep.d/* 2>/dev/null) -type f -o -type l 2>/dev/null')"
	grep -qx /etc/tunbox/tunnel.key <<<"$out" && ok "$P sysupgrade's keep list (/lib/upgrade/keep.d) takes /etc/tunbox/tunnel.key" ||
		fail "$P sysupgrade keeps the keys" "keep list: $out"
	rlog_clear "$r"
	in_root "$r" /etc/init.d/tunbox start >/dev/null 2>&1
	grep -q "^procd_open_instance lab$" "$r/tmp/tbx.log" && ok "$P the changed config starts section lab" ||
		fail "$P the changed config starts section lab" "$(rlog "$r")"

	# -- upgrade while enabled: stays enabled, instances sent again with the binary in their files
	rlog_clear "$r"
	if out="$(apk_r add "$v2" 2>&1)" && grep -q "tbxr7" "$r/etc/config/tunbox" && [ -L "$r/etc/rc.d/S90tunbox" ] &&
		grep -q "^procd_open_instance lab$" "$r/tmp/tbx.log" &&
		grep -q "^procd_set_param file /var/run/tunbox/lab.conf|/usr/bin/tunbox$" "$r/tmp/tbx.log"; then
		ok "$P upgrade r1 -> r2 while enabled: config change kept, still enabled, lab sent to procd again (file: its state + the new binary)"
	else
		fail "$P upgrade while enabled" "$out
$(rlog "$r")"
	fi
	[ -f "$r/etc/config/tunbox.apk-new" ] && cmp -s "$r/etc/config/tunbox.apk-new" "$SHIPPED_CONFIG" &&
		ok "$P the new shipped config is left beside it as tunbox.apk-new" ||
		fail "$P tunbox.apk-new" "$(ls -l "$r/etc/config")"

	# -- disabled and stopped by the user, then upgraded: stays disabled and stopped
	in_root "$r" /etc/init.d/tunbox stop >/dev/null 2>&1
	in_root "$r" /etc/init.d/tunbox disable >/dev/null 2>&1
	rlog_clear "$r"
	if out="$(apk_r add "$v3" 2>&1)" && [ ! -e "$r/etc/rc.d/S90tunbox" ] && [ ! -e "$r/etc/rc.d/K10tunbox" ] &&
		! grep -q '^procd_open_instance\|^procd_close_service' "$r/tmp/tbx.log" &&
		grep -q "^log daemon.info package upgrade: the service is disabled, not starting it" "$r/tmp/tbx.log" &&
		grep -q "tbxr7" "$r/etc/config/tunbox" && grep -q "^V:$ver-r3$" "$r/lib/apk/db/installed"; then
		ok "$P upgrade r2 -> r3 of a disabled service: stays disabled, not started, config change kept"
	else
		fail "$P upgrade of a disabled service" "$out
$(ls -l "$r/etc/rc.d"; rlog "$r")"
	fi

	# -- removal: pre-deinstall stops and disables; binary and init gone, config and key kept
	in_root "$r" /etc/init.d/tunbox enable >/dev/null 2>&1
	in_root "$r" /etc/init.d/tunbox start >/dev/null 2>&1
	rlog_clear "$r"
	if out="$(apk_r del tunbox 2>&1)" && [ ! -e "$r/usr/bin/tunbox" ] && [ ! -e "$r/etc/init.d/tunbox" ] &&
		[ ! -e "$r/etc/rc.d/S90tunbox" ] && grep -q "^procd_kill tunbox" "$r/tmp/tbx.log" &&
		grep -q "tbxr7" "$r/etc/config/tunbox" && [ -f "$r/etc/tunbox/tunnel.key" ] && [ ! -e "$r/lib/apk/packages/tunbox.list" ]; then
		ok "$P apk del: stopped and disabled, binary and init script gone, changed config and key kept"
	else
		fail "$P apk del" "$out
$(cd "$r" && find etc usr lib/apk/packages 2>/dev/null | sort)
$(rlog "$r")"
	fi
}

# The .ipk's postinst/prerm as opkg runs them (PKG_UPGRADE=0/1, the package's
# files listed in /usr/lib/opkg/info/tunbox.list) in a busybox root.
ipk_script_tests() {
	local P="[ipk scripts]" bin="$HOST_TUNBOX" triple d r out a x static_flag=()
	host_root_ready "$P" || return
	triple="$HR_TRIPLE" a="$HR_ARCH" static_flag=("${HR_FLAGS[@]}")
	d="$WORK/ipk-scripts"
	r="$d/root"
	x="$d/x"
	mkdir -p "$x"
	out="$("$root/packaging/build-ipk.sh" "${static_flag[@]}" --arch "$a" "$bin" "$triple" "$d" 2>&1)" ||
		{ fail "$P build-ipk.sh" "$out"; return; }
	tar -xzf "$d"/tunbox_*_"$a".ipk -C "$x"
	openwrt_root "$r" "$bin"
	tar -xzf "$x/data.tar.gz" -C "$r"
	mkdir -p "$r/usr/lib/opkg/info"
	tar -xzf "$x/control.tar.gz" -C "$r/usr/lib/opkg/info"
	for f in control conffiles postinst prerm; do mv "$r/usr/lib/opkg/info/$f" "$r/usr/lib/opkg/info/tunbox.$f"; done
	tar -tzf "$x/data.tar.gz" | grep -v '/$' | sed 's#^\./#/#' >"$r/usr/lib/opkg/info/tunbox.list"
	local pi=/usr/lib/opkg/info/tunbox.postinst pr=/usr/lib/opkg/info/tunbox.prerm

	in_root "$r" PKG_UPGRADE=0 "$pi" configure >/dev/null 2>&1
	[ -L "$r/etc/rc.d/S90tunbox" ] && grep -q "^procd_close_service set$" "$r/tmp/tbx.log" &&
		ok "$P install (PKG_UPGRADE=0): postinst enables and starts" || fail "$P install: enable + start" "$(rlog "$r")"
	in_root "$r" /etc/init.d/tunbox stop >/dev/null 2>&1
	in_root "$r" /etc/init.d/tunbox disable >/dev/null 2>&1
	rlog_clear "$r"
	in_root "$r" PKG_UPGRADE=1 "$pi" configure >/dev/null 2>&1
	[ ! -e "$r/etc/rc.d/S90tunbox" ] && ! grep -q '^procd_close_service' "$r/tmp/tbx.log" &&
		ok "$P upgrade (PKG_UPGRADE=1) of a disabled service: stays disabled, not started" ||
		fail "$P upgrade of a disabled service" "$(ls -l "$r/etc/rc.d"; rlog "$r")"
	in_root "$r" /etc/init.d/tunbox enable >/dev/null 2>&1
	rlog_clear "$r"
	in_root "$r" PKG_UPGRADE=1 "$pi" configure >/dev/null 2>&1
	[ -L "$r/etc/rc.d/S90tunbox" ] && grep -q "^procd_close_service set$" "$r/tmp/tbx.log" &&
		ok "$P upgrade of an enabled service: stays enabled, started" || fail "$P upgrade of an enabled service" "$(rlog "$r")"
	rlog_clear "$r"
	in_root "$r" PKG_UPGRADE=0 "$pr" remove >/dev/null 2>&1
	[ ! -e "$r/etc/rc.d/S90tunbox" ] && grep -q "^procd_kill tunbox" "$r/tmp/tbx.log" &&
		ok "$P remove: prerm stops and disables" || fail "$P remove: stop + disable" "$(rlog "$r")"
	# image build: IPKG_INSTROOT set, only the link is made
	rm -f "$r/etc/rc.d/"*
	rlog_clear "$r"
	if out="$(env -i PATH="$PATH" IPKG_INSTROOT="$r" TBX_LOG="$d/instroot.log" sh "$r$pi" configure 2>&1)" &&
		[ -L "$r/etc/rc.d/S90tunbox" ] && [ ! -s "$d/instroot.log" ]; then
		ok "$P postinst under IPKG_INSTROOT (image build): enables only"
	else
		fail "$P postinst under IPKG_INSTROOT" "$out $(ls -l "$r/etc/rc.d")"
	fi
}

package_tests() {
	local i bin triple static
	for i in "${!BINS[@]}"; do
		bin="${BINS[$i]}"
		triple="${TRIPLES[$i]}"
		if file -b -L "$bin" | grep -Eq 'statically linked|static-pie linked'; then static=1; else
			static=0
			echo "     note: $bin is dynamically linked: packaged with --allow-dynamic (not for a router or Pi)"
		fi
		if [ -z "$(tsv_field "$triple" 1)" ]; then
			fail "[$triple] in $TSV"
			continue
		fi
		ipk_checks "$bin" "$triple" "$static"
		apk_checks "$bin" "$triple" "$static"
		deb_checks "$bin" "$triple" "$static"
		binary_config_check "$bin" "$triple"
	done
	# builders refuse a binary for another machine and a dynamic one
	if [ -n "$HOST_TUNBOX" ]; then
		local out
		if out="$("$root/packaging/build-ipk.sh" --allow-dynamic "$HOST_TUNBOX" mips-unknown-linux-musl "$WORK/wrong" 2>&1)"; then
			fail "build-ipk.sh refuses a binary of another architecture" "$out"
		else
			ok "build-ipk.sh refuses a binary of another architecture"
		fi
		if ! file -b "$HOST_TUNBOX" | grep -q 'statically linked\|static-pie'; then
			if out="$("$root/packaging/build-deb.sh" "$HOST_TUNBOX" "$(triple_of "$HOST_TUNBOX")" "$WORK/wrong" 2>&1)"; then
				fail "build-deb.sh refuses a dynamically linked binary" "$out"
			else
				ok "build-deb.sh refuses a dynamically linked binary"
			fi
		fi
	fi
}

# ---------------------------------------------------------------- systemd units
systemd_tests() {
	if ! command -v systemd-analyze >/dev/null; then
		skip "systemd-analyze verify" "systemd-analyze not installed"
		return
	fi
	local d="$WORK/units" out u
	mkdir -p "$d"
	cp "$root"/dist/systemd/*.service "$d/"
	# verify needs the executable to exist: point the units at the host tunbox
	sed -i "s#/usr/bin/tunbox#${HOST_TUNBOX:-/bin/true}#g" "$d"/*.service
	for u in tunbox@lab.service tunbox-bridge@lan.service; do
		if out="$(cd "$d" && systemd-analyze verify "$d/$u" 2>&1)" && [ -z "$out" ]; then
			ok "systemd-analyze verify $u: no warnings"
		elif grep -q 'Failed to \(connect\|initialize\)\|Operation not permitted\|No such file or directory.*/run/systemd' <<<"$out"; then
			skip "systemd-analyze verify $u" "cannot run here: $(printf '%s' "$out" | head -1)"
		else
			fail "systemd-analyze verify $u" "$out"
		fi
	done
	# the exposure score systemd computes for the hardening (informational)
	if out="$(systemd-analyze security --offline=yes "$d/tunbox@lab.service" 2>/dev/null | tail -1)"; then
		echo "     $out"
	fi
	local unit="$root/dist/systemd/tunbox@.service" missing="" want
	for want in 'ExecStart=/usr/bin/tunbox run %i' 'AmbientCapabilities=CAP_NET_ADMIN' \
		'CapabilityBoundingSet=CAP_NET_ADMIN' 'NoNewPrivileges=yes' 'Restart=on-failure' 'User=tunbox' \
		'DeviceAllow=/dev/net/tun rw'; do
		grep -qxF "$want" "$unit" || missing="$missing [$want]"
	done
	grep -q '^PrivateDevices=yes\|^PrivateNetwork=yes' "$unit" && missing="$missing [PrivateDevices/PrivateNetwork would break TUN]"
	grep -q '^RestrictAddressFamilies=.*AF_NETLINK' "$unit" || missing="$missing [AF_NETLINK]"
	[ -z "$missing" ] && ok "tunbox@.service: run %i, CAP_NET_ADMIN only, non-root, TUN and netlink reachable" ||
		fail "tunbox@.service settings" "$missing"
	unit="$root/dist/systemd/tunbox-bridge@.service"
	missing=""
	for want in 'Type=oneshot' 'RemainAfterExit=yes' 'ExecStart=/usr/bin/tunbox bridge up --section %i' \
		'ExecStop=/usr/bin/tunbox bridge down --section %i'; do
		grep -qxF "$want" "$unit" || missing="$missing [$want]"
	done
	[ -z "$missing" ] && ok "tunbox-bridge@.service: oneshot, bridge up / down --section %i" ||
		fail "tunbox-bridge@.service settings" "$missing"
}

# The unit's privilege model for real: tunbox run as an unprivileged user with
# only the unit's capabilities (ambient + bounding set) and no_new_privs, in a
# network namespace made here, sets up a reflector that answers pings.
# (systemd's other sandboxing needs a running systemd; systemd-analyze checks
# those lines above.)
unit_privilege_test() {
	local unit="$root/dist/systemd/tunbox@.service" amb bound name="tunbox@.service privileges"
	if [ -z "$HOST_TUNBOX" ] || [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null || ! command -v ip >/dev/null; then
		skip "$name" "needs root, setpriv, ip and a host tunbox"
		return
	fi
	# CAP_NET_ADMIN CAP_X -> +net_admin,+x
	caps_to_setpriv() { tr ' ' '\n' | sed -n 's/^CAP_\(.*\)/+\L\1/p' | paste -sd, -; }
	amb="$(sed -n 's/^AmbientCapabilities=//p' "$unit" | caps_to_setpriv)"
	bound="$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | caps_to_setpriv)"
	grep -qx 'NoNewPrivileges=yes' "$unit" || { fail "$name: NoNewPrivileges=yes"; return; }
	chmod 755 "$WORK" # the unprivileged tunbox reads its config from here
	cat >"$WORK/priv.uci" <<-'EOF'
		config reflect 'lab'
			option dev 'tbxr0'
			list address '198.18.0.1/24'
			list address '2001:2::1/64'
	EOF
	NETNS="tbx-pkgtest-$$"
	ip netns add "$NETNS" || { fail "$name: ip netns add"; NETNS=""; return; }
	ip netns exec "$NETNS" ip link set lo up
	# /dev/net/tun is 0666 on Debian / Raspberry Pi OS (udev); give this private
	# mount namespace the same node in case the host's is 0600
	ip netns exec "$NETNS" unshare --mount sh -c '
		d=$(mktemp -d) && mount -t tmpfs tmpfs "$d" && mknod -m 666 "$d/tun" c 10 200 &&
			mount --bind "$d/tun" /dev/net/tun || exit 9
		exec timeout 20 env TUNBOX_CONFIG="$1" setpriv --reuid=65534 --regid=65534 --clear-groups \
			--inh-caps=-all,"$2" --ambient-caps=-all,"$2" --bounding-set=-all,"$3" --no-new-privs \
			"$4" run lab' _ "$WORK/priv.uci" "$amb" "$bound" "$HOST_TUNBOX" >"$WORK/priv.log" 2>&1 &
	local pid=$! i v4=1 v6=1
	for i in 1 2 3 4 5 6 7 8 9 10; do
		ip netns exec "$NETNS" ip -6 addr show dev tbxr0 2>/dev/null | grep -q 2001:2::1 && break
		sleep 0.3
	done
	ip netns exec "$NETNS" ping -c 2 -W 1 198.18.0.41 >/dev/null 2>&1 && v4=0
	ip netns exec "$NETNS" ping -6 -c 2 -W 1 2001:2::41 >/dev/null 2>&1 && v6=0
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	ip netns del "$NETNS"
	NETNS=""
	if [ $v4 = 0 ] && [ $v6 = 0 ]; then
		ok "$name: as uid 65534 with only ${amb#+} (ambient/bounding), no_new_privs: reflector up, v4+v6 pings answered"
	else
		fail "$name: unprivileged tunbox run with the unit's capabilities" "ping v4 rc=$v4 v6 rc=$v6; tunbox said:
$(cat "$WORK/priv.log")"
	fi
}

# Every command line the init script and the units give tunbox is one the CLI
# accepts (their options appear in its usage line).
cli_contract_test() {
	[ -n "$HOST_TUNBOX" ] || { skip "CLI contract" "no host tunbox"; return; }
	local bad="" form usage opt
	for form in "run:" "config check:" "config show:" "bridge up:--section" \
		"bridge down:--bridge --state-file --section"; do
		# shellcheck disable=SC2086  # the subcommand words split on purpose
		usage="$("$HOST_TUNBOX" ${form%%:*} --help 2>&1 | grep -m1 '^Usage:')" || usage=""
		[ -n "$usage" ] || { bad="$bad [tunbox ${form%%:*}: no usage]"; continue; }
		for opt in ${form#*:}; do
			grep -q -- "\[$opt " <<<"$usage" || bad="$bad [tunbox ${form%%:*} $opt]"
		done
	done
	[ -z "$bad" ] && ok "tunbox CLI accepts what the init script and units run (run, config check/show, bridge up/down options)" ||
		fail "tunbox CLI accepts what the init script and units run" "$bad"
}

shellcheck_all
makefile_checks
cli_contract_test
shipped_config_checks
run_init_tests
package_tests
apk_lifecycle_tests
ipk_script_tests
systemd_tests
unit_privilege_test

echo "$SKIPPED skipped"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
