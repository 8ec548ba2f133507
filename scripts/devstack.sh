#!/usr/bin/env bash
# A local signing stack for development and the demo: a CA and TLS
# certificates, a SoftHSM2 token, a server database with an admin, a user
# alice and an RSA-4096 key she may use, and signet-bridge and signet-server
# running on 127.0.0.1.
#
#   scripts/devstack.sh up DIR      create what is missing under DIR, (re)start
#   scripts/devstack.sh down DIR    stop the bridge and the server
#
# Ports: SIGNET_CLIENT_PORT (default 44334) for clients, SIGNET_SERVER_PORT
# (default 44333) for servers. Secrets for this dev stack only are in
# DIR/secrets (mode 600). SIGNET_DEVSTACK_PIN=1 gives the server the token
# PIN file, so that new-key and import-key work over the network.
#
# Koji: with SIGNET_KOJI_HUB (the hub's XML-RPC URL), SIGNET_KOJI_TOPURL,
# SIGNET_KOJI_CERT (the bridge's PEM certificate with its key, for the
# hub's certificate login) and SIGNET_KOJI_CA (the hub's CA) set, the
# bridge and the clients get a Koji instance named "koji" (also their
# default), and DIR/koji.conf is a Koji client configuration of it for
# Sigul's client ([koji] koji-instances: koji, koji-config-koji: DIR/koji.conf).
set -euo pipefail
usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$2"
dir=$(cd "$2" && pwd)
client_port=${SIGNET_CLIENT_PORT:-44334}
server_port=${SIGNET_SERVER_PORT:-44333}
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
. "$root/scripts/lib/stack.sh"

stop() {
	for p in server bridge; do
		if [ -f "$dir/run/$p.pid" ]; then
			pid=$(cat "$dir/run/$p.pid")
			if kill -0 "$pid" 2>/dev/null; then
				kill -TERM "$pid"
				for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
				kill -KILL "$pid" 2>/dev/null || true
			fi
			rm -f "$dir/run/$p.pid"
		fi
	done
}

case "$action" in
down) stop; echo "devstack: stopped (files kept in $dir)"; exit 0 ;;
up) ;;
*) usage ;;
esac

"$root/scripts/install-deps.sh" >/dev/null
mkdir -p "$dir/bin" "$dir/pki" "$dir/secrets" "$dir/run" "$dir/log" "$dir/spool"
chmod 700 "$dir/secrets"
(cd "$root" && CGO_ENABLED=1 go build -o "$dir/bin/" ./cmd/signet-server ./cmd/signet-bridge ./cmd/signet)

# PKI: a CA, and certificates for the bridge, the server and the users.
pki=$dir/pki
stack_ca "$pki" "signet devstack CA" 3650
cert() { stack_cert "$pki" "$1" "$2" "$3" 825; } # file name, common name, extensions
cert bridge localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth"
cert server server "subjectAltName=DNS:server
extendedKeyUsage=serverAuth,clientAuth"
for u in admin alice; do cert "$u" "$u" "extendedKeyUsage=clientAuth"; done

# Dev-only secrets.
umask 077
[ -f "$dir/secrets/admin-password" ] || printf 'admin-%s\n' "$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')" >"$dir/secrets/admin-password"
[ -f "$dir/secrets/alice-passphrase" ] || printf 'alice-%s\n' "$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')" >"$dir/secrets/alice-passphrase"
umask 022

# Token and database.
S=("$dir/bin/signet-server" --config "$dir/server.toml" --batch)
pin=()
[ "${SIGNET_DEVSTACK_PIN:-}" = 1 ] && pin=("pin_file = \"$dir/token/pin\"")
stack_server_toml "$dir/server.toml" "$dir" "$pki" \
	"${SIGNET_SOFTHSM2_MODULE:-$( [ -e /usr/lib/softhsm/libsofthsm2.so ] && echo /usr/lib/softhsm/libsofthsm2.so || echo /usr/lib64/pkcs11/libsofthsm2.so)}" \
	signet-devstack "$server_port" 'unwrap_cache = "5m"' "metrics_file = \"$dir/run/server.prom\"" "${pin[@]}"
if [ ! -f "$dir/token/softhsm2.conf" ]; then
	SIGNET_SERVER="$dir/bin/signet-server" SIGNET_TRANSCRIPT="$dir/ceremony.log" "$root/scripts/softhsm-token.sh" "$dir/token" signet-devstack >/dev/null
fi
export SOFTHSM2_CONF=$dir/token/softhsm2.conf
if [ ! -f "$dir/signet.db" ]; then
	"${S[@]}" user add admin --admin --password-file "$dir/secrets/admin-password" >/dev/null
	"${S[@]}" user add alice >/dev/null
	# OpenPGP keys for RPMs and files (RSA-4096 and Ed25519), an ECC key
	# for IMA file signatures, and RSA and ECC keys for Secure Boot (a CA
	# and two code-signing keys, certified below through the service).
	# alice may use all of them, with the same dev-only passphrase.
	gen() {
		"${S[@]}" --pin-file "$dir/token/pin" key generate "$@" \
			--owner alice --passphrase-file "$dir/secrets/alice-passphrase" >/dev/null
	}
	gen demo-rsa --type rsa4096 --uid 'signet devstack (demo-rsa) <demo@example.org>'
	gen demo-ed25519 --type ed25519 --uid 'signet devstack (demo-ed25519) <demo@example.org>'
	gen demo-ima --type ecdsa-p256
	gen demo-sb-ca --type rsa4096
	gen demo-sb --type rsa2048
	gen demo-sb-ec --type ecdsa-p256
	new_db=1
fi

# Koji: all four settings or none.
koji=0
if [ -n "${SIGNET_KOJI_HUB:-}${SIGNET_KOJI_TOPURL:-}${SIGNET_KOJI_CERT:-}${SIGNET_KOJI_CA:-}" ]; then
	for v in SIGNET_KOJI_HUB SIGNET_KOJI_TOPURL SIGNET_KOJI_CERT SIGNET_KOJI_CA; do
		[ -n "${!v:-}" ] || { echo "devstack: $v is not set: the Koji instance needs SIGNET_KOJI_HUB, SIGNET_KOJI_TOPURL, SIGNET_KOJI_CERT and SIGNET_KOJI_CA" >&2; exit 2; }
	done
	for v in SIGNET_KOJI_CERT SIGNET_KOJI_CA; do
		[ -r "${!v}" ] || { echo "devstack: $v=${!v} is not a readable file" >&2; exit 2; }
	done
	koji=1
	# Koji's client format, for Sigul's client (its look-ups are not
	# logged in; Koji's library checks an https hub against the system's
	# CAs or REQUESTS_CA_BUNDLE, not serverca, when it does not log in).
	cat >"$dir/koji.conf" <<EOF
[koji]
server = $SIGNET_KOJI_HUB
topurl = $SIGNET_KOJI_TOPURL
serverca = $SIGNET_KOJI_CA
authtype = ssl
EOF
else
	rm -f "$dir/koji.conf"
fi

# Client and bridge configurations.
for u in admin alice; do
	stack_client_toml "$dir/$u.toml" "$pki" "$u" "$client_port"
	if [ "$koji" = 1 ]; then
		cat >>"$dir/$u.toml" <<EOF

# Packages named by N-V-R.A are looked up in Koji (no login): -k koji,
# or no -k.
[koji]
koji-config = "$dir/koji.conf"
[koji.instances.koji]
server = "$SIGNET_KOJI_HUB"
topurl = "$SIGNET_KOJI_TOPURL"
serverca = "$SIGNET_KOJI_CA"
EOF
	fi
done
stack_bridge_toml "$dir/bridge.toml" "$pki" "$client_port" "$server_port" "${SIGNET_METRICS_PORT:-44335}"
cat >>"$dir/bridge.toml" <<EOF

# alice also plays the robot here (signet-robo's tests and benchmark run up
# to 8 requests at once); everyone else keeps max_requests_per_cn (4).
[requests_per_cn]
alice = 16
EOF
if [ "$koji" = 1 ]; then
	cat >>"$dir/bridge.toml" <<EOF

# Koji instance "koji" (the default, being the only one): the bridge
# fetches packages named by NVRA from topurl and imports signatures,
# logged in with its certificate on behalf of the requesting user.
[koji.koji]
hub = "$SIGNET_KOJI_HUB"
topurl = "$SIGNET_KOJI_TOPURL"
cert = "$SIGNET_KOJI_CERT"
ca = "$SIGNET_KOJI_CA"
EOF
fi

# (Re)start.
stop
"$dir/bin/signet-bridge" --config "$dir/bridge.toml" run >>"$dir/log/bridge.log" 2>&1 &
echo $! >"$dir/run/bridge.pid"
"$dir/bin/signet-server" --config "$dir/server.toml" run >>"$dir/log/server.log" 2>&1 &
echo $! >"$dir/run/server.pid"

# Wait until a request goes through.
C=("$dir/bin/signet" -c "$dir/admin.toml" --batch)
for i in $(seq 100); do
	if printf '%s\0' "$(cat "$dir/secrets/admin-password")" | "${C[@]}" list-keys >/dev/null 2>&1; then
		break
	fi
	[ "$i" = 100 ] && { echo "devstack: no request succeeded within 20 s; see $dir/log" >&2; exit 1; }
	sleep 0.2
done
# The Secure Boot chain, made through the service as a distribution would:
# a self-signed CA on demo-sb-ca, and code-signing certificates for
# demo-sb and demo-sb-ec, stored on the server under the name "signer".
if [ "${new_db:-0}" = 1 ]; then
	A=("$dir/bin/signet" -c "$dir/alice.toml" --batch)
	pass=$(cat "$dir/secrets/alice-passphrase")
	printf '%s\0' "$pass" | "${A[@]}" sign-certificate --certificate-type ca --validity 10y \
		--subject-certificate ca --subject 'CN=signet devstack Secure Boot CA,O=signet' \
		-o "$pki/sb-ca.pem" demo-sb-ca demo-sb-ca
	for k in demo-sb demo-sb-ec; do
		printf '%s\0' "$pass" | "${A[@]}" sign-certificate --certificate-type codesigning --validity 5y \
			--issuer-certificate ca --subject-certificate signer --subject "CN=signet devstack Secure Boot signer ($k),O=signet" \
			-o "$pki/$k-signer.pem" demo-sb-ca "$k"
	done
fi

cat <<EOF
devstack: running in $dir (bridge 127.0.0.1:$client_port for clients, 127.0.0.1:$server_port for servers)
  $dir/bin/signet -c $dir/alice.toml sign-data -o file.sig demo-rsa FILE     # passphrase: $dir/secrets/alice-passphrase
  $dir/bin/signet -c $dir/alice.toml sign-rpms --head-signing -o OUTDIR demo-rsa RPM...
  $dir/bin/signet -c $dir/alice.toml sign-pe -o signed.efi demo-sb signer IMAGE.efi   # chain: $pki/sb-ca.pem
  $dir/bin/signet -c $dir/admin.toml list-keys                              # password: $dir/secrets/admin-password
  $0 down $dir
EOF
if [ "$koji" = 1 ]; then
	cat <<EOF
  $dir/bin/signet -c $dir/alice.toml sign-rpms --store-in-koji --koji-only -k koji demo-rsa N-V-R.A...   # Koji: $SIGNET_KOJI_HUB
  Sigul's client: [koji] koji-instances: koji, koji-config-koji: $dir/koji.conf
EOF
fi
