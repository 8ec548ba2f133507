// Package interop holds no code: its tests prove that signet works with
// the programs it replaces, unmodified. They run Sigul 1.2 (client, bridge
// and server, from ../shared/third-party beside the repository) against
// signet's bridge and server and the other way round, and check every
// output with the ecosystem's own verifiers.
//
// harness_test.go starts the stacks; sigulclient_*_test.go run Sigul's
// client against signet; signetclient_*_test.go run signet's client
// against Sigul's bridge and server. sigulclient_koji_test.go runs Sigul's
// client as robosignatory does (sign-rpms --store-in-koji --koji-only -k)
// against signet's bridge and server and a real Koji hub
// (internal/kojitest), and checks the signed copies Koji writes with
// rpmkeys. mixed_test.go pairs the roles across the two: Sigul's client
// and server through signet's bridge, and Sigul's client and bridge with
// signet's server behind, which must not take up signet's own extension
// (signet-reuse/1, docs/PROTOCOL.md) with Sigul's programs.
package interop
