package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestPipelinedCommandsKeepOrderAndReplies sends one pipeline mixing
// batchable writes, reads, failing commands and other commands, through a
// follower and through the leader: every reply is the one the command would
// get on its own, in order, and reads see the writes pipelined before them.
func TestPipelinedCommandsKeepOrderAndReplies(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(5 * time.Second)
	for _, target := range []int{(leader + 1) % 3, leader} {
		ctx := c.Ctx(20 * time.Second)
		cl := c.Client(target)
		p := fmt.Sprintf("p%d:", target)
		pipe := cl.Pipeline()
		set := pipe.Set(ctx, p+"a", "1", 0)
		incr1 := pipe.Incr(ctx, p+"a")
		incr2 := pipe.Incr(ctx, p+"a")
		get1 := pipe.Get(ctx, p+"a")
		setx := pipe.Set(ctx, p+"a", "x", 0)
		badIncr := pipe.Incr(ctx, p+"a")
		setnx := pipe.SetNX(ctx, p+"a", "z", 0)
		syntax := pipe.Do(ctx, "set", p+"q", "1", "BOGUS")
		mset := pipe.MSet(ctx, p+"b", "1", p+"c", "22")
		mget := pipe.MGet(ctx, p+"b", p+"c", p+"missing")
		ping := pipe.Ping(ctx)
		del := pipe.Del(ctx, p+"a", p+"b")
		exists := pipe.Exists(ctx, p+"a", p+"b", p+"c")
		strlen := pipe.StrLen(ctx, p+"c")
		getGone := pipe.Get(ctx, p+"a")
		_, _ = pipe.Exec(ctx)

		require.NoError(t, set.Err())
		require.Equal(t, int64(2), incr1.Val())
		require.Equal(t, int64(3), incr2.Val())
		require.Equal(t, "3", get1.Val(), "a read sees the writes pipelined before it")
		require.NoError(t, setx.Err())
		require.EqualError(t, badIncr.Err(), "ERR value is not an integer or out of range")
		require.False(t, setnx.Val())
		require.EqualError(t, syntax.Err(), "ERR syntax error")
		require.NoError(t, mset.Err())
		require.Equal(t, []any{"1", "22", nil}, mget.Val())
		require.Equal(t, "PONG", ping.Val())
		require.Equal(t, int64(2), del.Val())
		require.Equal(t, int64(1), exists.Val())
		require.Equal(t, int64(2), strlen.Val())
		require.ErrorIs(t, getGone.Err(), goredis.Nil)
	}
}

// TestPipelinedWritesShareLogEntries checks that a pipeline of writes is
// replicated as fewer log entries than writes (one batch per run), with
// every write applied.
func TestPipelinedWritesShareLogEntries(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	before := c.Node(leader).Group().Status().Commit
	pipe := c.Client(leader).Pipeline()
	for i := range 200 {
		pipe.Incr(ctx, "n")
		pipe.Set(ctx, fmt.Sprintf("k%d", i), "v", 0)
	}
	cmds, err := pipe.Exec(ctx)
	require.NoError(t, err)
	require.Len(t, cmds, 400)
	require.Equal(t, int64(200), cmds[398].(*goredis.IntCmd).Val())
	after := c.Node(leader).Group().Status().Commit
	require.Less(t, after-before, uint64(400), "400 pipelined writes should share entries")
	v, err := c.Client((leader+1)%3).Get(ctx, "n").Int64()
	require.NoError(t, err)
	require.Equal(t, int64(200), v)
	n, err := c.Client((leader + 2) % 3).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(201), n)
}
