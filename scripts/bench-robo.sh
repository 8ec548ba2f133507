#!/usr/bin/env bash
# signet-robo end to end: publishes REQUESTS (default 1000) artifacts-sign
# requests (one 4 KiB artifact each, RSA-4096) to a private RabbitMQ and
# prints signed artifacts per second, next to the token's raw RSA-4096
# sign rate (hsm BenchmarkSign, bare C_Sign at 2 goroutines on a SoftHSM2
# token) measured in the same run.
#
#   scripts/bench-robo.sh
#   REQUESTS=200 CONCURRENCY=16 scripts/bench-robo.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
dir=$(mktemp -d /tmp/signet-bench-robo.XXXXXX)
trap 'scripts/devstack.sh down "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
# Free loopback ports from the kernel for the devstack.
read -r cport sport mport < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
SIGNET_CLIENT_PORT=$cport SIGNET_SERVER_PORT=$sport SIGNET_METRICS_PORT=$mport scripts/devstack.sh up "$dir" >/dev/null

raw=$(SIGNET_HSM_KEYTYPES=rsa4096 go test -run '^$' -bench 'BenchmarkSign/.*/raw/g2' -benchtime 2s ./hsm/ |
	awk '/^BenchmarkSign/ { for (i = 1; i <= NF; i++) if ($i == "sigs/s") print $(i-1) }' | head -1)
line=$(SIGNET_DEVSTACK=$dir SIGNET_BENCH_CONCURRENCY=${CONCURRENCY:-8} go test -run '^$' \
	-bench BenchmarkRoboArtifactsSign -benchtime "${REQUESTS:-1000}x" -timeout 30m ./robo/ | grep '^BenchmarkRoboArtifactsSign')
rate=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "artifacts/s") print $(i-1)}')
retries=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "retries") print $(i-1)}')
printf '%-10s %10s %12s %14s %9s %8s\n' key requests "raw sign/s" "artifacts/s" fraction retries
printf '%-10s %10d %12.1f %14.1f %8.0f%% %8.0f\n' rsa4096 "${REQUESTS:-1000}" "$raw" "$rate" \
	"$(echo "$rate $raw" | awk '{print 100*$1/$2}')" "$retries"
