package rpm

// StoredSize returns the size of the main header and payload that the
// signature header records (tag 1000, or 270 for packages of 4 GiB and
// more), and whether it records one; two tags that disagree give an error
// wrapping ErrCorrupt.
func (p *Package) StoredSize() (uint64, bool, error) {
	c, err := p.newStreamCheck(false)
	if err != nil {
		return 0, false, err
	}
	n, ok := c.storedSize()
	return n, ok, nil
}

// Whole reports whether Read was given the whole package rather than a
// prefix of it (its headers and perhaps some payload bytes, as head
// signing sends): the size the signature header records is all there.
// A package longer than that size is corrupt. A package that records no
// size is taken to be whole, since nothing says where it ends; Verify
// then decides.
func (p *Package) Whole() (bool, error) {
	n, ok, err := p.StoredSize()
	if err != nil || !ok {
		return true, err
	}
	have := uint64(p.Size - p.MainOffset)
	if have > n {
		return false, corruptf("header and payload are %d bytes, the signature header says %d: extended package", have, n)
	}
	return have == n, nil
}

// HeadSignable reports whether head signing can sign the package from its
// headers alone: its main header holds a payload digest (so the header
// signature covers the payload; rpm 4.14 and later write one) and its
// signature header records the package's size (so the server can tell
// the headers from the whole package). Otherwise the whole package must
// be sent.
func (p *Package) HeadSignable() bool {
	_, sized, err := p.StoredSize()
	return err == nil && sized && p.HasPayloadDigest()
}
