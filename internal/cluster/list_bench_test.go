package cluster

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// benchListLen is the length of the list BenchmarkListIndexMiddle reads:
// 100k by default, ELASTICKV_BENCH_LIST_LEN=1000000 for the 1M.
func benchListLen(b *testing.B) int {
	n := 100_000
	if s := os.Getenv("ELASTICKV_BENCH_LIST_LEN"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 2 {
			b.Fatalf("ELASTICKV_BENCH_LIST_LEN=%q: want an integer >= 2", s)
		}
		n = v
	}
	return n
}

// BenchmarkListIndexMiddle: LINDEX of the middle element of a long list,
// on the leader and on a follower, and LSET of it. The list is built with
// pipelined RPUSHes of 1,000 elements each. Element i lives at sequence
// number head+i, so the cost must not depend on the list's length:
// compare ELASTICKV_BENCH_LIST_LEN=1000 with 1000000.
func BenchmarkListIndexMiddle(b *testing.B) {
	n := benchListLen(b)
	c := New(b, 3)
	cls := benchClients(b, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const chunk = 1000
	const pipeDepth = 20
	vals := make([]any, chunk)
	for i := range vals {
		vals[i] = benchValue[:16]
	}
	start := time.Now()
	for pushed := 0; pushed < n; {
		p := cls["leader"].Pipeline()
		for d := 0; d < pipeDepth && pushed < n; d++ {
			k := min(chunk, n-pushed)
			p.RPush(ctx, "biglist", vals[:k]...)
			pushed += k
		}
		if _, err := p.Exec(ctx); err != nil {
			b.Fatalf("fill: %v", err)
		}
	}
	if got := cls["leader"].LLen(ctx, "biglist").Val(); got != int64(n) {
		b.Fatalf("LLEN %d, want %d", got, n)
	}
	b.Logf("filled %d elements in %v", n, time.Since(start))
	mid := int64(n / 2)
	for _, role := range []string{"leader", "follower"} {
		cl := cls[role]
		b.Run("lindex/"+role, func(b *testing.B) {
			runClientBench(b, false, func(ctx context.Context, _ int) error {
				return cl.LIndex(ctx, "biglist", mid).Err()
			})
		})
	}
	b.Run("lset/leader", func(b *testing.B) {
		runClientBench(b, false, func(ctx context.Context, _ int) error {
			return cls["leader"].LSet(ctx, "biglist", mid, "x").Err()
		})
	})
}
