package kv

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Sets (issue #15), at cluster format 3. A set is a collection whose
// element rows are its members: the row suffix is the member and the row
// value is empty (docs/keyspace.md), so members iterate in byte order and
// SADD, SREM, SISMEMBER touch one row each. The metadata's Len is the
// number of members (SCARD, O(1)).
//
// Randomness never enters apply. SRANDMEMBER is a read. SPOP chooses
// before it proposes: the node reads the set, picks members uniformly and
// proposes OpSPop naming exactly those members together with the set's
// LastWrite stamp as it read it; apply removes them only if the set still
// has that stamp (no write changed it since the read), and otherwise
// replies ErrTextSPopRetry, which the Redis layer answers by reading and
// choosing again (a bounded number of times). A set that other clients
// keep writing (producers SADD while consumers SPOP) could starve that
// condition, so after the first retries the Redis layer proposes with
// SPopIfPresent: the chosen members are popped if all of them are still
// there. The pop is then uniform over the set as it was read, which
// differs from the set at apply only by the writes that raced it. A pop
// of at least the whole set needs no choice and applies unconditionally.
//
// The ...STORE forms and SMOVE are single ops computed on apply from the
// rows (elemIter, elemGet): deterministic, O(sizes of the sets read).
//
// Invariants: as for hashes (hash.go), Len equals the number of member
// rows, and an op that removes members calls collDone last.

// Set ops (range 30..39; numbers are part of the log format).
const (
	// OpSAdd adds the members in Values (at least one) to the set
	// Keys[0], creating it; it replies the number that were new.
	OpSAdd Op = 30
	// OpSRem removes the members in Values (at least one) from the set
	// Keys[0]; it replies the number that were there.
	OpSRem Op = 31
	// OpSPop pops from the set Keys[0]: Delta (>= 1) is the count asked
	// for, Values[0] the set's LastWrite stamp when the proposer read it
	// (keyspace.AppendStamp) and Values[1:] the members it chose. If the
	// set has at most Delta members, all of them are popped whatever the
	// stamp; otherwise the chosen members are popped only if the stamp is
	// unchanged (with SPopIfPresent: if every chosen member is still
	// there), else the reply is the error ErrTextSPopRetry and nothing
	// changes. With SPopCount the reply is an array (SPOP key count),
	// without it (Delta must be 1) the member or nil.
	OpSPop Op = 32
	// OpSMove moves member Values[0] from the set Keys[0] to the set
	// Keys[1]; it replies 1 if the member was in the source, else 0.
	OpSMove Op = 33
	// OpSStore stores in Keys[0] the intersection (SetInter), union
	// (SetUnion) or difference (SetDiff) of the sets Keys[1:], replacing
	// whatever Keys[0] held (an empty result deletes it); it replies the
	// result's size.
	OpSStore Op = 34
)

// OpSPop and OpSStore flags.
const (
	// SPopCount: SPOP was given a count; reply an array.
	SPopCount SetFlags = 1 << 0
	// SPopIfPresent: pop the chosen members if every one of them is still
	// in the set, whatever the stamp (the fallback after stamp retries).
	SPopIfPresent SetFlags = 1 << 1

	SetInter SetFlags = 1 << 0 // OpSStore: SINTERSTORE
	SetUnion SetFlags = 1 << 1 // OpSStore: SUNIONSTORE
	SetDiff  SetFlags = 1 << 2 // OpSStore: SDIFFSTORE
)

// ErrTextSPopRetry is OpSPop's reply when the set changed between the
// proposer's read and the apply. The Redis layer retries on it; a client
// sees it only when the retries ran out.
const ErrTextSPopRetry = "TRYAGAIN the set changed while SPOP chose its members; retry"

// Event names of the set ops, as Redis's keyspace notifications name them.
const (
	EventSAdd        = "sadd"
	EventSRem        = "srem"
	EventSPop        = "spop"
	EventSInterStore = "sinterstore"
	EventSUnionStore = "sunionstore"
	EventSDiffStore  = "sdiffstore"
)

var (
	spopReplies  = []ResultKind{ResultBytes, ResultNil, ResultArray}
	sstoreEvents = map[SetFlags]string{SetInter: EventSInterStore, SetUnion: EventSUnionStore, SetDiff: EventSDiffStore}
)

func init() {
	registerOps(map[Op]*opSpec{
		OpSAdd: {name: "SADD", minFormat: FormatV3, replies: intReply, validate: validateSet2,
			apply2: withoutBatch(applySAdd)},
		OpSRem: {name: "SREM", minFormat: FormatV3, replies: intReply, validate: validateSet2,
			apply2: withoutBatch(applySRem)},
		OpSPop: {name: "SPOP", minFormat: FormatV3, replies: spopReplies, validate: validateSet2,
			apply2: withoutBatch(applySPop)},
		OpSMove: {name: "SMOVE", minFormat: FormatV3, replies: intReply, validate: validateSet2,
			apply2: withoutBatch(applySMove)},
		OpSStore: {name: "SSTORE", minFormat: FormatV3, replies: intReply, validate: validateSet2,
			apply2: withoutBatch(applySStore)},
	})
}

// validateSet2 checks the shape of the set ops.
func validateSet2(c *Command) error {
	switch c.Op {
	case OpSAdd, OpSRem:
		if len(c.Keys) != 1 || len(c.Values) == 0 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: op %d needs one key and at least one member", c.Op)
		}
	case OpSPop:
		if len(c.Keys) != 1 || len(c.Values) == 0 || len(c.Values[0]) != keyspace.StampLen || c.Flags&^(SPopCount|SPopIfPresent) != 0 {
			return fmt.Errorf("kv: SPOP needs one key and a stamp")
		}
		if c.Delta < 1 || int64(len(c.Values)-1) > c.Delta || (c.Flags&SPopCount == 0 && c.Delta != 1) {
			return fmt.Errorf("kv: SPOP of %d with %d members chosen", c.Delta, len(c.Values)-1)
		}
	case OpSMove:
		if len(c.Keys) != 2 || len(c.Values) != 1 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: SMOVE needs two keys and a member")
		}
	case OpSStore:
		if len(c.Keys) < 2 || len(c.Values) != 0 || c.Delta != 0 || sstoreEvents[c.Flags] == "" {
			return fmt.Errorf("kv: a set store needs a destination, sources and one operation")
		}
	default:
		return fmt.Errorf("kv: op %d is not a set op", c.Op)
	}
	return nil
}

// loadSet loads key as a set (missing or a set); ok is false, with the
// WRONGTYPE reply in r, for a key of another type.
func (w *writeSet) loadSet(key []byte) (i int, r Result, ok bool, err error) {
	i, err = w.loadColl(key, keyspace.TypeSet)
	if errors.Is(err, errWrongType) {
		return i, wrongType(), false, nil
	}
	if err != nil {
		return i, Result{}, false, err
	}
	return i, Result{}, true, nil
}

// setAdd adds member to set i (which exists) and reports whether it was
// new; the caller adjusts Len.
func (w *writeSet) setAdd(i int, member []byte) (bool, error) {
	_, found, err := w.elemGet(i, member)
	if err != nil || found {
		return false, err
	}
	return true, w.elemSet(i, member, nil)
}

// setRem removes member from set i and reports whether it was there; the
// caller adjusts Len.
func (w *writeSet) setRem(i int, member []byte) (bool, error) {
	_, found, err := w.elemGet(i, member)
	if err != nil || !found {
		return false, err
	}
	return true, w.elemDel(i, member)
}

func applySAdd(w *writeSet, c *Command) (Result, error) {
	i, r, ok, err := w.loadSet(c.Keys[0])
	if !ok {
		return r, err
	}
	if !w.collExists(i) {
		w.createColl(i, keyspace.TypeSet)
	}
	var added uint64
	for _, m := range c.Values {
		isNew, err := w.setAdd(i, m)
		if err != nil {
			return Result{}, err
		}
		if isNew {
			added++
		}
	}
	if added > 0 {
		w.collSetLen(i, w.collMeta(i).Len+added)
		w.collTouch(i)
		w.event(c.Keys[0], EventSAdd)
	}
	return Result{Kind: ResultInt, Int: int64(added)}, nil
}

func applySRem(w *writeSet, c *Command) (Result, error) {
	i, r, ok, err := w.loadSet(c.Keys[0])
	if !ok {
		return r, err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	var removed uint64
	for _, m := range c.Values {
		was, err := w.setRem(i, m)
		if err != nil {
			return Result{}, err
		}
		if was {
			removed++
		}
	}
	if removed > 0 {
		w.collSetLen(i, w.collMeta(i).Len-removed)
		w.collTouch(i)
		w.event(c.Keys[0], EventSRem)
		if w.collDone(i) {
			w.event(c.Keys[0], EventDel)
		}
	}
	return Result{Kind: ResultInt, Int: int64(removed)}, nil
}

// collectMembers returns copies of set i's members, in byte order.
func (w *writeSet) collectMembers(i int) ([][]byte, error) {
	var out [][]byte
	err := w.elemIter(i, nil, nil, false, func(m, _ []byte) (bool, error) {
		out = append(out, bytes.Clone(m))
		return true, nil
	})
	return out, err
}

func applySPop(w *writeSet, c *Command) (Result, error) {
	counted := c.Flags&SPopCount != 0
	i, r, ok, err := w.loadSet(c.Keys[0])
	if !ok {
		return r, err
	}
	if !w.collExists(i) {
		if counted {
			return Result{Kind: ResultArray}, nil
		}
		return Result{Kind: ResultNil}, nil
	}
	m := w.collMeta(i)
	var popped [][]byte
	if m.Len <= uint64(c.Delta) {
		// The whole set: no choice was needed, so no stamp is checked.
		if popped, err = w.collectMembers(i); err != nil {
			return Result{}, err
		}
		w.del2(i)
		w.event(c.Keys[0], EventSPop)
		w.event(c.Keys[0], EventDel)
	} else {
		want, perr := keyspace.ParseStamp(c.Values[0])
		if perr != nil {
			return Result{}, fmt.Errorf("spop: %w", perr) // validate checked the length
		}
		if c.Flags&SPopIfPresent == 0 && m.LastWrite != want {
			return Result{Kind: ResultError, Err: ErrTextSPopRetry}, nil
		}
		if c.Flags&SPopIfPresent != 0 {
			for _, mem := range c.Values[1:] {
				_, found, err := w.elemGet(i, mem)
				if err != nil {
					return Result{}, err
				}
				if !found {
					return Result{Kind: ResultError, Err: ErrTextSPopRetry}, nil
				}
			}
		}
		for _, mem := range c.Values[1:] {
			was, err := w.setRem(i, mem)
			if err != nil {
				return Result{}, err
			}
			if was {
				popped = append(popped, mem)
			}
		}
		if len(popped) > 0 {
			w.collSetLen(i, m.Len-uint64(len(popped)))
			w.collTouch(i)
			w.event(c.Keys[0], EventSPop)
			if w.collDone(i) {
				w.event(c.Keys[0], EventDel)
			}
		}
	}
	if !counted {
		if len(popped) == 0 {
			return Result{Kind: ResultNil}, nil
		}
		return Result{Kind: ResultBytes, Bytes: bytes.Clone(popped[0])}, nil
	}
	out := Result{Kind: ResultArray, Batch: make([]Result, len(popped))}
	for k, mem := range popped {
		out.Batch[k] = Result{Kind: ResultBytes, Bytes: bytes.Clone(mem)}
	}
	return out, nil
}

// applySMove follows Redis's order: a missing source replies 0 before any
// type check; then both keys must be sets (or the destination missing).
func applySMove(w *writeSet, c *Command) (Result, error) {
	src, dst, member := c.Keys[0], c.Keys[1], c.Values[0]
	si, err := w.load(src)
	if err != nil {
		return Result{}, err
	}
	if !w.collExists(si) {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	si, r, ok, err := w.loadSet(src)
	if !ok {
		return r, err
	}
	di, r, ok, err := w.loadSet(dst)
	if !ok {
		return r, err
	}
	if si == di {
		_, found, err := w.elemGet(si, member)
		if err != nil {
			return Result{}, err
		}
		return Result{Kind: ResultInt, Int: boolInt(found)}, nil
	}
	was, err := w.setRem(si, member)
	if err != nil {
		return Result{}, err
	}
	if !was {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	w.collSetLen(si, w.collMeta(si).Len-1)
	w.collTouch(si)
	w.event(src, EventSRem)
	if w.collDone(si) {
		w.event(src, EventDel)
	}
	if !w.collExists(di) {
		w.createColl(di, keyspace.TypeSet)
	}
	isNew, err := w.setAdd(di, member)
	if err != nil {
		return Result{}, err
	}
	if isNew {
		w.collSetLen(di, w.collMeta(di).Len+1)
		w.collTouch(di)
		w.event(dst, EventSAdd)
	}
	return Result{Kind: ResultInt, Int: 1}, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// applySStore computes the result into memory from the sources (the
// destination may be one of them), then replaces the destination with a
// new set under a fresh storage id: O(sizes of the sources read).
func applySStore(w *writeSet, c *Command) (Result, error) {
	dst := c.Keys[0]
	srcs := make([]memberSource, len(c.Keys)-1)
	for k, key := range c.Keys[1:] {
		i, r, ok, err := w.loadSet(key)
		if !ok {
			return r, err
		}
		if w.collExists(i) {
			srcs[k] = wsSet{w: w, i: i}
		}
	}
	var out [][]byte
	err := setAlgebra(c.Flags, srcs, 0, func(m []byte) {
		out = append(out, bytes.Clone(m))
	})
	if err != nil {
		return Result{}, err
	}
	di, err := w.load(dst)
	if err != nil {
		return Result{}, err
	}
	existed := w.s2[di].exists
	w.del2(di)
	if len(out) == 0 {
		if existed {
			w.event(dst, EventDel)
		}
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	w.createColl(di, keyspace.TypeSet)
	for _, m := range out {
		if err := w.elemSet(di, m, nil); err != nil {
			return Result{}, err
		}
	}
	w.collSetLen(di, uint64(len(out)))
	w.event(dst, sstoreEvents[c.Flags])
	return Result{Kind: ResultInt, Int: int64(len(out))}, nil
}

// memberSource is one set as the set algebra reads it, on apply (wsSet)
// or in a view (Set). A nil memberSource is a missing key: empty.
type memberSource interface {
	size() uint64
	has(member []byte) (bool, error)
	// each calls fn with every member in byte order until fn returns
	// false; the slice is valid only during the call.
	each(fn func(member []byte) bool) error
}

// wsSet is set i of a write set.
type wsSet struct {
	w *writeSet
	i int
}

func (s wsSet) size() uint64 { return s.w.collMeta(s.i).Len }

func (s wsSet) has(m []byte) (bool, error) {
	_, found, err := s.w.elemGet(s.i, m)
	return found, err
}

func (s wsSet) each(fn func(m []byte) bool) error {
	return s.w.elemIter(s.i, nil, nil, false, func(m, _ []byte) (bool, error) { return fn(m), nil })
}

// setAlgebra calls emit with each member of the intersection (SetInter),
// union (SetUnion) or difference (SetDiff: the first set minus the
// others) of srcs, each member once, stopping after limit members when
// limit > 0. Intersection walks the smallest set and probes the others
// (O(smallest x sets)); union walks them all, keeping the members seen in
// a map used only for lookups (emission follows the sets' byte order, set
// by set, so the output is deterministic); difference walks the first and
// probes the others.
func setAlgebra(op SetFlags, srcs []memberSource, limit int, emit func(m []byte)) error {
	n := 0
	full := func() bool { return limit > 0 && n >= limit }
	var ferr error
	switch op {
	case SetInter:
		small := -1
		for k, s := range srcs {
			if s == nil {
				return nil // a missing key is empty: so is the intersection
			}
			if small < 0 || s.size() < srcs[small].size() {
				small = k
			}
		}
		if small < 0 {
			return nil
		}
		err := srcs[small].each(func(m []byte) bool {
			for k, o := range srcs {
				if k == small {
					continue
				}
				in, err := o.has(m)
				if err != nil {
					ferr = err
					return false
				}
				if !in {
					return true
				}
			}
			emit(m)
			n++
			return !full()
		})
		if err != nil {
			return err
		}
	case SetUnion:
		seen := make(map[string]struct{})
		for _, s := range srcs {
			if s == nil {
				continue
			}
			err := s.each(func(m []byte) bool {
				if _, dup := seen[string(m)]; dup {
					return true
				}
				seen[string(m)] = struct{}{}
				emit(m)
				n++
				return !full()
			})
			if err != nil {
				return err
			}
			if full() {
				break
			}
		}
	case SetDiff:
		if len(srcs) == 0 || srcs[0] == nil {
			return nil
		}
		err := srcs[0].each(func(m []byte) bool {
			for _, o := range srcs[1:] {
				if o == nil {
					continue
				}
				in, err := o.has(m)
				if err != nil {
					ferr = err
					return false
				}
				if in {
					return true
				}
			}
			emit(m)
			n++
			return !full()
		})
		if err != nil {
			return err
		}
	default:
		return fmt.Errorf("kv: set operation %d", op)
	}
	return ferr
}

// Set is a live set read inside a View callback (OpenSet); like the
// View, it is valid only during that callback.
type Set struct{ c Coll }

// OpenSet finds key as a set: false if key is missing, an error that
// errors.Is ErrWrongType if it holds another type.
func OpenSet(v View, key []byte) (Set, bool, error) {
	c, ok, err := v.Collection(key, keyspace.TypeSet)
	if err != nil || !ok {
		return Set{}, false, err
	}
	return Set{c: c}, true, nil
}

// Len is the number of members, O(1) (metadata).
func (s Set) Len() uint64 { return s.c.Meta().Len }

// Meta is the set's metadata (expiry, stamps: SPOP proposes LastWrite).
func (s Set) Meta() keyspace.Meta { return s.c.Meta() }

// Has reports whether member is in the set: one point read.
func (s Set) Has(member []byte) (bool, error) {
	_, found, err := s.c.Get(member)
	return found, err
}

// Iter calls fn with each member at or after from (nil: the first), in
// byte order, until fn returns false. The slice is valid only during the
// call.
func (s Set) Iter(from []byte, fn func(member []byte) bool) error {
	return s.c.Iter(from, nil, false, func(m, _ []byte) bool { return fn(m) })
}

func (s Set) size() uint64                      { return s.Len() }
func (s Set) has(m []byte) (bool, error)        { return s.Has(m) }
func (s Set) each(fn func(m []byte) bool) error { return s.Iter(nil, fn) }

// SetOp reads the sets keys in v and calls emit with each member of
// their intersection (SetInter), union (SetUnion) or difference
// (SetDiff), each once, at most limit members when limit > 0 (SINTERCARD
// LIMIT). Every key is checked first: one of another type gives an error
// that errors.Is ErrWrongType, as in Redis; a missing key is an empty
// set. The members come in a deterministic order (see setAlgebra); sort
// them for byte order.
func SetOp(v View, op SetFlags, keys [][]byte, limit int, emit func(member []byte)) error {
	srcs := make([]memberSource, len(keys))
	for k, key := range keys {
		s, ok, err := OpenSet(v, key)
		if err != nil {
			return err
		}
		if ok {
			srcs[k] = s
		}
	}
	return setAlgebra(op, srcs, limit, emit)
}

// SortMembers sorts members in byte order, for replies.
func SortMembers(members [][]byte) { slices.SortFunc(members, bytes.Compare) }
