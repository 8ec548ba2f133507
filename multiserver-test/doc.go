// Package multiservertest holds the scale-out test with real processes:
// two signet-server processes (SoftHSM2 tokens A and B holding the same
// key, B's restored from A's backup), two signet-bridge processes that
// both servers dial, one PostgreSQL database (postgres-test), and
// signet's sign-rpms client with both bridges in its configuration,
// while one server is killed with SIGKILL and one bridge is stopped
// mid-batch. The package has no code of its own; see
// multiserver_test.go.
package multiservertest
