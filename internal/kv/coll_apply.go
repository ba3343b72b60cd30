package kv

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Collections on the apply path (format 3: hashes, sets, sorted sets,
// lists). The family ops (hash.go, set.go, zset.go, list.go) build on the
// primitives here and never touch the batch or the metadata by other
// means.
//
// A collection's metadata lives in its kslot like a string's (cur, folded
// per chunk, written by writeTo2); its element rows do not. Element rows
// go into the apply batch the moment an op writes them, and the batch is
// an indexed one, so a later op of the same chunk reads them back (Get,
// iterators) merged with the committed store: a chunk of a thousand HSETs
// to one hash writes each field once, and an HINCRBY sees the HSET before
// it.
//
// Invariants:
//   - A collection that exists has at least one element; the op that
//     removes the last one calls collDone, which deletes the key (Redis
//     deletes an emptied collection).
//   - Element rows live under ElementsPrefix(cur.ElementsSlot(slot),
//     cur.StorageID); only the primitives here build that prefix.
//   - Storage ids never repeat (a stamp is unique in the log), so element
//     rows written under an id this chunk created and then abandoned (the
//     key deleted, overwritten or expired later in the chunk) are dropped
//     with one DeleteRange at writeTo2 (dropAbandoned), and no read in
//     between can meet them: nothing names that id any more.

// readsElements reports whether applying cmd (with subs, an OpBatch's
// commands) may read element rows through the apply batch, which must
// then be an indexed one: the collection ops, and COPY (of a collection).
func readsElements(cmd *Command, subs []Command) bool {
	if cmd.Op != OpBatch {
		return cmd.Op >= firstFamilyOp || cmd.Op == OpCopy
	}
	for i := range subs {
		if readsElements(&subs[i], nil) {
			return true
		}
	}
	return false
}

// createdSID is a storage id a collection op created in this chunk.
type createdSID struct {
	slot uint16 // the slot of the element rows
	sid  keyspace.Stamp
}

// loadColl loads key for an op on a collection of type t and returns its
// slot index; a live key of another type gives errWrongType (the reply
// the op answers with ResultError).
func (w *writeSet) loadColl(key []byte, t keyspace.Type) (int, error) {
	i, err := w.load(key)
	if err != nil {
		return i, err
	}
	if s := &w.s2[i]; s.exists && s.cur.Type != t {
		return i, errWrongType
	}
	return i, nil
}

// collExists reports whether key i exists (as the type loadColl checked).
func (w *writeSet) collExists(i int) bool { return w.s2[i].exists }

// collMeta returns key i's metadata as of now; the caller may read it,
// and change Len, Head and Tail through collSetLen and collSetBounds only.
func (w *writeSet) collMeta(i int) *keyspace.Meta { return &w.s2[i].cur }

// createColl makes key i (which must not exist) a new, empty collection
// of type t, with no expiry. The op must add at least one element before
// it returns, or call collDone. A list starts at ListSeqStart.
func (w *writeSet) createColl(i int, t keyspace.Type) {
	s := &w.s2[i]
	st := w.stamp()
	m := keyspace.Meta{Type: t, Version: st, LastWrite: st, StorageID: st}
	if t == keyspace.TypeList {
		m.Head, m.Tail = keyspace.ListSeqStart, keyspace.ListSeqStart
	}
	w.bytes -= len(s.val)
	w.clearPatches(s)
	s.cur, s.exists, s.val, s.base, s.owned, s.dirty, s.gone = m, true, nil, 0, false, true, false
	w.created = append(w.created, createdSID{slot: keyspace.HashSlot([]byte(w.k2[i])), sid: st})
}

// collTouch records that an op changed collection i (LastWrite, for
// WATCH). Ops call it once per command that changed something.
func (w *writeSet) collTouch(i int) {
	s := &w.s2[i]
	s.cur.LastWrite = w.stamp()
	s.dirty = true
}

// collSetLen sets the element count of hash, set or sorted set i.
func (w *writeSet) collSetLen(i int, n uint64) {
	s := &w.s2[i]
	s.cur.Len = n
	s.dirty = true
}

// collSetBounds sets list i's sequence bounds: its elements are at
// [head, tail).
func (w *writeSet) collSetBounds(i int, head, tail uint64) {
	s := &w.s2[i]
	s.cur.Head, s.cur.Tail, s.cur.Len = head, tail, tail-head
	s.dirty = true
}

// collDone deletes collection i if it has no element left, and reports
// whether it did. Every op that removes elements calls it last.
func (w *writeSet) collDone(i int) bool {
	s := &w.s2[i]
	if !s.exists {
		return false
	}
	empty := s.cur.Len == 0
	if s.cur.Type == keyspace.TypeList {
		empty = s.cur.Head == s.cur.Tail
	}
	if empty {
		w.del2(i)
	}
	return empty
}

// elemPrefix appends collection i's element-row prefix to dst.
func (w *writeSet) elemPrefix(dst []byte, i int) []byte {
	s := &w.s2[i]
	return keyspace.ElementsPrefix(dst, s.cur.ElementsSlot(keyspace.HashSlot([]byte(w.k2[i]))), s.cur.StorageID)
}

// elemKey returns the row key of the element of collection i whose
// suffix is suffix (a hash field, a set member, an encoded list sequence
// number, a sorted-set index row's suffix).
func (w *writeSet) elemKey(i int, suffix []byte) []byte {
	p := w.elemPrefix(make([]byte, 0, 3+keyspace.StampLen+len(suffix)), i)
	return append(p, suffix...)
}

// elemGet returns a copy of the value of collection i's element row
// suffix, as of the ops applied so far, and whether the row exists.
func (w *writeSet) elemGet(i int, suffix []byte) ([]byte, bool, error) {
	var out []byte
	_, found, err := getRaw(w.b, w.elemKey(i, suffix), func(v []byte) { out = bytes.Clone(v) })
	if err != nil {
		return nil, false, fmt.Errorf("element of %q: %w", w.k2[i], err)
	}
	if found && out == nil {
		out = []byte{}
	}
	return out, found, nil
}

// elemSet writes collection i's element row suffix with value val. The
// caller keeps the counts right (collSetLen, collSetBounds).
func (w *writeSet) elemSet(i int, suffix, val []byte) error {
	k := w.elemKey(i, suffix)
	if err := w.b.Set(k, val, nil); err != nil {
		return fmt.Errorf("set element of %q: %w", w.k2[i], err)
	}
	return nil
}

// elemDel deletes collection i's element row suffix (present or not).
func (w *writeSet) elemDel(i int, suffix []byte) error {
	k := w.elemKey(i, suffix)
	if err := w.b.Delete(k, nil); err != nil {
		return fmt.Errorf("delete element of %q: %w", w.k2[i], err)
	}
	return nil
}

// elemDelRange deletes collection i's element rows whose suffix is in
// [lo, hi) with one range deletion (LTRIM, a popped run of a list).
func (w *writeSet) elemDelRange(i int, lo, hi []byte) error {
	if err := w.b.DeleteRange(w.elemKey(i, lo), w.elemKey(i, hi), nil); err != nil {
		return fmt.Errorf("delete elements of %q: %w", w.k2[i], err)
	}
	return nil
}

// elemIter calls fn with the suffix and value of each of collection i's
// element rows whose suffix is in [lo, hi) (hi nil: to the end), as of
// the ops applied so far, ascending or (reverse) descending, until fn
// returns false or an error. The slices are valid only during the call;
// fn must not write to collection i (collect, then write).
func (w *writeSet) elemIter(i int, lo, hi []byte, reverse bool, fn func(suffix, val []byte) (bool, error)) error {
	prefix := w.elemPrefix(nil, i)
	opts := &pebble.IterOptions{LowerBound: append(bytes.Clone(prefix), lo...)}
	if hi != nil {
		opts.UpperBound = append(bytes.Clone(prefix), hi...)
	} else {
		opts.UpperBound = keyspace.PrefixEnd(prefix)
	}
	it, err := w.b.NewIter(opts)
	if err != nil {
		return fmt.Errorf("elements of %q: %w", w.k2[i], err)
	}
	ok := it.First()
	if reverse {
		ok = it.Last()
	}
	for ok {
		more, ferr := fn(it.Key()[len(prefix):], it.Value())
		if ferr != nil {
			_ = it.Close()
			return ferr
		}
		if !more {
			break
		}
		if reverse {
			ok = it.Prev()
		} else {
			ok = it.Next()
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("elements of %q: %w", w.k2[i], err)
	}
	return nil
}

// copyElems copies every element row of collection si to collection di,
// which copyColl just created: COPY of a collection, O(elements).
func (w *writeSet) copyElems(si, di int) error {
	type row struct{ k, v []byte }
	var rows []row
	err := w.elemIter(si, nil, nil, false, func(suffix, val []byte) (bool, error) {
		rows = append(rows, row{bytes.Clone(suffix), bytes.Clone(val)})
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := w.elemSet(di, r.k, r.v); err != nil {
			return err
		}
	}
	return nil
}

// copyColl makes key di a copy of collection si (COPY), with si's expiry,
// replacing whatever di held.
func (w *writeSet) copyColl(si, di int) error {
	src := w.s2[si].cur
	w.del2(di)
	w.createColl(di, src.Type)
	d := &w.s2[di]
	d.cur.ExpireAt, d.cur.Len = src.ExpireAt, src.Len
	if src.Type == keyspace.TypeList {
		d.cur.Head, d.cur.Tail = src.Head, src.Tail
	}
	if err := w.copyElems(si, di); err != nil {
		return err
	}
	w.expireIfDue(d)
	return nil
}

// dropAbandoned deletes the element rows of storage ids this chunk
// created that no key holds any more (see the invariants above).
func (w *writeSet) dropAbandoned(b *pebble.Batch) error {
	if len(w.created) == 0 {
		return nil
	}
	held := make(map[keyspace.Stamp]bool, len(w.created))
	for i := range w.s2 {
		if s := &w.s2[i]; s.exists && hasElems(&s.cur) {
			held[s.cur.StorageID] = true
		}
	}
	for _, c := range w.created {
		if held[c.sid] {
			continue
		}
		lo, hi := keyspace.ElementsRange(c.slot, c.sid)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return fmt.Errorf("drop abandoned elements: %w", err)
		}
	}
	return nil
}
