#!/usr/bin/env bash
# Query targets/targets.tsv, the one list of supported targets.
#
#   targets/list.sh                      all Rust target triples, one per line
#   targets/list.sh --ci                 the triples CI builds by default (ci=default)
#   targets/list.sh TRIPLE FIELD         one field of one target ("-" prints as empty)
#   targets/list.sh --openwrt ARCH       the triple whose binary serves OpenWrt ARCH (exit 1 if none)
#   targets/list.sh --deb ARCH           the triple packaged for Debian ARCH (exit 1 if none)
#   targets/list.sh --fields             the column names
#   targets/list.sh --tsv                the table without comments (for scripts reading all columns)
#
# Field names: rust_target openwrt_arch deb_arch pi_models zig_target zig_cpu qemu qemu_cpu
#              build_std rustflags ci qemu_skip_tests
set -euo pipefail
tsv="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/targets.tsv"

fields() { grep -m1 '^#rust_target' "$tsv" | sed 's/^#//'; }
rows() { grep -v '^#' "$tsv" | grep -v '^[[:space:]]*$'; }

field_index() {
    local i=1 f
    for f in $(fields); do
        if [ "$f" = "$1" ]; then echo "$i"; return 0; fi
        i=$((i + 1))
    done
    echo "targets/list.sh: unknown field '$1' (have: $(fields | tr '\t' ' '))" >&2
    return 2
}

case "${1:-}" in
"") rows | cut -f1 ;;
--ci) rows | awk -F'\t' '$11 == "default" { print $1 }' ;;
--fields) fields | tr '\t' '\n' ;;
--tsv) rows ;;
--openwrt | --deb)
    [ $# -eq 2 ] || { echo "usage: $0 $1 ARCH" >&2; exit 2; }
    col=$([ "$1" = --openwrt ] && echo 2 || echo 3)
    out=$(rows | awk -F'\t' -v c="$col" -v a="$2" '{ n = split($c, xs, ","); for (i = 1; i <= n; i++) if (xs[i] == a) print $1 }')
    [ -n "$out" ] || { echo "targets/list.sh: no target for $1 $2" >&2; exit 1; }
    echo "$out"
    ;;
-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' ;;
*)
    [ $# -eq 2 ] || { echo "usage: $0 [TRIPLE FIELD | --ci | --openwrt ARCH | --deb ARCH | --fields | --tsv]" >&2; exit 2; }
    idx=$(field_index "$2")
    line=$(rows | awk -F'\t' -v t="$1" '$1 == t')
    [ -n "$line" ] || { echo "targets/list.sh: unknown target '$1' (have: $(rows | cut -f1 | tr '\n' ' '))" >&2; exit 2; }
    val=$(printf '%s\n' "$line" | cut -f"$idx")
    [ "$val" = "-" ] && val=""
    printf '%s\n' "$val"
    ;;
esac
