#!/usr/bin/env bash
# Signatures per second per key type through the hsm Signer, next to bare
# PKCS#11 C_Sign on the same SoftHSM2 token, measured in the same run
# (raw and Signer alternate, COUNT rounds each; medians are compared).
#
#   scripts/bench.sh                 all key types, 3 rounds of 1s
#   COUNT=5 BENCHTIME=2s scripts/bench.sh
#   SIGNET_HSM_KEYTYPES=rsa4096,ed25519 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=1
scripts/install-deps.sh >/dev/null
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run '^$' -bench '^BenchmarkSign$' -count "${COUNT:-3}" -benchtime "${BENCHTIME:-1s}" ./hsm/ | tee "$out" >&2
awk '
/^BenchmarkSign\// {
	split($1, p, "/"); kt = p[2]; impl = p[3]; g = p[4]; sub(/-[0-9]+$/, "", g)
	for (i = 1; i <= NF; i++) if ($i == "sigs/s") v = $(i-1)
	k = kt SUBSEP g; n[k, impl]++; val[k, impl, n[k, impl]] = v
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
}
function median(k, impl,   m, i, j, t, a) {
	m = n[k, impl]; for (i = 1; i <= m; i++) a[i] = val[k, impl, i]
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
	printf "\n%-12s %-11s %14s %14s %10s\n", "key type", "goroutines", "raw C_Sign/s", "Signer/s", "overhead"
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, q, SUBSEP)
		r = median(k, "raw"); s = median(k, "signer")
		printf "%-12s %-11s %14.1f %14.1f %9.1f%%\n", q[1], substr(q[2], 2), r, s, (r - s) / r * 100
	}
}' "$out"
