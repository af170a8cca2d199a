#!/bin/sh
# Regenerates the expected outputs of the UCI parser corpus from a real `uci` binary.
#
#   src/config/testdata/uci/regen.sh /path/to/uci
#
# For every CASE.uci it writes CASE.show (`uci show`), CASE.showx (`uci -X show`,
# anonymous sections by their cfg name) or, when uci refuses the file, CASE.err
# (uci's message). The recorded outputs come from openwrt/uci at commit
# 66127cd ("formal: fix workflow permissions"), built on Debian 12 x86_64 with:
#   gcc -Os -std=gnu99 -DUCI_PREFIX='"/usr"' -I. -o uci \
#       cli.c libuci.c file.c util.c delta.c parse.c      (after: : > uci_config.h)
# (only blob.c needs libubox, and the uci command does not use it).
set -eu
UCI=${1:?usage: regen.sh /path/to/uci}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/conf" "$work/delta"
for case in "$here"/*.uci; do
	base=${case%.uci}
	cp "$case" "$work/conf/t"
	rm -f "$base.show" "$base.showx" "$base.err"
	if "$UCI" -c "$work/conf" -t "$work/delta" show t >"$work/out" 2>"$work/err"; then
		cp "$work/out" "$base.show"
		"$UCI" -c "$work/conf" -t "$work/delta" -X show t >"$base.showx"
	else
		sed 's/^[^:]*: //' "$work/err" >"$base.err"
	fi
done

# Section references: lookup.refs (one per line) against lookup.conf, as `uci -X show
# t.REF` resolves them: the section's name, or uci's error.
cp "$here/lookup.conf" "$work/conf/t"
while IFS= read -r ref; do
	if out=$("$UCI" -c "$work/conf" -t "$work/delta" -X show "t.$ref" 2>&1); then
		res=$(printf '%s\n' "$out" | head -n1 | sed 's/^t\.\([^=]*\)=.*/\1/')
	else
		res=$(printf '%s\n' "$out" | sed 's/^[^:]*: //')
	fi
	printf '%s\t%s\n' "$ref" "$res"
done <"$here/lookup.refs" >"$here/lookup.expected"
