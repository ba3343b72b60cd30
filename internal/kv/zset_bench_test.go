package kv

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkZSetStore measures the state machine alone (no Raft, no
// network) on one sorted set of N members: the apply cost of ZADD of a
// new member, and the read cost of ZRANK of a random member and of
// ZRANGE of 10 members at a random rank, which walk the rank index:
// O(N/B + B). The set is built first with ZADDs of 1,000 members, 8 to an
// apply chunk, its rate reported as fill-members/s.
//
// ELASTICKV_BENCH_ZSET_MEMBERS sets N (default 100,000; the documented
// run uses 1,000,000). The store has the default block cache.
func BenchmarkZSetStore(b *testing.B) {
	n := 100_000
	if s := os.Getenv("ELASTICKV_BENCH_ZSET_MEMBERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 20 {
			b.Fatalf("ELASTICKV_BENCH_ZSET_MEMBERS=%q: want an integer >= 20", s)
		}
		n = v
	}
	s, err := Open(DefaultConfig(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	idx := uint64(1)
	apply := func(cmds ...Command) {
		entries := make([]Entry, len(cmds))
		for k := range cmds {
			entries[k] = Entry{Index: idx, Data: enc(cmds[k]), Stamp: 1000 + idx}
			idx++
		}
		if _, err := s.Apply(entries); err != nil {
			b.Fatal(err)
		}
	}
	apply(*NewRaiseFormat(FormatV3))
	start := time.Now()
	var chunk []Command
	for lo := 0; lo < n; lo += 1000 {
		var pairs []any
		for i := lo; i < min(lo+1000, n); i++ {
			pairs = append(pairs, float64(i%10007), fmt.Sprintf("m%08d", i))
		}
		if chunk = append(chunk, zaddCmd("big", pairs...)); len(chunk) == 8 {
			apply(chunk...)
			chunk = chunk[:0]
		}
	}
	if len(chunk) > 0 {
		apply(chunk...)
	}
	fill := time.Since(start)
	rng := rand.New(rand.NewPCG(1, 2))
	read := func(fn func(v View) error) {
		if err := s.Read(fn); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("ZADD", func(b *testing.B) {
		for i := range b.N {
			apply(zaddCmd("big", float64(rng.IntN(10007)), fmt.Sprintf("new%09d", i)))
		}
		b.ReportMetric(float64(n)/fill.Seconds(), "fill-members/s")
	})
	b.Run("ZRANK", func(b *testing.B) {
		for range b.N {
			read(func(v View) error {
				_, _, ok, err := ZRank(v, []byte("big"), fmt.Appendf(nil, "m%08d", rng.IntN(n)), false)
				if err == nil && !ok {
					b.Fatal("member missing")
				}
				return err
			})
		}
	})
	b.Run("ZRANGE10", func(b *testing.B) {
		for range b.N {
			r := int64(rng.IntN(n - 10))
			read(func(v View) error {
				es, err := ZRange(v, []byte("big"), &ZRangeSpec{Kind: ZByRank, Start: r, Stop: r + 9})
				if err == nil && len(es) != 10 {
					b.Fatalf("ZRANGE %d: %d members", r, len(es))
				}
				return err
			})
		}
	})
}
