// This file holds finding, listing, reading and deleting key objects in
// the token.

package hsm

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"

	"github.com/miekg/pkcs11"
)

// FindKey finds a private key by id, by label, or by both (both must
// match). It returns ErrKeyNotFound when there is none.
func (t *Token) FindKey(id []byte, label string) (*Key, error) {
	if id == nil && label == "" {
		return nil, errors.New("hsm: FindKey needs an id or a label")
	}
	tmpl := []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)}
	if id != nil {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, id))
	}
	if label != "" {
		tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_LABEL, label))
	}
	keys, err := t.keys(tmpl)
	if err != nil {
		return nil, err
	}
	switch len(keys) {
	case 0:
		return nil, fmt.Errorf("hsm: no key with %s in token %q: %w", describe(id, label), t.name(), ErrKeyNotFound)
	case 1:
		return keys[0], nil
	}
	return nil, fmt.Errorf("hsm: %d keys match %s in token %q; name the key by id", len(keys), describe(id, label), t.name())
}

func describe(id []byte, label string) string {
	switch {
	case id != nil && label != "":
		return fmt.Sprintf("id %x and label %q", id, label)
	case id != nil:
		return fmt.Sprintf("id %x", id)
	}
	return fmt.Sprintf("label %q", label)
}

// Keys lists the token's private keys of supported types.
func (t *Token) Keys() ([]*Key, error) {
	return t.keys([]*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY)})
}

func (t *Token) keys(tmpl []*pkcs11.Attribute) ([]*Key, error) {
	var out []*Key
	err := t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, gen uint64) error {
		out = out[:0]
		hs, err := findObjects(c, sh, tmpl, 0)
		if err != nil {
			return err
		}
		for _, h := range hs {
			k, err := t.loadKey(c, sh, h)
			if errors.Is(err, ErrUnsupported) {
				continue
			}
			if err != nil {
				return err
			}
			k.h.Store(&objectRef{h: h, gen: gen})
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: listing keys: %w", err)
	}
	return out, nil
}

// loadKey reads a private key object's id, label and type, and its public
// key from the public object with the same id.
func (t *Token) loadKey(c *pkcs11.Ctx, sh pkcs11.SessionHandle, priv pkcs11.ObjectHandle) (*Key, error) {
	attrs, err := c.GetAttributeValue(sh, priv, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_ID, nil),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, nil),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
	})
	if err != nil {
		return nil, err
	}
	id, label := attrs[0].Value, string(attrs[1].Value)
	hs, err := findObjects(c, sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PUBLIC_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}, 1)
	if err != nil {
		return nil, err
	}
	src := priv // RSA private keys carry the modulus and exponent too
	if len(hs) == 1 {
		src = hs[0]
	}
	var typ KeyType
	switch kt := ulong(attrs[2].Value); kt {
	case pkcs11.CKK_RSA:
		typ = RSA2048 // refined from the modulus below
	case pkcs11.CKK_EC:
		typ = ECDSAP256 // refined from the curve below
	case ckkECEdwards:
		typ = Ed25519
	default:
		return nil, fmt.Errorf("key %q has key type 0x%x: %w", label, kt, ErrUnsupported)
	}
	pub, err := readPublic(c, sh, src, typ)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", label, err)
	}
	if typ, err = KeyTypeOf(pub); err != nil {
		return nil, err
	}
	return &Key{t: t, id: id, label: label, typ: typ, pub: pub}, nil
}

// readPublic reads a public key from an object. For EC keys the curve is
// taken from CKA_EC_PARAMS, not from typ.
func readPublic(c *pkcs11.Ctx, sh pkcs11.SessionHandle, h pkcs11.ObjectHandle, typ KeyType) (crypto.PublicKey, error) {
	if typ.IsRSA() {
		a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil),
		})
		if err != nil {
			return nil, fmt.Errorf("reading RSA public key: %w", err)
		}
		e := new(big.Int).SetBytes(a[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 || e.Int64() < 3 {
			return nil, fmt.Errorf("RSA public exponent %v is out of range", e)
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(a[0].Value), E: int(e.Int64())}, nil
	}
	a, err := c.GetAttributeValue(sh, h, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil),
	})
	if err != nil {
		return nil, fmt.Errorf("reading EC public key: %w", err)
	}
	point := a[1].Value
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		point = inner // the standard form: a DER OCTET STRING around the point
	}
	switch {
	case bytes.Equal(a[0].Value, oidEd25519) || typ == Ed25519:
		if len(point) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("Ed25519 public key is %d bytes", len(point))
		}
		return ed25519.PublicKey(append([]byte(nil), point...)), nil
	case bytes.Equal(a[0].Value, oidP256):
		return ecdsa.ParseUncompressedPublicKey(ECDSAP256.curve(), point)
	case bytes.Equal(a[0].Value, oidP384):
		return ecdsa.ParseUncompressedPublicKey(ECDSAP384.curve(), point)
	}
	return nil, fmt.Errorf("EC parameters %x: %w", a[0].Value, ErrUnsupported)
}

// DeleteKey destroys the private key with the given id or label and every
// public key object with the same id.
func (t *Token) DeleteKey(id []byte, label string) error {
	k, err := t.FindKey(id, label)
	if err != nil {
		return err
	}
	err = t.do(func(c *pkcs11.Ctx, sh pkcs11.SessionHandle, _ uint64) error {
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			hs, err := findObjects(c, sh, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
				pkcs11.NewAttribute(pkcs11.CKA_ID, k.id),
			}, 0)
			if err != nil {
				return err
			}
			for _, h := range hs {
				if err := c.DestroyObject(sh, h); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hsm: deleting key %q: %w", k.label, err)
	}
	return nil
}

// findObjects returns up to max (0: all) objects matching tmpl.
func findObjects(c *pkcs11.Ctx, sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := c.FindObjectsInit(sh, tmpl); err != nil {
		return nil, err
	}
	var out []pkcs11.ObjectHandle
	for {
		hs, _, err := c.FindObjects(sh, 64)
		if err != nil {
			c.FindObjectsFinal(sh)
			return nil, err
		}
		out = append(out, hs...)
		if len(hs) == 0 || (max > 0 && len(out) >= max) {
			break
		}
	}
	if err := c.FindObjectsFinal(sh); err != nil {
		return nil, err
	}
	return out, nil
}

// ulong decodes a CK_ULONG attribute, which is in host byte order.
func ulong(b []byte) uint {
	switch len(b) {
	case 8:
		return uint(binary.NativeEndian.Uint64(b))
	case 4:
		return uint(binary.NativeEndian.Uint32(b))
	}
	return ^uint(0)
}
