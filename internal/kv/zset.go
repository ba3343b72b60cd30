package kv

import (
	"errors"
	"fmt"
	"math"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Sorted sets (issue #15): the ops and their apply. A sorted set's rows
// are its member index (member -> exact score), its order index (score,
// member) and its rank index (fences, zset_index.go). ZADD and ZREM of
// one member are point reads and writes plus one fence update, O(log N);
// everything that selects by rank, score or lex goes through zset_range.go.

// Sorted-set ops, 40..59 (command.go's family ranges).
const (
	// OpZAdd adds or updates Keys[0]'s members: Values are score/member
	// pairs (the score as EncodeScore's 8 bytes, never NaN), under
	// ZAddNX, ZAddXX, ZAddGT, ZAddLT, ZAddCH and ZAddIncr (one pair). It
	// replies the number added (changed too with CH), or with INCR the
	// new score as text, or nil when a condition refused it.
	OpZAdd Op = 40
	// OpZRem removes the members in Values from Keys[0]; it replies how
	// many there were.
	OpZRem Op = 41
	// OpZRemRange removes the members of Keys[0] in a range: Values are an
	// encoded ZRangeSpec (ZRangeSpec.encode) without LIMIT or REV. It
	// replies how many it removed.
	OpZRemRange Op = 42
	// OpZPop pops up to Delta (>= 0) members from the first of Keys that
	// exists, the lowest scores first or with ZPopMax the highest. It
	// replies nil if none exists, else [key, member, score, ...], scores
	// as text: ZPOPMIN, ZPOPMAX, ZMPOP and the blocking pops.
	OpZPop Op = 43
	// OpZRangeStore stores the range Values (an encoded ZRangeSpec) of
	// Keys[1] as Keys[0], replacing it; it replies the stored length.
	OpZRangeStore Op = 44
	// OpZStore stores the union, intersection or difference (Flags:
	// ZStoreUnion/Inter/Diff, and ZAggMin/ZAggMax) of the sorted sets or
	// sets Keys[1:] as Keys[0], with weights Values (EncodeScore bytes,
	// one per source, or none); it replies the stored length.
	OpZStore Op = 45
)

// OpZAdd flags.
const (
	ZAddNX SetFlags = 1 << iota
	ZAddXX
	ZAddGT
	ZAddLT
	ZAddCH
	ZAddIncr
)

// ZPopMax makes OpZPop pop the highest scores.
const ZPopMax SetFlags = 1

// OpZStore flags: the operation in the low two bits, the aggregate in the
// next two (SUM when neither is set).
const (
	ZStoreUnion SetFlags = 0
	ZStoreInter SetFlags = 1
	ZStoreDiff  SetFlags = 2
	zStoreOp    SetFlags = 3
	ZAggMin     SetFlags = 4
	ZAggMax     SetFlags = 8
	zAggMask    SetFlags = 12
)

// Sorted-set events, as Redis's keyspace notifications name them.
const (
	EventZAdd             = "zadd"
	EventZIncr            = "zincr"
	EventZRem             = "zrem"
	EventZRemRangeByRank  = "zremrangebyrank"
	EventZRemRangeByScore = "zremrangebyscore"
	EventZRemRangeByLex   = "zremrangebylex"
	EventZPopMin          = "zpopmin"
	EventZPopMax          = "zpopmax"
	EventZRangeStore      = "zrangestore"
	EventZUnionStore      = "zunionstore"
	EventZInterStore      = "zinterstore"
	EventZDiffStore       = "zdiffstore"
)

func init() {
	v3 := func(f func(w *writeSet, c *Command) (Result, error)) applyFunc { return withoutBatch(f) }
	registerOps(map[Op]*opSpec{
		OpZAdd: {name: "ZADD", minFormat: FormatV3, replies: []ResultKind{ResultInt, ResultBytes, ResultNil},
			validate: validateZAdd, apply2: v3(applyZAdd)},
		OpZRem: {name: "ZREM", minFormat: FormatV3, replies: intReply, validate: validateZRem, apply2: v3(applyZRem)},
		OpZRemRange: {name: "ZREMRANGE", minFormat: FormatV3, replies: intReply, validate: validateZRemRange,
			apply2: v3(applyZRemRange)},
		OpZPop: {name: "ZPOP", minFormat: FormatV3, replies: []ResultKind{ResultArray, ResultNil}, validate: validateZPop,
			apply2: v3(applyZPop)},
		OpZRangeStore: {name: "ZRANGESTORE", minFormat: FormatV3, replies: intReply, validate: validateZRangeStore,
			apply2: v3(applyZRangeStore)},
		OpZStore: {name: "ZSTORE", minFormat: FormatV3, replies: intReply, validate: validateZStore,
			apply2: v3(applyZStore)},
	})
}

func validateZAdd(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) == 0 || len(c.Values)%2 != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: ZADD needs one key and score/member pairs")
	}
	if c.Flags&^(ZAddNX|ZAddXX|ZAddGT|ZAddLT|ZAddCH|ZAddIncr) != 0 ||
		c.Flags&ZAddNX != 0 && c.Flags&(ZAddXX|ZAddGT|ZAddLT) != 0 || c.Flags&ZAddGT != 0 && c.Flags&ZAddLT != 0 {
		return fmt.Errorf("kv: ZADD flags %#x conflict", c.Flags)
	}
	if c.Flags&ZAddIncr != 0 && len(c.Values) != 2 {
		return fmt.Errorf("kv: ZADD INCR takes one pair")
	}
	for k := 0; k < len(c.Values); k += 2 {
		f, err := scoreFromBits(c.Values[k])
		if err != nil {
			return err
		}
		if math.IsNaN(f) {
			return fmt.Errorf("kv: a NaN score")
		}
	}
	return nil
}

func validateZRem(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) == 0 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: ZREM needs one key and members")
	}
	return nil
}

func validateZRemRange(c *Command) error {
	if len(c.Keys) != 1 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: ZREMRANGE needs one key")
	}
	s, err := decodeZRangeSpec(c.Values)
	if err != nil {
		return err
	}
	if s.Rev || s.Offset != 0 || s.Count >= 0 {
		return fmt.Errorf("kv: ZREMRANGE takes no REV or LIMIT")
	}
	return nil
}

func validateZPop(c *Command) error {
	if len(c.Keys) == 0 || len(c.Values) != 0 || c.Flags&^ZPopMax != 0 || c.Delta < 0 {
		return fmt.Errorf("kv: ZPOP needs keys and a count >= 0")
	}
	return nil
}

func validateZRangeStore(c *Command) error {
	if len(c.Keys) != 2 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: ZRANGESTORE needs a destination and a source")
	}
	_, err := decodeZRangeSpec(c.Values)
	return err
}

func validateZStore(c *Command) error {
	if len(c.Keys) < 2 || c.Delta != 0 || c.Flags&^(zStoreOp|zAggMask) != 0 || c.Flags&zStoreOp == 3 ||
		c.Flags&zAggMask == zAggMask {
		return fmt.Errorf("kv: ZSTORE needs a destination, sources and valid flags")
	}
	if len(c.Values) != 0 && len(c.Values) != len(c.Keys)-1 {
		return fmt.Errorf("kv: ZSTORE has %d weights for %d sources", len(c.Values), len(c.Keys)-1)
	}
	for _, v := range c.Values {
		f, err := scoreFromBits(v)
		if err != nil {
			return err
		}
		if math.IsNaN(f) {
			return fmt.Errorf("kv: a NaN weight")
		}
	}
	return nil
}

// zsetW is a sorted set on the apply path.
type zsetW struct {
	w    *writeSet
	i    int
	rows wsRows
}

func (z *zsetW) set() zset { return newZSet(z.rows, z.w.collMeta(z.i).Len) }

// openZSet loads key as a sorted set for writing; wrong is true for a key
// of another type.
func (w *writeSet) openZSet(key []byte) (z *zsetW, wrong bool, err error) {
	i, err := w.loadColl(key, keyspace.TypeZSet)
	if errors.Is(err, errWrongType) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return &zsetW{w: w, i: i, rows: wsRows{w: w, i: i}}, false, nil
}

// create makes the key a new, empty sorted set with its first fence.
func (z *zsetW) create() error {
	z.w.createColl(z.i, keyspace.TypeZSet)
	return newZIndex(z.rows).init(z.rows)
}

// put sets member's score, had/old its current one. The order row is
// written before the fence update, which may scan the bucket.
func (z *zsetW) put(member []byte, score float64, old float64, had bool) error {
	x := newZIndex(z.rows)
	if had {
		if err := z.unorder(old, member); err != nil {
			return err
		}
	}
	pos, err := keyspace.AppendZSetPos(nil, score, member)
	if err != nil {
		return fmt.Errorf("sorted set: member %q: %w", member, err)
	}
	if err := z.rows.set(keyspace.AppendZSetMemberSuffix(nil, member), scoreBits(score)); err != nil {
		return err
	}
	if err := z.rows.set(orderSuffix(pos), nil); err != nil {
		return err
	}
	if err := x.inserted(z.rows, pos); err != nil {
		return err
	}
	if !had {
		z.w.collSetLen(z.i, z.w.collMeta(z.i).Len+1)
	}
	return nil
}

// unorder deletes the order row of (score, member) and its count.
func (z *zsetW) unorder(score float64, member []byte) error {
	pos, err := keyspace.AppendZSetPos(nil, score, member)
	if err != nil {
		return fmt.Errorf("sorted set: member %q: %w", member, err)
	}
	if err := z.rows.del(orderSuffix(pos)); err != nil {
		return err
	}
	return newZIndex(z.rows).removed(z.rows, pos)
}

// remove deletes member, reporting whether it was there.
func (z *zsetW) remove(member []byte) (bool, error) {
	old, had, err := z.set().score(member)
	if err != nil || !had {
		return false, err
	}
	if err := z.unorder(old, member); err != nil {
		return false, err
	}
	if err := z.rows.del(keyspace.AppendZSetMemberSuffix(nil, member)); err != nil {
		return false, err
	}
	z.w.collSetLen(z.i, z.w.collMeta(z.i).Len-1)
	return true, nil
}

// removeEntries deletes entries (members of the set); removing them all
// deletes the key at once, O(1), instead of row by row.
func (z *zsetW) removeEntries(es []zentry) error {
	if uint64(len(es)) == z.w.collMeta(z.i).Len {
		z.w.del2(z.i)
		return nil
	}
	for _, e := range es {
		if _, err := z.remove(e.member); err != nil {
			return err
		}
	}
	return nil
}

// done finishes an op that removed members: it deletes an emptied key
// and reports Redis's "del" event for it.
func (z *zsetW) done(key []byte) {
	if z.w.collDone(z.i) || !z.w.collExists(z.i) {
		z.w.event(key, EventDel)
	}
}

func nanError() Result { return Result{Kind: ResultError, Err: ErrTextNaNScore} }

func applyZAdd(w *writeSet, c *Command) (Result, error) {
	z, wrong, err := w.openZSet(c.Keys[0])
	if err != nil || wrong {
		return wrongType(), err
	}
	incr := c.Flags&ZAddIncr != 0
	refused := Result{Kind: ResultNil}
	if !incr {
		refused = Result{Kind: ResultInt}
	}
	created := false
	if !w.collExists(z.i) {
		if c.Flags&ZAddXX != 0 {
			return refused, nil
		}
		if err := z.create(); err != nil {
			return Result{}, err
		}
		created = true
	}
	var added, changed int64
	var last float64
	skipped := false
	for k := 0; k < len(c.Values); k += 2 {
		score, _ := scoreFromBits(c.Values[k]) // validated
		member := c.Values[k+1]
		old, had, err := z.set().score(member)
		if err != nil {
			return Result{}, err
		}
		if had && c.Flags&ZAddNX != 0 || !had && c.Flags&ZAddXX != 0 {
			skipped = true
			continue
		}
		if incr && had {
			score = float64(old + score)
		}
		if math.IsNaN(score) {
			// inf + -inf: Redis refuses it before changing anything (INCR
			// has one pair, so nothing was changed yet).
			if created {
				w.collDone(z.i)
			}
			return nanError(), nil
		}
		switch {
		case had && (c.Flags&ZAddGT != 0 && score <= old || c.Flags&ZAddLT != 0 && score >= old):
			skipped = true
			continue
		}
		last = score
		if had && score == old {
			continue // -0 and 0 are equal: Redis keeps the stored one
		}
		if err := z.put(member, score, old, had); err != nil {
			return Result{}, err
		}
		if had {
			changed++
		} else {
			added++
		}
	}
	if added+changed > 0 {
		w.collTouch(z.i)
		if incr {
			w.event(c.Keys[0], EventZIncr)
		} else {
			w.event(c.Keys[0], EventZAdd)
		}
	}
	if created {
		w.collDone(z.i) // every pair refused: no empty set stays
	}
	if incr {
		if skipped {
			return Result{Kind: ResultNil}, nil
		}
		return Result{Kind: ResultBytes, Bytes: AppendScoreText(nil, last)}, nil
	}
	if c.Flags&ZAddCH != 0 {
		return Result{Kind: ResultInt, Int: added + changed}, nil
	}
	return Result{Kind: ResultInt, Int: added}, nil
}

func applyZRem(w *writeSet, c *Command) (Result, error) {
	z, wrong, err := w.openZSet(c.Keys[0])
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(z.i) {
		return Result{Kind: ResultInt}, nil
	}
	var n int64
	for _, m := range c.Values {
		ok, err := z.remove(m)
		if err != nil {
			return Result{}, err
		}
		if ok {
			n++
		}
	}
	if n > 0 {
		w.collTouch(z.i)
		w.event(c.Keys[0], EventZRem)
		if w.collDone(z.i) {
			w.event(c.Keys[0], EventDel)
		}
	}
	return Result{Kind: ResultInt, Int: n}, nil
}

func applyZRemRange(w *writeSet, c *Command) (Result, error) {
	spec, _ := decodeZRangeSpec(c.Values) // validated
	z, wrong, err := w.openZSet(c.Keys[0])
	if err != nil || wrong {
		return wrongType(), err
	}
	if !w.collExists(z.i) {
		return Result{Kind: ResultInt}, nil
	}
	es, err := z.set().selectRange(&spec)
	if err != nil {
		return Result{}, err
	}
	if len(es) == 0 {
		return Result{Kind: ResultInt}, nil
	}
	w.collTouch(z.i)
	if err := z.removeEntries(es); err != nil {
		return Result{}, err
	}
	switch spec.Kind {
	case ZByRank:
		w.event(c.Keys[0], EventZRemRangeByRank)
	case ZByScore:
		w.event(c.Keys[0], EventZRemRangeByScore)
	default:
		w.event(c.Keys[0], EventZRemRangeByLex)
	}
	z.done(c.Keys[0])
	return Result{Kind: ResultInt, Int: int64(len(es))}, nil
}

func applyZPop(w *writeSet, c *Command) (Result, error) {
	for _, key := range c.Keys {
		z, wrong, err := w.openZSet(key)
		if err != nil || wrong {
			return wrongType(), err
		}
		if !w.collExists(z.i) {
			continue
		}
		out := []Result{{Kind: ResultBytes, Bytes: key}}
		if c.Delta == 0 {
			return Result{Kind: ResultArray, Batch: out}, nil
		}
		n := min(uint64(c.Delta), w.collMeta(z.i).Len)
		spec := ZRangeSpec{Kind: ZByRank, Start: 0, Stop: int64(n) - 1, Rev: c.Flags&ZPopMax != 0}
		es, err := z.set().selectRange(&spec)
		if err != nil {
			return Result{}, err
		}
		w.collTouch(z.i)
		if err := z.removeEntries(es); err != nil {
			return Result{}, err
		}
		for _, e := range es {
			out = append(out, Result{Kind: ResultBytes, Bytes: e.member},
				Result{Kind: ResultBytes, Bytes: AppendScoreText(nil, e.score)})
		}
		if c.Flags&ZPopMax != 0 {
			w.event(key, EventZPopMax)
		} else {
			w.event(key, EventZPopMin)
		}
		z.done(key)
		return Result{Kind: ResultArray, Batch: out}, nil
	}
	return Result{Kind: ResultNil}, nil
}

// storeEntries replaces key di with a sorted set of entries (sorted by
// position, members distinct), or deletes it when there are none, and
// replies the length. event names the op for a stored result.
func (w *writeSet) storeEntries(key []byte, es []zentry, event string) (Result, error) {
	i, err := w.load(key)
	if err != nil {
		return Result{}, err
	}
	existed := w.s2[i].exists
	w.del2(i)
	if len(es) == 0 {
		if existed {
			w.event(key, EventDel)
		}
		return Result{Kind: ResultInt}, nil
	}
	w.createColl(i, keyspace.TypeZSet)
	rows := wsRows{w: w, i: i}
	if err := newZIndex(rows).build(rows, es); err != nil {
		return Result{}, err
	}
	w.collSetLen(i, uint64(len(es)))
	w.event(key, event)
	return Result{Kind: ResultInt, Int: int64(len(es))}, nil
}

func applyZRangeStore(w *writeSet, c *Command) (Result, error) {
	spec, _ := decodeZRangeSpec(c.Values) // validated
	z, wrong, err := w.openZSet(c.Keys[1])
	if err != nil || wrong {
		return wrongType(), err
	}
	var es []zentry
	if w.collExists(z.i) {
		if es, err = z.set().selectRange(&spec); err != nil {
			return Result{}, err
		}
	}
	sortEntries(es) // REV selects in descending order
	return w.storeEntries(c.Keys[0], es, EventZRangeStore)
}

func applyZStore(w *writeSet, c *Command) (Result, error) {
	srcs := make([]zsource, len(c.Keys)-1)
	for k, key := range c.Keys[1:] {
		s, wrong, err := w.loadSource(key)
		if err != nil {
			return Result{}, err
		}
		if wrong {
			return wrongType(), nil
		}
		srcs[k] = s
	}
	weights := make([]float64, len(srcs))
	for k := range weights {
		weights[k] = 1
		if len(c.Values) > 0 {
			weights[k], _ = scoreFromBits(c.Values[k])
		}
	}
	es := zalgebra(c.Flags&zStoreOp, c.Flags&zAggMask, srcs, weights)
	event := EventZUnionStore
	if op := c.Flags & zStoreOp; op == ZStoreInter {
		event = EventZInterStore
	} else if op == ZStoreDiff {
		event = EventZDiffStore
	}
	return w.storeEntries(c.Keys[0], es, event)
}

// loadSource reads key (a sorted set, a set, or missing) as an input of
// the set algebra.
func (w *writeSet) loadSource(key []byte) (zsource, bool, error) {
	i, err := w.load(key)
	if err != nil {
		return zsource{}, false, err
	}
	s := &w.s2[i]
	if !s.exists {
		return zsource{}, false, nil
	}
	switch s.cur.Type {
	case keyspace.TypeZSet, keyspace.TypeSet:
	default:
		return zsource{}, true, nil
	}
	src, err := readSource(wsRows{w: w, i: i}, s.cur.Type)
	return src, false, err
}
