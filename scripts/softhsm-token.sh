#!/usr/bin/env bash
# Makes a throwaway SoftHSM2 token for people: its own directory and
# SOFTHSM2_CONF, random user and security-officer PINs in files (mode 0600),
# initialised through `signet-server token init` (softhsm2-util would want
# the PINs on its command line).
#
#   scripts/softhsm-token.sh DIR [LABEL]      then: export SOFTHSM2_CONF=DIR/softhsm2.conf
#   rm -rf DIR                                 removes it all
#
# The token initialisation is recorded in DIR/ceremony.log, or in the
# transcript named by SIGNET_TRANSCRIPT.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [LABEL]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mkdir -p "$1" && cd "$1" && pwd)
label=${2:-signet-dev}
server=${SIGNET_SERVER:-}
if [ -z "$server" ]; then
	[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
	(cd "$here/.." && CGO_ENABLED=1 go build -o "$dir/signet-server" ./cmd/signet-server)
	server=$dir/signet-server
fi
module=${SIGNET_SOFTHSM2_MODULE:-}
if [ -z "$module" ]; then
	for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so; do
		[ -e "$m" ] && module=$m && break
	done
fi
[ -n "$module" ] || { echo "$0: SoftHSM2 is not installed; run scripts/install-deps.sh" >&2; exit 1; }
[ -e "$dir/softhsm2.conf" ] && { echo "$0: $dir already holds a token; remove it first" >&2; exit 1; }
mkdir -p "$dir/tokens"
chmod 700 "$dir"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$dir" >"$dir/softhsm2.conf"
(umask 077; od -An -tx1 -N8 /dev/urandom | tr -d ' \n' >"$dir/pin"; od -An -tx1 -N8 /dev/urandom | tr -d ' \n' >"$dir/so-pin")
SOFTHSM2_CONF=$dir/softhsm2.conf "$server" --batch --module "$module" --transcript "${SIGNET_TRANSCRIPT:-$dir/ceremony.log}" token init --label "$label" \
	--so-pin-file "$dir/so-pin" --pin-file "$dir/pin" >&2
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf   # token \"$label\", PIN in $dir/pin"
