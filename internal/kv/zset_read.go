package kv

import (
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The sorted-set reads the Redis layer calls inside a View callback. A
// missing key reads as an empty sorted set; a key of another type gives
// an error that errors.Is ErrWrongType.

// openZSetView opens key as a sorted set on v; ok is false when missing.
func openZSetView(v View, key []byte) (zset, bool, error) {
	c, ok, err := v.Collection(key, keyspace.TypeZSet)
	if err != nil || !ok {
		return zset{}, false, err
	}
	return newZSet(collRows{c: c}, c.Meta().Len), true, nil
}

func entriesOut(es []zentry) []ZEntry {
	out := make([]ZEntry, len(es))
	for k, e := range es {
		out[k] = ZEntry{Member: e.member, Score: e.score}
	}
	return out
}

// ZCard returns the number of members of key's sorted set: O(1).
func ZCard(v View, key []byte) (int64, error) {
	z, _, err := openZSetView(v, key)
	return int64(z.n), err
}

// ZScore returns member's score: O(log N).
func ZScore(v View, key, member []byte) (float64, bool, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return 0, false, err
	}
	return z.score(member)
}

// ZMScore returns each member's score and whether it is there.
func ZMScore(v View, key []byte, members [][]byte) ([]float64, []bool, error) {
	scores, found := make([]float64, len(members)), make([]bool, len(members))
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return scores, found, err
	}
	for k, m := range members {
		if scores[k], found[k], err = z.score(m); err != nil {
			return nil, nil, err
		}
	}
	return scores, found, nil
}

// ZRank returns member's rank (from the highest score with rev) and its
// score: O(N/B + B) through the rank index.
func ZRank(v View, key, member []byte, rev bool) (int64, float64, bool, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	r, f, ok, err := z.rankOf(member, rev)
	return int64(r), f, ok, err
}

// ZCount returns the number of members a ZByScore or ZByLex spec selects
// (LIMIT aside): two rank lookups, O(N/B + B).
func ZCount(v View, key []byte, spec *ZRangeSpec) (int64, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return 0, err
	}
	n, err := z.count(spec)
	return int64(n), err
}

// ZRange returns the members spec selects, in reply order: O(N/B + B +
// the members returned).
func ZRange(v View, key []byte, spec *ZRangeSpec) ([]ZEntry, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return nil, err
	}
	es, err := z.selectRange(spec)
	return entriesOut(es), err
}

// ZRandMember picks members of key's sorted set uniformly with rnd:
// count >= 0 distinct ones (all of them, in order, when count reaches the
// size), count < 0 |count| picks that may repeat. Picks are random ranks,
// resolved with one walk of the rank index. found is false when the key
// is missing.
func ZRandMember(v View, key []byte, count int64, rnd *rand.Rand) ([]ZEntry, bool, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return nil, false, err
	}
	if count >= 0 && uint64(count) >= z.n {
		es, err := z.scan([]byte{}, nil, false, -1)
		return entriesOut(es), true, err
	}
	var picks []uint64
	if count >= 0 {
		// Floyd's sampling: count distinct ranks, each subset equally likely.
		chosen := make(map[uint64]bool, count)
		for j := z.n - uint64(count); j < z.n; j++ {
			t := rnd.Uint64N(j + 1)
			if chosen[t] {
				t = j
			}
			chosen[t] = true
			picks = append(picks, t)
		}
		rnd.Shuffle(len(picks), func(a, b int) { picks[a], picks[b] = picks[b], picks[a] })
	} else {
		picks = make([]uint64, -count)
		for k := range picks {
			picks[k] = rnd.Uint64N(z.n)
		}
	}
	sorted := slices.Clone(picks)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	poss, err := z.x.atMany(sorted, z.n)
	if err != nil {
		return nil, true, err
	}
	byRank := make(map[uint64]zentry, len(sorted))
	for k, p := range poss {
		e, err := z.entryAt(orderSuffix(p))
		if err != nil {
			return nil, true, err
		}
		byRank[sorted[k]] = e
	}
	out := make([]ZEntry, len(picks))
	for k, r := range picks {
		e := byRank[r]
		out[k] = ZEntry{Member: e.member, Score: e.score}
	}
	return out, true, nil
}

// openSourceView reads key (a sorted set, a set, or missing) as an input
// of the set algebra.
func openSourceView(v View, key []byte) (zsource, error) {
	c, ok, err := v.Collection(key, keyspace.TypeZSet)
	t := keyspace.TypeZSet
	if errors.Is(err, ErrWrongType) {
		t = keyspace.TypeSet
		c, ok, err = v.Collection(key, keyspace.TypeSet)
	}
	if err != nil || !ok {
		return zsource{}, err
	}
	return readSource(collRows{c: c}, t)
}

// ZAlgebra computes ZUNION, ZINTER or ZDIFF (op ZStoreUnion, ZStoreInter,
// ZStoreDiff; agg 0, ZAggMin or ZAggMax) of keys with weights (nil: all
// 1), sorted by score then member: O(total input size).
func ZAlgebra(v View, keys [][]byte, op, agg SetFlags, weights []float64) ([]ZEntry, error) {
	srcs := make([]zsource, len(keys))
	for k, key := range keys {
		s, err := openSourceView(v, key)
		if err != nil {
			return nil, err
		}
		srcs[k] = s
	}
	if weights == nil {
		weights = make([]float64, len(keys))
		for k := range weights {
			weights[k] = 1
		}
	}
	return entriesOut(zalgebra(op, agg, srcs, weights)), nil
}

// ZInterCard counts the intersection of keys, stopping at limit (0: none).
func ZInterCard(v View, keys [][]byte, limit int64) (int64, error) {
	srcs := make([]zsource, len(keys))
	for k, key := range keys {
		s, err := openSourceView(v, key)
		if err != nil {
			return 0, err
		}
		srcs[k] = s
	}
	return zinterCard(srcs, limit), nil
}

// ZPopCommand returns the command that pops up to count members (the
// lowest scores, or the highest with max) from the first of keys that
// exists: ZPOPMIN, ZPOPMAX, ZMPOP, and the blocking pops once they have a
// key to pop from. Its result is nil when no key exists, else an array
// [key, member, score, member, score, ...] (scores as FormatScore text).
func ZPopCommand(keys [][]byte, count int64, max bool) *Command {
	c := &Command{Op: OpZPop, Keys: keys, Delta: count}
	if max {
		c.Flags = ZPopMax
	}
	return c
}

// ZRangeStoreCommand returns ZRANGESTORE dst src spec.
func ZRangeStoreCommand(dst, src []byte, spec *ZRangeSpec) *Command {
	return &Command{Op: OpZRangeStore, Keys: [][]byte{dst, src}, Values: spec.encode()}
}

// ZRemRangeCommand returns ZREMRANGEBYRANK/SCORE/LEX key spec (no REV or
// LIMIT).
func ZRemRangeCommand(key []byte, spec *ZRangeSpec) *Command {
	s := *spec
	s.Rev, s.Offset, s.Count = false, 0, -1
	return &Command{Op: OpZRemRange, Keys: [][]byte{key}, Values: s.encode()}
}

// ZScanMembers calls fn with each member of key's sorted set and its
// score, in member order, from member from on (nil: the first), until fn
// returns false: ZSCAN's walk, whose cursor is the member to resume at.
// found is false when the key is missing.
func ZScanMembers(v View, key, from []byte, fn func(member []byte, score float64) bool) (bool, error) {
	z, ok, err := openZSetView(v, key)
	if err != nil || !ok {
		return false, err
	}
	return true, z.r.iter(keyspace.AppendZSetMemberSuffix(nil, from), zOrderLo, false, func(s, val []byte) (bool, error) {
		f, err := scoreFromBits(val)
		if err != nil {
			return false, err
		}
		return fn(s[1:], f), nil
	})
}
