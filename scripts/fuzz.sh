#!/usr/bin/env bash
# A fuzzing campaign over every Go fuzz target in the repository, one after
# another, each for DURATION (default 10m), then a table of executions and
# new crashers per target.
#
#   scripts/fuzz.sh [DURATION] [REGEXP]
#   scripts/fuzz.sh list [REGEXP]
#
# Targets are found by name (func FuzzX in a _test.go file), so a new one
# is in the next campaign without being added here; `list` prints them.
# They cover the wire protocol (protocol: chunks, fields, request headers,
# inner messages, replies, sub-requests and sub-replies), the bridge's
# request checks and the signature headers it reads for Koji (bridge),
# Koji's XML-RPC (internal/koji: responses from a hub, calls), the
# formats signet parses (formats/...), configuration files
# (internal/configfile, robo) and signet-robo's messages and URL rules,
# buildsys.tag and ostree messages among them (robo).
# REGEXP picks targets by "package/FuzzName" (default: all). Inputs that
# crash are written by Go under the package's testdata/fuzz/FuzzName/: commit
# them, they become regression cases that every `go test` runs. The corpus
# that grows meanwhile stays in Go's cache (go env GOCACHE)/fuzz.
# FUZZ_NICE (default 10) is the niceness, FUZZ_PARALLEL (default: all CPUs)
# the number of workers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
duration=${1:-10m}
pick=${2:-.}
parallel=${FUZZ_PARALLEL:-$(nproc)}

mapfile -t targets < <(grep -rhoE --include='*_test.go' -H '^func Fuzz[A-Za-z0-9_]+' . |
	sed -E 's|^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]+)$|\1 \2|' | sort -u | grep -E -- "$pick" || true)
if [ "${#targets[@]}" = 0 ]; then
	echo "fuzz: no target matches $pick" >&2
	exit 1
fi
if [ "$duration" = list ]; then
	printf '%s\n' "${targets[@]}"
	exit 0
fi
echo "fuzz: ${#targets[@]} targets, $duration each, $parallel workers"

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
results=()
failed=0
for t in "${targets[@]}"; do
	pkg=${t% *} name=${t#* }
	before=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | wc -l || true)
	echo "== $pkg $name"
	rc=0
	nice -n "${FUZZ_NICE:-10}" go test -run '^$' -fuzz "^${name}\$" -fuzztime "$duration" \
		-parallel "$parallel" "./$pkg" >"$log/out" 2>&1 || rc=$?
	tail -n 3 "$log/out"
	# The last progress line: "fuzz: elapsed: 10m0s, execs: 123456 (205/sec), ..."
	execs=$(grep -oE 'execs: [0-9]+' "$log/out" | tail -n 1 | awk '{print $2}' || true)
	after=$(ls "$pkg/testdata/fuzz/$name" 2>/dev/null | wc -l || true)
	verdict=ok
	if [ "$rc" != 0 ]; then
		verdict="FAILED (new crasher under $pkg/testdata/fuzz/$name)"
		failed=$((failed + 1))
		grep -A 20 -- '--- FAIL' "$log/out" | head -n 30 || true
	fi
	results+=("$(printf '%-28s %-36s %12s %3s  %s' "$pkg" "$name" "${execs:-0}" "$((after - before))" "$verdict")")
done

echo
printf '%-28s %-36s %12s %3s  %s\n' package target execs new result
printf '%s\n' "${results[@]}"
echo "fuzz: ${#targets[@]} targets, $failed with crashers"
[ "$failed" = 0 ]
