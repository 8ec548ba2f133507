package openpgp

import (
	"bufio"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrDecrypt reports a message that Decrypt cannot decrypt: it is not an
// OpenPGP encrypted message, it is not encrypted to the key, the session key
// does not decrypt, or the message fails its integrity check (it was changed
// or is damaged). Sigul answers these with error code 15.
var ErrDecrypt = errors.New("openpgp: cannot decrypt the message")

// Decrypt reads an OpenPGP message encrypted to key (binary, or ASCII armor
// of type "PGP MESSAGE") from r and writes the contents of its literal data
// packet to w. It is what gpg --decrypt does with a message encrypted by
// gpg --encrypt -r to key's certificate.
//
// key must be an RSA key and dec its private half (the public keys must be
// equal). The message needs a public-key encrypted session key packet (v3,
// or v6 of RFC 9580) for algorithm RSA (1) whose key id is key's, or, when
// there is none, the wildcard key id 0 (gpg --throw-keyids): the first such
// packet is used, and dec.Decrypt is called once for it, with
// *rsa.PKCS1v15DecryptOptions, so that a decrypter in a hardware token does
// a single PKCS #1 v1.5 decryption (none if there is no such packet). Other
// session key packets are not tried, so a message with several hidden
// recipients decrypts only if key's packet is the first of them.
// The data must be integrity protected: a v1 SEIPD packet (modification
// detection code) after a v3 session key packet, or a v2 SEIPD packet (AEAD)
// after a v6 one. Compressed data (ZIP, ZLIB, BZip2) is decompressed and
// one-pass signature and signature packets around the literal data are
// skipped without being verified.
//
// Every failure to decrypt, including a missing session key packet for the
// key, a failing dec.Decrypt, a wrong session key, an integrity check
// failure, an unprotected (tag 9) or LibrePGP AEAD (tag 20) data packet,
// malformed packets and trailing data, is reported with an error that
// wraps ErrDecrypt (the error of dec.Decrypt is wrapped too). Errors reading
// r or writing w are returned wrapped, without ErrDecrypt. A key that is not
// RSA gives an error wrapping ErrUnsupportedAlgorithm.
//
// The plaintext is streamed: it is written to w while it is decrypted and
// the integrity check is complete only at the end, so after an error w may
// hold plaintext that is unauthenticated or incomplete and must be
// discarded. The output is not limited: compressed data may expand to much
// more than the input, so w should enforce whatever limit the caller needs.
func Decrypt(w io.Writer, r io.Reader, key *Key, dec crypto.Decrypter) error {
	pub, ok := key.pub.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: key %s is not an RSA key and cannot decrypt", ErrUnsupportedAlgorithm, key.FingerprintHex())
	}
	if dec == nil {
		return errors.New("openpgp: Decrypt: nil decrypter")
	}
	if dpub, ok := dec.Public().(*rsa.PublicKey); !ok || !pub.Equal(dpub) {
		return fmt.Errorf("openpgp: Decrypt: the decrypter's public key is not that of key %s", key.FingerprintHex())
	}
	d := &decryption{key: key, dec: dec, in: &recordingReader{r: r}, out: &recordingWriter{w: w}}
	err := d.run()
	switch {
	case d.in.err != nil:
		return fmt.Errorf("openpgp: reading the encrypted message: %w", d.in.err)
	case d.out.err != nil:
		return fmt.Errorf("openpgp: writing the plaintext: %w", d.out.err)
	case err != nil:
		return err
	}
	return nil
}

// decryption is one run of Decrypt.
type decryption struct {
	key *Key
	dec crypto.Decrypter
	in  *recordingReader
	out *recordingWriter
}

func (d *decryption) fail(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDecrypt}, args...)...)
}

func (d *decryption) run() error {
	msg, err := d.unarmor()
	if err != nil {
		return err
	}
	pr := packet.NewReader(msg)
	var keys []*packet.EncryptedKey
	for {
		p, err := pr.Next()
		if err == io.EOF {
			if len(keys) == 0 {
				return d.fail("no OpenPGP encrypted message in the input")
			}
			return d.fail("the message has no encrypted data after its %d session key packets", len(keys))
		}
		if err != nil {
			return d.fail("reading the message: %v", err)
		}
		switch p := p.(type) {
		case *packet.EncryptedKey:
			keys = append(keys, p)
		case *packet.SymmetricKeyEncrypted, packet.Padding:
			// A passphrase may also decrypt the message; we have none.
		case *packet.SymmetricallyEncrypted:
			if err := d.decryptData(p, keys); err != nil {
				return err
			}
			switch _, err := pr.Next(); {
			case err == io.EOF:
				return nil
			case err != nil:
				return d.fail("after the encrypted data: %v", err)
			default:
				return d.fail("the message has more packets after the encrypted data")
			}
		case *packet.AEADEncrypted:
			return d.fail("AEAD encrypted data packets (tag 20, LibrePGP) are not supported; encrypt with SEIPD (gpg 2.2 does)")
		default:
			return d.fail("the message is not encrypted: it starts with a %T packet", p)
		}
	}
}

// unarmor returns the binary message: r itself, or the body of the ASCII
// armor r starts with. Binary OpenPGP data starts with a byte that has its
// high bit set.
func (d *decryption) unarmor() (io.Reader, error) {
	br := bufio.NewReader(d.in)
	first, err := br.Peek(1)
	if err == io.EOF {
		return nil, d.fail("empty input")
	}
	if err != nil {
		return nil, err // recorded by d.in
	}
	if first[0]&0x80 != 0 {
		return br, nil
	}
	block, err := armor.Decode(br)
	if err != nil {
		return nil, d.fail("input is neither binary OpenPGP nor ASCII armor: %v", err)
	}
	if block.Type != "PGP MESSAGE" {
		return nil, d.fail("armor block is %q, want \"PGP MESSAGE\"", block.Type)
	}
	return block.Body, nil
}

// decryptData decrypts the session key with the session key packet for
// d.key and then the encrypted data, and writes out the literal data.
func (d *decryption) decryptData(se *packet.SymmetricallyEncrypted, keys []*packet.EncryptedKey) error {
	if !se.IntegrityProtected {
		return d.fail("the data is not integrity protected (symmetrically encrypted data packet, tag 9)")
	}
	ek := d.sessionKeyPacket(keys)
	if ek == nil {
		return d.fail("the message is not encrypted to key %s (%d session key packets for other keys)", d.key.FingerprintHex(), len(keys))
	}
	// RFC 9580 pairs v3 session key packets with v1 SEIPD and v6 with v2.
	if (se.Version == 2) != (ek.Version == 6) {
		return d.fail("a v%d session key packet cannot go with a v%d encrypted data packet", ek.Version, se.Version)
	}
	priv := &packet.PrivateKey{
		PublicKey:  *packet.NewRSAPublicKey(d.key.created, d.key.pub.(*rsa.PublicKey)),
		PrivateKey: pkcs1v15Decrypter{d.dec},
	}
	if string(priv.Fingerprint) != string(d.key.fp[:]) { // the encodings agree
		return fmt.Errorf("openpgp: key %s is %X to go-crypto", d.key.FingerprintHex(), priv.Fingerprint)
	}
	if err := ek.Decrypt(priv, nil); err != nil {
		if errors.Is(err, errSessionKeyDecrypt) {
			return fmt.Errorf("%w: decrypting the session key: %w", ErrDecrypt, err)
		}
		return d.fail("decrypting the session key: %v", err)
	}
	defer clear(ek.Key)
	rc, err := se.Decrypt(ek.CipherFunc, ek.Key)
	if err != nil {
		return d.fail("decrypting the data: %v", err)
	}
	if err := d.readPlaintext(rc); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return d.fail("reading the decrypted data: %v", err)
	}
	if err := rc.Close(); err != nil {
		return d.fail("integrity check: %v", err)
	}
	return nil
}

// sessionKeyPacket returns the RSA session key packet for d.key, or the
// first RSA packet with the wildcard key id, or nil.
func (d *decryption) sessionKeyPacket(keys []*packet.EncryptedKey) *packet.EncryptedKey {
	var wildcard *packet.EncryptedKey
	for _, ek := range keys {
		if ek.Algo != packet.PubKeyAlgoRSA {
			continue
		}
		switch ek.KeyId {
		case d.key.KeyID():
			return ek
		case 0:
			if wildcard == nil {
				wildcard = ek
			}
		}
	}
	return wildcard
}

// readPlaintext parses the decrypted packets: compressed data, one-pass
// signatures and signatures around exactly one literal data packet, whose
// contents it writes to d.out.
func (d *decryption) readPlaintext(plain io.Reader) error {
	pr := packet.NewReader(plain)
	literal := false
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return d.fail("reading the decrypted data: %v", err)
		}
		switch p := p.(type) {
		case *packet.Compressed:
			if err := pr.Push(p.Body); err != nil {
				return d.fail("compressed data: %v", err)
			}
		case *packet.LiteralData:
			if literal {
				return d.fail("the message holds more than one literal data packet")
			}
			literal = true
			if _, err := io.Copy(d.out, p.Body); err != nil {
				if d.out.err != nil {
					return err
				}
				return d.fail("reading the literal data: %v", err)
			}
		case *packet.OnePassSignature, *packet.Signature, packet.Padding:
			// Signatures are not verified: decrypting does not need
			// the signer's key.
		default:
			return d.fail("unexpected %T packet in the decrypted data", p)
		}
	}
	if !literal {
		return d.fail("the decrypted data holds no literal data packet")
	}
	return nil
}

// errSessionKeyDecrypt marks errors of the caller's decrypter.
var errSessionKeyDecrypt = errors.New("the decrypter failed")

// pkcs1v15Decrypter has go-crypto call the caller's decrypter with PKCS #1
// v1.5 options, which go-crypto leaves nil (a software *rsa.PrivateKey
// takes nil as PKCS #1 v1.5, a token's decrypter need not).
type pkcs1v15Decrypter struct{ dec crypto.Decrypter }

func (p pkcs1v15Decrypter) Public() crypto.PublicKey { return p.dec.Public() }

func (p pkcs1v15Decrypter) Decrypt(rand io.Reader, ciphertext []byte, _ crypto.DecrypterOpts) ([]byte, error) {
	//lint:ignore SA1019 OpenPGP encrypts session keys to RSA with PKCS #1 v1.5 (RFC 9580 section 5.1.3)
	b, err := p.dec.Decrypt(rand, ciphertext, &rsa.PKCS1v15DecryptOptions{})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSessionKeyDecrypt, err)
	}
	return b, nil
}

// recordingReader and recordingWriter record the first error of the reader and writer
// they wrap, so that Decrypt can tell I/O errors from bad messages after
// go-crypto has wrapped or replaced them.
type recordingReader struct {
	r   io.Reader
	err error
}

func (e *recordingReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

type recordingWriter struct {
	w   io.Writer
	err error
}

func (e *recordingWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
