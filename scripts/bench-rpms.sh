#!/usr/bin/env bash
# sign-rpms through client, bridge and server on a devstack with an
# RSA-4096 key in SoftHSM2: packages per second with --head-signing and
# without, next to the token's raw RSA-4096 sign rate (hsm BenchmarkSign,
# bare C_Sign at 1 and 2 goroutines) measured in the same run, and the
# bytes the bridge forwarded to the server per package.
#
#   scripts/bench-rpms.sh            600 packages (go-rpmutils' test RPMs, copied)
#   PACKAGES=1000 scripts/bench-rpms.sh
#
# go-rpmutils' packages are small (6 KB, mostly header), so the bytes to the
# server are also measured on 20 copies of a 4 MiB package built here with
# rpmbuild (incompressible content).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
n=${PACKAGES:-600}
dir=$(mktemp -d /tmp/signet-bench.XXXXXX)
trap 'scripts/devstack.sh down "$dir" >/dev/null 2>&1; rm -rf "$dir"' EXIT
export SIGNET_METRICS_PORT=${SIGNET_METRICS_PORT:-44335}
scripts/devstack.sh up "$dir" >/dev/null

# n packages: go-rpmutils' test RPMs under distinct names (the old
# simple-1.0.1, which head signing cannot sign, left out).
src=$(cd "$(mktemp -d)" && GOFLAGS=-mod=mod go mod download -json github.com/sassoftware/go-rpmutils@v0.4.0 |
	awk -F'"' '$2 == "Dir" {print $4}')/testdata
mkdir -p "$dir/rpms"
mapfile -t pkgs < <(ls "$src"/*.rpm | grep -v simple-1.0.1)
for i in $(seq 0 $((n - 1))); do
	p=${pkgs[$((i % ${#pkgs[@]}))]}
	cp "$p" "$dir/rpms/$i-$(basename "$p")"
done
chmod u+w "$dir"/rpms/*

raw=$(SIGNET_HSM_KEYTYPES=rsa4096 go test -run '^$' -bench 'BenchmarkSign/rsa4096/raw/g[12]$' -benchtime 3s ./hsm/ |
	awk '/^BenchmarkSign/ { split($1, p, "/"); for (i = 1; i <= NF; i++) if ($i == "sigs/s") print p[4], $(i-1) }')
r1=$(echo "$raw" | awk '$1 ~ /^g1/ {print $2}')
r2=$(echo "$raw" | awk '$1 ~ /^g2/ {print $2}')
printf 'token raw RSA-4096 C_Sign: %.1f/s (1 goroutine), %.1f/s (2 goroutines)\n' "$r1" "$r2"
printf '%-24s %9s %10s %10s %16s\n' mode packages "rpms/s" "of raw(2)" "bytes to server"
for head in 1 0; do
	line=$(SIGNET_DEVSTACK=$dir SIGNET_BENCH_RPMS=$dir/rpms SIGNET_BENCH_HEAD=$head \
		SIGNET_BENCH_METRICS=127.0.0.1:$SIGNET_METRICS_PORT go test -run '^$' -bench BenchmarkServiceSignRPMs \
		-benchtime 1x ./cmd/signet/ | grep '^BenchmarkServiceSignRPMs')
	rps=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "rpms/s") print $(i-1)}')
	bytes=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "bytes_to_server/rpm") print $(i-1)}')
	mode=--head-signing
	[ "$head" = 1 ] || mode="whole packages"
	printf '%-24s %9d %10.1f %9.0f%% %16.0f\n' "$mode" "$n" "$rps" "$(echo "$rps $r2" | awk '{print 100*$1/$2}')" "$bytes"
done

# The same for a 4 MiB package.
top=$dir/rpmbuild
mkdir -p "$top"
cat >"$top/big.spec" <<'SPEC'
Name: signet-bench-big
Version: 1
Release: 1
Summary: A 4 MiB package for signet's benchmark
License: MIT
BuildArch: noarch
%description
Incompressible content.
%install
mkdir -p %{buildroot}/usr/share/signet-bench
head -c 4194304 /dev/urandom > %{buildroot}/usr/share/signet-bench/blob
%files
/usr/share/signet-bench
SPEC
rpmbuild --define "_topdir $top" --define '_binary_payload w1.gzdio' -bb "$top/big.spec" >/dev/null 2>&1
mkdir -p "$dir/big"
for i in $(seq 20); do cp "$top"/RPMS/noarch/signet-bench-big-1-1.noarch.rpm "$dir/big/$i-big.rpm"; done
size=$(stat -c %s "$dir/big/1-big.rpm")
for head in 1 0; do
	line=$(SIGNET_DEVSTACK=$dir SIGNET_BENCH_RPMS=$dir/big SIGNET_BENCH_HEAD=$head \
		SIGNET_BENCH_METRICS=127.0.0.1:$SIGNET_METRICS_PORT go test -run '^$' -bench BenchmarkServiceSignRPMs \
		-benchtime 1x ./cmd/signet/ | grep '^BenchmarkServiceSignRPMs')
	rps=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "rpms/s") print $(i-1)}')
	bytes=$(echo "$line" | awk '{for (i = 1; i <= NF; i++) if ($i == "bytes_to_server/rpm") print $(i-1)}')
	mode="--head-signing $size B"
	[ "$head" = 1 ] || mode="whole $size B"
	printf '%-24s %9d %10.1f %9.0f%% %16.0f\n' "$mode" 20 "$rps" "$(echo "$rps $r2" | awk '{print 100*$1/$2}')" "$bytes"
done
