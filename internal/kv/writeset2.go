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
	// patches are whole chunks below base that SETRANGE rewrote in this
	// chunk, sorted by chunk number, so that a write in the middle of a
	// large string holds and writes only the chunks it touches.
	//
	// Invariant: every patch's chunk ends at or before base, and val is
	// empty or base is chunk-aligned; a patch is the chunk's full content
	// as of now (missing bytes at its end read as zeros, like a short row).
	patches []chunkPatch
}

// chunkPatch is one rewritten chunk of a chunked string.
type chunkPatch struct {
	n    uint32
	data []byte
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
		if s := &w.s2[i]; s.exists {
			w.expireIfDue(s)
			if !s.exists {
				w.event(key, EventExpired)
			}
		}
		return i, nil
	}
	var s kslot
	if !w.flushed {
		if err := w.read2(key, &s); err != nil {
			return 0, err
		}
		if s.gone {
			w.event(key, EventExpired)
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
		w.clearPatches(s)
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
	for _, p := range s.patches {
		off := uint64(p.n) * keyspace.ChunkSize
		end := min(off+keyspace.ChunkSize, s.base)
		clear(out[off:end])
		copy(out[off:end], p.data)
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
	w.clearPatches(s)
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
		if err := w.readChunk(i, uint32(n), part); err != nil {
			return 0, err
		}
		// The chunk moves from the patches (if there) into val.
		w.dropPatch(s, uint32(n))
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
	w.clearPatches(s)
	s.cur.Encoding, s.cur.Len, s.val, s.base, s.owned = keyspace.StringInline, uint64(len(v)), v, 0, true
	s.cur.Foreign, s.cur.ElemSlot = false, 0
	if len(v) > keyspace.InlineMax {
		s.cur.Encoding, s.cur.StorageID = keyspace.StringChunked, s.cur.LastWrite
	}
}

// del2 deletes key i (which may already be missing).
func (w *writeSet) del2(i int) {
	s := &w.s2[i]
	w.bytes -= len(s.val)
	w.clearPatches(s)
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
	if w.format >= FormatV4 {
		if err := w.writeFlushRow(b); err != nil {
			return err
		}
	}
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
	if w.format >= FormatV4 {
		if err := w.writeWatchRows(b); err != nil {
			return err
		}
	}
	var dKeys, dExp int64
	// refs maps, after a RENAME, every storage id some key still
	// references to whether that key is Foreign.
	var refs map[keyspace.Stamp]bool
	if w.renamed {
		refs = make(map[keyspace.Stamp]bool)
		for i := range w.s2 {
			if s := &w.s2[i]; s.exists && hasElems(&s.cur) {
				refs[s.cur.StorageID] = s.cur.Foreign
			}
		}
	}
	for i := range w.s2 {
		s := &w.s2[i]
		if !s.dirty {
			continue
		}
		key := []byte(w.k2[i])
		slot := keyspace.HashSlot(key)
		origV2 := s.origFrom == fromV2
		drop, dropLoan := false, false
		if origV2 && hasElems(&s.orig) {
			if w.renamed {
				foreign, ref := refs[s.orig.StorageID]
				drop = !ref
				dropLoan = s.orig.Foreign && (drop || !foreign)
			} else {
				keep := s.exists && hasElems(&s.cur) && s.cur.StorageID == s.orig.StorageID && s.cur.Type == s.orig.Type
				drop = !keep
				dropLoan = drop && s.orig.Foreign
			}
		}
		if drop {
			lo, hi := keyspace.ElementsRange(s.orig.ElementsSlot(slot), s.orig.StorageID)
			if err := b.DeleteRange(lo, hi, nil); err != nil {
				return fmt.Errorf("drop elements: %w", err)
			}
		}
		if dropLoan {
			// The elements were on loan from another slot (a cross-slot
			// RENAME) and are gone or back home: the loan row goes.
			if err := b.Delete(keyspace.AppendLoanKey(nil, s.orig.ElemSlot, s.orig.StorageID), nil); err != nil {
				return fmt.Errorf("drop loan: %w", err)
			}
		}
		if w.renamed && s.exists && hasElems(&s.cur) && s.cur.Foreign {
			// The loan row names the key that now holds the elements.
			if err := b.Set(keyspace.AppendLoanKey(nil, s.cur.ElemSlot, s.cur.StorageID), key, nil); err != nil {
				return fmt.Errorf("set loan: %w", err)
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
			for _, p := range s.patches {
				row := keyspace.AppendChunkKey(nil, es, m.StorageID, p.n)
				if err := b.Set(row, p.data, nil); err != nil {
					return fmt.Errorf("set chunk: %w", err)
				}
			}
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
	if err := w.dropAbandoned(b); err != nil {
		return err
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
	if keys, err = readCountRow(r, keyspace.KeyCountRow); err != nil {
		return 0, 0, err
	}
	expires, err = readCountRow(r, keyspace.ExpireCountRow)
	return keys, expires, err
}

// readChunk fills dst (zeroed by the caller, at most one chunk) with chunk
// n of slot i's chunked string as of now: its patch if SETRANGE rewrote
// it in this chunk, else its committed row (a missing or short row reads
// as zeros).
func (w *writeSet) readChunk(i int, n uint32, dst []byte) error {
	s := &w.s2[i]
	if k, ok := findPatch(s.patches, n); ok {
		copy(dst, s.patches[k].data)
		return nil
	}
	row := keyspace.AppendChunkKey(nil, s.cur.ElementsSlot(keyspace.HashSlot([]byte(w.k2[i]))), s.cur.StorageID, n)
	v, closer, err := w.db.Get(row)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("get chunk: %w", err)
	default:
		copy(dst, v)
		_ = closer.Close()
	}
	return nil
}

// findPatch returns the position of chunk n in the sorted patches, and
// whether it is there.
func findPatch(ps []chunkPatch, n uint32) (int, bool) {
	lo, hi := 0, len(ps)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ps[m].n < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(ps) && ps[lo].n == n
}

// setPatch records data as chunk n's new content.
func (w *writeSet) setPatch(s *kslot, n uint32, data []byte) {
	k, ok := findPatch(s.patches, n)
	if ok {
		w.bytes += len(data) - len(s.patches[k].data)
		s.patches[k].data = data
		return
	}
	w.bytes += len(data)
	s.patches = append(s.patches, chunkPatch{})
	copy(s.patches[k+1:], s.patches[k:])
	s.patches[k] = chunkPatch{n: n, data: data}
}

// dropPatch forgets chunk n's patch, if any.
func (w *writeSet) dropPatch(s *kslot, n uint32) {
	if k, ok := findPatch(s.patches, n); ok {
		w.bytes -= len(s.patches[k].data)
		s.patches = append(s.patches[:k], s.patches[k+1:]...)
	}
}

// clearPatches forgets every patch of s (its value is replaced or gone).
func (w *writeSet) clearPatches(s *kslot) {
	for _, p := range s.patches {
		w.bytes -= len(p.data)
	}
	s.patches = nil
}

// spill moves a chunked string's in-memory tail [base, Len) into patches,
// so that base becomes Len and SETRANGE can address every chunk alike.
func (w *writeSet) spill(s *kslot) {
	if len(s.val) == 0 {
		s.base = s.cur.Len
		return
	}
	for off := s.base; off < s.cur.Len; off += keyspace.ChunkSize {
		end := min(off+keyspace.ChunkSize, s.cur.Len)
		data := s.val[off-s.base : end-s.base : end-s.base]
		w.bytes -= len(data)
		w.setPatch(s, uint32(off/keyspace.ChunkSize), data)
	}
	s.val, s.base, s.owned = nil, s.cur.Len, false
}

// setRange2 writes v at offset off of slot i's string (a string, or
// missing with v non-empty) and returns the new length. A chunked string
// rewrites only the chunks [off, off+len(v)) overlaps; bytes it skips
// past the old end are left unwritten and read as zeros (sparse chunks,
// docs/keyspace.md).
func (w *writeSet) setRange2(i int, off uint64, v []byte) (uint64, error) {
	s := &w.s2[i]
	end := off + uint64(len(v))
	if !s.exists {
		if end <= keyspace.InlineMax {
			nv := make([]byte, end)
			copy(nv[off:], v)
			w.setStr2(i, nv, true, 0)
			return end, nil
		}
		w.setStr2(i, []byte{}, true, 0)
	} else {
		w.touch(i)
	}
	newLen := max(s.cur.Len, end)
	if s.cur.Encoding == keyspace.StringInline && newLen <= keyspace.InlineMax {
		nv := make([]byte, newLen)
		copy(nv, s.val)
		copy(nv[off:], v)
		w.bytes += len(nv) - len(s.val)
		s.val, s.owned, s.cur.Len = nv, true, newLen
		return newLen, nil
	}
	if s.cur.Encoding == keyspace.StringInline {
		// Chunked from now on, under a fresh storage id: the old value
		// (at most InlineMax bytes) becomes chunk 0.
		old := s.val
		w.bytes -= len(old)
		s.cur.Encoding, s.cur.StorageID = keyspace.StringChunked, s.cur.LastWrite
		s.val, s.base, s.owned = nil, s.cur.Len, false
		if len(old) > 0 {
			w.setPatch(s, 0, old)
		}
	}
	w.spill(s)
	for n := off / keyspace.ChunkSize; n*keyspace.ChunkSize < end; n++ {
		lo := n * keyspace.ChunkSize
		hi := min(lo+keyspace.ChunkSize, newLen)
		buf := make([]byte, hi-lo)
		if lo < s.cur.Len {
			if err := w.readChunk(i, uint32(n), buf[:min(hi, s.cur.Len)-lo]); err != nil {
				return 0, err
			}
		}
		from, to := max(lo, off), min(hi, end)
		copy(buf[from-lo:to-lo], v[from-off:to-off])
		w.setPatch(s, uint32(n), buf)
	}
	s.cur.Len, s.base = newLen, newLen
	return newLen, nil
}
