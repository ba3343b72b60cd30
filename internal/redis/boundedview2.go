package redis

import (
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The kv.View methods keyspace v2 added, charged like the others: a scan
// key by key, a lookup or count as one key.

// Scan stops when fn does or the budget is spent, as ScanKeys does.
func (w boundedView) Scan(cursor, prefix []byte, fn func(key []byte) bool) ([]byte, error) {
	next, err := w.v.Scan(cursor, prefix, func(k []byte) bool {
		if w.b.spendKey() != nil {
			return false
		}
		return fn(k)
	})
	if err != nil {
		return nil, err
	}
	return next, w.b.err
}

// Counts is charged as one lookup.
func (w boundedView) Counts() (uint64, uint64, error) {
	if err := w.b.spendKey(); err != nil {
		return 0, 0, err
	}
	return w.v.Counts()
}

// Lookup is charged as one lookup.
func (w boundedView) Lookup(key []byte) (kv.KeyInfo, bool, error) {
	if err := w.b.spendKey(); err != nil {
		return kv.KeyInfo{}, false, err
	}
	return w.v.Lookup(key)
}

// Format costs nothing: it reads no data.
func (w boundedView) Format() uint8 { return w.v.Format() }

// Now costs nothing: it reads no data.
func (w boundedView) Now() uint64 { return w.v.Now() }

// DueKeys is charged key by key.
func (w boundedView) DueKeys(limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) error {
	err := w.v.DueKeys(limit, func(k []byte, ver keyspace.Stamp, at uint64) bool {
		if w.b.spendKey() != nil {
			return false
		}
		return fn(k, ver, at)
	})
	if err != nil {
		return err
	}
	return w.b.err
}

// DueInSlot is charged key by key.
func (w boundedView) DueInSlot(slot uint16, from uint64, limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) (uint64, error) {
	next, err := w.v.DueInSlot(slot, from, limit, func(k []byte, ver keyspace.Stamp, at uint64) bool {
		if w.b.spendKey() != nil {
			return false
		}
		return fn(k, ver, at)
	})
	if err != nil {
		return 0, err
	}
	return next, w.b.err
}

// Collection is charged as one lookup, and its Iter row by row, like a
// scan key by key.
func (w boundedView) Collection(key []byte, t keyspace.Type) (kv.Coll, bool, error) {
	if err := w.b.spendKey(); err != nil {
		return nil, false, err
	}
	c, ok, err := w.v.Collection(key, t)
	if err != nil || !ok {
		return c, ok, err
	}
	return boundedColl{c: c, b: w.b}, true, nil
}

// boundedColl charges a collection's rows to the budget.
type boundedColl struct {
	c kv.Coll
	b *budget
}

func (c boundedColl) Meta() keyspace.Meta { return c.c.Meta() }

func (c boundedColl) Get(suffix []byte) ([]byte, bool, error) {
	if err := c.b.spendKey(); err != nil {
		return nil, false, err
	}
	return c.c.Get(suffix)
}

func (c boundedColl) Iter(lo, hi []byte, reverse bool, fn func(suffix, val []byte) bool) error {
	err := c.c.Iter(lo, hi, reverse, func(s, v []byte) bool {
		if c.b.spendKey() != nil {
			return false
		}
		return fn(s, v)
	})
	if err != nil {
		return err
	}
	return c.b.err
}
