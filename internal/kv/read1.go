package kv

import (
	"fmt"
	"math"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The format 1 view's answers to the View methods format 2 brought: a v1
// key is a string with no expiry and no stamps.

func (v *snapView) Lookup(key []byte) (KeyInfo, bool, error) {
	if v.isClosing() {
		return KeyInfo{}, false, fmt.Errorf("lookup: %w", ErrClosed)
	}
	var ki KeyInfo
	var typeErr error
	_, found, err := getRaw(v.r, userKey(key), func(b []byte) {
		if len(b) == 0 || b[0] != valString {
			typeErr = errWrongType
			return
		}
		ki = KeyInfo{Type: keyspace.TypeString, Len: uint64(len(b) - 1), Encoding: stringEncoding(uint64(len(b)-1), b[1:])}
	})
	if err == nil {
		err = typeErr
	}
	return ki, found, err
}

func (v *snapView) Counts() (uint64, uint64, error) {
	n, err := v.DBSize()
	return uint64(n), 0, err
}

func (v *snapView) Now() uint64 { return v.now }

// Format is 1: this view reads the v1 layout.
func (v *snapView) Format() uint8 { return FormatV1 }

// Scan at format 1 walks the v1 rows in byte order; its cursors are the
// format 2 view's v1-phase cursors, so a scan begun before the format
// raise goes on after it.
func (v *snapView) Scan(cursor, prefix []byte, fn func(key []byte) bool) ([]byte, error) {
	if len(cursor) > 0 && cursor[0] != cursorV1 {
		return nil, ErrBadCursor
	}
	var from []byte
	if len(cursor) > 0 {
		from = cursor[1:]
	}
	w := view2{r: v.r, closing: v.closing, now: v.now, legacy: true}
	next, _, err := w.scanLegacy(from, prefix, fn)
	return next, err
}

// DueKeys at format 1 finds none: nothing expires.
// DueInSlot finds nothing at format 1: no key has an expiry.
func (v *snapView) DueInSlot(uint16, uint64, int, func([]byte, keyspace.Stamp, uint64) bool) (uint64, error) {
	return math.MaxUint64, nil
}

func (v *snapView) DueKeys(int, func([]byte, keyspace.Stamp, uint64) bool) error {
	return nil
}

func (v *liveView) Lookup(key []byte) (KeyInfo, bool, error) {
	if err := v.use(); err != nil {
		return KeyInfo{}, false, err
	}
	return v.snapView.Lookup(key)
}

func (v *liveView) Counts() (uint64, uint64, error) {
	if err := v.use(); err != nil {
		return 0, 0, err
	}
	return v.snapView.Counts()
}

func (v *liveView) Scan(cursor, prefix []byte, fn func(key []byte) bool) ([]byte, error) {
	if err := v.use(); err != nil {
		return nil, err
	}
	return v.snapView.Scan(cursor, prefix, fn)
}
