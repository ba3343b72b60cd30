package redis

import (
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestHashAndSetCommandsBatchInPipelines: pipelined hash and set writes
// share one batch and pipelined point reads one barrier, and each
// command still gets its own reply, in order, errors included.
func TestHashAndSetCommandsBatchInPipelines(t *testing.T) {
	for _, name := range []string{"hset", "hmset", "hdel", "hincrby", "sadd", "srem", "smove", "sunionstore"} {
		require.True(t, commandTable[name].batchWrite, name)
	}
	for _, name := range []string{"hget", "hmget", "hlen", "sismember", "scard"} {
		require.True(t, commandTable[name].batchRead, name)
	}
	require.False(t, commandTable["spop"].batchWrite, "SPOP reads before it writes")

	f := newFixture(t)
	before := f.backend.index
	p := f.rdb.Pipeline()
	for i := range 50 {
		p.HSet(f.ctx, "h", "f"+strconv.Itoa(i), i)
		p.SAdd(f.ctx, "s", i)
	}
	p.Set(f.ctx, "str", "v", 0)
	p.HSet(f.ctx, "str", "a", "1")
	p.HIncrBy(f.ctx, "h", "f7", 3)
	cmds, err := p.Exec(f.ctx)
	require.Error(t, err, "the WRONGTYPE reply")
	require.Len(t, cmds, 103)
	require.Equal(t, int64(10), cmds[102].(*goredis.IntCmd).Val())
	for i := range 100 {
		require.NoError(t, cmds[i].Err())
	}
	require.EqualError(t, cmds[101].Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	require.Less(t, f.backend.index-before, uint64(10), "the writes went in a few batches, not one entry each")

	rp := f.rdb.Pipeline()
	hl := rp.HLen(f.ctx, "h")
	sc := rp.SCard(f.ctx, "s")
	hg := rp.HGet(f.ctx, "h", "f7")
	_, err = rp.Exec(f.ctx)
	require.NoError(t, err)
	require.Equal(t, int64(50), hl.Val())
	require.Equal(t, int64(50), sc.Val())
	require.Equal(t, "10", hg.Val())
}
