package kv

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// writeSet holds the writes of one apply chunk in memory, folded per key,
// until they go into a Pebble batch together.
//
// Why: a chunk may hold thousands of commands on one key (a follower packs
// up to 256 forwarded writes into one entry, and the applier coalesces
// thousands of entries). Writing each command's result into the batch made
// the batch grow with commands × value size: 1024 one-byte APPENDs to a 16
// MiB string wrote 16 GiB. Folded, the batch holds each key once, with its
// final value, and an APPEND grows one in-memory buffer in place.
//
// Invariants:
//   - A key has at most one slot; a slot is the key's state as of the
//     commands applied so far in this chunk (dirty) or as read from the
//     store (clean).
//   - Reads see, in order: the key's slot; nothing if a FLUSHALL ran in
//     this chunk (flushed); the committed store.
//   - A FLUSHALL's range deletion goes into the batch at once and drops
//     every slot, so the batch holds: metadata, then at most one range
//     deletion, then the surviving slots' writes (later batch records win).
//   - The batch is built in first-touch order, not map order, so every
//     replica builds the same batch (its effect would be the same anyway:
//     slots are distinct keys).
type writeSet struct {
	db pebbleReader
	// index maps a key to its slot in slots; keys[i] is slots[i]'s key.
	// Slots live in a slice, in first-touch order, so a reused set
	// allocates nothing per key but the key string.
	index   map[string]int
	slots   []slot
	keys    []string
	flushed bool
	// bytes approximates the memory held by slot values, clean ones (read
	// and kept) included; the applier commits the chunk once it passes the
	// apply-batch budget.
	bytes int

	// Replicated state of the chunk, carried from one chunk to the next
	// by the Store (reset leaves it alone).
	//
	// now is the apply time: max(entry stamp, previous apply time).
	// format is the cluster format version; a chunk that raises it holds
	// only the raise. legacy is set while v1 rows may exist at format 2.
	now    uint64
	format uint8
	legacy bool
	// entryIndex and entryPos allocate stamps (keyspace.Stamp): the entry
	// being applied and the next position within it.
	entryIndex uint64
	entryPos   uint32

	// The keyspace v2 slots (writeset2.go), used at format 2 instead of
	// index/slots/keys, keyed by user key.
	idx2 map[string]int
	s2   []kslot
	k2   []string
	// expired counts keys this chunk deleted on expiry; added to the
	// store's node-local counter when the chunk commits.
	expired uint64
	// renamed is set when a RENAME in this chunk moved an element set
	// from one key to another: writeTo2 then decides which element sets
	// to drop by storage id across the chunk's keys (ops2.go).
	renamed bool
	// emit says whether anyone listens to apply events
	// (Config.OnApplyEvents); events are the chunk's, in log order
	// (events.go).
	emit   bool
	events []ApplyEvent

	// b is the chunk's apply batch, an indexed one: collection ops write
	// element rows into it at once and read them back (coll_apply.go).
	b *pebble.Batch
	// created lists the storage ids collection ops created in this chunk
	// (coll_apply.go, dropAbandoned).
	created []createdSID
	// executor runs OpExec entries (exec.go), from the Store, and
	// newBatch makes the separate batch an OpExec writes into.
	executor Executor
	newBatch func() *pebble.Batch
}

// slot is one key's state inside a writeSet.
type slot struct {
	exists bool
	typ    byte   // the value's type byte (valString for strings)
	val    []byte // the value without its type byte
	dirty  bool   // written in this chunk: goes into the batch
	// owned reports that val's array belongs to the write set, so APPEND
	// may grow it in place. A value taken from a log entry is not owned:
	// it aliases the entry's bytes.
	owned bool
}

func newWriteSet(db pebbleReader) *writeSet {
	return &writeSet{db: db, index: make(map[string]int), idx2: make(map[string]int)}
}

// maxRetainedSlots bounds the slots a reused write set keeps allocated
// between chunks; a larger chunk's index is dropped rather than kept.
const maxRetainedSlots = 4096

// reset empties the set for the next chunk, whose reads see the store as
// committed by this one. It releases every value (a reused set must not
// pin a large value until the next chunk touches as many keys).
func (w *writeSet) reset() {
	w.clearSlots()
	w.flushed = false
	w.expired = 0
	w.renamed = false
	w.created = w.created[:0]
	clear(w.events)
	w.events = w.events[:0]
}

// clearSlots drops every slot of both layouts.
func (w *writeSet) clearSlots() {
	if len(w.slots) > maxRetainedSlots {
		w.index, w.slots, w.keys = make(map[string]int), nil, nil
	} else {
		clear(w.index)
		clear(w.slots)
		clear(w.keys)
		w.slots, w.keys = w.slots[:0], w.keys[:0]
	}
	if len(w.s2) > maxRetainedSlots {
		w.idx2, w.s2, w.k2 = make(map[string]int), nil, nil
	} else {
		clear(w.idx2)
		clear(w.s2)
		clear(w.k2)
		w.s2, w.k2 = w.s2[:0], w.k2[:0]
	}
	w.bytes = 0
}

// get returns (a copy of) the key's slot, reading the store (and keeping a
// copy of the value) the first time the chunk touches the key.
func (w *writeSet) get(k []byte) (slot, error) {
	if i, ok := w.index[string(k)]; ok {
		return w.slots[i], nil
	}
	var s slot
	if !w.flushed {
		val, closer, err := w.db.Get(k)
		switch {
		case errors.Is(err, pebble.ErrNotFound):
		case err != nil:
			return s, fmt.Errorf("get: %w", err)
		default:
			s.exists, s.owned = true, true
			if len(val) > 0 {
				s.typ = val[0]
				s.val = bytes.Clone(val[1:])
			}
			if s.val == nil {
				s.val = []byte{}
			}
			_ = closer.Close()
		}
	}
	w.put(k, s)
	return s, nil
}

// exists reports whether the key exists without copying its value.
func (w *writeSet) exists(k []byte) (bool, error) {
	if i, ok := w.index[string(k)]; ok {
		return w.slots[i].exists, nil
	}
	if w.flushed {
		return false, nil
	}
	_, closer, err := w.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get: %w", err)
	}
	_ = closer.Close()
	return true, nil
}

// getString returns the string at k, or errWrongType.
func (w *writeSet) getString(k []byte) (slot, error) {
	s, err := w.get(k)
	if err != nil {
		return s, err
	}
	if s.exists && s.typ != valString {
		return s, errWrongType
	}
	return s, nil
}

func (w *writeSet) put(k []byte, s slot) {
	if i, ok := w.index[string(k)]; ok {
		w.bytes -= len(w.slots[i].val)
		w.slots[i] = s
	} else {
		key := string(k)
		w.index[key] = len(w.slots)
		w.slots = append(w.slots, s)
		w.keys = append(w.keys, key)
	}
	w.bytes += len(s.val)
}

// setString makes k the string v. v must stay valid and unchanged until the
// chunk is committed (it may alias the log entry).
func (w *writeSet) setString(k, v []byte) {
	w.put(k, slot{exists: true, typ: valString, val: v, dirty: true})
}

// setOwnedString is setString for a buffer the write set may grow.
func (w *writeSet) setOwnedString(k, v []byte) {
	w.put(k, slot{exists: true, typ: valString, val: v, dirty: true, owned: true})
}

// appendString appends suffix to the string in s (slot of k, already
// checked to be a string or missing) and returns the new length. The first
// append to a value the set does not own copies it, with room to grow, so
// a run of appends costs their bytes, amortised.
func (w *writeSet) appendString(k []byte, s slot, suffix []byte) int {
	cur := s.val
	if !s.exists {
		cur = nil
	}
	if !s.owned {
		// Exact size: append grows it (amortised) if more APPENDs follow,
		// and the budget, which counts lengths, sees what is held.
		nb := make([]byte, len(cur), len(cur)+len(suffix))
		copy(nb, cur)
		cur = nb
	}
	nv := append(cur, suffix...)
	w.setOwnedString(k, nv)
	return len(nv)
}

// del deletes k.
func (w *writeSet) del(k []byte) {
	w.put(k, slot{dirty: true})
}

// flushAll deletes every user key: one range deletion in b, whatever the
// keyspace's size, and every slot dropped.
func (w *writeSet) flushAll(b *pebble.Batch) error {
	if w.format >= FormatV2 {
		return w.flushAll2(b)
	}
	if err := b.DeleteRange(userLower, userUpper, nil); err != nil {
		return fmt.Errorf("flushall: %w", err)
	}
	w.clearSlots()
	w.flushed = true
	return nil
}

// writeTo puts every dirty slot into b, in first-touch order.
func (w *writeSet) writeTo(b *pebble.Batch) error {
	if w.format >= FormatV2 {
		return w.writeTo2(b)
	}
	for i := range w.slots {
		s, key := &w.slots[i], w.keys[i]
		if !s.dirty {
			continue
		}
		if !s.exists {
			if err := b.Delete([]byte(key), nil); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			continue
		}
		op := b.SetDeferred(len(key), len(s.val)+1)
		copy(op.Key, key)
		op.Value[0] = s.typ
		copy(op.Value[1:], s.val)
		if err := op.Finish(); err != nil {
			return fmt.Errorf("set: %w", err)
		}
	}
	return nil
}
