package cluster

import (
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

const wrongTypeText = "WRONGTYPE Operation against a key holding the wrong kind of value"

// TestHashCommandsAcrossNodes: hash writes through a follower are
// forwarded and replicated; every node reads the same fields; an emptied
// hash disappears; replies and errors are Redis 7.2's.
func TestHashCommandsAcrossNodes(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	f := c.Client((leader + 1) % c.Size())

	n, err := f.HSet(ctx, "h", "a", "1", "b", "2", "a", "3").Result()
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "a field set twice in one HSET is new once")
	require.Equal(t, int64(1), f.HSet(ctx, "h", "c", "x", "a", "4").Val())
	require.Equal(t, "OK", f.Do(ctx, "HMSET", "h", "d", "dd").Val())
	for i := range c.Size() {
		r := c.Client(i)
		require.Equal(t, "4", r.HGet(ctx, "h", "a").Val(), "HGET on %s", c.Name(i))
		require.Equal(t, goredis.Nil, r.HGet(ctx, "h", "zz").Err())
		require.Equal(t, goredis.Nil, r.HGet(ctx, "nokey", "a").Err())
		require.Equal(t, map[string]string{"a": "4", "b": "2", "c": "x", "d": "dd"}, r.HGetAll(ctx, "h").Val())
		require.Equal(t, []string{"a", "b", "c", "d"}, r.HKeys(ctx, "h").Val(), "fields come in byte order")
		require.Equal(t, []string{"4", "2", "x", "dd"}, r.HVals(ctx, "h").Val())
		require.Equal(t, int64(4), r.HLen(ctx, "h").Val())
		require.Equal(t, []any{"4", nil, "x"}, r.HMGet(ctx, "h", "a", "nope", "c").Val())
		require.True(t, r.HExists(ctx, "h", "b").Val())
		require.False(t, r.HExists(ctx, "h", "q").Val())
		require.Equal(t, int64(2), r.HStrLen(ctx, "h", "d").Val())
		require.Equal(t, int64(0), r.HStrLen(ctx, "h", "nope").Val())
		require.Equal(t, "hash", r.Type(ctx, "h").Val())
	}

	require.True(t, f.HSetNX(ctx, "h", "e", "1").Val())
	require.False(t, f.HSetNX(ctx, "h", "e", "2").Val())
	require.Equal(t, "1", f.HGet(ctx, "h", "e").Val())
	require.True(t, f.HSetNX(ctx, "h2", "x", "y").Val(), "HSETNX creates the hash")

	require.Equal(t, int64(5), f.HIncrBy(ctx, "h", "n", 5).Val())
	require.Equal(t, int64(-2), f.HIncrBy(ctx, "h", "n", -7).Val())
	require.Equal(t, 10.5, f.HIncrByFloat(ctx, "hf", "x", 10.5).Val())
	require.Equal(t, "10.6", f.Do(ctx, "HINCRBYFLOAT", "hf", "x", "0.1").Val(), "long double arithmetic, as Redis")
	require.Equal(t, "10.6", f.HGet(ctx, "hf", "x").Val())
	require.Equal(t, "5010.60000000000000009", f.Do(ctx, "HINCRBYFLOAT", "hf", "x", "5.0e3").Val(), "redis-server answers the same digits")

	// Errors, in Redis's words and order.
	require.NoError(t, f.Set(ctx, "s", "v", 0).Err())
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"HSET", "h", "a"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"HSET", "h", "a", "1", "b"}, "ERR wrong number of arguments for 'hset' command"},
		{[]any{"HMSET", "h", "a"}, "ERR wrong number of arguments for 'hmset' command"},
		{[]any{"HSET", "s", "a", "1"}, wrongTypeText},
		{[]any{"HGET", "s", "a"}, wrongTypeText},
		{[]any{"HGETALL", "s"}, wrongTypeText},
		{[]any{"HLEN", "s"}, wrongTypeText},
		{[]any{"HDEL", "s", "a"}, wrongTypeText},
		{[]any{"GET", "h"}, wrongTypeText},
		{[]any{"HINCRBY", "h", "c", "1"}, "ERR hash value is not an integer"},
		{[]any{"HINCRBY", "h", "n", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"HINCRBY", "s", "n", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"HINCRBY", "s", "n", "1"}, wrongTypeText},
		{[]any{"HINCRBY", "h", "n", "-9223372036854775807"}, "ERR increment or decrement would overflow"},
		{[]any{"HINCRBYFLOAT", "h", "c", "1"}, "ERR hash value is not a float"},
		{[]any{"HINCRBYFLOAT", "s", "c", "x"}, "ERR value is not a valid float"},
		{[]any{"HINCRBYFLOAT", "s", "c", "inf"}, "ERR value is NaN or Infinity"},
		{[]any{"HINCRBYFLOAT", "s", "c", "1"}, wrongTypeText},
		{[]any{"HRANDFIELD", "h", "1", "foo"}, "ERR syntax error"},
		{[]any{"HRANDFIELD", "h", "-9223372036854775808"}, "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"},
		{[]any{"HRANDFIELD", "h", "9223372036854775807", "WITHVALUES"}, "ERR value is out of range"},
		{[]any{"HRANDFIELD", "s", "0"}, wrongTypeText},
		{[]any{"HSCAN", "h", "x"}, "ERR invalid cursor"},
		{[]any{"HSCAN", "h", "0", "COUNT", "0"}, "ERR syntax error"},
		{[]any{"HSCAN", "h", "0", "NOVALUES"}, "ERR syntax error"},
		{[]any{"HSCAN", "s", "0", "COUNT", "0"}, wrongTypeText},
	} {
		require.EqualError(t, f.Do(ctx, tc.args...).Err(), tc.want, "%v", tc.args)
	}
	require.Equal(t, "-2", f.HGet(ctx, "h", "n").Val(), "a refused increment changes nothing")
	require.Equal(t, []any{"0", []any{}}, f.Do(ctx, "HSCAN", "nokey", "0", "COUNT", "0").Val(), "a missing key answers an empty page before the options' errors")

	// HDEL counts what existed; the hash goes with its last field.
	require.Equal(t, int64(2), f.HDel(ctx, "h", "a", "a", "zz", "b").Val())
	keys := f.HKeys(ctx, "h").Val()
	require.Equal(t, []string{"c", "d", "e", "n"}, keys)
	require.Equal(t, int64(4), f.HDel(ctx, "h", keys...).Val())
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Client(i).Exists(ctx, "h").Val() == 0 }, 5*time.Second, 5*time.Millisecond)
		require.Equal(t, int64(0), c.Client(i).HLen(ctx, "h").Val())
		require.Empty(t, c.Client(i).HGetAll(ctx, "h").Val())
		require.Equal(t, "none", c.Client(i).Type(ctx, "h").Val())
	}
	require.NoError(t, f.Set(ctx, "h", "now a string", 0).Err(), "an emptied hash's name is free")
}

// TestHashScanAndRandField: HSCAN pages through a hash with small COUNTs,
// returning every field exactly once, with MATCH; HRANDFIELD answers
// distinct fields for a positive count, repeats for a negative one, and
// the whole hash for a count past its size.
func TestHashScanAndRandField(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	r := c.Client(c.WaitLeader(5 * time.Second))
	want := map[string]string{}
	args := []any{}
	for i := range 100 {
		k, v := "f"+strconv.Itoa(i), "v"+strconv.Itoa(i)
		want[k] = v
		args = append(args, k, v)
	}
	require.Equal(t, int64(100), r.HSet(ctx, "big", args...).Val())

	got := map[string]string{}
	cursor := uint64(0)
	calls := 0
	for {
		fields, next, err := r.HScan(ctx, "big", cursor, "", 7).Result()
		require.NoError(t, err)
		require.LessOrEqual(t, len(fields), 14)
		for i := 0; i < len(fields); i += 2 {
			_, dup := got[fields[i]]
			require.False(t, dup, "field %s returned twice", fields[i])
			got[fields[i]] = fields[i+1]
		}
		calls++
		if next == 0 {
			break
		}
		cursor = next
	}
	require.Equal(t, want, got)
	require.GreaterOrEqual(t, calls, 100/7)

	var matched []string
	cursor = 0
	for {
		fields, next, err := r.HScan(ctx, "big", cursor, "f1*", 1000).Result()
		require.NoError(t, err)
		for i := 0; i < len(fields); i += 2 {
			matched = append(matched, fields[i])
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	sort.Strings(matched)
	require.Equal(t, []string{"f1", "f10", "f11", "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19"}, matched)

	one, err := r.HRandField(ctx, "big", 1).Result()
	require.NoError(t, err)
	require.Len(t, one, 1)
	require.Contains(t, want, one[0])
	require.Equal(t, goredis.Nil, r.Do(ctx, "HRANDFIELD", "nokey").Err())
	require.Equal(t, []any{}, r.Do(ctx, "HRANDFIELD", "nokey", "5").Val())
	require.Equal(t, []any{}, r.Do(ctx, "HRANDFIELD", "big", "0").Val())
	single, err := r.Do(ctx, "HRANDFIELD", "big").Text()
	require.NoError(t, err)
	require.Contains(t, want, single)

	distinct, err := r.HRandField(ctx, "big", 60).Result()
	require.NoError(t, err)
	require.Len(t, distinct, 60)
	seen := map[string]bool{}
	for _, f := range distinct {
		require.False(t, seen[f], "HRANDFIELD with a positive count repeated %s", f)
		seen[f] = true
	}
	all, err := r.HRandField(ctx, "big", 500).Result()
	require.NoError(t, err)
	require.Len(t, all, 100)

	rep, err := r.Do(ctx, "HRANDFIELD", "big", "-300", "WITHVALUES").StringSlice()
	require.NoError(t, err)
	require.Len(t, rep, 600)
	for i := 0; i < len(rep); i += 2 {
		require.Equal(t, want[rep[i]], rep[i+1])
	}
	small := map[string]int{}
	require.Equal(t, int64(2), r.HSet(ctx, "two", "a", "1", "b", "2").Val())
	for _, f := range r.Do(ctx, "HRANDFIELD", "two", "-1000").Val().([]any) {
		small[f.(string)]++
	}
	require.Len(t, small, 2, "both fields come up among 1000 draws with repeats")
	require.Equal(t, 1000, small["a"]+small["b"])
}

// TestHashesAndSetsWithKeyCommands: the key commands work on hashes and
// sets on every node: TYPE, RENAME (the fields go along), COPY (a copy of
// the elements, independent of the source), DEL and UNLINK, EXPIRE and
// TTL (an expired hash reads as missing at once, and the sweeper deletes
// it), OBJECT ENCODING under Redis's default limits, SCAN TYPE.
func TestHashesAndSetsWithKeyCommands(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	r := c.Client(leader)

	require.Equal(t, int64(2), r.HSet(ctx, "h", "a", "1", "b", "2").Val())
	require.Equal(t, int64(3), r.SAdd(ctx, "s", "x", "y", "z").Val())
	require.NoError(t, r.Set(ctx, "str", "v", 0).Err())

	require.NoError(t, r.Rename(ctx, "h", "h2").Err())
	require.Equal(t, int64(1), r.Copy(ctx, "h2", "h3", 0, false).Val())
	require.Equal(t, int64(1), r.Copy(ctx, "s", "s2", 0, false).Val())
	require.Equal(t, int64(1), r.HSet(ctx, "h3", "c", "3").Val())
	require.Equal(t, int64(1), r.SRem(ctx, "s2", "x").Val())
	for i := range c.Size() {
		cl := c.Client(i)
		require.Equal(t, int64(0), cl.Exists(ctx, "h").Val(), "on %s", c.Name(i))
		require.Equal(t, map[string]string{"a": "1", "b": "2"}, cl.HGetAll(ctx, "h2").Val(), "RENAME keeps the fields")
		require.Equal(t, map[string]string{"a": "1", "b": "2", "c": "3"}, cl.HGetAll(ctx, "h3").Val(), "COPY copies them")
		require.Equal(t, []string{"x", "y", "z"}, cl.SMembers(ctx, "s").Val())
		require.Equal(t, []string{"y", "z"}, cl.SMembers(ctx, "s2").Val())
		require.Equal(t, "hash", cl.Type(ctx, "h3").Val())
		require.Equal(t, "set", cl.Type(ctx, "s2").Val())
	}

	// OBJECT ENCODING follows Redis's default limits.
	require.Equal(t, "listpack", r.ObjectEncoding(ctx, "h2").Val())
	require.Equal(t, "listpack", r.ObjectEncoding(ctx, "s").Val())
	require.Equal(t, int64(3), r.SAdd(ctx, "ints", "1", "-7", "300").Val())
	require.Equal(t, "intset", r.ObjectEncoding(ctx, "ints").Val())
	require.Equal(t, int64(1), r.HSet(ctx, "longval", "f", strings.Repeat("v", 65)).Val())
	require.Equal(t, "hashtable", r.ObjectEncoding(ctx, "longval").Val())
	var fields []any
	for i := range 129 {
		fields = append(fields, "f"+strconv.Itoa(i), "v")
	}
	require.Equal(t, int64(129), r.HSet(ctx, "many", fields...).Val())
	require.Equal(t, "hashtable", r.ObjectEncoding(ctx, "many").Val())
	require.Equal(t, int64(1), r.SAdd(ctx, "ints", "x").Val())
	require.Equal(t, "listpack", r.ObjectEncoding(ctx, "ints").Val(), "a non-integer member leaves the intset")
	// The limits are the asked node's CONFIG parameters (local: apply
	// never reads them).
	require.NoError(t, r.ConfigSet(ctx, "hash-max-ziplist-entries", "1").Err())
	require.Equal(t, "hashtable", r.ObjectEncoding(ctx, "h2").Val())
	other := c.Client((leader + 1) % c.Size())
	require.Equal(t, "listpack", other.ObjectEncoding(ctx, "h2").Val(), "another node keeps its own limits")
	require.NoError(t, r.ConfigSet(ctx, "hash-max-ziplist-entries", "128").Err())
	require.Equal(t, "listpack", r.ObjectEncoding(ctx, "h2").Val())

	// SCAN TYPE.
	scanAll := func(typ string) []string {
		var out []string
		cursor := uint64(0)
		for {
			keys, next, err := r.ScanType(ctx, cursor, "", 3, typ).Result()
			require.NoError(t, err)
			out = append(out, keys...)
			if next == 0 {
				sort.Strings(out)
				return out
			}
			cursor = next
		}
	}
	require.Equal(t, []string{"h2", "h3", "longval", "many"}, scanAll("hash"))
	require.Equal(t, []string{"ints", "s", "s2"}, scanAll("SET"))
	require.Equal(t, []string{"str"}, scanAll("string"))
	require.Empty(t, scanAll("zset"))
	require.Empty(t, scanAll("nosuchtype"))

	// DEL, UNLINK.
	require.Equal(t, int64(2), r.Del(ctx, "longval", "s2").Val())
	require.Equal(t, int64(2), r.Unlink(ctx, "many", "ints").Val())

	// Expiry: TTL reads it, an expired hash reads as missing on every
	// node, and the sweeper deletes it.
	require.True(t, r.PExpire(ctx, "h2", 300*time.Millisecond).Val())
	require.True(t, r.Expire(ctx, "s", time.Hour).Val())
	require.Greater(t, r.PTTL(ctx, "h2").Val(), time.Duration(0))
	require.Equal(t, time.Hour, r.TTL(ctx, "s").Val())
	require.NoError(t, r.HSet(ctx, "s3", "f", "v").Err())
	for i := range c.Size() {
		cl := c.Client(i)
		require.Eventually(t, func() bool { return cl.Exists(ctx, "h2").Val() == 0 }, 10*time.Second, 10*time.Millisecond)
		require.Empty(t, cl.HGetAll(ctx, "h2").Val())
		require.Equal(t, goredis.Nil, cl.HGet(ctx, "h2", "a").Err())
		require.Equal(t, int64(0), cl.HLen(ctx, "h2").Val())
	}
	require.Eventually(t, func() bool { return r.DBSize(ctx).Val() == 4 }, 10*time.Second, 10*time.Millisecond,
		"the sweeper deletes the expired hash: h3, s, s3, str remain")
	require.Equal(t, int64(1), r.HSet(ctx, "h2", "new", "1").Val(), "the name is free again, with no old field")
	require.Equal(t, map[string]string{"new": "1"}, r.HGetAll(ctx, "h2").Val())
	require.Equal(t, time.Duration(-1), r.TTL(ctx, "h2").Val())
}
