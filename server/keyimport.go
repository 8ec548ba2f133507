package server

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/signet-project/signet/formats/openpgp"
)

// ParseImport reads a private key to be moved into the token: an OpenPGP
// secret key as `gpg --export-secret-keys` writes it (armored or binary,
// passphrase-protected or not), or an unencrypted PEM key (PKCS#8
// "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY").
// passphrase is called only for a protected OpenPGP key.
func ParseImport(data []byte, passphrase func() ([]byte, error)) (ImportedKey, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN PGP")) || (len(trimmed) > 0 && trimmed[0]&0x80 != 0) {
		return parseOpenPGP(data, passphrase)
	}
	block, rest := pem.Decode(data)
	if block == nil {
		return ImportedKey{}, errors.New("the key file is neither PEM nor an OpenPGP secret key")
	}
	if p, _ := pem.Decode(rest); p != nil {
		return ImportedKey{}, errors.New("the key file holds more than one PEM block: give one private key")
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || block.Headers["Proc-Type"] != "" {
		return ImportedKey{}, errors.New("the PEM key is encrypted: decrypt it into the import without touching disk, e.g. `openssl pkey -in key.pem | signet-server key import NAME --file -`")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return ImportedKey{}, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		var se asn1.StructuralError
		var sy asn1.SyntaxError
		if errors.As(err, &se) || errors.As(err, &sy) {
			return ImportedKey{}, fmt.Errorf("the PEM block %q is corrupt or truncated: its contents are not a valid key", block.Type)
		}
		return ImportedKey{}, fmt.Errorf("parsing the %s: %w", strings.ToLower(block.Type), err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return ImportedKey{}, fmt.Errorf("a %T cannot sign", key)
	}
	return ImportedKey{Signer: s}, nil
}

func parseOpenPGP(data []byte, passphrase func() ([]byte, error)) (ImportedKey, error) {
	sk, err := openpgp.ParseSecretKey(data, nil)
	if errors.Is(err, openpgp.ErrPassphraseRequired) && passphrase != nil {
		var pw []byte
		if pw, err = passphrase(); err != nil {
			return ImportedKey{}, err
		}
		sk, err = openpgp.ParseSecretKey(data, pw)
		clear(pw)
	}
	if err != nil {
		return ImportedKey{}, err
	}
	return ImportedKey{
		Signer:      sk.Private,
		PGPCreated:  sk.Created,
		Fingerprint: fmt.Sprintf("%X", sk.Fingerprint),
		UserIDs:     sk.UserIDs,
	}, nil
}
