#!/usr/bin/env bash
# sign-rpms through Koji against sign-rpms of local files, in one run: the
# same PACKAGES (default 200) distinct RPMs, signed with the devstack's
# RSA-4096 key in SoftHSM2 by signet's client, bridge and server
#
#   local:  signet sign-rpms -o DIR demo-rsa FILE...           (files up, signed files back)
#   koji:   signet sign-rpms --store-in-koji --koji-only -k koji demo-rsa NVRA...
#           (the client looks each NVRA up with getRPM; the bridge fetches
#           it from the topurl, and imports the signature with addRPMSig
#           after queryRPMSigs, logged in as the bridge for alice)
#
# against a real Koji hub (../shared/third-party/koji-stack.sh, upstream's
# hub on PostgreSQL). The packages are built here with rpmbuild: one spec
# with PACKAGES subpackages of 16 KiB of random content each, imported into
# Koji as one build (koji import --create-build). Each mode signs all of
# them in one sign-rpms invocation (wall time, process start included);
# the client's own getRPM look-ups (eight at a time, before the connection
# opens) are shown apart, from what signet -v logs. The last line is
#   koji: N.N rpms/s, local files: N.N rpms/s, koji/local N.NN
#
#   scripts/bench-koji.sh
#   PACKAGES=50 scripts/bench-koji.sh
#
# Needs root (koji-stack.sh runs PostgreSQL as user postgres).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
n=${PACKAGES:-200}
third=$(cd "$root/.." && pwd)/shared/third-party
[ -x "$third/koji-stack.sh" ] || { echo "$0: $third/koji-stack.sh is absent: the real Koji hub comes from ../shared/third-party" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "$0: koji-stack.sh must run as root" >&2; exit 1; }

# Free loopback ports: ones nobody answers on.
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
	done
	echo "$0: no free port" >&2
	exit 1
}
export KOJI_PG_PORT=$(free_port) KOJI_HUB_HTTP=$(free_port) KOJI_HUB_HTTPS=$(free_port) KOJI_TOP_HTTP=$(free_port)
export KOJI_UP_TIMEOUT=180
export SIGNET_CLIENT_PORT=$(free_port) SIGNET_SERVER_PORT=$(free_port) SIGNET_METRICS_PORT=$(free_port)

dir=$(mktemp -d /tmp/signet-bench-koji.XXXXXX)
chmod 755 "$dir" # user postgres must reach the Koji stack's directory
kw=$dir/koji
cleanup() {
	scripts/devstack.sh down "$dir/stack" >/dev/null 2>&1 || true
	"$third/koji-stack.sh" down "$kw" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

echo "bench-koji: starting the Koji hub ($kw)" >&2
"$third/koji-stack.sh" up "$kw" >"$dir/koji-up.log" 2>&1 || { cat "$dir/koji-up.log" >&2; exit 1; }
# shellcheck disable=SC1091
. "$kw/env.sh"

# PACKAGES distinct RPMs: subpackages of one spec, one build in Koji.
echo "bench-koji: building $n packages with rpmbuild" >&2
top=$dir/rpmbuild
mkdir -p "$top"
spec=$top/signet-bench-koji.spec
{
	printf 'Name: signet-bench-koji\nVersion: 1\nRelease: 1\nSummary: Packages for signet'"'"'s Koji benchmark\nLicense: MIT\nBuildArch: noarch\n'
	printf '%%description\nSubpackages of random content.\n'
	for i in $(seq -w 1 "$n"); do
		printf '%%package -n signet-bench-koji-%s\nSummary: Package %s\n%%description -n signet-bench-koji-%s\nRandom content.\n' "$i" "$i" "$i"
		printf '%%files -n signet-bench-koji-%s\n/usr/share/signet-bench-koji/%s\n' "$i" "$i"
	done
	printf '%%install\nmkdir -p %%{buildroot}/usr/share/signet-bench-koji\n'
	printf 'for i in $(seq -w 1 %s); do head -c 16384 /dev/urandom >%%{buildroot}/usr/share/signet-bench-koji/$i; done\n' "$n"
} >"$spec"
rpmbuild --define "_topdir $top" -bb "$spec" >"$dir/rpmbuild.log" 2>&1 || { tail -20 "$dir/rpmbuild.log" >&2; exit 1; }
mapfile -t rpms < <(ls "$top"/RPMS/noarch/signet-bench-koji-*.rpm)
[ "${#rpms[@]}" = "$n" ] || { echo "$0: rpmbuild made ${#rpms[@]} packages, not $n" >&2; exit 1; }
mkdir -p "$dir/local" "$dir/signed"
cp "${rpms[@]}" "$dir/local/"
nvras=()
for p in "${rpms[@]}"; do nvras+=("$(basename "$p" .rpm)"); done

echo "bench-koji: importing them into Koji" >&2
"$KOJI_CLI" import --create-build "${rpms[@]}" >"$dir/import.log" 2>&1 || { tail -20 "$dir/import.log" >&2; exit 1; }
"$KOJI_CLI" add-user alice >/dev/null
"$KOJI_CLI" grant-permission sign alice

echo "bench-koji: starting the devstack with the Koji instance" >&2
SIGNET_KOJI_HUB=$KOJI_HUB SIGNET_KOJI_TOPURL=$KOJI_TOPURL SIGNET_KOJI_CERT=$KOJI_CERTS/bridge.pem SIGNET_KOJI_CA=$KOJI_CA \
	scripts/devstack.sh up "$dir/stack" >"$dir/devstack.log" 2>&1 || { tail -20 "$dir/devstack.log" >&2; exit 1; }
S=$dir/stack
pass=$(cat "$S/secrets/alice-passphrase")

# run NAME ARGS...: one sign-rpms invocation, timed; prints the seconds.
run() {
	local name=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	if ! printf '%s\0' "$pass" | (cd "$dir" && "$S/bin/signet" -c "$S/alice.toml" --batch sign-rpms "$@") >"$dir/$name.log" 2>&1; then
		echo "$0: sign-rpms ($name) failed:" >&2
		tail -20 "$dir/$name.log" >&2
		exit 1
	fi
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}

echo "bench-koji: signing" >&2
t_local=$(run local -o signed demo-rsa "$dir"/local/*.rpm)
t_koji=$(run koji -v --store-in-koji --koji-only -k koji demo-rsa "${nvras[@]}")
# The client's getRPM look-ups, before the connection opens (-v logs them).
t_lookup=$(grep 'looked the packages named by N-V-R.A up in Koji' "$dir/koji.log" | sed -n 's/.* seconds=\([0-9.e+-]*\).*/\1/p')
[ -n "$t_lookup" ] || { echo "$0: signet -v did not log its Koji look-ups" >&2; exit 1; }

# Every package is signed: the local ones by rpmkeys, the Koji ones by
# Koji's own record (the hub's rpmsigs table, which queryRPMSigs reads).
db=$dir/rpmdb
mkdir -p "$db"
printf '%s\0' "$pass" | "$S/bin/signet" -c "$S/alice.toml" --batch get-public-key demo-rsa >"$dir/demo-rsa.asc"
rpmkeys --dbpath "$db" --import "$dir/demo-rsa.asc"
ok=$(rpmkeys --dbpath "$db" --checksig "$dir"/signed/*.rpm | grep -c 'signatures OK' || true)
[ "$ok" = "$n" ] || { echo "$0: rpmkeys accepted $ok of $n locally signed packages" >&2; exit 1; }
sigkey=$(gpg --batch --with-colons --show-keys "$dir/demo-rsa.asc" | awk -F: '$1 == "pub" {print tolower(substr($5, 9))}')
signed=$("$kw/psql" -tAc "select count(*) from rpmsigs where sigkey = '$sigkey'")
[ "$signed" = "$n" ] || { echo "$0: Koji records $signed signatures with sigkey $sigkey, not $n" >&2; exit 1; }

printf '%-32s %9s %10s %10s\n' mode packages seconds "rpms/s"
printf '%-32s %9d %10.2f %10.1f\n' "local files (-o DIR)" "$n" "$t_local" "$(echo "$n $t_local" | awk '{print $1/$2}')"
printf '%-32s %9d %10.2f %10.1f\n' "Koji NVRAs (--koji-only)" "$n" "$t_koji" "$(echo "$n $t_koji" | awk '{print $1/$2}')"
printf '%-32s %9d %10.2f %10.1f\n' "  of which client getRPM look-ups" "$n" "$t_lookup" "$(echo "$n $t_lookup" | awk '{print $1/$2}')"
echo "$n $t_koji $t_local" | awk '{printf "koji: %.1f rpms/s, local files: %.1f rpms/s, koji/local %.2f\n", $1/$2, $1/$3, $3/$2}'
