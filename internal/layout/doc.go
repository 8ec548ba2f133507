// Package layout holds no code. Its test checks the import rules that
// docs/ARCHITECTURE.md states, on the packages the programs are built from
// (test files excluded), with `go list -deps`.
package layout
