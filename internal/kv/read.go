package kv

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// The read side of the Store: Read and its views, and Hash. None of it runs
// on the apply path; all of it may hold a Pebble iterator or snapshot for as
// long as the keyspace takes to walk. Two things bound that:
//
//   - Close sets closing before it waits for readers, and every scan (a
//     view's ScanKeys, Hash) looks at it every readCheckEvery keys and stops
//     with ErrClosed, closing its iterator and snapshot. So Close waits for
//     at most readCheckEvery keys of any scan, plus whatever the read's own
//     callback does between two keys.
//   - HashContext stops when its context is done; views leave deadlines to
//     their callers, which see every key (internal/redis charges each one
//     to the request's budget).

// readCheckEvery is how many keys a scan visits between two looks at
// Store.closing (and, for Hash, at its context).
const readCheckEvery = 256

// Read runs fn against a consistent view of the keyspace. fn may run twice
// (a first run on the live database stops at its second lookup and fn runs
// again on a snapshot), so it must reset what it gathers on entry. Once
// Close has begun, the view's scans stop and its lookups fail with
// ErrClosed.
func (s *Store) Read(fn func(v View) error) error { return s.ReadAt(0, fn) }

// ReadAt is Read at read time now (Unix ms, from the Raft layer's read
// index or lease): the view's time is max(now, the store's apply time), so
// a key whose expiry has passed reads as missing even before any write
// deletes it, and a view never sees a time before what apply has seen.
func (s *Store) ReadAt(now uint64, fn func(v View) error) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	if err := s.checkCorrupt(); err != nil {
		return err
	}
	// Most reads make one lookup, which is consistent on its own: run fn
	// on the live database first, and only if it makes a second lookup
	// (which must see the same state as the first) start again on a
	// snapshot. Callers already allow fn to run twice. Creating and
	// closing a Pebble snapshot per read would cost more than the lookup.
	now = max(now, s.applyTime.Load())
	var err error
	if f := s.FormatVersion(); f >= FormatV2 {
		legacy := s.legacy.Load()
		lv := view2{r: s.db, gate: &liveGate{}, closing: &s.closing, now: now, legacy: legacy, format: f}
		err = fn(&lv)
		if lv.gate.refused {
			snap := s.db.NewSnapshot()
			err = fn(&view2{r: snap, closing: &s.closing, now: now, legacy: legacy, format: f})
			_ = snap.Close()
		}
	} else {
		lv := liveView{snapView: snapView{r: s.db, closing: &s.closing, now: now}}
		err = fn(&lv)
		if lv.refused { // whatever fn made of the refusal
			snap := s.db.NewSnapshot()
			err = fn(&snapView{r: snap, closing: &s.closing, now: now})
			_ = snap.Close()
		}
	}
	// Corruption found during fn may have surfaced as an odd error or as a
	// missing key; either way the corruption is the answer.
	if cerr := s.checkCorrupt(); cerr != nil {
		return cerr
	}
	return err
}

// snapView reads through a consistent reader: a snapshot, or a batch.
type snapView struct {
	r pebbleReader
	// closing, when not nil, is the Store's: once set, lookups fail and
	// scans stop with ErrClosed.
	closing *atomic.Bool
	now     uint64 // the view's time (Now); nothing expires at format 1
}

func (v *snapView) isClosing() bool { return v.closing != nil && v.closing.Load() }

func (v *snapView) Get(key []byte) ([]byte, bool, error) {
	if v.isClosing() {
		return nil, false, fmt.Errorf("get: %w", ErrClosed)
	}
	return getString(v.r, userKey(key)) // getString returns a copy
}

// errNeedSnapshot is returned by a liveView's second lookup.
var errNeedSnapshot = errors.New("kv: view needs a snapshot")

// liveView reads the live database for a callback's first lookup (a point
// read, or a scan, whose iterator is consistent by itself) and refuses any
// further one with errNeedSnapshot; Read then runs the callback again on a
// snapshot, even if the callback swallowed the error.
type liveView struct {
	snapView
	used, refused bool
}

func (v *liveView) use() error {
	if v.used {
		v.refused = true
		return errNeedSnapshot
	}
	v.used = true
	return nil
}

func (v *liveView) Get(key []byte) ([]byte, bool, error) {
	if err := v.use(); err != nil {
		return nil, false, err
	}
	return v.snapView.Get(key)
}

func (v *liveView) Exists(key []byte) (bool, error) {
	if err := v.use(); err != nil {
		return false, err
	}
	return v.snapView.Exists(key)
}

func (v *liveView) ScanKeys(start []byte, fn func(key []byte) bool) error {
	if err := v.use(); err != nil {
		return err
	}
	return v.snapView.ScanKeys(start, fn)
}

func (v *liveView) DBSize() (int64, error) {
	if err := v.use(); err != nil {
		return 0, err
	}
	return v.snapView.DBSize()
}

func (v *snapView) Exists(key []byte) (bool, error) {
	if v.isClosing() {
		return false, fmt.Errorf("exists: %w", ErrClosed)
	}
	_, found, err := getRaw(v.r, userKey(key), func([]byte) {})
	return found, err
}

// ScanKeys walks the user keys from start. It stops, with ErrClosed, within
// readCheckEvery keys of the Store's Close beginning.
func (v *snapView) ScanKeys(start []byte, fn func(key []byte) bool) error {
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: userKey(start), UpperBound: userUpper})
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	var stopped error
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%readCheckEvery == 0 && v.isClosing() {
			stopped = ErrClosed
			break
		}
		if !fn(it.Key()[1:]) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if stopped != nil {
		return fmt.Errorf("scan stopped after %d keys: %w", n-1, stopped)
	}
	return nil
}

// DBSize counts the user keys: O(keys), about what a SCAN of the whole
// keyspace costs, so that no write has to look its key up to keep a count.
func (v *snapView) DBSize() (int64, error) {
	var n int64
	err := v.ScanKeys(nil, func([]byte) bool { n++; return true })
	return n, err
}

// Hash is HashContext without a deadline; Close still stops it.
func (s *Store) Hash() (uint64, uint64, error) {
	return s.HashContext(context.Background())
}

// HashContext returns the applied index and a hash of the store's logical
// content, read from one consistent snapshot: for every key live at the
// apply time, its key, type, value and expiry, whatever the layout (a v1
// row, an inline or chunked v2 string), plus the cluster format version.
// Replicas at the same applied index must return the same hash, and so do
// two stores holding the same keys in different layouts. Rows that are
// not user data are left out: Raft's records (membership, which members
// acknowledged what), the counts (derived from the keys) and the apply
// time (derived from the log, and it would tie the hash to clocks).
//
// Keys are combined by a sum of per-key digests, not in key order: at
// format 2 keys are stored slot by slot, and a sorted walk would need
// them all in memory. It is O(data): it stops, releasing its snapshot,
// with ctx's error once ctx is done and with ErrClosed once Close begins.
func (s *Store) HashContext(ctx context.Context) (uint64, uint64, error) {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return 0, 0, ErrClosed
	}
	if err := s.checkCorrupt(); err != nil {
		return 0, 0, err
	}
	snap := s.db.NewSnapshot()
	defer func() { _ = snap.Close() }() // releasing a snapshot cannot fail in a way that changes the hash
	applied, err := readCountRow(snap, metaApplied)
	if err != nil {
		return 0, 0, fmt.Errorf("hash: %w", err)
	}
	now, err := readCountRow(snap, metaApplyTime)
	if err != nil {
		return 0, 0, fmt.Errorf("hash: %w", err)
	}
	format := FormatV1
	if _, _, err := getRaw(snap, metaFormat, func(b []byte) {
		if len(b) == 1 {
			format = b[0]
		}
	}); err != nil {
		return 0, 0, fmt.Errorf("hash: %w", err)
	}
	d := digest{}
	n := 0
	check := func() error {
		if n++; n%readCheckEvery == 0 {
			if s.closing.Load() {
				return fmt.Errorf("hash stopped after %d keys: %w", n-1, ErrClosed)
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("hash stopped after %d keys: %w", n-1, err)
			}
		}
		return nil
	}
	if err := hashLegacy(snap, &d, check); err != nil {
		return 0, 0, s.hashErr(err)
	}
	if err := hashV2(snap, now, &d, check); err != nil {
		return 0, 0, s.hashErr(err)
	}
	return applied, d.sum(format), s.checkCorrupt()
}

func (s *Store) hashErr(err error) error {
	if cerr := s.checkCorrupt(); cerr != nil {
		return cerr
	}
	return fmt.Errorf("hash: %w", err)
}
