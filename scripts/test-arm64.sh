#!/usr/bin/env bash
# Cross-compiles the hsm tests for linux/arm64 with cgo and runs them under
# qemu-user against Debian's arm64 SoftHSM2, for RSA-2048, P-256 and
# Ed25519: an Arm64 build that cannot talk to a token fails here.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
scripts/install-deps.sh --arm64
root=${SIGNET_ARM64_ROOT:-$PWD/.cache/arm64-root}
mkdir -p .cache
echo "== hsm tests (linux/arm64 under qemu-user)"
CC=aarch64-linux-gnu-gcc CGO_ENABLED=1 GOOS=linux GOARCH=arm64 \
	go test -c -o .cache/hsm.arm64.test ./hsm/
# TestRecoveryAfterFinalize re-executes the test binary, which needs
# binfmt_misc; it runs natively above.
SIGNET_SOFTHSM2_MODULE=$root/usr/lib/softhsm/libsofthsm2.so \
SIGNET_HSM_KEYTYPES=rsa2048,ecdsa-p256,ed25519 \
	qemu-aarch64-static -L / .cache/hsm.arm64.test -test.count=1 -test.v \
	-test.run '^(TestGenerateSignVerify|TestSignRefusals|TestImport|TestFindListDelete|TestOpenRefusals|TestRecovery|TestConcurrentSessionCap|TestWrapPIN|TestUnwrapperCachesOnlySuccess|TestShares|TestWrapBetweenTokens)$' |
	tee .cache/hsm.arm64.log | grep -E '^(--- |PASS|FAIL|ok)'
grep -q '^PASS$' .cache/hsm.arm64.log

echo "== signet-server (linux/arm64 under qemu-user) lists a token through the arm64 SoftHSM2"
CC=aarch64-linux-gnu-gcc CGO_ENABLED=1 GOOS=linux GOARCH=arm64 \
	go build -o .cache/signet-server.arm64 ./cmd/signet-server
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=1 go build -o "$tmp/signet-server" ./cmd/signet-server
SIGNET_SERVER=$tmp/signet-server scripts/softhsm-token.sh "$tmp/token" arm64-check >/dev/null
SOFTHSM2_CONF=$tmp/token/softhsm2.conf qemu-aarch64-static -L / .cache/signet-server.arm64 \
	--module "$root/usr/lib/softhsm/libsofthsm2.so" token list | tee "$tmp/list"
grep -q '^arm64-check ' "$tmp/list"

echo "== an arm64 signet-server (qemu-user, arm64 SoftHSM2) serves sign-rpms and sign-pe through an amd64 bridge and client"
efi=$(scripts/fetch-efi-images.sh arm64)
rpmsrc=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json github.com/sassoftware/go-rpmutils@v0.4.0 |
	awk -F'"' '$2 == "Dir" {print $4}')/testdata
ls "$rpmsrc"/*.rpm >/dev/null
free_port() { # a port nothing listens on now
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "test-arm64: no free port" >&2; exit 1
}
stack=$tmp/stack
export SIGNET_CLIENT_PORT=$(free_port) SIGNET_SERVER_PORT=$(free_port) SIGNET_METRICS_PORT=$(free_port)
trap 'scripts/devstack.sh down "$stack" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
# The stack (CA, token, keys, the Secure Boot chain) is made with the amd64
# programs; then the amd64 server is stopped and the arm64 one takes its
# place, on the same token files through the arm64 SoftHSM2.
scripts/devstack.sh up "$stack" >/dev/null
pid=$(cat "$stack/run/server.pid")
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
! kill -0 "$pid" 2>/dev/null || { echo "test-arm64: the amd64 server did not stop" >&2; exit 1; }
SOFTHSM2_CONF=$stack/token/softhsm2.conf qemu-aarch64-static -L / .cache/signet-server.arm64 \
	--config "$stack/server.toml" --module "$root/usr/lib/softhsm/libsofthsm2.so" run >>"$stack/log/server-arm64.log" 2>&1 &
echo $! >"$stack/run/server.pid"
# Ready when the arm64 server holds connections at the bridge (the amd64
# one wrote 0 connected as it stopped).
for i in $(seq 300); do
	if "$stack/bin/signet-server" status --metrics-file "$stack/run/server.prom" >"$tmp/status" 2>&1; then break; fi
	[ "$i" = 300 ] && { cat "$tmp/status" "$stack/log/server-arm64.log"; echo "test-arm64: the arm64 server did not connect within 60 s" >&2; exit 1; }
	sleep 0.2
done
head -2 "$tmp/status"
grep -q '"msg":"signet-server ready"' "$stack/log/server-arm64.log"
A=("$stack/bin/signet" -c "$stack/alice.toml" --batch)
pass=$(cat "$stack/secrets/alice-passphrase")
mkdir -p "$tmp/rpms" "$tmp/signed" "$tmp/rpmdb"
cp "$rpmsrc"/*.rpm "$tmp/rpms/" && chmod u+w "$tmp/rpms/"*.rpm
printf '%s\0' "$pass" | "${A[@]}" get-public-key demo-rsa >"$tmp/demo-rsa.asc"
rpmkeys --dbpath "$tmp/rpmdb" --import "$tmp/demo-rsa.asc"
printf '%s\0' "$pass" | "${A[@]}" sign-rpms -o "$tmp/signed" demo-rsa "$tmp/rpms/"*.rpm
n=0
for f in "$tmp/rpms/"*.rpm; do
	s=$tmp/signed/$(basename "$f")
	out=$(rpmkeys --dbpath "$tmp/rpmdb" --checksig -v "$s")
	grep -q 'Header V4 RSA/SHA256 Signature, key ID [0-9a-f]*: OK' <<<"$out" || { echo "$out"; echo "test-arm64: $s"; exit 1; }
	rpmkeys --dbpath "$tmp/rpmdb" --checksig "$s" >/dev/null
	n=$((n + 1))
done
echo "  ok    sign-rpms by the arm64 server: rpmkeys --checksig accepts all $n packages"
printf '%s\0' "$pass" | "${A[@]}" sign-pe -o "$tmp/kernel.signed.efi" demo-sb signer "$efi/arm64/kernel.efi"
sbverify --cert "$stack/pki/sb-ca.pem" "$tmp/kernel.signed.efi"
echo "  ok    sign-pe of Debian's arm64 kernel ($(cat "$efi/arm64/kernel.version")) by the arm64 server: sbverify accepts it"
# The requests were answered by the arm64 server: its metrics file (it
# replaced the amd64 server's, and is written once more at the stop)
# counts them.
scripts/devstack.sh down "$stack" >/dev/null
for op in sign-rpms sign-pe; do
	grep -q "^signet_server_requests_total{op=\"$op\",status=\"0\"} [1-9]" "$stack/run/server.prom" ||
		{ cat "$stack/run/server.prom"; echo "test-arm64: the arm64 server's metrics do not count $op" >&2; exit 1; }
done
echo "test-arm64: arm64 server proof passed"
