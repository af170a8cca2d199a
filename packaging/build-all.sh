#!/usr/bin/env bash
# Every package for every cross-built binary: for each BINARY (default: all
# target/cross/<triple>/release/tunbox), the .ipk and the .apk for each OpenWrt
# architecture of its triple in targets/targets.tsv, and the .deb when the
# triple has a Debian architecture.
#
#   packaging/build-all.sh [BINARY...]
#
# Output: dist/ipk/tunbox_<version>_<arch>.ipk, dist/apk/<arch>/tunbox-<version>-r<N>.apk,
# dist/deb/tunbox_<version>_<debarch>.deb. The triple is taken from the path
# (target/cross/<triple>/...).
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
	for b in "$PKG_ROOT"/target/cross/*/release/tunbox; do
		[ -x "$b" ] && bins+=("$b")
	done
fi
[ ${#bins[@]} -gt 0 ] || die "no binaries: build them with targets/build.sh TRIPLE (or .ci/cross.sh) first"
for b in "${bins[@]}"; do
	triple="$(basename "$(dirname "$(dirname "$b")")")"
	target_field "$triple" rust_target >/dev/null
	"$PKG_ROOT/packaging/build-ipk.sh" "$b" "$triple"
	"$PKG_ROOT/packaging/build-apk.sh" "$b" "$triple"
	if [ -n "$(target_field "$triple" deb_arch)" ]; then
		"$PKG_ROOT/packaging/build-deb.sh" "$b" "$triple"
	fi
done
