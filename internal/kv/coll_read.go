package kv

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Collections on the read side. View.Collection finds a collection's
// metadata; Coll reads its element rows. The families' read functions
// (hash.go, set.go, zset.go, list.go) decode the rows; the Redis layer
// calls those, never Coll's raw rows, so the row layout stays kv's.

// Coll reads one live collection inside a View callback. Like the View it
// came from, it is valid only during that callback.
type Coll interface {
	// Meta returns the collection's metadata: Type, Len (elements), Head
	// and Tail (a list), ExpireAt, Version, LastWrite.
	Meta() keyspace.Meta
	// Get returns a copy of the value of the element row whose suffix is
	// suffix (what follows the key's elements prefix: a hash field, a set
	// member, a sorted-set index row, a list sequence number), and
	// whether it exists.
	Get(suffix []byte) ([]byte, bool, error)
	// Iter calls fn with the suffix and value of each element row whose
	// suffix is in [lo, hi) (hi nil: to the end), ascending or, with
	// reverse, descending, until fn returns false. The slices are valid
	// only during the call.
	Iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) bool) error
}

// collectionAtFormat1 is what a format 1 view answers for a collection: no
// collection can exist there, and every key is a string.
func collectionAtFormat1(exists bool) (Coll, bool, error) {
	if exists {
		return nil, false, ErrWrongType
	}
	return nil, false, nil
}

// Collection finds key as a collection of type t (format 1 holds strings
// only).
func (v *snapView) Collection(key []byte, t keyspace.Type) (Coll, bool, error) {
	ok, err := v.Exists(key)
	if err != nil {
		return nil, false, err
	}
	return collectionAtFormat1(ok)
}

// Collection finds key as a collection of type t (format 1 holds strings
// only).
func (v *liveView) Collection(key []byte, t keyspace.Type) (Coll, bool, error) {
	ok, err := v.Exists(key)
	if err != nil {
		return nil, false, err
	}
	return collectionAtFormat1(ok)
}

// Collection finds key as a live collection of type t: a live key of
// another type gives ErrWrongType.
func (v *view2) Collection(key []byte, t keyspace.Type) (Coll, bool, error) {
	var m keyspace.Meta
	found, err := v.lookup(key, func(mm *keyspace.Meta, _ []byte) error {
		m = *mm
		m.Value = nil
		return nil
	})
	if err != nil || !found {
		return nil, false, err
	}
	if m.Type != t {
		return nil, false, ErrWrongType
	}
	es := m.ElementsSlot(keyspace.HashSlot(key))
	return &coll2{v: v, m: m, prefix: keyspace.ElementsPrefix(nil, es, m.StorageID)}, true, nil
}

// coll2 is a collection read through a view2.
type coll2 struct {
	v      *view2
	m      keyspace.Meta
	prefix []byte
}

func (c *coll2) Meta() keyspace.Meta { return c.m }

func (c *coll2) Get(suffix []byte) ([]byte, bool, error) {
	if err := c.v.access("get element"); err != nil {
		return nil, false, err
	}
	var out []byte
	k := append(bytes.Clone(c.prefix), suffix...)
	_, found, err := getRaw(c.v.r, k, func(b []byte) { out = bytes.Clone(b) })
	if err != nil {
		return nil, false, fmt.Errorf("get element: %w", err)
	}
	if found && out == nil {
		out = []byte{}
	}
	return out, found, nil
}

// iterCheckEvery is how many rows Iter passes between checks that the
// store is closing, as scans do (read.go).
const iterCheckEvery = 256

func (c *coll2) Iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) bool) error {
	if err := c.v.access("iterate elements"); err != nil {
		return err
	}
	opts := &pebble.IterOptions{LowerBound: append(bytes.Clone(c.prefix), lo...)}
	if hi != nil {
		opts.UpperBound = append(bytes.Clone(c.prefix), hi...)
	} else {
		opts.UpperBound = keyspace.PrefixEnd(c.prefix)
	}
	it, err := c.v.r.NewIter(opts)
	if err != nil {
		return fmt.Errorf("iterate elements: %w", err)
	}
	ok := it.First()
	if reverse {
		ok = it.Last()
	}
	for n := 0; ok; n++ {
		if n%iterCheckEvery == iterCheckEvery-1 && c.v.closing != nil && c.v.closing.Load() {
			_ = it.Close()
			return fmt.Errorf("iterate elements: %w", ErrClosed)
		}
		if !fn(it.Key()[len(c.prefix):], it.Value()) {
			break
		}
		if reverse {
			ok = it.Prev()
		} else {
			ok = it.Next()
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate elements: %w", err)
	}
	return nil
}
