package kv

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The set algebra of sorted sets: ZUNION, ZINTER, ZDIFF, ZINTERCARD and
// their STORE forms. Inputs are sorted sets or sets (a set member scores
// 1); the reads compute on a view, the STORE forms on apply, with the
// same function, so both answer the same.
//
// Determinism: inputs are read in member order, maps serve only lookups,
// and the result is sorted by (score, member) before anyone sees it. The
// float arithmetic is IEEE double, each product and sum rounded on its
// own (explicit float64 conversions: the Go spec would otherwise allow a
// fused multiply-add, which rounds once and could differ by CPU), and the
// inputs are combined in Redis's order (ascending size for union and
// intersection, stable on ties; the first input first for difference).

// zsource is one input: its members in member order, scores alike.
type zsource struct {
	members [][]byte
	scores  []float64
	index   map[string]int
}

func (s *zsource) size() int { return len(s.members) }

func (s *zsource) lookup(m []byte) (float64, bool) {
	if s.index == nil {
		s.index = make(map[string]int, len(s.members))
		for k, mm := range s.members {
			s.index[string(mm)] = k
		}
	}
	k, ok := s.index[string(m)]
	if !ok {
		return 0, false
	}
	return s.scores[k], true
}

// readSource reads a sorted set's member index, or a set's members.
func readSource(r zrows, t keyspace.Type) (zsource, error) {
	var s zsource
	lo, hi := []byte(nil), []byte(nil)
	if t == keyspace.TypeZSet {
		lo, hi = zMemberLo, zOrderLo
	}
	err := r.iter(lo, hi, false, func(suf, val []byte) (bool, error) {
		if t != keyspace.TypeZSet {
			s.members = append(s.members, bytes.Clone(suf))
			s.scores = append(s.scores, 1)
			return true, nil
		}
		f, err := scoreFromBits(val)
		if err != nil {
			return false, fmt.Errorf("sorted set member %q: %w", suf[1:], err)
		}
		s.members = append(s.members, bytes.Clone(suf[1:]))
		s.scores = append(s.scores, f)
		return true, nil
	})
	return s, err
}

// weigh returns w*v as Redis does: a NaN (0 * inf) counts as 0.
func weigh(w, v float64) float64 {
	p := float64(w * v)
	if math.IsNaN(p) {
		return 0
	}
	return p
}

// aggregate combines acc with v under agg (SUM, ZAggMin, ZAggMax); inf +
// -inf counts as 0, as in Redis.
func aggregate(agg SetFlags, acc, v float64) float64 {
	if agg == ZAggMin {
		return min(acc, v)
	}
	if agg == ZAggMax {
		return max(acc, v)
	}
	s := float64(acc + v)
	if math.IsNaN(s) {
		return 0
	}
	return s
}

// zalgebra computes op (ZStoreUnion, ZStoreInter, ZStoreDiff) of srcs with
// weights and aggregate agg, sorted by position.
func zalgebra(op, agg SetFlags, srcs []zsource, weights []float64) []zentry {
	if len(srcs) == 0 {
		return nil
	}
	order := make([]int, len(srcs))
	for k := range order {
		order[k] = k
	}
	if op != ZStoreDiff {
		slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(srcs[a].size(), srcs[b].size()) })
	}
	var out []zentry
	// op is ZStoreUnion, ZStoreInter or ZStoreDiff (validated); the other
	// values of the flag type are other ops' flags.
	//exhaustive:ignore
	switch op {
	case ZStoreUnion:
		acc := map[string]int{}
		for _, k := range order {
			s := &srcs[k]
			for j, m := range s.members {
				v := weigh(weights[k], s.scores[j])
				if at, ok := acc[string(m)]; ok {
					out[at].score = aggregate(agg, out[at].score, v)
					continue
				}
				acc[string(m)] = len(out)
				out = append(out, zentry{member: m, score: v})
			}
		}
	case ZStoreInter:
		first := &srcs[order[0]]
	members:
		for j, m := range first.members {
			score := weigh(weights[order[0]], first.scores[j])
			for _, k := range order[1:] {
				v, ok := srcs[k].lookup(m)
				if !ok {
					continue members
				}
				score = aggregate(agg, score, weigh(weights[k], v))
			}
			out = append(out, zentry{member: m, score: score})
		}
	case ZStoreDiff:
		first := &srcs[0]
	diff:
		for j, m := range first.members {
			for k := 1; k < len(srcs); k++ {
				if _, ok := srcs[k].lookup(m); ok {
					continue diff
				}
			}
			out = append(out, zentry{member: m, score: first.scores[j]})
		}
	}
	for k := range out {
		out[k].pos, _ = keyspace.AppendZSetPos(nil, out[k].score, out[k].member) // never NaN: weigh and aggregate map it to 0
	}
	sortEntries(out)
	return out
}

// sortEntries sorts entries by position (score, then member).
func sortEntries(es []zentry) {
	slices.SortFunc(es, func(a, b zentry) int { return bytes.Compare(a.pos, b.pos) })
}

// zinterCard counts the intersection of srcs, stopping at limit (0: no
// limit).
func zinterCard(srcs []zsource, limit int64) int64 {
	if len(srcs) == 0 {
		return 0
	}
	order := make([]int, len(srcs))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(srcs[a].size(), srcs[b].size()) })
	var n int64
members:
	for _, m := range srcs[order[0]].members {
		for _, k := range order[1:] {
			if _, ok := srcs[k].lookup(m); !ok {
				continue members
			}
		}
		n++
		if limit > 0 && n >= limit {
			break
		}
	}
	return n
}
