package redis

import (
	"math"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestSetGetRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	require.NoError(t, f.rdb.Set(ctx, "k", "v1", 0).Err())
	require.Equal(t, "v1", f.rdb.Get(ctx, "k").Val())
	_, err := f.rdb.Get(ctx, "missing").Result()
	require.ErrorIs(t, err, goredis.Nil)

	// Binary-safe keys and values, and the empty value.
	bin := "\x00\r\n\xff"
	require.NoError(t, f.rdb.Set(ctx, bin, bin, 0).Err())
	require.Equal(t, bin, f.rdb.Get(ctx, bin).Val())
	require.NoError(t, f.rdb.Set(ctx, "empty", "", 0).Err())
	v, err := f.rdb.Get(ctx, "empty").Result()
	require.NoError(t, err)
	require.Equal(t, "", v)
}

func TestSetOptions(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	// NX: only when absent.
	ok, err := f.rdb.SetNX(ctx, "nx", "a", 0).Result()
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = f.rdb.SetNX(ctx, "nx", "b", 0).Result()
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "a", f.rdb.Get(ctx, "nx").Val())

	// XX: only when present.
	ok, err = f.rdb.SetXX(ctx, "xx", "a", 0).Result()
	require.NoError(t, err)
	require.False(t, ok)
	require.ErrorIs(t, f.rdb.Get(ctx, "xx").Err(), goredis.Nil)
	ok, err = f.rdb.SetXX(ctx, "nx", "c", 0).Result()
	require.NoError(t, err)
	require.True(t, ok)

	// GET: the old value, or nil.
	old, err := f.do("SET", "nx", "d", "GET").Text()
	require.NoError(t, err)
	require.Equal(t, "c", old)
	require.ErrorIs(t, f.do("SET", "fresh", "x", "get").Err(), goredis.Nil)
	require.Equal(t, "x", f.rdb.Get(ctx, "fresh").Val())

	// NX GET on an existing key: old value, no change.
	old, err = f.do("SET", "nx", "e", "NX", "GET").Text()
	require.NoError(t, err)
	require.Equal(t, "d", old)
	require.Equal(t, "d", f.rdb.Get(ctx, "nx").Val())

	// KEEPTTL keeps the (absent) TTL.
	require.NoError(t, f.rdb.SetArgs(ctx, "nx", "f", goredis.SetArgs{KeepTTL: true}).Err())
	require.Equal(t, "f", f.rdb.Get(ctx, "nx").Val())

	// Refused options never reach the log.
	requireErr(t, f.do("SET", "k", "v", "NX", "XX").Err(), "ERR syntax error")
	requireErr(t, f.do("SET", "k", "v", "BOGUS").Err(), "ERR syntax error")
	require.ErrorIs(t, f.rdb.Get(ctx, "k").Err(), goredis.Nil)
}

func TestGetSetGetDelSetNX(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	// GETSET is sent as such: go-redis's GetSet is deprecated in favour of
	// SET GET, which is tested on its own.
	require.ErrorIs(t, f.rdb.Do(ctx, "GETSET", "k", "1").Err(), goredis.Nil)
	require.Equal(t, "1", f.rdb.Do(ctx, "GETSET", "k", "2").Val())
	require.Equal(t, "2", f.rdb.GetDel(ctx, "k").Val())
	require.ErrorIs(t, f.rdb.GetDel(ctx, "k").Err(), goredis.Nil)
	require.ErrorIs(t, f.rdb.Get(ctx, "k").Err(), goredis.Nil)

	n, err := f.do("SETNX", "k", "a").Int()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	n, err = f.do("SETNX", "k", "b").Int()
	require.NoError(t, err)
	require.Equal(t, 0, n)
	require.Equal(t, "a", f.rdb.Get(ctx, "k").Val())
}

func TestCounters(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	require.Equal(t, int64(1), f.rdb.Incr(ctx, "c").Val())
	require.Equal(t, int64(11), f.rdb.IncrBy(ctx, "c", 10).Val())
	require.Equal(t, int64(10), f.rdb.Decr(ctx, "c").Val())
	require.Equal(t, int64(-5), f.rdb.DecrBy(ctx, "c", 15).Val())
	require.Equal(t, "-5", f.rdb.Get(ctx, "c").Val())
	require.Equal(t, int64(-1), f.rdb.Decr(ctx, "fresh").Val())

	const notInt = "ERR value is not an integer or out of range"
	for _, bad := range []string{"1.5", "abc", "+1", "01", " 1", "", "-0", "9223372036854775808"} {
		requireErr(t, f.do("INCRBY", "c", bad).Err(), notInt)
		requireErr(t, f.do("DECRBY", "c", bad).Err(), notInt)
	}
	require.Equal(t, "-5", f.rdb.Get(ctx, "c").Val(), "refused arguments must not change the key")

	// DECRBY of the minimum int64 cannot be negated.
	requireErr(t, f.do("DECRBY", "c", strconv.FormatInt(math.MinInt64, 10)).Err(), "ERR decrement would overflow")
	// The state machine's own errors come back verbatim.
	require.NoError(t, f.rdb.Set(ctx, "max", strconv.FormatInt(math.MaxInt64, 10), 0).Err())
	requireErr(t, f.rdb.Incr(ctx, "max").Err(), "ERR increment or decrement would overflow")
	require.NoError(t, f.rdb.Set(ctx, "s", "text", 0).Err())
	requireErr(t, f.rdb.Incr(ctx, "s").Err(), notInt)
}

func TestAppendStrlen(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxValueBytes = 10 })
	ctx := f.ctx

	require.Equal(t, int64(0), f.rdb.StrLen(ctx, "a").Val())
	require.Equal(t, int64(5), f.rdb.Append(ctx, "a", "hello").Val())
	require.Equal(t, int64(8), f.rdb.Append(ctx, "a", " yo").Val())
	require.Equal(t, "hello yo", f.rdb.Get(ctx, "a").Val())
	require.Equal(t, int64(8), f.rdb.StrLen(ctx, "a").Val())
	// Appending past MaxValueBytes is refused before proposing.
	requireErr(t, f.rdb.Append(ctx, "a", "!!!").Err(), errTextStringTooLong)
	require.Equal(t, "hello yo", f.rdb.Get(ctx, "a").Val())
}

func TestMGetMSet(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	require.NoError(t, f.rdb.MSet(ctx, "a", "1", "b", "2", "a", "3").Err())
	vals, err := f.rdb.MGet(ctx, "a", "missing", "b").Result()
	require.NoError(t, err)
	require.Equal(t, []any{"3", nil, "2"}, vals)

	requireErr(t, f.do("MSET", "a", "1", "b").Err(), "ERR wrong number of arguments for 'mset' command")
	requireErr(t, f.do("MSET", "a").Err(), "ERR wrong number of arguments for 'mset' command")
	requireErr(t, f.do("MGET").Err(), "ERR wrong number of arguments for 'mget' command")
}

func TestValueTooLargeIsRefusedBeforeProposing(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxValueBytes = 1024 })
	ctx := f.ctx
	before := f.backend.Status().AppliedIndex

	big := strings.Repeat("x", 1025)
	requireErr(t, f.rdb.Set(ctx, "k", big, 0).Err(), "ERR value too large")
	requireErr(t, f.rdb.Set(ctx, big, "v", 0).Err(), "ERR value too large")
	requireErr(t, f.rdb.MSet(ctx, "a", "1", "b", big).Err(), "ERR value too large")
	require.Equal(t, before, f.backend.Status().AppliedIndex, "nothing was proposed")

	// The connection stays usable, and a value of exactly the limit fits.
	require.NoError(t, f.rdb.Set(ctx, "k", big[:1024], 0).Err())
	require.Equal(t, big[:1024], f.rdb.Get(ctx, "k").Val())
	require.ErrorIs(t, f.rdb.Get(ctx, "a").Err(), goredis.Nil)
}
