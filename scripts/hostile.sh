#!/usr/bin/env bash
# The hostile-client test (cmd/signet-bridge TestHostileClients) against a
# devstack: a server impersonator, 64 slow-loris connections and 1000
# malformed requests while alice signs data. Prints the latency of her
# sign-data requests quiet and under attack (p50, p99) and the bridge's
# counters afterwards. The test fails if any of her requests fails, an
# attacker's request is relayed, or the spool directory is left non-empty.
#
#   scripts/hostile.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
log=$(mktemp /tmp/signet-hostile.XXXXXX)
trap 'rm -f "$log"' EXIT
rc=0
CGO_ENABLED=1 go test -count=1 -timeout 20m -run '^TestHostileClients$' -v ./cmd/signet-bridge/ >"$log" 2>&1 || rc=$?
if [ "$rc" != 0 ]; then
	tail -100 "$log"
	exit "$rc"
fi
sed -n 's/^ *hostile_test.go:[0-9]*: //p; /^        signet_bridge_.*_total{/p' "$log"
grep -E '^(--- |ok )' "$log"
