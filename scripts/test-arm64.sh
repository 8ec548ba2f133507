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
