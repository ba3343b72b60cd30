package kv

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The keyspace v2 half of the write set (format 2, docs/keyspace.md).
//
// A key's slot (kslot) holds two states: orig, the key as committed before
// this chunk (read once, at the first touch), and cur, the key as the
// chunk's commands have left it. Nothing reaches the batch until writeTo2,
// which derives every row change from the pair:
//
//   - the old elements are dropped with one DeleteRange iff orig had element
//     rows (a chunked string, a collection) and cur does not keep them (cur
//     is missing, or lives under another storage id);
//   - the expiry-index row moves iff the expiry changed;
//   - the metadata row is set or deleted, and a v1 row the key was read
//     from is point-deleted (convert on write);
//   - the key and expiry counts move by the difference, folded over the
//     chunk, so each count row is written once per chunk.
//
// Invariant: a chunked cur keeps its bytes [base, Len) in val; the bytes
// below base are committed chunk rows under cur's storage id, which is
// then orig's storage id. A fresh value (a SET, a conversion) has base 0,
// so nothing below it is assumed. APPEND to a committed chunked string
// loads only the last partial chunk: it costs what it changes.
type kslot struct {
	origFrom byte          // 0: missing, 'v': a v2 record, 'l': a v1 row
	orig     keyspace.Meta // as committed (Value unused)
	exists   bool
	cur      keyspace.Meta // as of the commands applied so far (Value unused)
	val      []byte
	base     uint64
	owned    bool // val's array belongs to the set: APPEND may grow it
	dirty    bool
	// gone is set when apply deleted the key on expiry, with the record it
	// deleted: OpExpireIf checks its condition against it.
	gone     bool
	goneMeta keyspace.Meta
}

const (
	fromNone   byte = 0
	fromV2     byte = 'v'
	fromLegacy byte = 'l'
)

// hasElems reports whether m's key owns element rows.
func hasElems(m *keyspace.Meta) bool {
	return m.Type != keyspace.TypeString || m.Encoding == keyspace.StringChunked
}

// stamp allocates the next stamp of the entry being applied.
func (w *writeSet) stamp() keyspace.Stamp {
	st := keyspace.Stamp{Index: w.entryIndex, Pos: w.entryPos}
	w.entryPos++
	return st
}

// load returns the index of key's slot, reading the store at the first
// touch. A key whose expiry is at or before the apply time is deleted on
// the spot (its slot is dirty and missing): every write sees it as absent.
func (w *writeSet) load(key []byte) (int, error) {
	if i, ok := w.idx2[string(key)]; ok {
		// The apply time may have moved since the chunk last touched the
		// key: where a chunk ends must not change what a write sees.
		w.expireIfDue(&w.s2[i])
		return i, nil
	}
	var s kslot
	if !w.flushed {
		if err := w.read2(key, &s); err != nil {
			return 0, err
		}
	}
	i := len(w.s2)
	w.idx2[string(key)] = i
	w.s2 = append(w.s2, s)
	w.k2 = append(w.k2, string(key))
	w.bytes += len(s.val)
	return i, nil
}

// read2 fills s with key's committed state.
func (w *writeSet) read2(key []byte, s *kslot) error {
	val, closer, err := w.db.Get(keyspace.MetaKey(key))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("get: %w", err)
	default:
		m, derr := keyspace.DecodeMeta(val)
		if derr != nil {
			_ = closer.Close()
			// A record this binary cannot read (a newer format, damage):
			// applying around it would diverge.
			return fmt.Errorf("%w: key %q: %v", ErrUndecodable, key, derr)
		}
		if m.Type == keyspace.TypeString && m.Encoding == keyspace.StringInline {
			s.val = bytes.Clone(m.Value)
			if s.val == nil {
				s.val = []byte{}
			}
		} else {
			s.base = m.Len // nothing of a chunked value is held yet
		}
		_ = closer.Close()
		m.Value = nil
		s.origFrom, s.orig, s.cur, s.exists, s.owned = fromV2, m, m, true, true
		w.expireIfDue(s)
		return nil
	}
	if !w.legacy {
		return nil
	}
	val, closer, err = w.db.Get(keyspace.LegacyKey(key))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("get: %w", err)
	}
	defer func() { _ = closer.Close() }()
	v, derr := keyspace.DecodeLegacyValue(val)
	if derr != nil {
		return fmt.Errorf("%w: key %q: %v", ErrUndecodable, key, derr)
	}
	m := keyspace.LegacyMeta(v)
	m.Value = nil
	// The whole value is in memory (it was one row): a write rewrites it
	// in v2 under a storage id it allocates (see touch).
	s.origFrom, s.orig, s.cur, s.exists, s.owned = fromLegacy, m, m, true, true
	s.val = bytes.Clone(v)
	if s.val == nil {
		s.val = []byte{}
	}
	return nil
}

// expireIfDue deletes the key in s if it has expired by the apply time.
func (w *writeSet) expireIfDue(s *kslot) {
	if s.exists && s.cur.ExpireAt != 0 && s.cur.ExpireAt <= w.now {
		s.gone, s.goneMeta = true, s.cur
		w.bytes -= len(s.val)
		s.exists, s.dirty, s.val, s.base = false, true, nil, 0
		w.expired++
	}
}

// getString2 returns key's slot index, refusing a key of another type.
func (w *writeSet) getString2(key []byte) (int, error) {
	i, err := w.load(key)
	if err != nil {
		return i, err
	}
	if s := &w.s2[i]; s.exists && s.cur.Type != keyspace.TypeString {
		return i, errWrongType
	}
	return i, nil
}

// value returns the whole string of slot i (a string that exists). A
// chunked value's committed part is read from its chunk rows; missing
// rows and short rows read as zeros.
func (w *writeSet) value(i int) ([]byte, error) {
	s := &w.s2[i]
	if s.cur.Encoding == keyspace.StringInline || s.base == 0 {
		return s.val[:len(s.val):len(s.val)], nil
	}
	out := make([]byte, s.base, s.cur.Len)
	if err := readChunks(w.db, s.cur.ElementsSlot(keyspace.HashSlot([]byte(w.k2[i]))), s.cur.StorageID, out); err != nil {
		return nil, err
	}
	return append(out, s.val...), nil
}

// readChunks fills dst (zeroed by the caller) with the chunk rows of the
// string under sid in slot, for bytes [0, len(dst)).
func readChunks(r pebbleReader, slot uint16, sid keyspace.Stamp, dst []byte) error {
	if len(dst) == 0 {
		return nil
	}
	lo, hi := keyspace.ElementsRange(slot, sid)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		n, perr := keyspace.ParseChunkKey(lo, it.Key())
		if perr != nil {
			_ = it.Close()
			return fmt.Errorf("read chunks: %w", perr)
		}
		off := uint64(n) * keyspace.ChunkSize
		if off >= uint64(len(dst)) {
			break
		}
		v, verr := it.ValueAndErr()
		if verr != nil {
			_ = it.Close()
			return fmt.Errorf("read chunks: %w", verr)
		}
		copy(dst[off:], v)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("read chunks: %w", err)
	}
	return nil
}

// touch records a change to an existing key that keeps its value's
// identity (APPEND, INCR, EXPIRE): a new LastWrite, and a storage id for
// a key read from v1, whose value is rewritten in v2.
func (w *writeSet) touch(i int) {
	s := &w.s2[i]
	st := w.stamp()
	s.cur.LastWrite = st
	if s.origFrom == fromLegacy && s.cur.StorageID.IsZero() {
		s.cur.Version, s.cur.StorageID = st, st
	}
	s.dirty = true
}

// setStr2 replaces key i with the string v (any previous type), expiring
// at expireAt (0: never). owned says whether the set may grow v.
func (w *writeSet) setStr2(i int, v []byte, owned bool, expireAt uint64) {
	s := &w.s2[i]
	st := w.stamp()
	w.bytes += len(v) - len(s.val)
	m := keyspace.Meta{Type: keyspace.TypeString, ExpireAt: expireAt, Version: st, LastWrite: st, StorageID: st, Len: uint64(len(v))}
	if len(v) > keyspace.InlineMax {
		m.Encoding = keyspace.StringChunked
	}
	s.cur, s.exists, s.val, s.base, s.owned, s.dirty, s.gone = m, true, v, 0, owned, true, false
	w.expireIfDue(s)
}

// appendStr2 appends suffix to the string of slot i (a string or
// missing) and returns the new length. On a committed chunked string it
// loads only the last partial chunk.
func (w *writeSet) appendStr2(i int, suffix []byte) (int, error) {
	s := &w.s2[i]
	if !s.exists {
		v := append(make([]byte, 0, len(suffix)), suffix...)
		w.setStr2(i, v, true, 0)
		return len(v), nil
	}
	w.touch(i)
	if s.cur.Encoding == keyspace.StringInline && s.cur.Len+uint64(len(suffix)) > keyspace.InlineMax {
		// Chunked from now on, under a fresh storage id: nothing of the
		// old (inline) value is in chunk rows.
		s.cur.Encoding, s.cur.StorageID, s.base = keyspace.StringChunked, s.cur.LastWrite, 0
	}
	if s.cur.Encoding == keyspace.StringChunked && len(s.val) == 0 && s.base == s.cur.Len && s.base%keyspace.ChunkSize != 0 {
		// Load the last partial chunk, to be rewritten with the suffix.
		n := s.base / keyspace.ChunkSize
		part := make([]byte, s.base-n*keyspace.ChunkSize, s.base-n*keyspace.ChunkSize+uint64(len(suffix)))
		row := keyspace.AppendChunkKey(nil, s.cur.ElementsSlot(keyspace.HashSlot([]byte(w.k2[i]))), s.cur.StorageID, uint32(n))
		v, closer, err := w.db.Get(row)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return 0, fmt.Errorf("get chunk: %w", err)
		default:
			copy(part, v)
			_ = closer.Close()
		}
		s.val, s.base, s.owned = part, n*keyspace.ChunkSize, true
		w.bytes += len(part)
	}
	cur := s.val
	if !s.owned {
		nb := make([]byte, len(cur), len(cur)+len(suffix))
		copy(nb, cur)
		cur = nb
	}
	s.val = append(cur, suffix...)
	s.owned = true
	s.cur.Len += uint64(len(suffix))
	w.bytes += len(suffix)
	return int(s.cur.Len), nil
}

// setValueKeep makes the string of slot i the small value v, keeping its
// version and expiry (INCR).
func (w *writeSet) setValueKeep(i int, v []byte) {
	w.touch(i)
	s := &w.s2[i]
	w.bytes += len(v) - len(s.val)
	s.cur.Encoding, s.cur.Len, s.val, s.base, s.owned = keyspace.StringInline, uint64(len(v)), v, 0, true
	if len(v) > keyspace.InlineMax {
		s.cur.Encoding, s.cur.StorageID = keyspace.StringChunked, s.cur.LastWrite
	}
}

// del2 deletes key i (which may already be missing).
func (w *writeSet) del2(i int) {
	s := &w.s2[i]
	w.bytes -= len(s.val)
	s.exists, s.val, s.base, s.dirty = false, nil, 0, true
}

// setExpire sets key i's expiry (0: none); a time at or before the apply
// time deletes the key.
func (w *writeSet) setExpire(i int, at uint64) {
	w.touch(i)
	s := &w.s2[i]
	s.cur.ExpireAt = at
	w.expireIfDue(s)
}

// flushAll2 deletes every key of both layouts: two range deletions and the
// counts zeroed, whatever the keyspace's size.
func (w *writeSet) flushAll2(b *pebble.Batch) error {
	if err := b.DeleteRange([]byte{0, 0}, []byte{keyspace.SlotCount >> 8}, nil); err != nil {
		return fmt.Errorf("flushall: %w", err)
	}
	lo, hi := keyspace.LegacyRange()
	if err := b.DeleteRange(lo, hi, nil); err != nil {
		return fmt.Errorf("flushall: %w", err)
	}
	if w.legacy {
		if err := b.Delete(keyspace.LegacyPresentRow, nil); err != nil {
			return fmt.Errorf("flushall: %w", err)
		}
		w.legacy = false
	}
	w.clearSlots()
	w.flushed = true
	return nil
}

// writeTo2 puts every dirty v2 slot's row changes into b, in first-touch
// order, then the folded counts.
func (w *writeSet) writeTo2(b *pebble.Batch) error {
	var dKeys, dExp int64
	for i := range w.s2 {
		s := &w.s2[i]
		if !s.dirty {
			continue
		}
		key := []byte(w.k2[i])
		slot := keyspace.HashSlot(key)
		origV2 := s.origFrom == fromV2
		keep := s.exists && origV2 && hasElems(&s.cur) && s.cur.StorageID == s.orig.StorageID && s.cur.Type == s.orig.Type
		if origV2 && hasElems(&s.orig) && !keep {
			lo, hi := keyspace.ElementsRange(s.orig.ElementsSlot(slot), s.orig.StorageID)
			if err := b.DeleteRange(lo, hi, nil); err != nil {
				return fmt.Errorf("drop elements: %w", err)
			}
			if s.orig.Foreign {
				// The elements were on loan from another slot (a
				// cross-slot RENAME): the loan row goes with them.
				if err := b.Delete(keyspace.AppendLoanKey(nil, s.orig.ElemSlot, s.orig.StorageID), nil); err != nil {
					return fmt.Errorf("drop loan: %w", err)
				}
			}
		}
		origExp := uint64(0)
		if origV2 {
			origExp = s.orig.ExpireAt
			dKeys--
			if origExp != 0 {
				dExp--
			}
		}
		curExp := uint64(0)
		if s.exists {
			curExp = s.cur.ExpireAt
			dKeys++
			if curExp != 0 {
				dExp++
			}
		}
		if origExp != 0 && origExp != curExp {
			if err := b.Delete(keyspace.AppendExpiryKey(nil, slot, origExp, key), nil); err != nil {
				return fmt.Errorf("delete expiry row: %w", err)
			}
		}
		if curExp != 0 && curExp != origExp {
			if err := b.Set(keyspace.AppendExpiryKey(nil, slot, curExp, key), nil, nil); err != nil {
				return fmt.Errorf("set expiry row: %w", err)
			}
		}
		if s.origFrom == fromLegacy {
			if err := b.Delete(keyspace.LegacyKey(key), nil); err != nil {
				return fmt.Errorf("delete v1 row: %w", err)
			}
		}
		mk := keyspace.AppendMetaKey(nil, slot, key)
		if !s.exists {
			if origV2 {
				if err := b.Delete(mk, nil); err != nil {
					return fmt.Errorf("delete metadata: %w", err)
				}
			}
			continue
		}
		m := s.cur
		if m.Type == keyspace.TypeString && m.Encoding == keyspace.StringInline {
			m.Value = s.val
		} else if m.Type == keyspace.TypeString {
			es := m.ElementsSlot(slot)
			for off := s.base; off < m.Len; off += keyspace.ChunkSize {
				end := min(off+keyspace.ChunkSize, m.Len)
				row := keyspace.AppendChunkKey(nil, es, m.StorageID, uint32(off/keyspace.ChunkSize))
				if err := b.Set(row, s.val[off-s.base:end-s.base], nil); err != nil {
					return fmt.Errorf("set chunk: %w", err)
				}
			}
		}
		rec, err := keyspace.EncodeMeta(&m)
		if err != nil {
			return fmt.Errorf("encode metadata of %q: %w", key, err)
		}
		if err := b.Set(mk, rec, nil); err != nil {
			return fmt.Errorf("set metadata: %w", err)
		}
	}
	if dKeys == 0 && dExp == 0 && !w.flushed {
		return nil
	}
	keys, exps := uint64(0), uint64(0)
	if !w.flushed {
		var err error
		if keys, exps, err = readCounts(w.db); err != nil {
			return err
		}
	}
	if err := b.Set(keyspace.KeyCountRow, keyspace.EncodeCount(uint64(int64(keys)+dKeys)), nil); err != nil {
		return fmt.Errorf("set key count: %w", err)
	}
	if err := b.Set(keyspace.ExpireCountRow, keyspace.EncodeCount(uint64(int64(exps)+dExp)), nil); err != nil {
		return fmt.Errorf("set expire count: %w", err)
	}
	return nil
}

// readCounts reads the v2 key and expiry counts.
func readCounts(r pebbleReader) (keys, expires uint64, err error) {
	read := func(row []byte) (uint64, error) {
		var n uint64
		var derr error
		_, _, err := getRaw(r, row, func(v []byte) { n, derr = keyspace.DecodeCount(v) })
		if err == nil {
			err = derr
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", row, err)
		}
		return n, nil
	}
	if keys, err = read(keyspace.KeyCountRow); err != nil {
		return 0, 0, err
	}
	expires, err = read(keyspace.ExpireCountRow)
	return keys, expires, err
}
