#!/usr/bin/env bash
# Builds every binary for linux/amd64 and, cross-compiling with cgo, for
# linux/arm64, into bin/<os>-<arch>/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/local/go/bin/go ] && export PATH=/usr/local/go/bin:$PATH
scripts/install-deps.sh --arm64 >/dev/null
cmds=$(go list -f '{{if eq .Name "main"}}{{.ImportPath}}{{end}}' ./cmd/...)
build() { # goarch cc
	out=bin/linux-$1
	mkdir -p "$out"
	for c in $cmds; do
		CGO_ENABLED=1 GOOS=linux GOARCH=$1 CC=$2 go build -trimpath -o "$out/" "$c"
	done
	echo "built $(ls "$out" | tr '\n' ' ')in $out"
}
build amd64 "${CC_AMD64:-gcc}"
build arm64 aarch64-linux-gnu-gcc
for f in bin/linux-arm64/*; do # ELF e_machine 0xb7: AArch64
	[ "$(od -An -tx1 -j18 -N2 "$f" | tr -d ' ')" = b700 ] || { echo "build: $f is not an arm64 binary" >&2; exit 1; }
done
