#!/usr/bin/env bash
# Sign .apk packages (or a packages.adb index) with a key of your own, so routers
# that trust it install them without --allow-untrusted:
#
#   packaging/sign-apk.sh KEY.pem FILE.apk...
#
# KEY.pem  private key, e.g. made once with
#            openssl ecparam -name prime256v1 -genkey -noout -out tunbox-feed.pem
#            openssl ec -in tunbox-feed.pem -pubout -out tunbox-feed.pub
#          (tunbox-feed.pub goes to /etc/apk/keys/ on the router)
#
# Runs `apk adbsign --allow-untrusted --sign-key KEY.pem FILE` (apk-tools 3 from
# packaging/apk-tools.sh; without --allow-untrusted, apk-tools 3.0.6 cuts an
# unsigned package down to its metadata and still exits 0), then checks each
# file with `apk verify` against the public half of KEY.
set -euo pipefail
# shellcheck source=packaging/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -ge 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
key="$1"
shift
[ -f "$key" ] || die "key $key not found"
command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
apk="$("$PKG_ROOT/packaging/apk-tools.sh")" || die "no apk-tools 3.x (see above)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/etc/apk/keys"
openssl pkey -in "$key" -pubout -out "$work/root/etc/apk/keys/signer.pub" 2>"$work/err" ||
	die "cannot read the private key $key: $(cat "$work/err")"
for f in "$@"; do
	[ -f "$f" ] || die "$f not found"
	size="$(stat -c %s "$f")"
	"$apk" adbsign --allow-untrusted --sign-key "$key" "$f" || die "apk adbsign failed on $f"
	[ "$(stat -c %s "$f")" -ge "$size" ] || die "$f shrank while signing: restore it from the build"
	"$apk" --root "$work/root" verify "$f" >/dev/null || die "$f does not verify with $key after signing"
	echo "signed: $f"
done
