package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/raft"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Pebble and glog-style background workers that outlive a DB are
		// not ours; go-redis pools close with their clients.
		goleak.IgnoreTopFunction("github.com/cockroachdb/pebble/v2/internal/cache.(*Cache).trim"),
	)
}

func TestWriteOnOneNodeReadsOnEvery(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(20 * time.Second)
	for i := range c.Size() {
		key := fmt.Sprintf("k%d", i)
		require.NoError(t, c.Client(i).Set(ctx, key, "v"+key, 0).Err(), "write through %s", c.Name(i))
	}
	for i := range c.Size() {
		for j := range c.Size() {
			key := fmt.Sprintf("k%d", j)
			got, err := c.Client(i).Get(ctx, key).Result()
			require.NoError(t, err, "read %s through %s", key, c.Name(i))
			require.Equal(t, "v"+key, got)
		}
	}
}

func TestFollowerForwardsWritesWithLeadersReply(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(20 * time.Second)
	follower := (c.WaitLeader(5*time.Second) + 1) % c.Size()
	cl := c.Client(follower)
	for want := int64(1); want <= 5; want++ {
		got, err := cl.Incr(ctx, "counter").Result()
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := cl.IncrBy(ctx, "counter", 9223372036854775807).Result()
	require.EqualError(t, err, "ERR increment or decrement would overflow")
}

func TestLeaderStoppedNewLeaderServesWrites(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	old := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(old).Set(ctx, "before", "1", 0).Err())
	c.Stop(old)
	stopped := time.Now()
	other := (old + 1) % c.Size()
	require.NoError(t, c.Client(other).Set(ctx, "after", "2", 0).Err())
	t.Logf("write accepted %v after the leader stopped", time.Since(stopped))
	l := c.WaitLeader(10 * time.Second)
	require.NotEqual(t, old, l)
	for i := range c.Size() {
		if c.Node(i) == nil {
			continue
		}
		v, err := c.Client(i).Get(ctx, "before").Result()
		require.NoError(t, err)
		require.Equal(t, "1", v)
	}
	c.Restart(old)
	v, err := c.Client(old).Get(ctx, "after").Result()
	require.NoError(t, err)
	require.Equal(t, "2", v)
}

func TestAllNodesRestartedKeepAcknowledgedWrites(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	var wg sync.WaitGroup
	acked := make([][]int, c.Size())
	for i := range c.Size() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				if c.Client(i).Set(ctx, fmt.Sprintf("w%d-%d", i, j), strconv.Itoa(j), 0).Err() == nil {
					acked[i] = append(acked[i], j)
				}
			}
		}()
	}
	wg.Wait()
	for i := range c.Size() {
		c.Stop(i)
	}
	for i := range c.Size() {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	total := 0
	for i := range c.Size() {
		for _, j := range acked[i] {
			v, err := c.Client((i+1)%c.Size()).Get(ctx, fmt.Sprintf("w%d-%d", i, j)).Result()
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(j), v)
			total++
		}
	}
	require.Equal(t, 150, total, "every write should have been acknowledged")
	n, err := c.Client(0).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(150), n)
}

func TestConcurrentIncrementsAreNotLost(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	var wg sync.WaitGroup
	const perClient = 100
	for i := range c.Size() {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perClient {
					if err := c.Client(i).Incr(ctx, "n").Err(); err != nil {
						t.Errorf("incr via %s: %v", c.Name(i), err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for i := range c.Size() {
		v, err := c.Client(i).Get(ctx, "n").Int64()
		require.NoError(t, err)
		require.Equal(t, int64(c.Size()*4*perClient), v)
	}
}

func TestNodeThatLostItsDiskRefusesToRejoin(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(20 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "k", "v", 0).Err())
	victim := (leader + 1) % 3
	c.WaitConverged(5 * time.Second)
	c.LoseDisk(victim)
	err := c.TryRestart(victim)
	require.ErrorIs(t, err, node.ErrLostDisk)
	t.Logf("refused: %v", err)
}

// The leader that saw the victim acknowledge entries is gone by the time
// the victim comes back with an empty directory: the new leader's progress
// for it is zero, but the replicated record of its acknowledgements (kept
// by every node) still names it.
func TestNodeThatLostItsDiskRefusesToRejoinAfterALeaderChange(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "k", "v", 0).Err())
	victim := (leader + 1) % 3
	other := (leader + 2) % 3
	victimID := raft.NodeID(c.Name(victim))
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Node(i).Group().Acknowledged(victimID) }, 5*time.Second, 10*time.Millisecond,
			"%s records that %s acknowledged entries", c.Name(i), c.Name(victim))
	}
	c.LoseDisk(victim)
	// Leadership moves to the node that never led while the victim was up,
	// and the old leader goes down: nobody left has a match index for it.
	_, err := c.Admin(other).TransferLeader(ctx, c.Name(other))
	require.NoError(t, err)
	require.Equal(t, other, c.WaitLeader(5*time.Second))
	c.Stop(leader)
	err = c.TryRestart(victim)
	require.ErrorIs(t, err, node.ErrLostDisk)
	t.Logf("refused: %v", err)
}

func TestWithoutQuorumRequestsFailWithTryAgainInBoundedTime(t *testing.T) {
	c := New(t, 3, func(_ int, cfg *node.Config) { cfg.RequestTimeout = time.Second })
	ctx := c.Ctx(30 * time.Second)
	require.NoError(t, c.Client(0).Set(ctx, "k", "v", 0).Err())
	c.Stop(1)
	c.Stop(2)
	// Writes and reads on the lone node must neither hang nor succeed.
	for _, op := range []func() error{
		func() error { return c.Client(0).Set(ctx, "k", "w", 0).Err() },
		func() error { return c.Client(0).Get(ctx, "k").Err() },
	} {
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "TRYAGAIN") || strings.Contains(err.Error(), "outcome unknown") || strings.Contains(err.Error(), "may or may not"),
				"unexpected error %q", err)
		case <-time.After(15 * time.Second):
			t.Fatal("request hung without quorum")
		}
	}
	c.Restart(1)
	c.WaitLeader(10 * time.Second)
	v, err := c.Client(1).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Contains(t, []string{"v", "w"}, v)
}

func TestRaftRoleMetricsNameTheLeader(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % 3
	gauge := func(i int, name, label, value string) float64 {
		mfs, err := c.Node(i).Registry().Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == label && l.GetValue() == value {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		return -1
	}
	require.Eventually(t, func() bool {
		return gauge(follower, "elastickv_raft_leader", "leader", c.Name(leader)) == 1 &&
			gauge(follower, "elastickv_raft_state", "state", "follower") == 1 &&
			gauge(leader, "elastickv_raft_state", "state", "leader") == 1 &&
			gauge(leader, "elastickv_raft_state", "state", "follower") == 0
	}, 5*time.Second, 20*time.Millisecond)
}
