package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The read side at cluster format 2 (docs/keyspace.md): every lookup reads
// the v2 metadata record first and, while v1 rows may remain
// (keyspace.LegacyPresentRow), the v1 row on a miss. A key whose expiry is
// at or before the view's time reads as missing everywhere: Get, Exists,
// scans, RandomKey, Lookup.
//
// Consistency: a view made on the live database admits one Pebble access
// (a point read or one iterator, each consistent by itself); the second
// is refused and Read runs the callback again on a snapshot, as for the
// format 1 view. A GET of an inline string is one access; a chunked
// string, or a miss that falls back to the v1 row, takes a snapshot.

// KeyInfo describes a key, as TYPE, OBJECT ENCODING, TTL and WATCH need.
type KeyInfo struct {
	// Type is the key's type.
	Type keyspace.Type
	// ExpireAt is when the key expires, Unix ms; 0 means never.
	ExpireAt uint64
	// Encoding is OBJECT ENCODING's answer as Redis 7.2 gives it for the
	// value: for a string, "int" (an integer of at most 20 bytes),
	// "embstr" (at most 44 bytes) or "raw"; for a collection, the name
	// from its element count alone (encoding.go; ObjectEncoding also
	// looks at the elements).
	Encoding string
	// Len is a string's length in bytes, or a collection's number of
	// elements.
	Len uint64
	// Version and LastWrite are the stamps of the write that created the
	// key and of the last that changed it; zero for a key still in the v1
	// layout.
	Version, LastWrite keyspace.Stamp
}

// ErrBadCursor reports a scan cursor View.Scan did not hand out.
var ErrBadCursor = errors.New("kv: invalid scan cursor")

// Scan cursors: nil is the start; 'u' + key resumes the v1 phase at key;
// 's' + slot(2) + key resumes the v2 phase at key in slot.
const (
	cursorV1 byte = 'u'
	cursorV2 byte = 's'
)

// liveGate admits one Pebble access; the next is refused and marks the
// view for a rerun on a snapshot.
type liveGate struct{ used, refused bool }

func (g *liveGate) use() error {
	if g.used {
		g.refused = true
		return errNeedSnapshot
	}
	g.used = true
	return nil
}

// view2 reads the v2 layout (and v1 rows while they may remain).
type view2 struct {
	r       pebbleReader
	gate    *liveGate // nil on a snapshot
	closing *atomic.Bool
	now     uint64 // the view's time: expired keys are missing
	legacy  bool
	// format is the cluster format the view reads at (2 or more); WATCH
	// needs 4.
	format uint8
}

// access is called before every Pebble access.
func (v *view2) access(op string) error {
	if v.closing != nil && v.closing.Load() {
		return fmt.Errorf("%s: %w", op, ErrClosed)
	}
	if v.gate != nil {
		return v.gate.use()
	}
	return nil
}

func (v *view2) live(m *keyspace.Meta) bool {
	return m.ExpireAt == 0 || m.ExpireAt > v.now
}

// lookup finds key and calls fn with its metadata and, for an inline (or
// v1) string, its value in place. It reports whether the key is live.
func (v *view2) lookup(key []byte, fn func(m *keyspace.Meta, inline []byte) error) (bool, error) {
	if err := v.access("get"); err != nil {
		return false, err
	}
	var ferr error
	var live bool
	_, found, err := getRaw(v.r, keyspace.MetaKey(key), func(b []byte) {
		m, derr := keyspace.DecodeMeta(b)
		if derr != nil {
			ferr = fmt.Errorf("key %q: %w", key, derr)
			return
		}
		if live = v.live(&m); live {
			ferr = fn(&m, m.Value)
		}
	})
	if err != nil || ferr != nil {
		return false, errors.Join(err, ferr)
	}
	if found || !v.legacy {
		return live, nil
	}
	if err := v.access("get"); err != nil {
		return false, err
	}
	_, found, err = getRaw(v.r, keyspace.LegacyKey(key), func(b []byte) {
		val, derr := keyspace.DecodeLegacyValue(b)
		if derr != nil {
			ferr = fmt.Errorf("key %q: %w", key, derr)
			return
		}
		m := keyspace.LegacyMeta(val)
		ferr = fn(&m, val)
	})
	if err != nil || ferr != nil {
		return false, errors.Join(err, ferr)
	}
	return found, nil
}

// readString calls use with key's whole string value.
func (v *view2) readString(key []byte, use func(val []byte)) (bool, error) {
	var chunked *keyspace.Meta
	found, err := v.lookup(key, func(m *keyspace.Meta, inline []byte) error {
		if m.Type != keyspace.TypeString {
			return errWrongType
		}
		if m.Encoding == keyspace.StringChunked && inline == nil {
			mc := *m
			chunked = &mc
			return nil
		}
		use(inline)
		return nil
	})
	if err != nil || !found || chunked == nil {
		return found, err
	}
	if err := v.access("get"); err != nil {
		return false, err
	}
	buf := make([]byte, chunked.Len)
	if err := readChunks(v.r, chunked.ElementsSlot(keyspace.HashSlot(key)), chunked.StorageID, buf); err != nil {
		return false, err
	}
	use(buf)
	return true, nil
}

func (v *view2) Get(key []byte) ([]byte, bool, error) {
	var out []byte
	found, err := v.readString(key, func(val []byte) { out = bytes.Clone(val) })
	if found && out == nil && err == nil {
		out = []byte{}
	}
	return out, found, err
}

func (v *view2) ReadString(key []byte, fn func(val []byte)) (bool, error) {
	return v.readString(key, fn)
}

func (v *view2) Exists(key []byte) (bool, error) {
	return v.lookup(key, func(*keyspace.Meta, []byte) error { return nil })
}

func (v *view2) StrLen(key []byte) (int, bool, error) {
	n := 0
	found, err := v.lookup(key, func(m *keyspace.Meta, _ []byte) error {
		if m.Type != keyspace.TypeString {
			return errWrongType
		}
		n = int(m.Len)
		return nil
	})
	return n, found, err
}

func (v *view2) Lookup(key []byte) (KeyInfo, bool, error) {
	var ki KeyInfo
	found, err := v.lookup(key, func(m *keyspace.Meta, inline []byte) error {
		ki = KeyInfo{Type: m.Type, ExpireAt: m.ExpireAt, Len: m.Len, Version: m.Version, LastWrite: m.LastWrite}
		if m.Type == keyspace.TypeString {
			ki.Encoding = stringEncoding(m.Len, inline)
		} else {
			ki.Encoding = collectionEncoding(m) // from the count alone (encoding.go)
		}
		return nil
	})
	return ki, found, err
}

// stringEncoding is OBJECT ENCODING's answer for a string of n bytes
// whose value, when short, is inline.
func stringEncoding(n uint64, inline []byte) string {
	if n <= 20 && inline != nil {
		if _, err := parseRedisInt(inline); err == nil {
			return "int"
		}
	}
	if n <= 44 {
		return "embstr"
	}
	return "raw"
}

func (v *view2) Now() uint64 { return v.now }

// Format is 2: this view reads the v2 layout (and v1 rows not yet
// converted).
func (v *view2) Format() uint8 { return FormatV2 }

// Counts returns the number of keys and of keys with an expiry: two row
// reads, plus a count of the remaining v1 rows while any may remain
// (O(v1 keys), until they are converted). Expired keys not yet deleted
// are counted, as Redis's DBSIZE counts them.
func (v *view2) Counts() (uint64, uint64, error) {
	if err := v.access("counts"); err != nil {
		return 0, 0, err
	}
	keys, exps, err := readCounts(v.r)
	if err != nil || !v.legacy {
		return keys, exps, err
	}
	if err := v.access("counts"); err != nil {
		return 0, 0, err
	}
	n, err := v.countLegacy()
	return keys + n, exps, err
}

func (v *view2) countLegacy() (uint64, error) {
	lo, hi := keyspace.LegacyRange()
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	var n uint64
	var stopped error
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%readCheckEvery == 0 && v.closing != nil && v.closing.Load() {
			stopped = ErrClosed
			break
		}
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	if stopped != nil {
		return 0, fmt.Errorf("count stopped: %w", stopped)
	}
	return n, nil
}

func (v *view2) DBSize() (int64, error) {
	n, _, err := v.Counts()
	return int64(n), err
}

// ScanKeys calls fn with every live key >= start, in scan order (see
// Scan), not in byte order: at format 2 keys are stored slot by slot.
// Callers that need a cursor or a prefix use Scan.
func (v *view2) ScanKeys(start []byte, fn func(key []byte) bool) error {
	_, err := v.Scan(nil, nil, func(k []byte) bool {
		if bytes.Compare(k, start) < 0 {
			return true
		}
		return fn(k)
	})
	return err
}

// Scan walks the live keys with prefix from cursor in scan order: the v1
// rows (while any may remain) in byte order, then the v2 keys slot by
// slot, in byte order within a slot. It stops when fn returns false,
// returning the cursor of the key fn refused (a later Scan from it visits
// that key first), or when the keys run out, returning nil.
//
// Why this order guarantees SCAN's contract (a key present for the whole
// scan is returned at least once): a v2 key keeps its place (slot, key)
// for as long as it exists, so the v2 phase cannot miss it. A v1 key only
// ever moves to v2 (convert on write), never back: if it moves before the
// v1 phase reaches it, the v2 phase, which comes later, finds it.
//
// With a prefix, each slot's metadata is seeked at the prefix, and a
// prefix holding a complete hash tag visits its one slot only.
func (v *view2) Scan(cursor, prefix []byte, fn func(key []byte) bool) ([]byte, error) {
	if len(cursor) > 0 && cursor[0] != cursorV1 && (cursor[0] != cursorV2 || len(cursor) < 3) {
		return nil, ErrBadCursor
	}
	if v.legacy && (len(cursor) == 0 || cursor[0] == cursorV1) {
		var from []byte
		if len(cursor) > 0 {
			from = cursor[1:]
		}
		next, done, err := v.scanLegacy(from, prefix, fn)
		if err != nil || !done {
			return next, err
		}
		cursor = nil
	} else if len(cursor) > 0 && cursor[0] == cursorV1 {
		cursor = nil // the v1 rows are gone: the v2 phase from its start
	}
	return v.scanV2(cursor, prefix, fn)
}

// scanLegacy walks the v1 rows; done reports that they ran out.
func (v *view2) scanLegacy(from, prefix []byte, fn func(key []byte) bool) (next []byte, done bool, err error) {
	if err := v.access("scan"); err != nil {
		return nil, false, err
	}
	if bytes.Compare(from, prefix) < 0 {
		from = prefix
	}
	_, hi := keyspace.LegacyRange()
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: keyspace.LegacyKey(from), UpperBound: hi})
	if err != nil {
		return nil, false, fmt.Errorf("scan: %w", err)
	}
	n := 0
	done = true
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[1:]
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		if n++; n%readCheckEvery == 0 && v.closing != nil && v.closing.Load() {
			err = fmt.Errorf("scan: %w", ErrClosed)
			done = false
			break
		}
		if !fn(k) {
			next, done = append([]byte{cursorV1}, k...), false
			break
		}
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("scan: %w", cerr)
	}
	return next, done, err
}

// prefixSlot returns the slot of every key with prefix, when the prefix
// holds a complete, non-empty hash tag (which then decides the slot).
func prefixSlot(prefix []byte) (uint16, bool) {
	i := bytes.IndexByte(prefix, '{')
	if i < 0 {
		return 0, false
	}
	j := bytes.IndexByte(prefix[i+1:], '}')
	if j <= 0 {
		return 0, false
	}
	return keyspace.HashSlot(prefix), true
}

// metaSeek returns the row to seek for the first metadata row of slot at
// or after key.
func metaSeek(slot uint16, key []byte) []byte {
	return keyspace.AppendMetaKey(nil, slot, key)
}

func (v *view2) scanV2(cursor, prefix []byte, fn func(key []byte) bool) ([]byte, error) {
	if err := v.access("scan"); err != nil {
		return nil, err
	}
	firstSlot, lastSlot := uint16(0), uint16(keyspace.SlotCount-1)
	if s, ok := prefixSlot(prefix); ok {
		firstSlot, lastSlot = s, s
	}
	seek := metaSeek(firstSlot, prefix)
	if len(cursor) > 0 {
		slot := binary.BigEndian.Uint16(cursor[1:])
		if slot >= keyspace.SlotCount {
			return nil, ErrBadCursor
		}
		if slot < firstSlot {
			slot = firstSlot
		}
		if slot > lastSlot {
			return nil, nil
		}
		k := cursor[3:]
		if bytes.Compare(k, prefix) < 0 {
			k = prefix
		}
		seek = metaSeek(slot, k)
	}
	lo, _ := keyspace.SlotRange(firstSlot)
	_, hi := keyspace.SlotRange(lastSlot)
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("scan: %w", err)
	}
	var next []byte
	n := 0
	ok := it.SeekGE(seek)
	for ok {
		if n++; n%readCheckEvery == 0 && v.closing != nil && v.closing.Load() {
			err = fmt.Errorf("scan: %w", ErrClosed)
			break
		}
		row := it.Key()
		slot := binary.BigEndian.Uint16(row)
		slotKey, key, perr := keyspace.ParseMetaKey(row)
		if perr != nil || !bytes.HasPrefix(key, prefix) {
			// Not a metadata row (elements, expiry index, loans), or past
			// the prefix: on to the next slot's metadata. Before the
			// metadata or the prefix: seek to them.
			if perr == nil && bytes.Compare(key, prefix) < 0 {
				ok = it.SeekGE(metaSeek(slot, prefix))
				continue
			}
			if len(row) >= 3 && row[2] < 0x01 {
				ok = it.SeekGE(metaSeek(slot, prefix))
				continue
			}
			if slot >= lastSlot {
				break
			}
			ok = it.SeekGE(metaSeek(slot+1, prefix))
			continue
		}
		val, verr := it.ValueAndErr()
		if verr != nil {
			err = fmt.Errorf("scan: %w", verr)
			break
		}
		m, derr := keyspace.DecodeMeta(val)
		if derr != nil {
			err = fmt.Errorf("scan: key %q: %w", key, derr)
			break
		}
		if v.live(&m) && !fn(key) {
			next = append(binary.BigEndian.AppendUint16([]byte{cursorV2}, slotKey), key...)
			break
		}
		ok = it.Next()
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("scan: %w", cerr)
	}
	return next, err
}

// RandomKey picks a live key: a random point of the v2 slot space, then
// the first live key at or after it (wrapping once), or, while v1 rows
// remain, a key of the v1 rows half of the time; when the half it drew is
// empty it tries the other, so a key is found whenever one exists. The
// pick favours keys after sparse stretches, as the format 1 pick does.
func (v *view2) RandomKey(rnd *rand.Rand) ([]byte, bool, error) {
	v1First := v.legacy && rnd.IntN(2) == 0
	if v1First {
		if key, found, err := v.randomV1Key(rnd); err != nil || found {
			return key, found, err
		}
	}
	key, found, err := v.randomV2Key(rnd)
	if err != nil || found || !v.legacy || v1First {
		return key, found, err
	}
	return v.randomV1Key(rnd)
}

// randomV1Key picks a key among the v1 rows not yet converted.
func (v *view2) randomV1Key(rnd *rand.Rand) ([]byte, bool, error) {
	if err := v.access("randomkey"); err != nil {
		return nil, false, err
	}
	lo, hi := keyspace.LegacyRange()
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, false, fmt.Errorf("randomkey: %w", err)
	}
	key, found := pickKey(it, rnd)
	if err := it.Close(); err != nil {
		return nil, false, fmt.Errorf("randomkey: %w", err)
	}
	return key, found, nil
}

// randomV2Key picks a live key of the v2 slot space.
func (v *view2) randomV2Key(rnd *rand.Rand) ([]byte, bool, error) {
	if err := v.access("randomkey"); err != nil {
		return nil, false, err
	}
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: []byte{0, 0}, UpperBound: []byte{keyspace.SlotCount >> 8}})
	if err != nil {
		return nil, false, fmt.Errorf("randomkey: %w", err)
	}
	slot := uint16(rnd.IntN(keyspace.SlotCount))
	start := metaSeek(slot, binary.BigEndian.AppendUint64(nil, rnd.Uint64()))
	out, err := firstLiveKey(v, it, start)
	if err == nil && out == nil {
		out, err = firstLiveKey(v, it, nil) // wrap around once
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("randomkey: %w", cerr)
	}
	if err != nil {
		return nil, false, err
	}
	return out, out != nil, nil
}

// firstLiveKey returns a copy of the first live key whose metadata row is
// at or after from (nil: the first), or nil.
func firstLiveKey(v *view2, it *pebble.Iterator, from []byte) ([]byte, error) {
	ok := it.First()
	if from != nil {
		ok = it.SeekGE(from)
	}
	for n := 1; ok; n++ {
		if n%readCheckEvery == 0 && v.closing != nil && v.closing.Load() {
			return nil, fmt.Errorf("randomkey: %w", ErrClosed)
		}
		row := it.Key()
		slot := binary.BigEndian.Uint16(row)
		_, key, perr := keyspace.ParseMetaKey(row)
		if perr != nil {
			if row[2] < 0x01 {
				ok = it.SeekGE(metaSeek(slot, nil))
			} else if slot+1 < keyspace.SlotCount {
				ok = it.SeekGE(metaSeek(slot+1, nil))
			} else {
				ok = false
			}
			continue
		}
		m, err := keyspace.DecodeMeta(it.Value())
		if err != nil {
			return nil, fmt.Errorf("randomkey: key %q: %w", key, err)
		}
		if v.live(&m) {
			return bytes.Clone(key), nil
		}
		ok = it.Next()
	}
	return nil, nil
}

// DueKeys calls fn with keys whose expiry is at or before the view's
// time, slot by slot and earliest first within a slot, at most limit of
// them, until fn returns false. Cost: one seek per slot that holds rows
// (an empty slot costs nothing), plus one metadata read per key handed
// out; a sweeper that wants less keeps a per-slot hint (docs/keyspace.md).
func (v *view2) DueKeys(limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) error {
	if err := v.access("duekeys"); err != nil {
		return err
	}
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: []byte{0, 0}, UpperBound: []byte{keyspace.SlotCount >> 8}})
	if err != nil {
		return fmt.Errorf("duekeys: %w", err)
	}
	expSeek := func(slot uint16) []byte { lo, _ := keyspace.ExpiryRange(slot, 0); return lo }
	type due struct {
		key []byte
		at  uint64
	}
	var found []due
	ok := it.First()
	for ok && len(found) < limit {
		row := it.Key()
		slot := binary.BigEndian.Uint16(row)
		_, at, key, perr := keyspace.ParseExpiryKey(row)
		switch {
		case perr == nil && at <= v.now:
			found = append(found, due{bytes.Clone(key), at})
			ok = it.Next()
			continue
		case len(row) >= 3 && row[2] < 0x03:
			ok = it.SeekGE(expSeek(slot))
			continue
		}
		if slot+1 >= keyspace.SlotCount {
			break
		}
		ok = it.SeekGE(expSeek(slot + 1))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("duekeys: %w", err)
	}
	for _, d := range found {
		if err := v.access("duekeys"); err != nil {
			return err
		}
		var ver keyspace.Stamp
		var derr error
		_, have, err := getRaw(v.r, keyspace.MetaKey(d.key), func(b []byte) {
			var m keyspace.Meta
			if m, derr = keyspace.DecodeMeta(b); derr == nil {
				ver = m.Version
			}
		})
		if err != nil || derr != nil {
			return fmt.Errorf("duekeys: %w", errors.Join(err, derr))
		}
		if have && !fn(d.key, ver, d.at) {
			return nil
		}
	}
	return nil
}

// DueInSlot implements View.DueInSlot: one bounded iterator over the slot's
// expiry-index rows from expiry from, then one metadata read per key
// handed out (for the version the conditional delete checks).
func (v *view2) DueInSlot(slot uint16, from uint64, limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) (uint64, error) {
	if err := v.access("duekeys"); err != nil {
		return 0, err
	}
	lo, hi := keyspace.ExpiryRange(slot, math.MaxUint64)
	it, err := v.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("duekeys: %w", err)
	}
	type due struct {
		key []byte
		at  uint64
	}
	var found []due
	next := uint64(math.MaxUint64)
	for ok := it.SeekGE(keyspace.AppendExpiryKey(nil, slot, from, nil)); ok; ok = it.Next() {
		_, at, key, perr := keyspace.ParseExpiryKey(it.Key())
		if perr != nil {
			_ = it.Close()
			return 0, fmt.Errorf("duekeys: %w", perr)
		}
		if at > v.now || len(found) == limit {
			next = at
			break
		}
		found = append(found, due{bytes.Clone(key), at})
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("duekeys: %w", err)
	}
	for _, d := range found {
		if err := v.access("duekeys"); err != nil {
			return 0, err
		}
		var ver keyspace.Stamp
		var derr error
		_, have, err := getRaw(v.r, keyspace.MetaKey(d.key), func(b []byte) {
			var m keyspace.Meta
			if m, derr = keyspace.DecodeMeta(b); derr == nil {
				ver = m.Version
			}
		})
		if err != nil || derr != nil {
			return 0, fmt.Errorf("duekeys: %w", errors.Join(err, derr))
		}
		if have && !fn(d.key, ver, d.at) {
			return d.at, nil
		}
	}
	return next, nil
}
