package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// forwardMetric returns a follower's forwarding metric: the sample count and
// sum of the batch-size histogram, or the counter with label result=value.
func forwardMetric(t *testing.T, c *Cluster, i int, name, result string) (count uint64, sum float64) {
	t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				return h.GetSampleCount(), h.GetSampleSum()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return uint64(m.GetCounter().GetValue()), 0
				}
			}
		}
	}
	return 0, 0
}

// followerClient is a go-redis client for node i with one connection per
// writer, so writers are really concurrent.
func followerClient(t *testing.T, c *Cluster, i, conns int) *goredis.Client {
	cl := goredis.NewClient(&goredis.Options{
		Addr: c.Node(i).RedisAddr(), PoolSize: conns, MinIdleConns: conns,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, MaxRetries: -1,
	})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// requireContiguous checks that INCR replies are exactly 1..len(got).
func requireContiguous(t *testing.T, got []int64) {
	t.Helper()
	slices.Sort(got)
	for i, v := range got {
		require.Equal(t, int64(i+1), v, "INCR replies must be unique and contiguous")
	}
}

func TestFollowerBatchesConcurrentForwardedWrites(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % 3
	const writers, perWriter = 40, 25
	cl := followerClient(t, c, follower, writers)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		incrs []int64
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perWriter {
				key := fmt.Sprintf("w%d:%d", w, j)
				if err := cl.Set(ctx, key, key, 0).Err(); err != nil {
					t.Errorf("set %s: %v", key, err)
					return
				}
				v, err := cl.Incr(ctx, "counter").Result()
				if err != nil {
					t.Errorf("incr: %v", err)
					return
				}
				mu.Lock()
				incrs = append(incrs, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.False(t, t.Failed())
	require.Len(t, incrs, writers*perWriter)
	requireContiguous(t, incrs)

	// Every value is on the leader.
	lc := c.Client(leader)
	for w := range writers {
		keys := make([]string, perWriter)
		for j := range keys {
			keys[j] = fmt.Sprintf("w%d:%d", w, j)
		}
		vals, err := lc.MGet(ctx, keys...).Result()
		require.NoError(t, err)
		for j, v := range vals {
			require.Equal(t, keys[j], v)
		}
	}
	n, err := lc.Get(ctx, "counter").Int64()
	require.NoError(t, err)
	require.Equal(t, int64(writers*perWriter), n)

	batches, cmds := forwardMetric(t, c, follower, "elastickv_forward_batch_commands", "")
	require.Equal(t, float64(2*writers*perWriter), cmds, "every write was forwarded once")
	avg := cmds / float64(batches)
	t.Logf("%d forwarded writes in %d batch RPCs (%.1f per batch)", int(cmds), batches, avg)
	require.Greater(t, avg, 1.0, "concurrent forwarded writes share batches")
	failed, _ := forwardMetric(t, c, follower, "elastickv_forward_batches_total", "failed")
	require.Zero(t, failed)
	c.WaitConverged(10 * time.Second)
}

// TestForwardedBatchRetriedAfterLeaderTransfer keeps writers busy on a
// follower while leadership moves between the other two nodes. Batches that
// reach a node that just stopped leading are refused without being proposed
// and retried by each caller: every write succeeds exactly once.
func TestForwardedBatchRetriedAfterLeaderTransfer(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(120 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % 3
	other := (leader + 2) % 3
	const writers = 20
	cl := followerClient(t, c, follower, writers)

	var (
		wg    sync.WaitGroup
		stop  atomic.Bool
		mu    sync.Mutex
		incrs []int64
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				v, err := cl.Incr(ctx, "counter").Result()
				if err != nil {
					t.Errorf("incr through %s: %v", c.Name(follower), err)
					return
				}
				mu.Lock()
				incrs = append(incrs, v)
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(incrs)
	}
	// Progress: n more INCRs acknowledged.
	progress := func(n int) {
		want := count() + n
		require.Eventually(t, func() bool { return count() >= want || t.Failed() }, 30*time.Second, 5*time.Millisecond)
	}
	progress(200)
	admin := c.Admin(follower)
	notLeader := func() uint64 {
		n, _ := forwardMetric(t, c, follower, "elastickv_forward_batches_total", "not_leader")
		return n
	}
	// Move leadership back and forth between the two other nodes until a
	// batch has been refused (usually the first transfer does it).
	targets := []int{other, leader}
	for i := 0; i < 20 && notLeader() == 0 && !t.Failed(); i++ {
		target := targets[i%2]
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := admin.TransferLeader(tctx, c.Name(target))
		cancel()
		require.NoError(t, err)
		require.Eventually(t, func() bool { return c.Leader() == target }, 10*time.Second, 10*time.Millisecond)
		progress(100) // the writers go on under the new leader
	}
	progress(200)
	stop.Store(true)
	wg.Wait()
	require.False(t, t.Failed())
	require.NotZero(t, notLeader(), "no batch hit a node that had stopped leading")
	failed, _ := forwardMetric(t, c, follower, "elastickv_forward_batches_total", "failed")
	require.Zero(t, failed)
	requireContiguous(t, incrs)
	n, err := c.Client(c.WaitLeader(5*time.Second)).Get(ctx, "counter").Int64()
	require.NoError(t, err)
	require.Equal(t, int64(len(incrs)), n, "every acknowledged INCR applied exactly once")
	t.Logf("%d INCRs; %d batches refused by a former leader and retried", len(incrs), notLeader())
}
