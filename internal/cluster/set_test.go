package cluster

import (
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestSetCommandsAcrossNodes: set writes through a follower are forwarded
// and replicated, every node reads the same members, an emptied set
// disappears, and replies and errors are Redis 7.2's.
func TestSetCommandsAcrossNodes(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	f := c.Client((leader + 1) % c.Size())

	require.Equal(t, int64(3), f.SAdd(ctx, "s", "b", "a", "c", "a").Val())
	require.Equal(t, int64(1), f.SAdd(ctx, "s", "a", "d").Val())
	for i := range c.Size() {
		r := c.Client(i)
		require.Equal(t, []string{"a", "b", "c", "d"}, r.SMembers(ctx, "s").Val(), "SMEMBERS on %s", c.Name(i))
		require.Equal(t, int64(4), r.SCard(ctx, "s").Val())
		require.True(t, r.SIsMember(ctx, "s", "c").Val())
		require.False(t, r.SIsMember(ctx, "s", "z").Val())
		require.False(t, r.SIsMember(ctx, "nokey", "z").Val())
		require.Equal(t, []bool{true, false, true}, r.SMIsMember(ctx, "s", "a", "z", "d").Val())
		require.Equal(t, "set", r.Type(ctx, "s").Val())
	}

	require.Equal(t, int64(3), f.SAdd(ctx, "t", "c", "d", "e").Val())
	require.Equal(t, []string{"c", "d"}, f.SInter(ctx, "s", "t").Val())
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, f.SUnion(ctx, "s", "t", "nokey").Val())
	require.Equal(t, []string{"a", "b"}, f.SDiff(ctx, "s", "t").Val())
	require.Empty(t, f.SInter(ctx, "s", "nokey").Val())
	require.Empty(t, f.SDiff(ctx, "nokey", "s").Val())
	require.Equal(t, int64(2), f.SInterCard(ctx, 2, "s", "t").Val())
	require.Equal(t, int64(1), f.Do(ctx, "SINTERCARD", "2", "s", "t", "LIMIT", "1").Val())
	require.Equal(t, int64(2), f.Do(ctx, "SINTERCARD", "2", "s", "t", "LIMIT", "0").Val(), "LIMIT 0 is no limit")

	// The store forms replace the destination, TTL included.
	require.NoError(t, f.Set(ctx, "dst", "a string", time.Hour).Err())
	require.Equal(t, int64(2), f.SInterStore(ctx, "dst", "s", "t").Val())
	require.Equal(t, []string{"c", "d"}, f.SMembers(ctx, "dst").Val())
	require.Equal(t, time.Duration(-1), f.TTL(ctx, "dst").Val())
	require.Equal(t, int64(5), f.SUnionStore(ctx, "dst", "dst", "s", "t").Val(), "the destination may be a source")
	require.Equal(t, int64(2), f.SDiffStore(ctx, "dst", "s", "t").Val())
	require.Equal(t, []string{"a", "b"}, f.SMembers(ctx, "dst").Val())
	require.Equal(t, int64(0), f.SInterStore(ctx, "dst", "s", "nokey").Val())
	require.Equal(t, int64(0), f.Exists(ctx, "dst").Val(), "an empty result deletes the destination")

	// SMOVE.
	require.True(t, f.SMove(ctx, "s", "m", "a").Val())
	require.False(t, f.SMove(ctx, "s", "m", "a").Val())
	require.False(t, f.SMove(ctx, "nokey", "m", "a").Val())
	require.True(t, f.SMove(ctx, "s", "s", "b").Val(), "a move onto itself answers membership")
	require.Equal(t, []string{"a"}, f.SMembers(ctx, "m").Val())
	require.Equal(t, []string{"b", "c", "d"}, f.SMembers(ctx, "s").Val())
	require.True(t, f.SMove(ctx, "m", "s", "a").Val())
	require.Equal(t, int64(0), f.Exists(ctx, "m").Val(), "a source emptied by SMOVE is deleted")

	// Errors, in Redis's words and order.
	require.NoError(t, f.Set(ctx, "str", "v", 0).Err())
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"SADD", "str", "a"}, wrongTypeText},
		{[]any{"SREM", "str", "a"}, wrongTypeText},
		{[]any{"SCARD", "str"}, wrongTypeText},
		{[]any{"SMEMBERS", "str"}, wrongTypeText},
		{[]any{"SISMEMBER", "str", "a"}, wrongTypeText},
		{[]any{"SINTER", "nokey", "str"}, wrongTypeText},
		{[]any{"SUNIONSTORE", "d", "s", "str"}, wrongTypeText},
		{[]any{"SMOVE", "s", "str", "a"}, wrongTypeText},
		{[]any{"SMOVE", "str", "s", "a"}, wrongTypeText},
		{[]any{"SPOP", "s", "-1"}, "ERR value is out of range, must be positive"},
		{[]any{"SPOP", "s", "x"}, "ERR value is out of range, must be positive"},
		{[]any{"SPOP", "s", "1", "2"}, "ERR syntax error"},
		{[]any{"SPOP", "str", "0"}, wrongTypeText},
		{[]any{"SRANDMEMBER", "str", "0"}, wrongTypeText},
		{[]any{"SRANDMEMBER", "s", "1", "2"}, "ERR syntax error"},
		{[]any{"SRANDMEMBER", "s", "-9223372036854775808"}, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"},
		{[]any{"SINTERCARD", "0", "s"}, "ERR numkeys should be greater than 0"},
		{[]any{"SINTERCARD", "x", "s"}, "ERR numkeys should be greater than 0"},
		{[]any{"SINTERCARD", "2", "s"}, "ERR Number of keys can't be greater than number of args"},
		{[]any{"SINTERCARD", "1", "s", "LIMIT", "-1"}, "ERR LIMIT can't be negative"},
		{[]any{"SINTERCARD", "1", "s", "LIMIT"}, "ERR syntax error"},
		{[]any{"SINTERCARD", "1", "str"}, wrongTypeText},
		{[]any{"SSCAN", "s", "x"}, "ERR invalid cursor"},
	} {
		require.EqualError(t, f.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	require.False(t, f.SMove(ctx, "nokey", "str", "a").Val(), "a missing source answers 0 before the destination's type")
	require.NoError(t, f.SMove(ctx, "nokey", "str", "a").Err())

	require.Equal(t, int64(2), f.SRem(ctx, "s", "b", "b", "zz", "c").Val())
	require.Equal(t, int64(2), f.SRem(ctx, "s", "d", "a").Val())
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Client(i).Exists(ctx, "s").Val() == 0 }, 5*time.Second, 5*time.Millisecond)
	}
}

// TestSetPopAndRandMember: SPOP removes exactly the members it answers,
// never the same one twice, also under concurrent SADDs and SPOPs that
// force its conditional pop to retry; SRANDMEMBER answers distinct members
// for a positive count and repeats for a negative one.
func TestSetPopAndRandMember(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	r := c.Client(leader)
	members := make([]any, 200)
	for i := range members {
		members[i] = "m" + strconv.Itoa(i)
	}
	require.Equal(t, int64(200), r.SAdd(ctx, "s", members...).Val())

	rnd, err := r.SRandMemberN(ctx, "s", 50).Result()
	require.NoError(t, err)
	require.Len(t, rnd, 50)
	require.Len(t, toSet(rnd), 50, "distinct members for a positive count")
	rep, err := r.SRandMemberN(ctx, "s", -500).Result()
	require.NoError(t, err)
	require.Len(t, rep, 500)
	require.Len(t, r.SRandMemberN(ctx, "s", 1000).Val(), 200)
	require.Equal(t, int64(200), r.SCard(ctx, "s").Val(), "SRANDMEMBER changes nothing")
	require.Equal(t, goredis.Nil, r.SRandMember(ctx, "nokey").Err())
	require.Equal(t, goredis.Nil, r.SPop(ctx, "nokey").Err())
	require.Equal(t, []any{}, r.Do(ctx, "SPOP", "nokey", "3").Val())
	require.Equal(t, []any{}, r.Do(ctx, "SPOP", "s", "0").Val())

	// Concurrent poppers on every node, and a writer that keeps changing
	// the set's stamp (EXPIRE, PERSIST) without changing its members, so
	// that some pops meet a changed set and retry.
	var (
		mu      sync.Mutex
		popped  []string
		poppers sync.WaitGroup
		writer  sync.WaitGroup
	)
	stop := make(chan struct{})
	writer.Add(1)
	go func() {
		defer writer.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := r.Expire(ctx, "s", time.Hour).Err(); err != nil {
				return
			}
			if err := r.Persist(ctx, "s").Err(); err != nil {
				return
			}
		}
	}()
	for i := range c.Size() {
		poppers.Add(1)
		go func(cl *goredis.Client) {
			defer poppers.Done()
			for range 10 {
				got, err := cl.SPopN(ctx, "s", 5).Result()
				if err != nil {
					t.Errorf("SPOP: %v", err)
					return
				}
				mu.Lock()
				popped = append(popped, got...)
				mu.Unlock()
			}
		}(c.Client(i))
	}
	poppers.Wait()
	close(stop)
	writer.Wait()
	require.Len(t, popped, 150)
	seen := toSet(popped)
	require.Len(t, seen, 150, "no member popped twice")
	rest := r.SMembers(ctx, "s").Val()
	require.Len(t, rest, 50)
	for _, m := range rest {
		require.False(t, seen[m], "%s both popped and still in the set", m)
	}

	one, err := r.SPop(ctx, "s").Result()
	require.NoError(t, err)
	require.False(t, r.SIsMember(ctx, "s", one).Val())
	all, err := r.SPopN(ctx, "s", 1000).Result()
	require.NoError(t, err)
	require.Len(t, all, 49)
	require.Equal(t, int64(0), r.Exists(ctx, "s").Val(), "a set popped empty is deleted")
}

func toSet(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}
