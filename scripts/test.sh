#!/usr/bin/env bash
# Every test: installs what is missing, then gofmt, vet and staticcheck
# (pinned, installed with go install), the whole Go test suite against real
# SoftHSM2 tokens and real verifiers, the RPM packages built from dist/ and
# checked, and the hsm tests again as an arm64 binary under qemu-user
# against Debian's arm64 SoftHSM2, with an arm64 signet-server signing
# through an amd64 bridge and client.
#
#   scripts/test.sh            everything
#   SIGNET_SKIP_ARM64=1 scripts/test.sh   skip the arm64 run
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1

arm64=1
[ "${SIGNET_SKIP_ARM64:-}" = 1 ] && arm64=0
[ -r /etc/debian_version ] || arm64=0 # the arm64 module is extracted from Debian's archive
if [ "$arm64" = 1 ]; then scripts/install-deps.sh --arm64; else scripts/install-deps.sh; fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
	echo "not gofmt'ed (run gofmt -w on them):" >&2
	echo "$unformatted" >&2
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
staticcheck_version=v0.8.2 # works with Go 1.26
staticcheck_bin=.cache/tools/staticcheck-$staticcheck_version
if [ ! -x "$staticcheck_bin/staticcheck" ]; then
	GOBIN="$PWD/$staticcheck_bin" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi
"$staticcheck_bin/staticcheck" ./...

echo "== go test (amd64, native)"
go test -count=1 -timeout 30m ./...

echo "== RPM packages (dist/signet.spec) and systemd units"
scripts/test-dist.sh

if [ "$arm64" = 1 ]; then
	scripts/test-arm64.sh
fi
