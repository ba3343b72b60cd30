package cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
)

// counter sums a counter family's series in node i's registry.
func (c *Cluster) counter(i int, name string) float64 {
	c.t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(c.t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += metricValue(m)
		}
	}
	return sum
}

func metricValue(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// A command whose log entry would exceed --max-entry-bytes is refused with
// -ERR before anything is proposed, on the leader and on a follower, while
// a pipeline of the same bytes split over many commands goes through
// (pipelined and forwarded batches are cut below the cap).
func TestHostileCommandAboveTheEntryCapIsRefused(t *testing.T) {
	const value = 1 << 20
	c := New(t, 3, func(_ int, cfg *node.Config) {
		cfg.MaxValueBytes = value
		cfg.MaxEntryBytes = value + 2<<20
	})
	leader := c.Leader()
	follower := (leader + 1) % 3
	ctx := c.Ctx(30 * time.Second)
	v := strings.Repeat("v", value)
	for _, i := range []int{leader, follower} {
		err := c.Client(i).MSet(ctx, "a", v, "b", v, "c", v, "d", v).Err()
		require.Error(t, err, "node %d", i)
		require.Contains(t, err.Error(), "log entry limit")
		n, err := c.Client(i).Exists(ctx, "a", "b", "c", "d").Result()
		require.NoError(t, err)
		require.Zero(t, n, "nothing of the refused MSET was applied")
		require.Positive(t, c.counter(i, "elastickv_raft_proposals_too_large_total"))
	}

	// 12 MiB of pipelined SETs, far above the cap in total.
	for _, i := range []int{leader, follower} {
		cl := goredis.NewClient(&goredis.Options{Addr: c.Node(i).RedisAddr(), MaxRetries: -1,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
		defer func() { _ = cl.Close() }() // the commands' errors are the test's
		cmds, err := cl.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for k := range 12 {
				p.Set(ctx, fmt.Sprintf("p%d-%d", i, k), v, 0)
			}
			return nil
		})
		require.NoError(t, err, "node %d", i)
		require.Len(t, cmds, 12)
	}
	// The cluster keeps serving, and every replica holds the pipelined keys.
	for i := range 3 {
		for _, j := range []int{leader, follower} {
			n, err := c.Client(i).StrLen(ctx, fmt.Sprintf("p%d-11", j)).Result()
			require.NoError(t, err)
			require.Equal(t, int64(value), n)
		}
	}
	c.WaitConverged(30 * time.Second)
}

// A leader that cannot commit (both followers down) holds at most
// --max-uncommitted-mb of unacknowledged entries: past it proposals are
// dropped and clients time out with an error instead of growing the
// leader's memory; once the followers return, writes go through again and
// everything acknowledged before is there.
func TestHostileWriteFloodWithoutQuorumStaysWithinTheUncommittedBudget(t *testing.T) {
	const value = 256 << 10
	c := New(t, 3, WithTimings(50*time.Millisecond, 3*time.Second), func(_ int, cfg *node.Config) {
		cfg.MaxValueBytes = value
		cfg.MaxEntryBytes = value + 2<<20
		cfg.MaxUncommittedBytes = uint64(value + 2<<20)
		cfg.RequestTimeout = 500 * time.Millisecond
	})
	leader := c.Leader()
	ctx := c.Ctx(60 * time.Second)
	v := strings.Repeat("u", value)
	require.NoError(t, c.Client(leader).Set(ctx, "before", "1", 0).Err())
	for i := range 3 {
		if i != leader {
			c.Stop(i)
		}
	}
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline); k++ {
				opCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
				err := c.Client(leader).Set(opCtx, fmt.Sprintf("flood-%d-%d", w, k), v, 0).Err()
				cancel()
				if err != nil {
					failed.Add(1)
				} else {
					acked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Zero(t, acked.Load(), "nothing commits without a quorum")
	require.Positive(t, failed.Load())
	require.Positive(t, c.counter(leader, "elastickv_raft_proposals_dropped_uncommitted_total"),
		"the budget must have dropped proposals")

	for i := range 3 {
		if i != leader {
			c.Restart(i)
		}
	}
	l := c.WaitLeader(20 * time.Second)
	require.Eventually(t, func() bool {
		return c.Client(l).Set(c.Ctx(2*time.Second), "after", "1", 0).Err() == nil
	}, 20*time.Second, 50*time.Millisecond)
	for i := range 3 {
		require.Eventually(t, func() bool {
			got, err := c.Client(i).Get(c.Ctx(2*time.Second), "before").Result()
			return err == nil && got == "1"
		}, 20*time.Second, 50*time.Millisecond)
	}
}
