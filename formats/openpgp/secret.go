package openpgp

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgpecdsa "github.com/ProtonMail/go-crypto/openpgp/ecdsa"
	"github.com/ProtonMail/go-crypto/openpgp/eddsa"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// SecretKey is an OpenPGP primary secret key imported from gpg.
type SecretKey struct {
	// Private is an *rsa.PrivateKey, *ecdsa.PrivateKey or
	// ed25519.PrivateKey.
	Private crypto.Signer
	// Created is the key creation time, part of the fingerprint: pass it
	// to NewKey with Private to get the same key back.
	Created time.Time
	// UserIDs are the key's user ids in file order. Their self-signatures
	// are not checked.
	UserIDs []string
	// Fingerprint is the 20-byte v4 fingerprint of the primary key.
	Fingerprint []byte
}

// ParseSecretKeyFile reads the file at path and parses it with
// ParseSecretKey; errors name the file.
func ParseSecretKeyFile(path string, passphrase []byte) (*SecretKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("openpgp: reading secret key: %w", err)
	}
	sk, err := ParseSecretKey(data, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sk, nil
}

// ParseSecretKey parses the armored or binary output of
// `gpg --export-secret-keys` for one key and returns its primary key (the
// one whose fingerprint is published); subkeys are ignored. A passphrase
// is needed only if the key is protected (nil or empty otherwise).
//
// It refuses, with errors that errors.Is can match: input that is not an
// OpenPGP secret key or holds only a public key, or more than one secret
// key (ErrNotSecretKey); a primary key that is not v4 RSA (algorithm 1) of
// at least 2048 bits, ECDSA on P-256/P-384 or Ed25519 EdDSA, such as DSA or
// a v6 key (ErrUnsupportedAlgorithm); a stub whose secret part is missing,
// as exported for smartcard keys (ErrStubKey); a protected key without a
// passphrase (ErrPassphraseRequired) or with a wrong one (ErrBadPassphrase).
// Errors never contain the passphrase.
func ParseSecretKey(data []byte, passphrase []byte) (*SecretKey, error) {
	var r io.Reader = bytes.NewReader(data)
	if trimmed := bytes.TrimSpace(data); bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		block, err := armor.Decode(bytes.NewReader(trimmed))
		if err != nil {
			return nil, fmt.Errorf("%w: bad ASCII armor: %v", ErrNotSecretKey, err)
		}
		if block.Type == "PGP PUBLIC KEY BLOCK" {
			return nil, fmt.Errorf("%w: input holds a public key only (use gpg --export-secret-keys)", ErrNotSecretKey)
		}
		if block.Type != "PGP PRIVATE KEY BLOCK" {
			return nil, fmt.Errorf("%w: armor block is %q, want \"PGP PRIVATE KEY BLOCK\"", ErrNotSecretKey, block.Type)
		}
		r = block.Body
	}

	pr := packet.NewReader(r)
	p, err := pr.NextWithUnsupported()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: no OpenPGP packets in input", ErrNotSecretKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotSecretKey, err)
	}
	var pk *packet.PrivateKey
	switch p := p.(type) {
	case *packet.PrivateKey:
		pk = p
	case *packet.PublicKey:
		return nil, fmt.Errorf("%w: input holds a public key only (use gpg --export-secret-keys)", ErrNotSecretKey)
	case *packet.UnsupportedPacket:
		if sk, ok := p.IncompletePacket.(*packet.PrivateKey); ok && sk.PublicKey.PublicKey != nil && strings.Contains(p.Error.Error(), "GNU S2K") {
			return nil, fmt.Errorf("%w: key %X", ErrStubKey, sk.Fingerprint)
		}
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedAlgorithm, p.Error)
	default:
		return nil, fmt.Errorf("%w: first packet is a %T, not a secret key", ErrNotSecretKey, p)
	}
	if pk.IsSubkey {
		return nil, fmt.Errorf("%w: input starts with a subkey, not a primary key", ErrNotSecretKey)
	}

	sk := &SecretKey{Created: pk.CreationTime.UTC(), Fingerprint: pk.Fingerprint}
	for {
		p, err := pr.NextWithUnsupported()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: after primary key %X: %v", ErrNotSecretKey, pk.Fingerprint, err)
		}
		switch p := p.(type) {
		case *packet.UserId:
			sk.UserIDs = append(sk.UserIDs, p.Id)
		case *packet.PrivateKey:
			if !p.IsSubkey {
				return nil, fmt.Errorf("%w: input holds more than one secret key (%X and %X); export one", ErrNotSecretKey, pk.Fingerprint, p.Fingerprint)
			}
		case *packet.PublicKey:
			if !p.IsSubkey {
				return nil, fmt.Errorf("%w: input holds more than one key; export one", ErrNotSecretKey)
			}
		}
	}

	if pk.Version != 4 {
		return nil, fmt.Errorf("%w: v%d key %X (only v4)", ErrUnsupportedAlgorithm, pk.Version, pk.Fingerprint)
	}
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA, packet.PubKeyAlgoECDSA, packet.PubKeyAlgoEdDSA:
	default:
		return nil, fmt.Errorf("%w: primary key %X uses OpenPGP algorithm %d (only RSA 1, ECDSA 19, EdDSA 22)", ErrUnsupportedAlgorithm, pk.Fingerprint, pk.PubKeyAlgo)
	}
	if pk.Dummy() {
		return nil, fmt.Errorf("%w: key %X", ErrStubKey, pk.Fingerprint)
	}
	if pk.Encrypted {
		if len(passphrase) == 0 {
			return nil, fmt.Errorf("%w: key %X", ErrPassphraseRequired, pk.Fingerprint)
		}
		if err := pk.Decrypt(passphrase); err != nil {
			var invalid pgperrors.KeyInvalidError
			if errors.As(err, &invalid) {
				return nil, fmt.Errorf("openpgp: secret key %X is invalid: %w", pk.Fingerprint, err)
			}
			return nil, fmt.Errorf("%w: key %X", ErrBadPassphrase, pk.Fingerprint)
		}
	}

	switch priv := pk.PrivateKey.(type) {
	case *rsa.PrivateKey:
		sk.Private = priv
	case *pgpecdsa.PrivateKey:
		var curve elliptic.Curve
		switch name := priv.GetCurve().GetCurveName(); name {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("%w: ECDSA key %X on curve %s (only P-256 and P-384)", ErrUnsupportedAlgorithm, pk.Fingerprint, name)
		}
		d := priv.D.FillBytes(make([]byte, (curve.Params().BitSize+7)/8))
		key, err := ecdsa.ParseRawPrivateKey(curve, d)
		if err != nil {
			return nil, fmt.Errorf("openpgp: secret key %X: %w", pk.Fingerprint, err)
		}
		sk.Private = key
	case *eddsa.PrivateKey:
		if name := priv.GetCurve().GetCurveName(); name != "ed25519" || len(priv.D) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: EdDSA key %X on curve %s (only Ed25519)", ErrUnsupportedAlgorithm, pk.Fingerprint, name)
		}
		sk.Private = ed25519.NewKeyFromSeed(priv.D)
	default:
		return nil, fmt.Errorf("%w: secret key %X of type %T", ErrUnsupportedAlgorithm, pk.Fingerprint, pk.PrivateKey)
	}

	// Rebuild the key as NewKey will and check that it is the same key: this
	// catches anything NewKey would refuse or encode differently.
	key, err := NewKey(sk.Private, sk.Created)
	if err != nil {
		return nil, fmt.Errorf("openpgp: secret key %X: %w", pk.Fingerprint, err)
	}
	if !bytes.Equal(key.Fingerprint(), pk.Fingerprint) {
		return nil, fmt.Errorf("%w: key %X re-encodes to fingerprint %s", ErrUnsupportedAlgorithm, pk.Fingerprint, key.FingerprintHex())
	}
	return sk, nil
}
