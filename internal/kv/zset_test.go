package kv

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func openV3(t *testing.T) *Store {
	t.Helper()
	s := openTest(t, t.TempDir())
	_, err := s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV3)), Stamp: 1000}})
	require.NoError(t, err)
	return s
}

func zaddCmd(key string, pairs ...any) Command {
	c := Command{Op: OpZAdd, Keys: [][]byte{[]byte(key)}}
	for k := 0; k < len(pairs); k += 2 {
		c.Values = append(c.Values, EncodeScore(pairs[k].(float64)), []byte(pairs[k+1].(string)))
	}
	return c
}

// zmodel is a sorted set as a slice in Redis's order.
type zmodel struct {
	score map[string]float64
}

func (m *zmodel) sorted() []ZEntry {
	var out []ZEntry
	for k, v := range m.score {
		out = append(out, ZEntry{Member: []byte(k), Score: v})
	}
	slices.SortFunc(out, func(a, b ZEntry) int {
		if a.Score != b.Score {
			if a.Score < b.Score {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.Member, b.Member)
	})
	return out
}

// TestZSetRanksMatchModelAcrossChunks drives one sorted set through
// thousands of random ZADDs (new members and score changes) and ZREMs,
// applied in chunks of random size (so fence updates meet rows written
// in the same chunk and in earlier ones), with the real bucket size, and
// checks the fences' invariants and ZRANK, ZRANGE by rank and by score
// against a sorted model.
func TestZSetRanksMatchModelAcrossChunks(t *testing.T) {
	s := openV3(t)
	rng := rand.New(rand.NewPCG(15, 40))
	m := &zmodel{score: map[string]float64{}}
	idx := uint64(2)
	for round := 0; round < 60; round++ {
		var entries []Entry
		for range 1 + rng.IntN(200) {
			var c Command
			if rng.IntN(100) < 75 || len(m.score) < 100 {
				var pairs []any
				for range 1 + rng.IntN(20) {
					member := fmt.Sprintf("m%05d", rng.IntN(4000))
					score := float64(rng.IntN(300)) / 4
					pairs = append(pairs, score, member)
					m.score[member] = score
				}
				c = zaddCmd("z", pairs...)
			} else {
				c = Command{Op: OpZRem, Keys: [][]byte{[]byte("z")}}
				for range 1 + rng.IntN(30) {
					member := fmt.Sprintf("m%05d", rng.IntN(4000))
					delete(m.score, member)
					c.Values = append(c.Values, []byte(member))
				}
			}
			require.NoError(t, c.Validate())
			entries = append(entries, Entry{Index: idx, Data: enc(c), Stamp: 1000 + idx})
			idx++
		}
		_, err := s.Apply(entries)
		require.NoError(t, err)
		want := m.sorted()
		require.NoError(t, s.Read(func(v View) error { return checkZSetModel(t, v, rng, want, round) }))
	}
}

// checkZSetModel compares sorted set "z" with want. kv errors are
// returned (a live view asks for a retry on a snapshot that way).
func checkZSetModel(t *testing.T, v View, rng *rand.Rand, want []ZEntry, round int) error {
	z, ok, err := openZSetView(v, []byte("z"))
	if err != nil {
		return err
	}
	require.Equal(t, len(want) > 0, ok)
	if !ok {
		return nil
	}
	require.Equal(t, uint64(len(want)), z.n)
	if err := z.x.checkFences(z.n); err != nil {
		return fmt.Errorf("round %d: %w", round, err)
	}
	for range 20 {
		r := rng.IntN(len(want))
		got, sc, found, err := ZRank(v, []byte("z"), want[r].Member, false)
		if err != nil {
			return err
		}
		require.True(t, found)
		require.Equal(t, int64(r), got)
		require.Equal(t, want[r].Score, sc)
		rev, _, _, err := ZRank(v, []byte("z"), want[r].Member, true)
		if err != nil {
			return err
		}
		require.Equal(t, int64(len(want)-1-r), rev)
		es, err := ZRange(v, []byte("z"), &ZRangeSpec{Kind: ZByRank, Start: int64(r), Stop: int64(r + 5)})
		if err != nil {
			return err
		}
		require.Equal(t, want[r:min(r+6, len(want))], es)
		lo := float64(rng.IntN(300)) / 4
		spec := &ZRangeSpec{Kind: ZByScore, Min: ScoreBound{Value: lo}, Max: ScoreBound{Value: lo + 5, Excl: true}, Offset: 3, Count: 7, Rev: rng.IntN(2) == 0}
		es, err = ZRange(v, []byte("z"), spec)
		if err != nil {
			return err
		}
		var sel []ZEntry
		for _, e := range want {
			if e.Score >= lo && e.Score < lo+5 {
				sel = append(sel, e)
			}
		}
		n, err := ZCount(v, []byte("z"), spec)
		if err != nil {
			return err
		}
		require.Equal(t, int64(len(sel)), n)
		if spec.Rev {
			slices.Reverse(sel)
		}
		if len(sel) > 3 {
			sel = sel[3:min(10, len(sel))]
		} else {
			sel = nil
		}
		require.Equal(t, sel, es)
	}
	return nil
}

// TestZAddIncrNaNIsRefused: inf + -inf is Redis's NaN error, and a ZADD
// INCR that creates the key but is refused leaves no empty set.
func TestZAddIncrNaNIsRefused(t *testing.T) {
	s := openV3(t)
	c1 := zaddCmd("z", math.Inf(1), "a")
	c2 := zaddCmd("z", math.Inf(-1), "a")
	c2.Flags = ZAddIncr
	res, err := s.Apply([]Entry{{Index: 2, Data: enc(c1), Stamp: 1001}, {Index: 3, Data: enc(c2), Stamp: 1002}})
	require.NoError(t, err)
	require.Equal(t, Result{Kind: ResultInt, Int: 1}, res[0])
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextNaNScore}, res[1])
	c3 := zaddCmd("y", 1.0, "a")
	c3.Flags = ZAddIncr | ZAddXX
	res, err = s.Apply([]Entry{{Index: 4, Data: enc(c3), Stamp: 1003}})
	require.NoError(t, err)
	require.Equal(t, ResultNil, res[0].Kind)
	var exists bool
	require.NoError(t, s.Read(func(v View) error {
		var err error
		exists, err = v.Exists([]byte("y"))
		return err
	}))
	require.False(t, exists)
}

func TestFormatScoreMatchesRedis(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"}, {math.Copysign(0, -1), "-0"}, {1, "1"}, {-1.5, "-1.5"}, {0.1, "0.1"},
		{1e6, "1000000"}, {1e7, "10000000"}, {1e8, "100000000"}, {1e19, "1e+19"}, {4e18, "4000000000000000000"}, {1.25e8, "125000000"}, {1.5e-10, "1.5e-10"}, {123456789, "123456789"},
		{1.5e10, "15000000000"}, {1e21, "1e+21"}, {1e-5, "0.00001"}, {1e-7, "1e-7"},
		{1.2345678901234567, "1.2345678901234567"}, {math.Inf(1), "inf"}, {math.Inf(-1), "-inf"},
		{math.MaxFloat64, "1.7976931348623157e+308"}, {5e-324, "5e-324"}, {3.0e-5, "0.00003"},
		{-2.5e-8, "-2.5e-8"}, {10.5, "10.5"}, {0.0001234, "1.234e-4"}, {0.001234, "0.001234"},
	} {
		require.Equal(t, c.want, FormatScore(c.f), "%v", c.f)
	}
}

func TestParseScoreFollowsStrtod(t *testing.T) {
	for in, want := range map[string]float64{"1": 1, "-inf": math.Inf(-1), "+inf": math.Inf(1), "inf": math.Inf(1),
		"1.5e3": 1500, "0x10p0": 16, "-0": math.Copysign(0, -1), "Infinity": math.Inf(1)} {
		got, ok := ParseScore([]byte(in))
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", " 1", "1 ", "nan", "NaN", "abc", "1e400", "1e-400", "1_0"} {
		_, ok := ParseScore([]byte(in))
		require.False(t, ok, in)
	}
}
