package kv

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomKeys draws n keys from s with RandomKey and counts each.
func randomKeys(t *testing.T, s *Store, rnd *rand.Rand, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		err := s.Read(func(v View) error {
			k, found, err := v.RandomKey(rnd)
			if err == nil && found {
				seen[string(k)]++
			}
			return err
		})
		require.NoError(t, err)
	}
	return seen
}

// TestRandomKeyPicksEveryKeyAndNoDeletedOne: RandomKey answers nothing on
// an empty keyspace, the only key when there is one, and over a keyspace
// of dense decimal runs (its worst shape for the byte-space seek) picks
// every key, none more than a few times as often as the mean, and never
// a deleted key.
func TestRandomKeyPicksEveryKeyAndNoDeletedOne(t *testing.T) {
	s := openTest(t, t.TempDir())
	rnd := rand.New(rand.NewPCG(1, 2))
	require.Empty(t, randomKeys(t, s, rnd, 10))

	idx := uint64(1)
	apply := func(cmd Command) {
		t.Helper()
		_, err := s.Apply([]Entry{{Index: idx, Data: enc(cmd)}})
		require.NoError(t, err)
		idx++
	}
	apply(Command{Op: OpSet, Keys: [][]byte{[]byte("only")}, Values: [][]byte{[]byte("v")}})
	require.Equal(t, map[string]int{"only": 20}, randomKeys(t, s, rnd, 20))

	mset := Command{Op: OpMSet}
	del := Command{Op: OpDel, Keys: [][]byte{[]byte("only")}}
	for i := range 300 {
		k := []byte(fmt.Sprintf("k%03d", i))
		mset.Keys = append(mset.Keys, k)
		mset.Values = append(mset.Values, []byte("v"))
		if i%3 == 0 {
			del.Keys = append(del.Keys, k)
		}
	}
	apply(mset)
	apply(del)

	const draws = 40_000
	seen := randomKeys(t, s, rnd, draws)
	require.Len(t, seen, 200, "every live key is picked, and only those")
	mean := draws / 200
	for i := range 300 {
		k := fmt.Sprintf("k%03d", i)
		if i%3 == 0 {
			require.Zero(t, seen[k], "deleted key %s picked", k)
			continue
		}
		require.Positive(t, seen[k], "key %s never picked", k)
	}
	lo, hi := draws, 0
	for _, n := range seen {
		lo, hi = min(lo, n), max(hi, n)
	}
	t.Logf("decimal keys: min %d max %d mean %d", lo, hi, mean)
}

// TestRandomKeyIsNearUniformOnSpreadKeys: on keys spread evenly through
// the byte space (binary hashes or random ids after a common prefix), the
// pick is close to uniform: no key is picked three times as often as the
// mean, nor a third as often. Text keys are not spread evenly (hex digits
// leave a gap between '9' and 'a'); the decimal test above shows the
// bias that leaves.
func TestRandomKeyIsNearUniformOnSpreadKeys(t *testing.T) {
	s := openTest(t, t.TempDir())
	gen := rand.New(rand.NewPCG(3, 4))
	mset := Command{Op: OpMSet}
	for range 200 {
		k := []byte("session:")
		mset.Keys = append(mset.Keys, binary.BigEndian.AppendUint64(k, gen.Uint64()))
		mset.Values = append(mset.Values, []byte("v"))
	}
	_, err := s.Apply([]Entry{{Index: 1, Data: enc(mset)}})
	require.NoError(t, err)

	const draws = 40_000
	seen := randomKeys(t, s, rand.New(rand.NewPCG(5, 6)), draws)
	require.Len(t, seen, 200)
	mean := draws / 200
	lo, hi := draws, 0
	for _, n := range seen {
		lo, hi = min(lo, n), max(hi, n)
	}
	t.Logf("spread keys: min %d max %d mean %d", lo, hi, mean)
	require.Less(t, hi, 3*mean)
	require.Greater(t, lo, mean/3)
}

// TestRandomKeyFollowsOnlyItsRandomSource: the pick is a function of the
// view and rnd's draws, so two readers with equal seeds pick alike. That
// is what lets the choice be made before proposing, never on apply.
func TestRandomKeyFollowsOnlyItsRandomSource(t *testing.T) {
	s := openTest(t, t.TempDir())
	_, err := s.Apply([]Entry{{Index: 1, Data: enc(Command{Op: OpMSet,
		Keys:   [][]byte{[]byte("a"), []byte("b"), []byte("foo"), []byte("bar")},
		Values: [][]byte{[]byte("1"), []byte("2"), []byte("3"), []byte("4")}})}})
	require.NoError(t, err)
	a := randomKeys(t, s, rand.New(rand.NewPCG(7, 7)), 200)
	b := randomKeys(t, s, rand.New(rand.NewPCG(7, 7)), 200)
	require.Equal(t, a, b)
	require.Len(t, a, 4)
}
