package main

// Script commands for testdata/backup.txt:
//
//	sharesecrets GLOB...
//	    reads the share files, writes each share's value (hex, and base64
//	    of its bytes) to share-CUSTODIAN-*.secret, rebuilds the wrap key
//	    from all of them and writes it (hex and base64) to
//	    wrapkey-ID-*.secret: from then on every signet-server run and every
//	    nosecrets check looks for them too.
//	backupsecrets FILE...
//	    writes each backup file's wrapped private key (hex and base64) to
//	    wrapped-NAME-*.secret.
//	flipbyte FILE AFTER
//	    changes one byte of FILE: the tenth after the first occurrence of
//	    AFTER, a letter whose case is flipped (so base64 and JSON still
//	    parse and only the MAC can tell).

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/signet-project/signet/hsm"
	"github.com/signet-project/signet/server"
)

func writeSecret(ts *testscript.TestScript, name string, b []byte) {
	ts.Check(os.WriteFile(ts.MkAbs(name), append([]byte(nil), append(b, '\n')...), 0o600))
}

func cmdShareSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: sharesecrets GLOB...")
	}
	var shares []hsm.Share
	for _, pattern := range args {
		files, err := filepath.Glob(ts.MkAbs(pattern))
		ts.Check(err)
		if len(files) == 0 {
			ts.Fatalf("sharesecrets: no file matches %s", pattern)
		}
		for _, f := range files {
			r, err := os.Open(f)
			ts.Check(err)
			sh, err := hsm.ParseShare(r)
			r.Close()
			ts.Check(err)
			shares = append(shares, sh)
			writeSecret(ts, "share-"+sh.WrapKeyID+"-"+sh.Custodian+"-hex.secret", []byte(hex.EncodeToString(sh.Value)))
			writeSecret(ts, "share-"+sh.WrapKeyID+"-"+sh.Custodian+"-b64.secret", []byte(base64.StdEncoding.EncodeToString(sh.Value)))
		}
	}
	key, err := hsm.CombineShares(shares)
	ts.Check(err)
	writeSecret(ts, "wrapkey-"+shares[0].WrapKeyID+"-hex.secret", []byte(hex.EncodeToString(key)))
	writeSecret(ts, "wrapkey-"+shares[0].WrapKeyID+"-b64.secret", []byte(base64.StdEncoding.EncodeToString(key)))
	ts.Logf("%d shares and wrap key %s are secrets of the script now", len(shares), shares[0].WrapKeyID)
}

func cmdBackupSecrets(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: backupsecrets FILE...")
	}
	for _, f := range args {
		data, err := os.ReadFile(ts.MkAbs(f))
		ts.Check(err)
		b, _, _, err := server.ParseBackup(data)
		ts.Check(err)
		if len(b.Wrapped) < 64 {
			ts.Fatalf("%s: a wrapped key of %d bytes", f, len(b.Wrapped))
		}
		writeSecret(ts, "wrapped-"+b.Key.Name+"-hex.secret", []byte(hex.EncodeToString(b.Wrapped)))
		writeSecret(ts, "wrapped-"+b.Key.Name+"-b64.secret", []byte(base64.StdEncoding.EncodeToString(b.Wrapped)))
	}
}

func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE AFTER")
	}
	path := ts.MkAbs(args[0])
	data, err := os.ReadFile(path)
	ts.Check(err)
	i := bytes.Index(data, []byte(args[1]))
	if i < 0 {
		ts.Fatalf("flipbyte: %q is not in %s", args[1], args[0])
	}
	for i += len(args[1]) + 10; i < len(data); i++ {
		if c := data[i] | 0x20; c >= 'a' && c <= 'z' {
			break
		}
	}
	if i >= len(data) {
		ts.Fatalf("flipbyte: no letter after %q", args[1])
	}
	ts.Logf("byte %d: %q -> %q", i, data[i], data[i]^0x20)
	data[i] ^= 0x20
	ts.Check(os.WriteFile(path, data, 0o600))
}
