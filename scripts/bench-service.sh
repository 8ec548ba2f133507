#!/usr/bin/env bash
# sign-data through client, bridge and server from 64 concurrent clients,
# for RSA-4096, RSA-2048 and P-256 keys: requests per second, p50 and p99
# latency, next to the token's raw sign rate (hsm BenchmarkSign, bare
# C_Sign at 2 goroutines on a SoftHSM2 token) measured in the same run.
#
#   scripts/bench-service.sh               400 requests per key
#   REQUESTS=1000 scripts/bench-service.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
dir=$(mktemp -d /tmp/signet-bench.XXXXXX)
trap 'scripts/devstack.sh down "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
scripts/devstack.sh up "$dir" >/dev/null
export SOFTHSM2_CONF=$dir/token/softhsm2.conf
S=("$dir/bin/signet-server" --config "$dir/server.toml" --batch --pin-file "$dir/token/pin")
"${S[@]}" key generate bench-rsa2048 --type rsa2048 --uid 'bench <b@example.org>' --owner alice --passphrase-file "$dir/secrets/alice-passphrase" >/dev/null
"${S[@]}" key generate bench-p256 --type ecdsa-p256 --uid 'bench <b@example.org>' --owner alice --passphrase-file "$dir/secrets/alice-passphrase" >/dev/null
unset SOFTHSM2_CONF

raw=$(SIGNET_HSM_KEYTYPES=rsa4096,rsa2048,ecdsa-p256 go test -run '^$' -bench 'BenchmarkSign/.*/raw/g2' -benchtime 2s ./hsm/ |
	awk '/^BenchmarkSign/ { split($1, p, "/"); for (i = 1; i <= NF; i++) if ($i == "sigs/s") print p[2], $(i-1) }')
printf '%-12s %12s %10s %9s %9s %9s\n' key "raw sign/s" "req/s" fraction "p50 ms" "p99 ms"
for pair in rsa4096:demo-rsa rsa2048:bench-rsa2048 ecdsa-p256:bench-p256; do
	kt=${pair%%:*} key=${pair#*:}
	r=$(echo "$raw" | awk -v k="$kt" '$1 == k {print $2}')
	line=$(SIGNET_DEVSTACK=$dir SIGNET_BENCH_KEY=$key go test -run '^$' -bench BenchmarkServiceSignData \
		-benchtime "${REQUESTS:-400}x" ./cmd/signet/ | grep '^BenchmarkServiceSignData')
	rps=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "req/s") print $(i-1)}')
	p50=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "p50_ms") print $(i-1)}')
	p99=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "p99_ms") print $(i-1)}')
	printf '%-12s %12.1f %10.1f %8.0f%% %9.1f %9.1f\n' "$kt" "$r" "$rps" "$(echo "$rps $r" | awk '{print 100*$1/$2}')" "$p50" "$p99"
done
