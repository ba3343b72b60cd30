package kv

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// memRows is an in-memory zwriter: rows in a sorted slice, so the rank
// index can be driven with tiny buckets and checked after every step.
type memRows struct {
	keys [][]byte
	vals map[string][]byte
}

func newMemRows() *memRows { return &memRows{vals: map[string][]byte{}} }

func (m *memRows) find(k []byte) (int, bool) {
	return slices.BinarySearchFunc(m.keys, k, bytes.Compare)
}

func (m *memRows) get(s []byte) ([]byte, bool, error) {
	v, ok := m.vals[string(s)]
	return bytes.Clone(v), ok, nil
}

func (m *memRows) set(s, v []byte) error {
	if i, ok := m.find(s); !ok {
		m.keys = slices.Insert(m.keys, i, bytes.Clone(s))
	}
	m.vals[string(s)] = bytes.Clone(v)
	return nil
}

func (m *memRows) del(s []byte) error {
	if i, ok := m.find(s); ok {
		m.keys = slices.Delete(m.keys, i, i+1)
		delete(m.vals, string(s))
	}
	return nil
}

func (m *memRows) iter(lo, hi []byte, reverse bool, fn func(s, v []byte) (bool, error)) error {
	a, _ := m.find(lo)
	b := len(m.keys)
	if hi != nil {
		b, _ = m.find(hi)
	}
	if a >= b {
		return nil
	}
	sel := slices.Clone(m.keys[a:b])
	if reverse {
		slices.Reverse(sel)
	}
	for _, k := range sel {
		more, err := fn(k, m.vals[string(k)])
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// TestRankIndexMatchesSortedSliceModel drives the counted fences with
// small buckets through thousands of random inserts and removes, checking
// every invariant and every kind of rank query against a sorted slice.
func TestRankIndexMatchesSortedSliceModel(t *testing.T) {
	for _, bs := range [][2]uint64{{2, 2}, {3, 2}, {2, 3}, {8, 4}, {64, 2}, {4, 32}} {
		b := bs[0]
		t.Run(fmt.Sprint("B=", b, ",S=", bs[1]), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(b, bs[1]))
			rows := newMemRows()
			x := zindex{r: rows, b: b, s: bs[1]}
			require.NoError(t, x.init(rows))
			var model [][]byte // sorted positions
			for step := 0; step < 4000; step++ {
				insert := len(model) == 0 || rng.IntN(100) < 55
				if step > 2500 {
					insert = rng.IntN(100) < 30 // drain: exercise merges
				}
				if insert {
					pos, err := keyspace.AppendZSetPos(nil, float64(rng.IntN(50)), fmt.Appendf(nil, "m%d", rng.IntN(400)))
					require.NoError(t, err)
					i, found := slices.BinarySearchFunc(model, pos, bytes.Compare)
					if found {
						continue
					}
					model = slices.Insert(model, i, pos)
					require.NoError(t, rows.set(orderSuffix(pos), nil))
					require.NoError(t, x.inserted(rows, pos))
				} else if len(model) > 0 {
					i := rng.IntN(len(model))
					pos := model[i]
					model = slices.Delete(model, i, i+1)
					require.NoError(t, rows.del(orderSuffix(pos)))
					require.NoError(t, x.removed(rows, pos))
				}
				n := uint64(len(model))
				require.NoError(t, x.checkFences(n), "step %d", step)
				if step%500 == 0 {
					// The index stays O(N/B): adjacent small buckets merge.
					nf := 0
					require.NoError(t, rows.iter(zFenceLo, zFenceHi, false, func(_, _ []byte) (bool, error) { nf++; return true, nil }))
					require.LessOrEqual(t, uint64(nf), 4*n/b+2, "step %d: %d fences for %d rows", step, nf, n)
				}
				if n == 0 {
					continue
				}
				r := rng.Uint64N(n)
				got, err := x.at(r, n)
				require.NoError(t, err)
				require.Equal(t, model[r], got, "at(%d) step %d", r, step)
				rk, err := x.rank(model[r], n)
				require.NoError(t, err)
				require.Equal(t, r, rk, "rank step %d", step)
				// A position between rows ranks as the count below it.
				mid := append(bytes.Clone(model[r]), 0)
				rk, err = x.rank(mid, n)
				require.NoError(t, err)
				require.Equal(t, r+1, rk)
				ranks := []uint64{0, r, n - 1}
				slices.Sort(ranks)
				ranks = slices.Compact(ranks)
				many, err := x.atMany(ranks, n)
				require.NoError(t, err)
				for k, rr := range ranks {
					require.Equal(t, model[rr], many[k])
				}
			}
			// The fences stay O(N/B): no two adjacent small buckets.
			var fences []fence
			require.NoError(t, rows.iter(zFenceLo, zFenceHi, false, func(s, v []byte) (bool, error) {
				f, err := decodeFence(s, v)
				fences = append(fences, f)
				return true, err
			}))
			require.LessOrEqual(t, uint64(len(fences)), 4*uint64(len(model))/b+2)
		})
	}
}

// TestRankIndexBuildMatchesInserts checks that build's fences satisfy the
// invariants and answer as inserted ones do.
func TestRankIndexBuildMatchesInserts(t *testing.T) {
	for _, n := range []int{1, 7, 8, 9, 100} {
		rows := newMemRows()
		x := zindex{r: rows, b: 4, s: 2}
		var es []zentry
		for i := range n {
			m := fmt.Appendf(nil, "m%03d", i)
			pos, err := keyspace.AppendZSetPos(nil, float64(i/3), m)
			require.NoError(t, err)
			es = append(es, zentry{member: m, score: float64(i / 3), pos: pos})
		}
		require.NoError(t, x.build(rows, es))
		require.NoError(t, x.checkFences(uint64(n)))
		for r := range n {
			got, err := x.at(uint64(r), uint64(n))
			require.NoError(t, err)
			require.Equal(t, es[r].pos, got)
		}
	}
}
