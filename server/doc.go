// Package server is signet's server role: the only process that joins the
// token (hsm), the database (store) and the formats.
//
// The files are named after what they hold:
//
//   - conn.go, dial.go: one connection from the bridge (one request, or
//     request after request with the reuse extension), and the dialer that
//     keeps the server's connections to the bridge;
//   - request.go, handlers.go: a request and its reply, the table of
//     operations, dispatch and the audit record;
//   - auth.go: Sigul's authentication classes; KEY-USER unwraps the token
//     PIN held for the user (hsm.UnwrapPIN);
//   - ops_users.go, ops_access.go, ops_keys.go: the administration
//     operations;
//   - rpm.go, batch.go, pe.go, cert.go, pgpops.go, signdata.go: the signing
//     operations (sign-rpm and sign-rpms, the sign-rpms sub-phase,
//     sign-pe, sign-certificate, decrypt and the OpenPGP signatures);
//   - ceremony*.go, keyimport.go: Admin, the key and user manager of the
//     offline ceremony commands, and the key files it imports;
//   - metrics.go: Prometheus counters.
package server
