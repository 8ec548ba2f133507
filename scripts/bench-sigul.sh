#!/usr/bin/env bash
# The unmodified Sigul 1.2 client (client.py from ../shared/third-party,
# Debian's python3) against signet's bridge and server (a devstack) next
# to the same client against a real Sigul 1.2 bridge and server
# (sigul-stack.sh up), in one run, on one machine, with an RSA-2048 gnupg
# key on each side:
#   - sign-data: wall time of one call (the median of RUNS, default 5), a
#     1 KiB file;
#   - sign-rpms: packages per second for a batch of 50 packages (1 MiB of
#     random data each, stored uncompressed), the median of BATCHES
#     (default 3) batches.
# Each output is checked (gpg, rpmkeys) so that only work that succeeded is
# timed. Prints both columns and their ratio.
#
#   scripts/bench-sigul.sh
#   RUNS=9 BATCHES=5 scripts/bench-sigul.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
tp=$(cd "$root/.." && pwd)/shared/third-party
[ -x "$tp/sigul-stack.sh" ] || { echo "bench-sigul: $tp/sigul-stack.sh is missing (../shared beside the repository)" >&2; exit 1; }
runs=${RUNS:-5}
batches=${BATCHES:-3}
npkg=50

dir=$(mktemp -d /tmp/signet-bench-sigul.XXXXXX)
cleanup() {
	scripts/devstack.sh down "$dir/signet" >/dev/null 2>&1 || true
	"$tp/sigul-stack.sh" down "$dir/sigul" >/dev/null 2>&1 || true
	gpgconf --homedir "$dir/sigul/var/gnupg" --kill gpg-agent 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
log() { echo "bench-sigul: $*" >&2; }

read -r cport sport mport scport ssport < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# signet: a devstack, plus an RSA-2048 gnupg key for alice (made on the
# server host with the server stopped, as an operator would).
log "starting signet's devstack"
export SIGNET_CLIENT_PORT=$cport SIGNET_SERVER_PORT=$sport SIGNET_METRICS_PORT=$mport
scripts/devstack.sh up "$dir/signet" >/dev/null
scripts/devstack.sh down "$dir/signet" >/dev/null
SOFTHSM2_CONF=$dir/signet/token/softhsm2.conf "$dir/signet/bin/signet-server" --config "$dir/signet/server.toml" --batch \
	--pin-file "$dir/signet/token/pin" key generate bench-rsa --type rsa2048 --uid 'signet bench <bench@example.org>' \
	--owner alice --passphrase-file "$dir/signet/secrets/alice-passphrase" >/dev/null
scripts/devstack.sh up "$dir/signet" >/dev/null

# Sigul: its bridge and server, user alice, gnupg key sigul-rsa (RSA-2048).
log "starting Sigul 1.2's bridge and server"
W=$dir/sigul
if ! "$tp/sigul-stack.sh" up "$W" "$scport" "$ssport" >"$dir/sigul-up.log" 2>&1; then
	grep -q 'new-key sigul-rsa failed' "$dir/sigul-up.log" || { cat "$dir/sigul-up.log" >&2; exit 1; }
	# Sigul's server makes that key with gpg --batch under an agent with
	# max-cache-ttl 1: on a busy machine gpg fails ("can't get input") once
	# the bridge, server and users are up. Import a key gpg makes here
	# instead (RSA-2048, alice its key administrator), as an operator would.
	log "Sigul's server could not generate sigul-rsa on this busy machine; importing one made by gpg"
	mkdir -m 700 "$dir/gpg-import"
	gpg --homedir "$dir/gpg-import" --batch --pinentry-mode loopback --passphrase import-transport \
		--quick-gen-key 'Sigul bench <sigul-bench@example.org>' rsa2048 sign never 2>/dev/null
	gpg --homedir "$dir/gpg-import" --batch --pinentry-mode loopback --passphrase import-transport \
		--armor --export-secret-keys >"$dir/gpg-import/secret.asc"
	gpgconf --homedir "$dir/gpg-import" --kill gpg-agent
	printf '%s\0%s\0%s\0' "$(cat "$W/secrets/admin-password")" import-transport "$(cat "$W/secrets/alice-passphrase")" |
		"$W/sigul" -c "$W/sigul-client/admin.conf" --batch import-key --key-admin alice sigul-rsa "$dir/gpg-import/secret.asc"
	rm -rf "$dir/gpg-import"
fi

# Sigul's client configuration for signet: an NSS database with the
# devstack's CA and alice's certificate and key.
nss=$dir/signet-nss
mkdir -p "$nss"
certutil -N -d "sql:$nss" --empty-password
certutil -A -d "sql:$nss" -n signet-ca -t CT,C,C -a -i "$dir/signet/pki/ca.pem"
openssl pkcs12 -export -in "$dir/signet/pki/alice.pem" -inkey "$dir/signet/pki/alice-key.pem" -name alice \
	-out "$dir/alice.p12" -passout pass:transport
pk12util -i "$dir/alice.p12" -d "sql:$nss" -W transport -K '' >/dev/null
rm -f "$dir/alice.p12"
cat >"$dir/signet-sigul.conf" <<EOF
[client]
bridge-hostname: localhost
bridge-port: $cport
server-hostname: server
user-name: alice
client-cert-nickname: alice
[koji]
koji-instances:
[nss]
nss-dir: $nss
nss-password:
nss-min-tls: tls1.2
nss-max-tls: tls1.2
[binding]
enabled:
EOF

# side NAME -> configuration, key, passphrase file
conf_signet=$dir/signet-sigul.conf key_signet=bench-rsa pass_signet=$dir/signet/secrets/alice-passphrase
conf_sigul=$W/sigul-client/alice.conf key_sigul=sigul-rsa pass_sigul=$W/secrets/alice-passphrase
sigul() { # side args...
	local side=$1 conf pass
	shift
	conf=conf_$side pass=pass_$side
	# The devstack's secret files end in a newline, Sigul's do not.
	printf '%s\0' "$(tr -d '\n' <"${!pass}")" |
		PYTHONPATH="$W/py" PYTHONPYCACHEPREFIX="$dir/pycache" /usr/bin/python3 "$W/py/client.py" -c "${!conf}" --batch "$@"
}
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# Inputs: a 1 KiB file; 50 packages of 1 MiB of random data.
head -c 1024 /dev/urandom >"$dir/data.bin"
mkdir -p "$dir/rpmbuild" "$dir/pkgs"
cat >"$dir/rpmbuild/bench.spec" <<'EOF'
Name: signet-bench
Version: 1
Release: 1
Summary: 1 MiB of random data
License: MIT
BuildArch: noarch
%description
A package for bench-sigul.sh.
%install
mkdir -p %{buildroot}/usr/share/signet-bench
head -c 1048576 /dev/urandom > %{buildroot}/usr/share/signet-bench/data
%files
/usr/share/signet-bench
EOF
rpmbuild --define "_topdir $dir/rpmbuild/top" --define '_binary_payload w.ufdio' -bb "$dir/rpmbuild/bench.spec" >/dev/null 2>&1
for i in $(seq -w 1 $npkg); do cp "$dir/rpmbuild/top/RPMS/noarch/signet-bench-1-1.noarch.rpm" "$dir/pkgs/signet-bench-$i.rpm"; done

for side in signet sigul; do
	key=key_$side
	# Public keys for the checks.
	sigul "$side" get-public-key "${!key}" >"$dir/$side.asc"
	mkdir -m 700 "$dir/gpg-$side" "$dir/rpmdb-$side"
	gpg --homedir "$dir/gpg-$side" --batch --quiet --import "$dir/$side.asc" 2>/dev/null
	rpmkeys --dbpath "$dir/rpmdb-$side" --import "$dir/$side.asc"
	# One warm-up call each (the first connection of a stack pays for
	# caches no later call sees).
	sigul "$side" sign-data -o "$dir/warm-$side.sig" "${!key}" "$dir/data.bin"

	log "$side: sign-data x$runs"
	for i in $(seq "$runs"); do
		rm -f "$dir/$side.sig"
		t0=$(now)
		sigul "$side" sign-data -o "$dir/$side.sig" "${!key}" "$dir/data.bin"
		t1=$(now)
		gpg --homedir "$dir/gpg-$side" --batch --verify "$dir/$side.sig" "$dir/data.bin" 2>/dev/null ||
			{ echo "bench-sigul: $side: gpg does not verify sign-data's output" >&2; exit 1; }
		echo "$t0 $t1" | awk '{print $2 - $1}' >>"$dir/$side.data.times"
	done

	log "$side: sign-rpms of $npkg packages x$batches"
	for i in $(seq "$batches"); do
		rm -rf "$dir/out-$side"
		t0=$(now)
		sigul "$side" sign-rpms -o "$dir/out-$side" "${!key}" "$dir"/pkgs/*.rpm
		t1=$(now)
		n=$(ls "$dir/out-$side" | wc -l)
		[ "$n" = "$npkg" ] || { echo "bench-sigul: $side: sign-rpms wrote $n of $npkg packages" >&2; exit 1; }
		rpmkeys --dbpath "$dir/rpmdb-$side" --define '_pkgverify_level signature' --checksig "$dir/out-$side"/*.rpm >/dev/null ||
			{ echo "bench-sigul: $side: rpmkeys does not accept sign-rpms' output" >&2; exit 1; }
		echo "$t0 $t1" | awk -v n=$npkg '{print n / ($2 - $1)}' >>"$dir/$side.rpms.rates"
	done
done

d_signet=$(median <"$dir/signet.data.times") d_sigul=$(median <"$dir/sigul.data.times")
r_signet=$(median <"$dir/signet.rpms.rates") r_sigul=$(median <"$dir/sigul.rpms.rates")
echo "unmodified Sigul 1.2 client, RSA-2048 gnupg keys; signet = signet-bridge + signet-server (SoftHSM2), Sigul = Sigul 1.2 bridge + server"
printf '%-44s %10s %10s %14s\n' operation signet "Sigul 1.2" "signet/Sigul"
printf '%-44s %10.3f %10.3f %14.2f\n' "sign-data, 1 KiB: wall time of one call (s)" "$d_signet" "$d_sigul" \
	"$(echo "$d_signet $d_sigul" | awk '{print $1 / $2}')"
printf '%-44s %10.2f %10.2f %14.2f\n' "sign-rpms, $npkg x 1 MiB: packages/s" "$r_signet" "$r_sigul" \
	"$(echo "$r_signet $r_sigul" | awk '{print $1 / $2}')"
echo "(medians of $runs calls and $batches batches; time: lower is better, packages/s: higher is better)"
