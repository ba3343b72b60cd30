package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
)

// nodeMetric returns the value of metric name with the given labels in
// node i's registry, 0 if absent.
func nodeMetric(t *testing.T, c *Cluster, i int, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestHostileKeysOnAClusterStopAtDeadlineAndShutdownStaysPrompt runs
// KEYS with a pattern costing ~7M steps per long key on real nodes. Where
// the request timeout is 2s, KEYS answers an error once it passes while
// writes go on through every node; where it is an hour, closing the node
// under the KEYS returns promptly and the node restarts with every
// acknowledged write.
func TestHostileKeysOnAClusterStopAtDeadlineAndShutdownStaysPrompt(t *testing.T) {
	const patient = 2 // this node lets a command run for an hour
	c := New(t, 3, func(i int, cfg *node.Config) {
		cfg.RequestTimeout = 2 * time.Second
		if i == patient {
			cfg.RequestTimeout = time.Hour
		}
	})
	ctx := c.Ctx(3 * time.Minute)
	leader := c.WaitLeader(10 * time.Second)
	w := c.Client(leader)
	long := strings.Repeat("a", 8<<10)
	for start := 0; start < 300; start += 50 {
		args := []any{}
		for i := start; i < start+50; i++ {
			args = append(args, fmt.Sprintf("a:%04d:%s", i, long), "v")
		}
		require.NoError(t, w.MSet(ctx, args...).Err())
	}
	for start := 0; start < 50_000; start += 1000 {
		args := []any{}
		for i := start; i < start+1000; i++ {
			args = append(args, fmt.Sprintf("key:%06d", i), "v")
		}
		require.NoError(t, w.MSet(ctx, args...).Err())
	}
	pattern := "*" + strings.Repeat("a", 1000) + "b"

	// MGET of many keys runs under a budget, pipelined too (a run of
	// reads shares one barrier, then each reads locally), and answers in
	// full when the budget suffices.
	pipe := c.Client((leader + 1) % 3).Pipeline()
	var mgets []*goredis.SliceCmd
	for p := range 3 {
		keys := make([]string, 100)
		for i := range keys {
			keys[i] = fmt.Sprintf("key:%06d", p*100+i)
		}
		mgets = append(mgets, pipe.MGet(ctx, keys...))
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	for _, m := range mgets {
		require.Len(t, m.Val(), 100)
		for _, v := range m.Val() {
			require.Equal(t, "v", v)
		}
	}

	// A node with the 2s timeout: KEYS is cut, and the node and the
	// cluster serve writes meanwhile.
	hostile := (patient + 1) % 3
	keysErr := make(chan error, 1)
	go func() { keysErr <- c.Client(hostile).Keys(ctx, pattern).Err() }()
	require.Eventually(t, func() bool {
		return nodeMetric(t, c, hostile, "elastickv_redis_expensive_reads_in_flight", nil) == 1
	}, 20*time.Second, 5*time.Millisecond, "KEYS in progress")
	other := goredis.NewClient(&goredis.Options{Addr: c.Node(hostile).RedisAddr(), MaxRetries: -1})
	defer func() { _ = other.Close() }()
	for i := range 20 {
		require.NoError(t, other.Set(ctx, fmt.Sprintf("during:%d", i), i, 0).Err())
	}
	require.ErrorContains(t, <-keysErr, "ERR KEYS exceeded its time limit of 2s (request-timeout)")
	require.Equal(t, 1.0, nodeMetric(t, c, hostile, "elastickv_redis_commands_aborted_total",
		map[string]string{"cmd": "keys", "reason": "deadline"}))

	// The patient node: its KEYS would run for minutes; Close does not
	// wait for it.
	go func() { keysErr <- c.Client(patient).Keys(context.Background(), pattern).Err() }()
	require.Eventually(t, func() bool {
		return nodeMetric(t, c, patient, "elastickv_redis_expensive_reads_in_flight", nil) == 1
	}, 20*time.Second, 5*time.Millisecond, "KEYS in progress")
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		c.Stop(patient)
	}()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("closing the node still waits on KEYS after 15s")
	}
	require.Error(t, <-keysErr)

	// Nothing acknowledged is lost, on the restarted node too. (Write
	// through a running node: the stopped one may have been the leader,
	// and Stop closed its client.)
	require.Eventually(t, func() bool {
		return c.Client(hostile).Set(c.Ctx(5*time.Second), "after", "x", 0).Err() == nil
	}, 30*time.Second, 50*time.Millisecond)
	c.Restart(patient)
	c.WaitConverged(60 * time.Second)
	r := c.Client(patient)
	require.Equal(t, "x", r.Get(ctx, "after").Val())
	require.Equal(t, "19", r.Get(ctx, "during:19").Val())
	require.Equal(t, "v", r.Get(ctx, "key:049999").Val())
	require.Equal(t, int64(50_000+300+20+1), r.DBSize(ctx).Val())
}
