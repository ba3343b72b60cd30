package kv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Lists (issue #16), at cluster format 3.
//
// Layout (docs/keyspace.md): a list's elements are the element rows whose
// suffix is an 8-byte big-endian sequence number, and they occupy exactly
// the sequence numbers [Head, Tail) of the key's metadata. Element i is at
// Head+i, so LINDEX and LSET are one point read or write; LPUSH takes
// Head-1 and RPUSH takes Tail, so pushes and pops are O(1) per element.
//
// Invariants:
//   - The sequence is dense: every seq in [Head, Tail) has a row, and no
//     row of the list's storage id lies outside it. Ops that remove from
//     the middle (LINSERT, LREM) renumber the shorter side to keep it so.
//   - A list that exists has Head < Tail; the op that removes its last
//     element calls collDone, which deletes the key (and, at writeTo2,
//     its rows with one range deletion).
//   - Every op here reads the list through the write set (elemGet,
//     elemIter), so it sees the ops before it in the same chunk.

// List ops: 60..79 (ops.go's family ranges).
const (
	// OpListPush pushes Values, in order, at the head (ListLeft: LPUSH, so
	// the last value ends up first) or the tail (RPUSH) of Keys[0]; with
	// ListXX only if the list exists (LPUSHX, RPUSHX). It replies the new
	// length (0 when ListXX found no list).
	OpListPush Op = 60
	// OpListPop pops from the head (ListLeft) or the tail. Its reply shape
	// depends on Flags:
	//   - none of ListCount, ListMulti, ListKeyed: one key, one element:
	//     the element or nil (LPOP key);
	//   - ListCount: one key, Delta >= 0 elements: an array of the popped
	//     elements (empty for Delta 0 on an existing list), nil when the
	//     key is missing (LPOP key count);
	//   - ListMulti: Keys in order, Delta >= 1: from the first key that
	//     exists, [key, [elements]], or nil when none does (LMPOP, BLMPOP);
	//   - ListKeyed: Keys in order, one element from the first key that
	//     exists: [key, element], or nil (BLPOP, BRPOP).
	// A key of another type met before a list answers WRONGTYPE.
	OpListPop Op = 61
	// OpListMove pops one element from Keys[0]'s head (ListLeft) or tail
	// and pushes it at Keys[1]'s head (ListDstLeft) or tail, atomically
	// (LMOVE, RPOPLPUSH, BLMOVE). It replies the element, or nil when
	// Keys[0] is missing; Keys[1] must be a list or missing, checked only
	// when Keys[0] exists (as Redis does). Keys[0] = Keys[1] rotates.
	OpListMove Op = 62
	// OpListSet sets element Delta (negative: from the tail) of Keys[0] to
	// Values[0] (LSET); OK, or "ERR no such key", "ERR index out of range".
	OpListSet Op = 63
	// OpListInsert inserts Values[1] before (ListLeft) or after the first
	// element equal to Values[0] in Keys[0] (LINSERT). It replies the new
	// length, -1 when the pivot is not found, 0 when the key is missing.
	OpListInsert Op = 64
	// OpListRem removes the elements equal to Values[0] from Keys[0]
	// (LREM): the first Delta from the head if Delta > 0, the last -Delta
	// from the tail if Delta < 0, all of them if 0. It replies how many.
	OpListRem Op = 65
	// OpListTrim keeps only elements Delta..stop of Keys[0], stop being
	// Values[0] as an 8-byte big-endian int64 (LTRIM); negative indexes
	// count from the tail. It replies OK.
	OpListTrim Op = 66
)

// List op flags (Command.Flags).
const (
	// ListLeft: push or pop at the head (LPUSH, LPOP, LMOVE's LEFT
	// source, LINSERT BEFORE).
	ListLeft SetFlags = 1 << iota
	// ListXX: OpListPush only to an existing list (LPUSHX, RPUSHX).
	ListXX
	// ListCount: OpListPop replies an array of up to Delta elements.
	ListCount
	// ListMulti: OpListPop replies [key, [elements]] from the first of
	// Keys that exists.
	ListMulti
	// ListKeyed: OpListPop replies [key, element] from the first of Keys
	// that exists.
	ListKeyed
	// ListDstLeft: OpListMove pushes at the destination's head.
	ListDstLeft
)

// List event names, as Redis's keyspace notifications name them.
const (
	EventLPush   = "lpush"
	EventRPush   = "rpush"
	EventLPop    = "lpop"
	EventRPop    = "rpop"
	EventLSet    = "lset"
	EventLInsert = "linsert"
	EventLRem    = "lrem"
	EventLTrim   = "ltrim"
)

// Redis error texts of the list commands.
const (
	ErrTextIndexRange    = "ERR index out of range"
	errTextListFull      = "ERR list has no room left at this end"
	listTrimStopBytes    = 8
	maxListMultiPopCount = 1<<62 - 1
)

func init() {
	registerOps(map[Op]*opSpec{
		OpListPush: {name: "LISTPUSH", minFormat: FormatV3, replies: intReply, validate: validateListPush,
			apply2: applyListPush},
		OpListPop: {name: "LISTPOP", minFormat: FormatV3, replies: []ResultKind{ResultBytes, ResultNil, ResultArray},
			validate: validateListPop, apply2: applyListPop},
		OpListMove: {name: "LISTMOVE", minFormat: FormatV3, replies: bytesOrNil, validate: validateListMove,
			apply2: applyListMove},
		OpListSet: {name: "LISTSET", minFormat: FormatV3, replies: okReply, validate: validateListSet,
			apply2: applyListSet},
		OpListInsert: {name: "LISTINSERT", minFormat: FormatV3, replies: intReply, validate: validateListInsert,
			apply2: applyListInsert},
		OpListRem: {name: "LISTREM", minFormat: FormatV3, replies: intReply, validate: validateListRem,
			apply2: applyListRem},
		OpListTrim: {name: "LISTTRIM", minFormat: FormatV3, replies: okReply, validate: validateListTrim,
			apply2: applyListTrim},
	})
}

// listSeq is the element-row suffix of sequence number seq.
func listSeq(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// parseListSeq decodes an element-row suffix of a list.
func parseListSeq(suffix []byte) (uint64, error) {
	if len(suffix) != 8 {
		return 0, fmt.Errorf("list element suffix of %d bytes: %w", len(suffix), ErrMalformed)
	}
	return binary.BigEndian.Uint64(suffix), nil
}

// NewListTrim builds LTRIM key start stop.
func NewListTrim(key []byte, start, stop int64) *Command {
	return &Command{Op: OpListTrim, Delta: start, Keys: [][]byte{key},
		Values: [][]byte{binary.BigEndian.AppendUint64(nil, uint64(stop))}}
}

// Validators: each accepts exactly the shapes its apply handles.

func onlyFlags(c *Command, allowed SetFlags) error {
	if c.Flags&^allowed != 0 {
		return fmt.Errorf("kv: op %d: unknown flags %#x", c.Op, c.Flags&^allowed)
	}
	return nil
}

func validateListPush(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) == 0 || c.Delta != 0 {
		return fmt.Errorf("kv: list push needs one key and at least one element")
	}
	return onlyFlags(c, ListLeft|ListXX)
}

func validateListPop(c *Command) error {
	if err := onlyFlags(c, ListLeft|ListCount|ListMulti|ListKeyed); err != nil {
		return err
	}
	if len(c.Keys) == 0 || len(c.Values) != 0 {
		return fmt.Errorf("kv: list pop needs keys and no values")
	}
	shape := c.Flags & (ListCount | ListMulti | ListKeyed)
	switch shape {
	case 0:
		if len(c.Keys) != 1 || c.Delta != 0 {
			return fmt.Errorf("kv: list pop of one element takes one key")
		}
	case ListCount:
		if len(c.Keys) != 1 || c.Delta < 0 {
			return fmt.Errorf("kv: list pop with a count takes one key and a count >= 0")
		}
	case ListMulti:
		if c.Delta < 1 || c.Delta > maxListMultiPopCount {
			return fmt.Errorf("kv: a multi-key list pop needs a count >= 1")
		}
	case ListKeyed:
		if c.Delta != 0 {
			return fmt.Errorf("kv: a keyed list pop takes no count")
		}
	default:
		return fmt.Errorf("kv: list pop: at most one of count, multi and keyed")
	}
	return nil
}

func validateListMove(c *Command) error {
	if len(c.Keys) != 2 || len(c.Values) != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: list move needs a source and a destination")
	}
	return onlyFlags(c, ListLeft|ListDstLeft)
}

func validateListSet(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 1 {
		return fmt.Errorf("kv: LSET needs one key and one element")
	}
	return onlyFlags(c, 0)
}

func validateListInsert(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 2 || c.Delta != 0 {
		return fmt.Errorf("kv: LINSERT needs one key, a pivot and an element")
	}
	return onlyFlags(c, ListLeft)
}

func validateListRem(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 1 {
		return fmt.Errorf("kv: LREM needs one key and one element")
	}
	return onlyFlags(c, 0)
}

func validateListTrim(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 1 || len(c.Values[0]) != listTrimStopBytes {
		return fmt.Errorf("kv: LTRIM needs one key and an 8-byte stop")
	}
	return onlyFlags(c, 0)
}

// loadList loads key as a list; wrong reports a WRONGTYPE reply.
func (w *writeSet) loadList(key []byte) (i int, wrong bool, err error) {
	i, err = w.loadColl(key, keyspace.TypeList)
	if errors.Is(err, errWrongType) {
		return i, true, nil
	}
	if err != nil {
		return i, false, fmt.Errorf("load list: %w", err)
	}
	return i, false, nil
}

// listBounds returns list i's [head, tail).
func (w *writeSet) listBounds(i int) (head, tail uint64) {
	m := w.collMeta(i)
	return m.Head, m.Tail
}

// listPush pushes vals at one end of list i (which exists) and returns
// the new length.
func (w *writeSet) listPush(i int, left bool, vals [][]byte) (int64, bool, error) {
	head, tail := w.listBounds(i)
	n := uint64(len(vals))
	// 2^63 pushes of at least one log byte each cannot happen; the check
	// keeps the arithmetic honest anyway.
	if (left && head < n) || (!left && tail > ^uint64(0)-n) {
		return 0, false, nil
	}
	for _, v := range vals {
		var seq uint64
		if left {
			head--
			seq = head
		} else {
			seq = tail
			tail++
		}
		if err := w.elemSet(i, listSeq(seq), v); err != nil {
			return 0, false, err
		}
	}
	w.collSetBounds(i, head, tail)
	w.collTouch(i)
	return int64(tail - head), true, nil
}

func applyListPush(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	key := c.Keys[0]
	i, wrong, err := w.loadList(key)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(i) {
		if c.Flags&ListXX != 0 {
			return Result{Kind: ResultInt, Int: 0}, nil
		}
		w.createColl(i, keyspace.TypeList)
	}
	left := c.Flags&ListLeft != 0
	n, ok, err := w.listPush(i, left, c.Values)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		w.collDone(i) // a list created here for nothing goes away again
		return Result{Kind: ResultError, Err: errTextListFull}, nil
	}
	if left {
		w.event(key, EventLPush)
	} else {
		w.event(key, EventRPush)
	}
	return Result{Kind: ResultInt, Int: n}, nil
}

// listPopN removes up to n elements from one end of list i (which
// exists) and returns them in pop order. It leaves the key to collDone.
func (w *writeSet) listPopN(i int, left bool, n uint64) ([][]byte, error) {
	head, tail := w.listBounds(i)
	n = min(n, tail-head)
	if n == 0 {
		return [][]byte{}, nil
	}
	lo, hi := head, head+n
	if !left {
		lo, hi = tail-n, tail
	}
	out := make([][]byte, 0, n)
	err := w.elemIter(i, listSeq(lo), listSeq(hi), !left, func(_, val []byte) (bool, error) {
		out = append(out, bytes.Clone(val))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != n {
		return nil, fmt.Errorf("list %q: %d rows in [%d, %d): %w", w.k2[i], len(out), lo, hi, ErrCorrupt)
	}
	if n == 1 {
		err = w.elemDel(i, listSeq(lo))
	} else {
		err = w.elemDelRange(i, listSeq(lo), listSeq(hi))
	}
	if err != nil {
		return nil, err
	}
	if left {
		head += n
	} else {
		tail -= n
	}
	w.collSetBounds(i, head, tail)
	w.collTouch(i)
	return out, nil
}

// listPopped emits the events of a pop from key and deletes the list if
// the pop emptied it.
func (w *writeSet) listPopped(i int, key []byte, left bool) {
	if left {
		w.event(key, EventLPop)
	} else {
		w.event(key, EventRPop)
	}
	if w.collDone(i) {
		w.event(key, EventDel)
	}
}

func applyListPop(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	left := c.Flags&ListLeft != 0
	for _, key := range c.Keys {
		i, wrong, err := w.loadList(key)
		if err != nil || wrong {
			return wrongType(), err
		}
		if !w.collExists(i) {
			continue
		}
		var n uint64 = 1
		if c.Flags&(ListCount|ListMulti) != 0 {
			n = uint64(c.Delta)
		}
		if n == 0 {
			// LPOP key 0 on an existing list: an empty array, no change.
			return Result{Kind: ResultArray}, nil
		}
		vals, err := w.listPopN(i, left, n)
		if err != nil {
			return Result{}, err
		}
		w.listPopped(i, key, left)
		switch {
		case c.Flags&ListCount != 0:
			return Result{Kind: ResultArray, Batch: bytesResults(vals)}, nil
		case c.Flags&ListMulti != 0:
			return Result{Kind: ResultArray, Batch: []Result{
				{Kind: ResultBytes, Bytes: bytes.Clone(key)},
				{Kind: ResultArray, Batch: bytesResults(vals)},
			}}, nil
		case c.Flags&ListKeyed != 0:
			return Result{Kind: ResultArray, Batch: []Result{
				{Kind: ResultBytes, Bytes: bytes.Clone(key)},
				{Kind: ResultBytes, Bytes: vals[0]},
			}}, nil
		default:
			return Result{Kind: ResultBytes, Bytes: vals[0]}, nil
		}
	}
	return Result{Kind: ResultNil}, nil
}

// bytesResults wraps each value as a bulk-string result.
func bytesResults(vals [][]byte) []Result {
	out := make([]Result, len(vals))
	for k, v := range vals {
		out[k] = Result{Kind: ResultBytes, Bytes: v}
	}
	return out
}

func applyListMove(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	src, dst := c.Keys[0], c.Keys[1]
	si, wrong, err := w.loadList(src)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(si) {
		return Result{Kind: ResultNil}, nil
	}
	di, wrong, err := w.loadList(dst)
	if err != nil || wrong {
		return wrongType(), err
	}
	fromLeft, toLeft := c.Flags&ListLeft != 0, c.Flags&ListDstLeft != 0
	vals, err := w.listPopN(si, fromLeft, 1)
	if err != nil {
		return Result{}, err
	}
	// The source is not deleted yet even if the pop emptied it: with src
	// = dst the push below refills it, and collDone decides at the end.
	if !w.collExists(di) {
		w.createColl(di, keyspace.TypeList)
	}
	if _, ok, err := w.listPush(di, toLeft, vals); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("list %q: no room for a moved element: %w", dst, ErrCorrupt)
		}
		return Result{}, err
	}
	if toLeft {
		w.event(dst, EventLPush)
	} else {
		w.event(dst, EventRPush)
	}
	w.listPopped(si, src, fromLeft)
	return Result{Kind: ResultBytes, Bytes: vals[0]}, nil
}

// listIndex maps Redis index idx (negative: from the tail) of a list of
// length n to an offset from the head, and whether it is in range.
func listIndex(idx int64, n uint64) (uint64, bool) {
	if idx < 0 {
		// -idx cannot overflow int64 and uint64 holds it: n < 2^64.
		neg := uint64(-(idx + 1)) + 1
		if neg > n {
			return 0, false
		}
		return n - neg, true
	}
	if uint64(idx) >= n {
		return 0, false
	}
	return uint64(idx), true
}

func applyListSet(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	key := c.Keys[0]
	i, wrong, err := w.loadList(key)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultError, Err: ErrTextNoSuchKey}, nil
	}
	head, tail := w.listBounds(i)
	off, ok := listIndex(c.Delta, tail-head)
	if !ok {
		return Result{Kind: ResultError, Err: ErrTextIndexRange}, nil
	}
	if err := w.elemSet(i, listSeq(head+off), c.Values[0]); err != nil {
		return Result{}, err
	}
	w.collTouch(i)
	w.event(key, EventLSet)
	return Result{Kind: ResultOK}, nil
}

// listRows reads the elements at offsets [lo, hi) of list i.
func (w *writeSet) listRows(i int, lo, hi uint64) ([][]byte, error) {
	head, _ := w.listBounds(i)
	out := make([][]byte, 0, hi-lo)
	err := w.elemIter(i, listSeq(head+lo), listSeq(head+hi), false, func(_, val []byte) (bool, error) {
		out = append(out, bytes.Clone(val))
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != hi-lo {
		return nil, fmt.Errorf("list %q: %d rows at offsets [%d, %d): %w", w.k2[i], len(out), lo, hi, ErrCorrupt)
	}
	return out, nil
}

func applyListInsert(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	key := c.Keys[0]
	i, wrong, err := w.loadList(key)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	head, tail := w.listBounds(i)
	n := tail - head
	pivot := c.Values[0]
	// Find the pivot, keeping what precedes it: if the insertion point is
	// nearer the head, those are the rows that move.
	var before [][]byte
	var pos uint64
	found := false
	err = w.elemIter(i, listSeq(head), listSeq(tail), false, func(_, val []byte) (bool, error) {
		if bytes.Equal(val, pivot) {
			found = true
			return false, nil
		}
		pos++
		if pos <= n/2+1 {
			before = append(before, bytes.Clone(val))
		} else {
			before = nil
		}
		return true, nil
	})
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Kind: ResultInt, Int: -1}, nil
	}
	q := pos // the new element's offset
	if c.Flags&ListLeft == 0 {
		q = pos + 1
		if before != nil {
			before = append(before, bytes.Clone(pivot))
		}
	}
	elem := c.Values[1]
	if q <= n-q {
		// Shift [0, q) one step towards the head: q rewrites.
		if head == 0 {
			return Result{Kind: ResultError, Err: errTextListFull}, nil
		}
		if uint64(len(before)) != q {
			if before, err = w.listRows(i, 0, q); err != nil {
				return Result{}, err
			}
		}
		if err := w.listSetRun(i, head-1, before); err != nil {
			return Result{}, err
		}
		if err := w.elemSet(i, listSeq(head-1+q), elem); err != nil {
			return Result{}, err
		}
		head--
	} else {
		// Shift [q, n) one step towards the tail: n-q rewrites.
		if tail == ^uint64(0) {
			return Result{Kind: ResultError, Err: errTextListFull}, nil
		}
		after, err := w.listRows(i, q, n)
		if err != nil {
			return Result{}, err
		}
		if err := w.listSetRun(i, head+q+1, after); err != nil {
			return Result{}, err
		}
		if err := w.elemSet(i, listSeq(head+q), elem); err != nil {
			return Result{}, err
		}
		tail++
	}
	w.collSetBounds(i, head, tail)
	w.collTouch(i)
	w.event(key, EventLInsert)
	return Result{Kind: ResultInt, Int: int64(tail - head)}, nil
}

// listSetRun writes rows at consecutive sequence numbers from seq: a run
// of elements that LINSERT moved one step.
func (w *writeSet) listSetRun(i int, seq uint64, rows [][]byte) error {
	for j, v := range rows {
		if err := w.elemSet(i, listSeq(seq+uint64(j)), v); err != nil {
			return err
		}
	}
	return nil
}

func applyListRem(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	key := c.Keys[0]
	i, wrong, err := w.loadList(key)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	head, tail := w.listBounds(i)
	n := tail - head
	elem := c.Values[0]
	fromTail := c.Delta < 0
	limit := uint64(0) // 0: no limit
	if c.Delta > 0 {
		limit = uint64(c.Delta)
	} else if c.Delta < 0 {
		limit = uint64(-(c.Delta + 1)) + 1
	}
	// The offsets of the matches, ascending.
	var gone []uint64
	err = w.elemIter(i, listSeq(head), listSeq(tail), fromTail, func(suffix, val []byte) (bool, error) {
		if !bytes.Equal(val, elem) {
			return true, nil
		}
		seq, err := parseListSeq(suffix)
		if err != nil {
			return false, err
		}
		gone = append(gone, seq-head)
		return limit == 0 || uint64(len(gone)) < limit, nil
	})
	if err != nil {
		return Result{}, err
	}
	k := uint64(len(gone))
	if k == 0 {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	if fromTail {
		for a, b := 0, len(gone)-1; a < b; a, b = a+1, b-1 {
			gone[a], gone[b] = gone[b], gone[a]
		}
	}
	if k == n {
		w.collSetBounds(i, head, head)
	} else if err := w.listCompact(i, gone); err != nil {
		return Result{}, err
	}
	w.collTouch(i)
	w.event(key, EventLRem)
	if w.collDone(i) {
		w.event(key, EventDel)
	}
	return Result{Kind: ResultInt, Int: int64(k)}, nil
}

// listCompact removes the elements at offsets gone (ascending, at least
// one, not all) from list i and closes the gaps by moving the side that
// costs fewer rewrites: the elements before the last gap move towards the
// tail, or those after the first gap move towards the head.
func (w *writeSet) listCompact(i int, gone []uint64) error {
	head, tail := w.listBounds(i)
	n, k := tail-head, uint64(len(gone))
	first, last := gone[0], gone[len(gone)-1]
	if last+1 <= n-first {
		// Rows [0, last) shift towards the tail past the gaps after them.
		rows, err := w.listRows(i, 0, last)
		if err != nil {
			return err
		}
		g := len(gone) - 1 // gone[g] is the next gap at or below j
		shift := uint64(1)
		for j := int64(last) - 1; j >= 0; j-- {
			if g > 0 && uint64(j) == gone[g-1] {
				g--
				shift++
				continue
			}
			if err := w.elemSet(i, listSeq(head+uint64(j)+shift), rows[j]); err != nil {
				return err
			}
		}
		if err := w.elemDelRange(i, listSeq(head), listSeq(head+k)); err != nil {
			return err
		}
		w.collSetBounds(i, head+k, tail)
		return nil
	}
	// Rows (first, n) shift towards the head past the gaps before them.
	rows, err := w.listRows(i, first+1, n)
	if err != nil {
		return err
	}
	g := 1 // gone[g] is the next gap above j
	shift := uint64(1)
	for j := first + 1; j < n; j++ {
		if g < len(gone) && j == gone[g] {
			g++
			shift++
			continue
		}
		if err := w.elemSet(i, listSeq(head+j-shift), rows[j-first-1]); err != nil {
			return err
		}
	}
	if err := w.elemDelRange(i, listSeq(tail-k), listSeq(tail)); err != nil {
		return err
	}
	w.collSetBounds(i, head, tail-k)
	return nil
}

// listTrimRange maps LTRIM's (or LRANGE's) start and stop on a list of
// length n to offsets [lo, hi), empty when lo >= hi.
func listTrimRange(start, stop int64, n uint64) (lo, hi uint64) {
	ln := int64(min(n, 1<<62)) // a real list is far shorter
	if start < 0 {
		start = max(start+ln, 0)
	}
	if stop < 0 {
		stop += ln
	}
	if start > stop || start >= ln {
		return 0, 0
	}
	if stop >= ln {
		stop = ln - 1
	}
	return uint64(start), uint64(stop) + 1
}

func applyListTrim(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	key := c.Keys[0]
	i, wrong, err := w.loadList(key)
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultOK}, nil
	}
	stop := int64(binary.BigEndian.Uint64(c.Values[0]))
	head, tail := w.listBounds(i)
	lo, hi := listTrimRange(c.Delta, stop, tail-head)
	if lo >= hi {
		w.collSetBounds(i, head, head)
	} else {
		if lo > 0 {
			if err := w.elemDelRange(i, listSeq(head), listSeq(head+lo)); err != nil {
				return Result{}, err
			}
		}
		if head+hi < tail {
			if err := w.elemDelRange(i, listSeq(head+hi), listSeq(tail)); err != nil {
				return Result{}, err
			}
		}
		w.collSetBounds(i, head+lo, head+hi)
	}
	w.collTouch(i)
	w.event(key, EventLTrim)
	if w.collDone(i) {
		w.event(key, EventDel)
	}
	return Result{Kind: ResultOK}, nil
}

// The read side. Each function runs inside a View callback; a key of
// another type gives an error that errors.Is ErrWrongType.

// ListLen returns the length of the list at key (0 when missing).
func ListLen(v View, key []byte) (int64, error) {
	c, ok, err := v.Collection(key, keyspace.TypeList)
	if err != nil || !ok {
		return 0, err
	}
	m := c.Meta()
	return int64(m.Tail - m.Head), nil
}

// ListIndex returns element idx (negative: from the tail) of the list at
// key, and false when the key is missing or idx out of range.
func ListIndex(v View, key []byte, idx int64) ([]byte, bool, error) {
	c, ok, err := v.Collection(key, keyspace.TypeList)
	if err != nil || !ok {
		return nil, false, err
	}
	m := c.Meta()
	off, ok := listIndex(idx, m.Tail-m.Head)
	if !ok {
		return nil, false, nil
	}
	val, found, err := c.Get(listSeq(m.Head + off))
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, fmt.Errorf("list %q: no row at offset %d: %w", key, off, ErrCorrupt)
	}
	return val, true, nil
}

// ListRange calls fn with each element of LRANGE key start stop, in
// order, until fn returns false. It reports whether the key exists. The
// slice is valid only during the call.
func ListRange(v View, key []byte, start, stop int64, fn func(elem []byte) bool) (bool, error) {
	c, ok, err := v.Collection(key, keyspace.TypeList)
	if err != nil || !ok {
		return false, err
	}
	m := c.Meta()
	lo, hi := listTrimRange(start, stop, m.Tail-m.Head)
	if lo >= hi {
		return true, nil
	}
	err = c.Iter(listSeq(m.Head+lo), listSeq(m.Head+hi), false, func(_, val []byte) bool { return fn(val) })
	return true, err
}

// ListPosQuery is LPOS's options: Rank (not 0; negative searches from the
// tail), Count (0: every match) and MaxLen (0: the whole list).
type ListPosQuery struct {
	Rank, Count, MaxLen int64
}

// ListPos returns the offsets (from the head) of the elements equal to
// elem that LPOS key elem with q selects, in the order found, at most
// q.Count of them (all with Count 0).
func ListPos(v View, key, elem []byte, q ListPosQuery) ([]int64, error) {
	c, ok, err := v.Collection(key, keyspace.TypeList)
	if err != nil || !ok {
		return nil, err
	}
	m := c.Meta()
	reverse := q.Rank < 0
	skip := q.Rank - 1
	if reverse {
		skip = -q.Rank - 1
	}
	var out []int64
	var seen int64
	var perr error
	err = c.Iter(nil, nil, reverse, func(suffix, val []byte) bool {
		if q.MaxLen > 0 && seen >= q.MaxLen {
			return false
		}
		seen++
		if !bytes.Equal(val, elem) {
			return true
		}
		if skip > 0 {
			skip--
			return true
		}
		seq, err := parseListSeq(suffix)
		if err != nil {
			perr = err
			return false
		}
		out = append(out, int64(seq-m.Head))
		return q.Count == 0 || int64(len(out)) < q.Count
	})
	if err == nil {
		err = perr
	}
	return out, err
}
