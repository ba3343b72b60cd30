package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/cockroachdb/pebble/v2"
)

// RandomKey implements View: it picks a key with a few seeks and at most
// randomKeyWalk steps, never a scan, so RANDOMKEY costs the same on a
// billion keys as on ten.
//
// The choice: read the first and last keys, draw a point uniformly between
// them (on the 8 bytes after their common prefix, read as a big-endian
// number), seek to the first key at or after the point, then step forward
// a random 0..randomKeyWalk-1 keys, wrapping from the last key to the
// first. The bias, documented: a landing key's chance is proportional to
// the byte-space gap before it, so keys after a wide gap are landed on
// more often than keys in a dense stretch ("k000".."k009" sit close
// together; "k009" to "k010" is a wide gap). The walk spreads each landing
// over the next keys, so within any run of randomKeyWalk keys the chances
// even out; across the keyspace they stay proportional to how thinly keys
// are spread there. Every key has a non-zero chance. Redis's own RANDOMKEY
// is not uniform either (a random hash bucket, then an entry of it).
//
// Every random draw comes from rnd, so the choice is the caller's, made
// before any proposal; apply never calls this.
func (v *snapView) RandomKey(rnd *rand.Rand) ([]byte, bool, error) {
	if v.isClosing() {
		return nil, false, fmt.Errorf("randomkey: %w", ErrClosed)
	}
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: userLower, UpperBound: userUpper})
	if err != nil {
		return nil, false, fmt.Errorf("randomkey: %w", err)
	}
	key, found := pickKey(it, rnd)
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("randomkey: %w", err)
	}
	return key, found, nil
}

// RandomKey implements View.
func (v *liveView) RandomKey(rnd *rand.Rand) ([]byte, bool, error) {
	if err := v.use(); err != nil {
		return nil, false, err
	}
	return v.snapView.RandomKey(rnd)
}

// pickKey makes RandomKey's choice with it, an iterator over the user keys,
// and returns a copy of the chosen key (without its prefix byte).
func pickKey(it *pebble.Iterator, rnd *rand.Rand) ([]byte, bool) {
	if !it.First() {
		return nil, false
	}
	lo := bytes.Clone(it.Key())
	if !it.Last() {
		return nil, false // cannot happen: First found a key
	}
	hi := bytes.Clone(it.Key())
	if bytes.Equal(lo, hi) {
		return lo[1:], true
	}
	ok := it.SeekGE(randomPoint(lo, hi, rnd))
	for steps := rnd.IntN(randomKeyWalk); ; steps-- {
		if !ok {
			ok = it.First() // wrap around
		}
		if !ok || steps == 0 {
			break
		}
		ok = it.Next()
	}
	if !ok {
		return nil, false // cannot happen: First found a key
	}
	return bytes.Clone(it.Key()[1:]), true
}

// randomKeyWalk bounds RandomKey's walk after its seek: long enough to
// even out the chances within a dense run of keys, short enough to keep
// RANDOMKEY a handful of iterator steps.
const randomKeyWalk = 16

// randomPoint returns a string between lo and hi (lo < hi), drawn uniformly
// on the 8 bytes after their common prefix.
func randomPoint(lo, hi []byte, rnd *rand.Rand) []byte {
	n := 0
	for n < len(lo) && n < len(hi) && lo[n] == hi[n] {
		n++
	}
	a, b := be64(lo[n:]), be64(hi[n:])
	var r uint64
	if span := b - a; span == ^uint64(0) {
		r = rnd.Uint64()
	} else {
		r = a + rnd.Uint64N(span+1)
	}
	point := make([]byte, n+8)
	copy(point, lo[:n])
	binary.BigEndian.PutUint64(point[n:], r)
	return point
}

// be64 reads up to the first 8 bytes of b as a big-endian number, padding
// a shorter b with zeros on the right.
func be64(b []byte) uint64 {
	var buf [8]byte
	copy(buf[:], b)
	return binary.BigEndian.Uint64(buf[:])
}
