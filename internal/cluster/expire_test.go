package cluster_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/cluster"
	"github.com/elastickv/elastickv/internal/kv"
)

// Expiry over real nodes: deadlines are computed on apply from the
// replicated time, so every replica holds the same one, and a key reported
// expired never comes back: not after a leader change, a restart, or a
// snapshot install.

// waitGone polls until key reads as missing on node i.
func waitGone(t *testing.T, c *cluster.Cluster, i int, key string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := c.Client(i).Exists(c.Ctx(5*time.Second), key).Result()
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: key %q still present after %v (err %v)", c.Name(i), key, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExpirySameDeadlineOnEveryNode(t *testing.T) {
	c := cluster.New(t, 3)
	ctx := c.Ctx(10 * time.Second)
	// Through a follower, so the write is forwarded: the deadline is still
	// computed once, on apply, from the leader's stamp.
	f := (c.Leader() + 1) % 3
	require.NoError(t, c.Client(f).Set(ctx, "k", "v", time.Minute).Err())
	require.NoError(t, c.Client(f).Do(ctx, "EXPIRE", "e", 100).Err())
	require.NoError(t, c.Client(f).Do(ctx, "SET", "e", "v", "EX", 100).Err())
	var want int64
	for i := range 3 {
		at, err := c.Client(i).Do(ctx, "PEXPIRETIME", "k").Int64()
		require.NoError(t, err)
		if i == 0 {
			want = at
			now := time.Now().UnixMilli()
			require.InDelta(t, now+60000, at, 5000, "the deadline is about a minute from the leader's clock")
		}
		require.Equal(t, want, at, "%s holds another deadline", c.Name(i))
		ttl, err := c.Client(i).TTL(ctx, "k").Result()
		require.NoError(t, err)
		require.Greater(t, ttl, 50*time.Second)
	}
}

func TestExpiryAcrossLeaderChangeRestartAndSnapshot(t *testing.T) {
	c := cluster.New(t, 3, cluster.WithSnapshotCount(50))
	ctx := c.Ctx(30 * time.Second)
	lead := c.Leader()
	rdb := c.Client(lead)
	require.NoError(t, rdb.Set(ctx, "short", "v", 300*time.Millisecond).Err())
	require.NoError(t, rdb.Set(ctx, "long", "v", time.Hour).Err())
	at, err := rdb.Do(ctx, "PEXPIRETIME", "long").Int64()
	require.NoError(t, err)

	// Once one node reports the key expired, none returns it again.
	waitGone(t, c, lead, "short", 5*time.Second)
	for i := range 3 {
		require.ErrorIs(t, c.Client(i).Get(ctx, "short").Err(), goredis.Nil, c.Name(i))
	}

	// A follower stops; keys expire and many entries pass, so the
	// leader's log is compacted and the follower must install a snapshot.
	down := (lead + 1) % 3
	c.Stop(down)
	for i := range 20 {
		require.NoError(t, rdb.Set(ctx, fmt.Sprintf("gone%d", i), "v", 200*time.Millisecond).Err())
	}
	for i := range 200 {
		require.NoError(t, rdb.Set(ctx, fmt.Sprintf("fill%d", i), "v", 0).Err())
	}
	for i := range 20 {
		waitGone(t, c, lead, fmt.Sprintf("gone%d", i), 5*time.Second)
	}
	c.Restart(down)
	c.WaitConverged(20 * time.Second)
	for i := range 20 {
		require.Equal(t, int64(0), c.Client(down).Exists(ctx, fmt.Sprintf("gone%d", i)).Val(), "revived after snapshot install")
	}
	got, err := c.Client(down).Do(ctx, "PEXPIRETIME", "long").Int64()
	require.NoError(t, err)
	require.Equal(t, at, got, "the deadline travels in the snapshot")

	// Leadership moves: the new leader's time starts after the old one's,
	// so nothing expired comes back and nothing live expires early.
	require.NoError(t, c.Node(lead).Group().TransferLeadership(ctx, ""))
	nl := c.WaitLeader(10 * time.Second)
	require.NotEqual(t, lead, nl)
	for i := range 3 {
		require.ErrorIs(t, c.Client(i).Get(ctx, "short").Err(), goredis.Nil, c.Name(i))
		require.Equal(t, "v", c.Client(i).Get(ctx, "long").Val(), c.Name(i))
	}

	// Every node restarts: replay computes the same deadlines.
	for i := range 3 {
		c.Stop(i)
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	for i := range 3 {
		got, err := c.Client(i).Do(ctx, "PEXPIRETIME", "long").Int64()
		require.NoError(t, err)
		require.Equal(t, at, got, c.Name(i))
		require.ErrorIs(t, c.Client(i).Get(ctx, "short").Err(), goredis.Nil, c.Name(i))
	}
}

func TestActiveExpiryDeletesUnreadKeys(t *testing.T) {
	c := cluster.New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	rdb := c.Client(c.Leader())
	pipe := rdb.Pipeline()
	for i := range 2000 {
		pipe.Set(ctx, fmt.Sprintf("k%d", i), "v", 200*time.Millisecond)
	}
	pipe.Set(ctx, "keep", "v", 0)
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	// Nobody reads the keys: the sweeper must delete them, on every node.
	deadline := time.Now().Add(15 * time.Second)
	for i := range 3 {
		for {
			n, err := c.Client(i).DBSize(ctx).Result()
			require.NoError(t, err)
			if n == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: DBSIZE %d, want 1 once the sweeper ran", c.Name(i), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		info := c.Client(i).Info(ctx, "stats", "keyspace").Val()
		require.Contains(t, info, "expired_keys:2000\r\n", c.Name(i))
		require.Contains(t, info, "db0:keys=1,expires=0", c.Name(i))
	}
	require.Equal(t, "v", rdb.Get(ctx, "keep").Val())
}

func TestFormatVersionReported(t *testing.T) {
	c := cluster.New(t, 3)
	ctx := c.Ctx(10 * time.Second)
	for i := range 3 {
		deadline := time.Now().Add(5 * time.Second)
		for {
			info := c.Client(i).Info(ctx, "raft").Val()
			want := strconv.Itoa(int(kv.MaxFormat))
			if strings.Contains(info, "cluster_format:"+want+"\r\n") {
				require.Contains(t, info, "binary_max_format:"+want+"\r\n")
				require.Contains(t, info, "min_member_format:"+want+"\r\n")
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the cluster format did not rise to %d:\n%s", c.Name(i), kv.MaxFormat, info)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLeaderWithClockBehindDoesNotReviveKeys: a node whose wall clock is 5 s
// behind takes over after a key was reported expired. Its stamps start
// above every stamp in its log, so the key stays expired on every node,
// and keys written under it get deadlines in the same time line.
func TestLeaderWithClockBehindDoesNotReviveKeys(t *testing.T) {
	const slow = 2
	// Without the sweeper the expired key stays in the store, so a read at
	// an earlier time would return it.
	c := cluster.New(t, 3, cluster.WithWallClockOffset(slow, -5*time.Second), cluster.WithoutSweeper())
	ctx := c.Ctx(30 * time.Second)
	if c.Leader() == slow {
		require.NoError(t, c.Node(slow).Group().TransferLeadership(ctx, c.Name(0)))
		require.Eventually(t, func() bool { return c.Leader() == 0 }, 10*time.Second, 10*time.Millisecond)
	}
	lead := c.Leader()
	rdb := c.Client(lead)
	require.NoError(t, rdb.Set(ctx, "short", "v", 500*time.Millisecond).Err())
	require.NoError(t, rdb.Set(ctx, "long", "v", time.Hour).Err())
	at, err := rdb.Do(ctx, "PEXPIRETIME", "long").Int64()
	require.NoError(t, err)
	waitGone(t, c, lead, "short", 5*time.Second)

	require.NoError(t, c.Node(lead).Group().TransferLeadership(ctx, c.Name(slow)))
	require.Eventually(t, func() bool { return c.Leader() == slow }, 10*time.Second, 10*time.Millisecond)
	for i := range 3 {
		require.ErrorIs(t, c.Client(i).Get(ctx, "short").Err(), goredis.Nil, "%s revived the key", c.Name(i))
		got, err := c.Client(i).Do(ctx, "PEXPIRETIME", "long").Int64()
		require.NoError(t, err)
		require.Equal(t, at, got, c.Name(i))
	}
	// A key written under the slow leader expires after its TTL, not 5 s
	// early: its deadline is at least the old leader's time plus the TTL.
	before := time.Now().UnixMilli()
	require.NoError(t, c.Client(slow).Set(ctx, "new", "v", 3*time.Second).Err())
	got, err := c.Client(0).Do(ctx, "PEXPIRETIME", "new").Int64()
	require.NoError(t, err)
	require.GreaterOrEqual(t, got, before+3000-1000, "deadline from a clock behind the last stamps")
	for i := range 3 {
		require.Equal(t, "v", c.Client(i).Get(ctx, "new").Val(), c.Name(i))
	}
}
