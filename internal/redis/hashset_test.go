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

// TestCollScanMatchSeeksToTheLiteralPrefix: HSCAN and SSCAN with a MATCH
// pattern that starts with literal bytes walk only the elements under
// them: three calls of COUNT 1 find the three matches among a thousand
// other fields, then the cursor is 0. A resumed cursor and a pattern with
// no literal prefix behave as a full scan.
func TestCollScanMatchSeeksToTheLiteralPrefix(t *testing.T) {
	f := newFixture(t)
	var fv []any
	var members []any
	for i := range 1000 {
		fv = append(fv, "a:"+strconv.Itoa(i), "v")
		members = append(members, "z:"+strconv.Itoa(i))
	}
	fv = append(fv, "p:1", "x", "p:2", "y", "p:3", "z")
	members = append(members, "p:1", "p:2", "p:3")
	require.NoError(t, f.rdb.HSet(f.ctx, "h", fv...).Err())
	require.NoError(t, f.rdb.SAdd(f.ctx, "s", members...).Err())

	scan := func(cmd, key, pattern string, count int64) (found []string, calls int) {
		cursor := uint64(0)
		for {
			var (
				items []string
				next  uint64
				err   error
			)
			if cmd == "hscan" {
				items, next, err = f.rdb.HScan(f.ctx, key, cursor, pattern, count).Result()
			} else {
				items, next, err = f.rdb.SScan(f.ctx, key, cursor, pattern, count).Result()
			}
			require.NoError(t, err)
			found = append(found, items...)
			calls++
			if next == 0 {
				return found, calls
			}
			cursor = next
		}
	}
	got, calls := scan("hscan", "h", "p:*", 1)
	require.Equal(t, []string{"p:1", "x", "p:2", "y", "p:3", "z"}, got)
	require.LessOrEqual(t, calls, 4, "the walk starts at p: and stops after it")
	got, calls = scan("sscan", "s", "p:?", 1)
	require.Equal(t, []string{"p:1", "p:2", "p:3"}, got)
	require.LessOrEqual(t, calls, 4)

	got, calls = scan("sscan", "s", "*:1", 100)
	require.Len(t, got, 2, "p:1 and z:1")
	require.Greater(t, calls, 10, "no literal prefix: every member is examined")
}
