package cluster

import (
	"errors"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Scripts run on apply, on every replica (internal/redis/script.go): these
// tests check that the replicas agree, whoever received the script, and
// that a replica that replays the log, or receives a snapshot, computes
// the same state and holds the same script cache.

// follower returns a node that is not the leader.
func follower(c *Cluster, leader int) int { return (leader + 1) % c.Size() }

func TestScriptCacheIsReplicatedToEveryNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(10 * time.Second)
	f := follower(c, leader)
	sha, err := c.Client(f).ScriptLoad(ctx, "return redis.call('incrby', KEYS[1], ARGV[1])").Result()
	require.NoError(t, err, "SCRIPT LOAD sent to a follower")
	want := int64(0)
	for i := range c.Size() {
		want += int64(i + 1)
		got, err := c.Client(i).EvalSha(ctx, sha, []string{"n"}, i+1).Int64()
		require.NoError(t, err, "EVALSHA on node %d", i)
		require.Equal(t, want, got)
	}
	for i := range c.Size() {
		// EVALSHA_RO runs on the node asked, from its own copy of the cache.
		got, err := c.Client(i).Do(ctx, "EVALSHA_RO", sha, 1, "n", 1).Result()
		require.Error(t, err, "the script writes")
		require.Nil(t, got)
		require.Contains(t, err.Error(), "Write commands are not allowed from read-only scripts")
		exists, err := c.Client(i).ScriptExists(ctx, sha).Result()
		require.NoError(t, err)
		require.Equal(t, []bool{true}, exists, "node %d", i)
	}
	require.NoError(t, c.Client(leader).ScriptFlush(ctx).Err())
	for i := range c.Size() {
		err := c.Client(i).EvalSha(ctx, sha, []string{"n"}, 1).Err()
		require.EqualError(t, err, "NOSCRIPT No matching script. Please use EVAL.", "node %d", i)
	}
	c.WaitConverged(20 * time.Second)
}

func TestScriptSentToAFollowerRunsOnce(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(10 * time.Second)
	f := follower(c, leader)
	for i := 1; i <= 5; i++ {
		got, err := c.Client(f).Eval(ctx, "redis.call('rpush', KEYS[2], ARGV[1]); return redis.call('incr', KEYS[1])", []string{"{s}n", "{s}log"}, i).Int64()
		require.NoError(t, err)
		require.Equal(t, int64(i), got)
	}
	c.WaitConverged(20 * time.Second)
	for i := range c.Size() {
		got, err := c.Client(i).Do(ctx, "EVAL_RO", "return redis.call('lrange', KEYS[1], 0, -1)", 1, "{s}log").StringSlice()
		require.NoError(t, err)
		require.Equal(t, []string{"1", "2", "3", "4", "5"}, got, "node %d", i)
	}
}

// scriptWorkload runs scripts whose effects depend on what makes a script
// risky to replicate: math.random, writes, the entry's time (TIME), and
// errors after a write, which keep the write.
func scriptWorkload(t *testing.T, c *Cluster, via []int, rounds int) {
	t.Helper()
	ctx := c.Ctx(120 * time.Second)
	require.NoError(t, c.Client(via[0]).FunctionLoad(ctx, "#!lua name=wl\nredis.register_function('wl_add', function(keys, args) "+
		"return redis.call('zadd', keys[1], math.random(), args[1] .. tostring(math.random(100))) end)").Err())
	for r := range rounds {
		cl := c.Client(via[r%len(via)])
		key := fmt.Sprintf("{w}k%d", r%7)
		_, err := cl.Eval(ctx, `
			local n = math.random(1000000)
			redis.call('hset', KEYS[1], 'rand' .. ARGV[1], n)
			redis.call('zadd', KEYS[2], math.random(), ARGV[1])
			redis.call('sadd', KEYS[3], redis.call('srandmember', KEYS[3]) or 'seed', ARGV[1])
			local t = redis.call('time')
			redis.call('set', KEYS[4], t[1] .. '.' .. t[2])
			local order = {}
			for k in pairs({x = 1, y = 2, [3] = 3, z = {}}) do order[#order + 1] = tostring(k) end
			redis.call('rpush', KEYS[5], tostring({}) .. table.concat(order, ','), cjson.encode({a = math.random(), b = {1, 2}}))
			return n`, []string{key, "{w}z", "{w}s", "{w}t", "{w}desc"}, r).Result()
		require.NoError(t, err)
		err = cl.Eval(ctx, "redis.call('incr', KEYS[1]); redis.call('incr', KEYS[2])", []string{"{w}count", key}).Err()
		require.Error(t, err, "INCR of a hash fails after the first INCR wrote")
		err = cl.Eval(ctx, "redis.call('lpush', KEYS[1], ARGV[1]); error('after the write')", []string{"{w}l"}, r).Err()
		require.ErrorContains(t, err, "after the write")
		require.NoError(t, cl.FCall(ctx, "wl_add", []string{"{w}f"}, r).Err())
	}
	n, err := c.Client(via[0]).Get(ctx, "{w}count").Int64()
	require.NoError(t, err)
	require.Equal(t, int64(rounds), n, "a script that fails after a write keeps the write")
}

func TestReplicaReplayingTheLogComputesTheSameState(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(10 * time.Second)
	lag := follower(c, leader)
	other := 3 - leader - lag
	// The lagging node misses the scripts and replays them from the log
	// when it returns; the others run them as they commit.
	c.Stop(lag)
	scriptWorkload(t, c, []int{leader, other}, 30)
	c.Restart(lag)
	c.WaitConverged(30 * time.Second)

	// A node that joins now replays the whole log (no snapshot was
	// taken), and every node replays its own WAL after a restart: all
	// land on the same state again.
	joined, err := c.Join(leader)
	require.NoError(t, err)
	c.WaitConverged(30 * time.Second)
	require.Zero(t, counter(t, c, joined, "elastickv_raft_snapshots_installed_total"), "the new node replayed the log")
	for i := range c.Size() {
		c.Stop(i)
	}
	for i := range c.Size() {
		c.Restart(i)
	}
	c.WaitLeader(10 * time.Second)
	c.WaitConverged(30 * time.Second)
	ctx := c.Ctx(30 * time.Second)
	for i := range c.Size() {
		got, err := c.Client(i).Do(ctx, "EVAL_RO", "return redis.call('llen', KEYS[1])", 1, "{w}l").Int64()
		require.NoError(t, err)
		require.Equal(t, int64(30), got, "node %d", i)
	}
}

func TestScriptCacheReachesANodeBySnapshot(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(50))
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(10 * time.Second)
	lag := follower(c, leader)
	c.Stop(lag)
	sha, err := c.Client(leader).ScriptLoad(ctx, "return 'from the cache'").Result()
	require.NoError(t, err)
	for i := range 300 {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err())
	}
	c.Restart(lag)
	c.WaitConverged(30 * time.Second)
	require.Equal(t, 1.0, counter(t, c, lag, "elastickv_raft_snapshots_installed_total"), "the node caught up by snapshot")
	got, err := c.Client(lag).Do(ctx, "EVALSHA_RO", sha, 0).Text()
	require.NoError(t, err, "the returning node serves the script from its own store")
	require.Equal(t, "from the cache", got)
}

func TestFunctionLibraryIsReplicatedToEveryNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(10 * time.Second)
	f := follower(c, leader)
	lib := "#!lua name=counters\n" +
		"redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n" +
		"redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}}"
	name, err := c.Client(f).FunctionLoad(ctx, lib).Result()
	require.NoError(t, err, "FUNCTION LOAD sent to a follower")
	require.Equal(t, "counters", name)
	for i := range c.Size() {
		got, err := c.Client(i).FCall(ctx, "bump", []string{"n"}, 2).Int64()
		require.NoError(t, err, "FCALL on node %d", i)
		require.Equal(t, int64(2*(i+1)), got)
	}
	c.WaitConverged(20 * time.Second)
	for i := range c.Size() {
		got, err := c.Client(i).FCallRO(ctx, "peek", []string{"n"}).Text()
		require.NoError(t, err, "FCALL_RO on node %d", i)
		require.Equal(t, "6", got)
	}
	require.NoError(t, c.Client(leader).FunctionDelete(ctx, "counters").Err())
	for i := range c.Size() {
		require.EqualError(t, c.Client(i).FCall(ctx, "bump", []string{"n"}, 1).Err(), "ERR Function not found", "node %d", i)
	}
}

// BenchmarkEvalSHA measures EVALSHA of a small writing script on a
// 3-node cluster, from 32 parallel clients to the leader, next to the
// INCR it wraps (the same keys, the same clients): a script is one log
// entry applied alone in its apply chunk and runs a fresh VM.
func BenchmarkEvalSHA(b *testing.B) {
	c := New(b, 3)
	ctx := c.Ctx(10 * time.Minute)
	leader := c.WaitLeader(10 * time.Second)
	cl := c.Client(leader)
	sha, err := cl.ScriptLoad(ctx, "return redis.call('INCR', KEYS[1])").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		do   func(key string) error
	}{
		{"evalsha", func(key string) error { return cl.EvalSha(ctx, sha, []string{key}).Err() }},
		{"incr", func(key string) error { return cl.Incr(ctx, key).Err() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(16)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if err := bc.do(fmt.Sprintf("k%d", i%64)); err != nil && !errors.Is(err, goredis.Nil) {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}
