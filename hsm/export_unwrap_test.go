package hsm

// CachedPINs returns the cache's entries' PIN buffers themselves (not
// copies), to check that they are zeroed.
func CachedPINs(u *Unwrapper) [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	var pins [][]byte
	for _, e := range u.entries {
		pins = append(pins, e.pin)
	}
	return pins
}
