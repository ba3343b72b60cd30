package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
)

func counter(t *testing.T, c *Cluster, i int, name string) float64 {
	t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(100))
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	lag := (leader + 1) % 3
	c.Stop(lag)
	for i := range 600 {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%04d", i), strings.Repeat("v", 100), 0).Err())
	}
	require.Positive(t, counter(t, c, leader, "elastickv_raft_snapshots_total"), "leader should have snapshotted")
	c.Restart(lag)
	idx := c.WaitConverged(20 * time.Second)
	require.GreaterOrEqual(t, idx, uint64(600))
	require.Equal(t, 1.0, counter(t, c, lag, "elastickv_raft_snapshots_installed_total"), "follower should catch up by snapshot")
	n, err := c.Client(lag).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(600), n)
	// And by log afterwards.
	require.NoError(t, c.Client(lag).Set(ctx, "after", "x", 0).Err())
	c.WaitConverged(10 * time.Second)
}

func TestRestartFromSnapshotAndWAL(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(50))
	ctx := c.Ctx(60 * time.Second)
	for i := range 230 {
		require.NoError(t, c.Client(i%3).Incr(ctx, fmt.Sprintf("c%d", i%7)).Err())
	}
	for i := range 3 {
		c.Stop(i)
	}
	for i := range 3 {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	total := int64(0)
	for k := range 7 {
		v, err := c.Client(k%3).Get(ctx, fmt.Sprintf("c%d", k)).Int64()
		require.NoError(t, err)
		total += v
	}
	require.Equal(t, int64(230), total)
	c.WaitConverged(10 * time.Second)
}

func TestDiskUseStaysBounded(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(200))
	ctx := c.Ctx(120 * time.Second)
	val := strings.Repeat("x", 1024)
	for i := range 3000 {
		require.NoError(t, c.Client(0).Set(ctx, fmt.Sprintf("k%d", i%50), val, 0).Err())
	}
	c.WaitConverged(20 * time.Second)
	for i := range 3 {
		dir := filepath.Join(c.Dir, c.Name(i), "raft", "snap")
		count := func() int {
			ents, err := os.ReadDir(dir)
			require.NoError(t, err)
			snaps := 0
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".snap") {
					snaps++
				}
			}
			return snaps
		}
		// The leader's idle stamp entries keep the log growing, so a new
		// snapshot may have been written a moment before the oldest is
		// purged: the bound holds once the purge has run.
		require.Eventually(t, func() bool { return count() <= 3 }, 10*time.Second, 20*time.Millisecond,
			"node %s keeps at most 3 snapshots", c.Name(i))
		require.Positive(t, count())
		first, err := c.Node(i).Group().FirstIndex()
		require.NoError(t, err)
		require.Greater(t, first, uint64(2000), "node %s compacted its in-memory log", c.Name(i))
	}
}

// With the default snapshot count out of reach, large values alone trigger
// snapshots (--snapshot-log-mb): the leader compacts its log to a catch-up
// tail of at most half the byte bound, and a follower that was down meanwhile
// catches up by installing a snapshot.
func TestLargeValuesTriggerSnapshotsBeforeTheCount(t *testing.T) {
	c := New(t, 3, func(_ int, cfg *node.Config) { cfg.SnapshotLogBytes = 1 << 20 })
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	lag := (leader + 1) % 3
	c.Stop(lag)
	val := strings.Repeat("v", 64<<10)
	for i := range 64 { // 4 MiB: several snapshots at 1 MiB each
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%02d", i), val, 0).Err())
	}
	require.Positive(t, counter(t, c, leader, "elastickv_raft_snapshots_total"), "the leader snapshotted by bytes")
	// In memory: at most 1 MiB since the last snapshot (16 entries) and a
	// catch-up tail of at most 512 KiB (8), where 5000 entries of 64 KiB
	// would have kept the whole log.
	first, err := c.Node(leader).Group().FirstIndex()
	require.NoError(t, err)
	applied := c.Node(leader).Group().AppliedIndex()
	require.Greater(t, first, uint64(16), "the log was compacted")
	require.Less(t, applied-first, uint64(32), "entries %d..%d kept in memory", first, applied)

	c.Restart(lag)
	c.WaitConverged(30 * time.Second)
	require.Equal(t, 1.0, counter(t, c, lag, "elastickv_raft_snapshots_installed_total"), "the follower caught up by snapshot")
	n, err := c.Client(lag).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(64), n)
	got, err := c.Client(lag).Get(ctx, "k63").Result()
	require.NoError(t, err)
	require.Equal(t, val, got)
}
