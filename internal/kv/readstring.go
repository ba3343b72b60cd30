package kv

import "fmt"

// ReadString implements View. It hands the stored value to fn in place, so
// that a command needing a few bytes of it (GETRANGE of a 512 MiB value)
// copies only those: Get would copy the whole value per call, and a client
// repeating GETRANGE k 0 0 on a large value could make the node allocate
// its size each time.
func (v *snapView) ReadString(key []byte, fn func(val []byte)) (bool, error) {
	if v.isClosing() {
		return false, fmt.Errorf("readstring: %w", ErrClosed)
	}
	var typeErr error
	_, found, err := getRaw(v.r, userKey(key), func(b []byte) {
		if len(b) == 0 || b[0] != valString {
			typeErr = errWrongType
			return
		}
		fn(b[1:])
	})
	if err != nil {
		return false, err
	}
	return found, typeErr
}

// ReadString implements View.
func (v *liveView) ReadString(key []byte, fn func(val []byte)) (bool, error) {
	if err := v.use(); err != nil {
		return false, err
	}
	return v.snapView.ReadString(key, fn)
}
