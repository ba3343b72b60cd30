package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkZSetLarge reports, on a 3-node cluster, the cost of ZADD of a
// new member, ZRANK of a random member and ZRANGE of 10 members at a
// random rank on one sorted set of N members (issue #15: rank queries
// must not be O(N)). The set is built first with pipelined ZADDs of 1,000
// members each, its rate reported as fill-members/s.
//
// ELASTICKV_BENCH_ZSET_MEMBERS sets N (default 100,000; the documented
// run uses 1,000,000). Each sub-benchmark is one client, one command at a
// time, against the leader.
func BenchmarkZSetLarge(b *testing.B) {
	n := 100_000
	if s := os.Getenv("ELASTICKV_BENCH_ZSET_MEMBERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 20 {
			b.Fatalf("ELASTICKV_BENCH_ZSET_MEMBERS=%q: want an integer >= 20", s)
		}
		n = v
	}
	c := New(b, 3)
	leader := c.WaitLeader(5 * time.Second)
	cl := c.Client(leader)
	ctx := context.Background()

	start := time.Now()
	const perCmd, perPipe = 1000, 8
	pipe := cl.Pipeline()
	queued := 0
	for lo := 0; lo < n; lo += perCmd {
		members := make([]goredis.Z, 0, perCmd)
		for i := lo; i < min(lo+perCmd, n); i++ {
			members = append(members, goredis.Z{Score: float64(i % 10007), Member: fmt.Sprintf("m%08d", i)})
		}
		pipe.ZAdd(ctx, "big", members...)
		if queued++; queued == perPipe {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatalf("fill: %v", err)
			}
			queued = 0
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && queued > 0 {
		b.Fatalf("fill: %v", err)
	}
	fill := time.Since(start)
	if got := cl.ZCard(ctx, "big").Val(); got != int64(n) {
		b.Fatalf("ZCARD %d, want %d", got, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))

	b.Run("ZADD", func(b *testing.B) {
		for i := range b.N {
			if err := cl.ZAdd(ctx, "big", goredis.Z{Score: float64(rng.IntN(10007)), Member: fmt.Sprintf("new%d", i)}).Err(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/fill.Seconds(), "fill-members/s")
	})
	b.Run("ZRANK", func(b *testing.B) {
		for range b.N {
			if err := cl.ZRank(ctx, "big", fmt.Sprintf("m%08d", rng.IntN(n))).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ZRANGE10", func(b *testing.B) {
		for range b.N {
			r := int64(rng.IntN(n - 10))
			if got := cl.ZRange(ctx, "big", r, r+9).Val(); len(got) != 10 {
				b.Fatalf("ZRANGE %d %d: %d members", r, r+9, len(got))
			}
		}
	})
}
