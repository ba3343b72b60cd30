package kv

import "fmt"

// StrLen implements View. It reads the stored value in place: APPEND's size
// check and STRLEN used to copy a whole value (up to the 512 MiB string cap)
// only to measure it, and 300 concurrent APPENDs on a 16 MiB value made a
// node allocate 4.8 GiB at once.
func (v *snapView) StrLen(key []byte) (int, bool, error) {
	if v.isClosing() {
		return 0, false, fmt.Errorf("strlen: %w", ErrClosed)
	}
	n := 0
	var typeErr error
	_, found, err := getRaw(v.r, userKey(key), func(b []byte) {
		if len(b) == 0 || b[0] != valString {
			typeErr = errWrongType
			return
		}
		n = len(b) - 1
	})
	if err != nil {
		return 0, false, err
	}
	return n, found, typeErr
}

// StrLen implements View.
func (v *liveView) StrLen(key []byte) (int, bool, error) {
	if err := v.use(); err != nil {
		return 0, false, err
	}
	return v.snapView.StrLen(key)
}
