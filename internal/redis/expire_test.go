package redis

import (
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The fixture's backend stamps every write with its clock and reads at it,
// so these tests move time with advance instead of sleeping.

func TestExpireFamily(t *testing.T) {
	f := newFixture(t)
	b := f.backend
	ctx := f.ctx

	require.False(t, f.rdb.Expire(ctx, "missing", time.Minute).Val())
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, int64(-1), f.do("TTL", "k").Val())
	require.Equal(t, int64(-2), f.do("TTL", "missing").Val())
	require.Equal(t, int64(-2), f.do("PTTL", "missing").Val())

	require.Equal(t, int64(1), f.do("EXPIRE", "k", 100).Val())
	require.Equal(t, int64(100), f.do("TTL", "k").Val())
	require.Equal(t, int64(100000), f.do("PTTL", "k").Val())
	b.advance(40*time.Second + 400*time.Millisecond)
	require.Equal(t, int64(60), f.do("TTL", "k").Val(), "59.6 s rounds to 60, as Redis rounds")
	require.Equal(t, int64(59600), f.do("PTTL", "k").Val())

	// EXPIRETIME answers the absolute deadline.
	at := f.do("PEXPIRETIME", "k").Val().(int64)
	require.Equal(t, int64(b.now())+59600, at)
	require.Equal(t, at/1000, f.do("EXPIRETIME", "k").Val())
	require.Equal(t, int64(-2), f.do("EXPIRETIME", "missing").Val())
	require.NoError(t, f.rdb.Set(ctx, "nottl", "v", 0).Err())
	require.Equal(t, int64(-1), f.do("PEXPIRETIME", "nottl").Val())

	// The key disappears at its deadline, for every command.
	b.advance(59599 * time.Millisecond)
	require.Equal(t, "v", f.rdb.Get(ctx, "k").Val())
	b.advance(time.Millisecond)
	require.ErrorIs(t, f.rdb.Get(ctx, "k").Err(), goredis.Nil)
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "k").Val())
	require.Equal(t, "none", f.rdb.Type(ctx, "k").Val())
	require.Equal(t, int64(-2), f.do("PTTL", "k").Val())
	require.False(t, f.rdb.Persist(ctx, "k").Val())
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 10).Val(), "an expired key is missing for EXPIRE too")
}

func TestExpireOptionsNXXXGTLT(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
	// No TTL: XX and GT fail (no TTL counts as infinite), NX and LT set.
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 100, "XX").Val())
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 100, "GT").Val())
	require.Equal(t, int64(1), f.do("EXPIRE", "k", 100, "LT").Val())
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 50, "NX").Val())
	require.Equal(t, int64(1), f.do("EXPIRE", "k", 200, "XX").Val())
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 150, "GT").Val())
	require.Equal(t, int64(1), f.do("EXPIRE", "k", 300, "GT").Val())
	require.Equal(t, int64(0), f.do("EXPIRE", "k", 400, "LT").Val())
	require.Equal(t, int64(1), f.do("EXPIRE", "k", 250, "XX", "LT").Val())
	require.Equal(t, int64(250), f.do("TTL", "k").Val())
	require.NoError(t, f.rdb.Del(ctx, "n").Err())
	require.NoError(t, f.rdb.Set(ctx, "n", "v", 0).Err())
	require.Equal(t, int64(1), f.do("EXPIRE", "n", 10, "NX").Val())

	requireErr(t, f.do("EXPIRE", "k", 10, "NX", "XX").Err(), "ERR NX and XX, GT or LT options at the same time are not compatible")
	requireErr(t, f.do("EXPIRE", "k", 10, "GT", "LT").Err(), "ERR GT and LT options at the same time are not compatible")
	requireErr(t, f.do("EXPIRE", "k", 10, "FOO").Err(), "ERR Unsupported option FOO")
	requireErr(t, f.do("EXPIRE", "k", "ten").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.do("EXPIRE", "k", "9223372036854775807").Err(), "ERR invalid expire time in 'expire' command")
	requireErr(t, f.do("PEXPIRE", "k", "9223372036854775807").Err(), "ERR invalid expire time in 'pexpire' command")
	requireErr(t, f.do("EXPIREAT", "k", "9223372036854775807").Err(), "ERR invalid expire time in 'expireat' command")
	require.Equal(t, int64(250), f.do("TTL", "k").Val(), "refused commands change nothing")
}

func TestExpireInThePastDeletes(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	for _, cmd := range [][]any{
		{"EXPIRE", "k", -1},
		{"PEXPIRE", "k", 0},
		{"EXPIREAT", "k", 1},
		{"PEXPIREAT", "k", 1000},
	} {
		require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
		require.Equal(t, int64(1), f.do(cmd...).Val(), "%v", cmd)
		require.Equal(t, int64(0), f.rdb.Exists(ctx, "k").Val(), "%v", cmd)
	}
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
}

func TestPersistAndOverwriteClearTTL(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.Set(ctx, "k", "v", time.Hour).Err())
	require.True(t, f.rdb.Persist(ctx, "k").Val())
	require.Equal(t, int64(-1), f.do("TTL", "k").Val())
	require.False(t, f.rdb.Persist(ctx, "k").Val())

	// A write that replaces the value clears the TTL; KEEPTTL keeps it.
	require.NoError(t, f.rdb.Set(ctx, "k", "v", time.Hour).Err())
	require.NoError(t, f.rdb.Set(ctx, "k", "w", 0).Err())
	require.Equal(t, int64(-1), f.do("TTL", "k").Val())
	require.NoError(t, f.rdb.Set(ctx, "k", "v", time.Hour).Err())
	require.NoError(t, f.rdb.SetArgs(ctx, "k", "x", goredis.SetArgs{KeepTTL: true}).Err())
	require.Equal(t, int64(3600), f.do("TTL", "k").Val())
	require.Equal(t, "x", f.rdb.Get(ctx, "k").Val())
	// APPEND and INCR change the value but keep the TTL, as in Redis.
	require.NoError(t, f.rdb.Append(ctx, "k", "y").Err())
	require.Equal(t, int64(3600), f.do("TTL", "k").Val())
	require.NoError(t, f.rdb.Set(ctx, "n", "1", time.Hour).Err())
	require.NoError(t, f.rdb.Incr(ctx, "n").Err())
	require.Equal(t, int64(3600), f.do("TTL", "n").Val())
	// GETSET and GETDEL replace or remove it.
	require.NoError(t, f.do("GETSET", "n", "5").Err())
	require.Equal(t, int64(-1), f.do("TTL", "n").Val())
}

func TestSetExpiryOptions(t *testing.T) {
	f := newFixture(t)
	b := f.backend
	ctx := f.ctx

	require.NoError(t, f.do("SET", "a", "1", "EX", 10).Err())
	require.Equal(t, int64(10000), f.do("PTTL", "a").Val())
	require.NoError(t, f.do("SET", "a", "1", "PX", 1500).Err())
	require.Equal(t, int64(1500), f.do("PTTL", "a").Val())
	at := int64(b.now()) + 7000
	require.NoError(t, f.do("SET", "a", "1", "PXAT", at).Err())
	require.Equal(t, at, f.do("PEXPIRETIME", "a").Val())
	require.NoError(t, f.do("SET", "a", "1", "EXAT", at/1000+100).Err())
	require.Equal(t, at/1000+100, f.do("EXPIRETIME", "a").Val())

	// NX, XX and GET combine with an expiry.
	require.Equal(t, "1", f.do("SET", "a", "2", "GET", "PX", 5000).Val())
	require.Equal(t, int64(5000), f.do("PTTL", "a").Val())
	require.ErrorIs(t, f.do("SET", "a", "3", "NX", "EX", 1).Err(), goredis.Nil)
	require.Equal(t, int64(5000), f.do("PTTL", "a").Val(), "a refused NX changes nothing")
	require.ErrorIs(t, f.do("SET", "b", "3", "XX", "EX", 1).Err(), goredis.Nil)
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "b").Val())

	// A deadline in the past stores the value and it is gone at once.
	require.Equal(t, "2", f.do("SET", "a", "4", "PXAT", 1, "GET").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "a").Val())

	// SETEX and PSETEX.
	require.NoError(t, f.do("SETEX", "s", 30, "v").Err())
	require.Equal(t, int64(30), f.do("TTL", "s").Val())
	require.NoError(t, f.do("PSETEX", "s", 2500, "v").Err())
	require.Equal(t, int64(2500), f.do("PTTL", "s").Val())
	b.advance(2500 * time.Millisecond)
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "s").Val())

	// Errors, in Redis's words; nothing is written.
	requireErr(t, f.do("SET", "e", "v", "EX", 0).Err(), "ERR invalid expire time in 'set' command")
	requireErr(t, f.do("SET", "e", "v", "PX", -1).Err(), "ERR invalid expire time in 'set' command")
	requireErr(t, f.do("SET", "e", "v", "EX", "x").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.do("SET", "e", "v", "EX", 1, "PX", 1).Err(), "ERR syntax error")
	requireErr(t, f.do("SET", "e", "v", "EX", "x", "BOGUS").Err(), "ERR syntax error")
	requireErr(t, f.do("SET", "e", "v", "EX").Err(), "ERR syntax error")
	requireErr(t, f.do("SET", "e", "v", "KEEPTTL", "EX", 1).Err(), "ERR syntax error")
	requireErr(t, f.do("SETEX", "e", 0, "v").Err(), "ERR invalid expire time in 'setex' command")
	requireErr(t, f.do("PSETEX", "e", -5, "v").Err(), "ERR invalid expire time in 'psetex' command")
	requireErr(t, f.do("SETEX", "e", "9223372036854775807", "v").Err(), "ERR invalid expire time in 'setex' command")
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "e").Val())
}

func TestGetEx(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.ErrorIs(t, f.do("GETEX", "missing", "EX", 10).Err(), goredis.Nil)
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.do("GETEX", "k").Val())
	require.Equal(t, int64(-1), f.do("TTL", "k").Val())
	require.Equal(t, "v", f.do("GETEX", "k", "EX", 100).Val())
	require.Equal(t, int64(100), f.do("TTL", "k").Val())
	require.Equal(t, "v", f.do("GETEX", "k", "PX", 5000).Val())
	require.Equal(t, int64(5000), f.do("PTTL", "k").Val())
	require.Equal(t, "v", f.do("GETEX", "k", "PERSIST").Val())
	require.Equal(t, int64(-1), f.do("TTL", "k").Val())
	require.Equal(t, "v", f.do("GETEX", "k", "PXAT", 1).Val(), "a past deadline deletes after replying")
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "k").Val())

	requireErr(t, f.do("GETEX", "k", "PERSIST", "EX", 1).Err(), "ERR syntax error")
	requireErr(t, f.do("GETEX", "k", "EX", 1, "PERSIST").Err(), "ERR syntax error")
	requireErr(t, f.do("GETEX", "k", "KEEPTTL").Err(), "ERR syntax error")
	requireErr(t, f.do("GETEX", "k", "EX", 0).Err(), "ERR invalid expire time in 'getex' command")
}

func TestObjectAndType(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.Set(ctx, "int", "12345", 0).Err())
	require.NoError(t, f.rdb.Set(ctx, "short", "hello", 0).Err())
	require.NoError(t, f.rdb.Set(ctx, "long", strings.Repeat("x", 45), 0).Err())
	require.Equal(t, "int", f.do("OBJECT", "ENCODING", "int").Val())
	require.Equal(t, "embstr", f.do("OBJECT", "encoding", "short").Val())
	require.Equal(t, "raw", f.do("OBJECT", "ENCODING", "long").Val())
	require.ErrorIs(t, f.do("OBJECT", "ENCODING", "missing").Err(), goredis.Nil)
	require.Equal(t, int64(1), f.do("OBJECT", "REFCOUNT", "short").Val())
	require.Equal(t, int64(0), f.do("OBJECT", "IDLETIME", "short").Val())
	requireErr(t, f.do("OBJECT", "FREQ", "short").Err(), errTextNoLFU)
	help, err := f.do("OBJECT", "HELP").StringSlice()
	require.NoError(t, err)
	require.Contains(t, help[0], "OBJECT <subcommand>")
	require.Equal(t, "string", f.rdb.Type(ctx, "short").Val())
	require.Equal(t, "none", f.rdb.Type(ctx, "missing").Val())
}

func TestInfoKeyspaceCountsExpires(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	b := f.backend
	require.NotContains(t, f.rdb.Info(ctx, "keyspace").Val(), "db0:", "an empty database is left out, as in Redis")
	require.NoError(t, f.rdb.Set(ctx, "a", "1", 0).Err())
	require.NoError(t, f.rdb.Set(ctx, "b", "1", time.Minute).Err())
	require.NoError(t, f.rdb.Set(ctx, "c", "1", time.Second).Err())
	require.Regexp(t, `db0:keys=3,expires=2,avg_ttl=(0|[1-9][0-9]{3}|[1-5][0-9]{4}|60000)\r\n`, f.rdb.Info(ctx, "keyspace").Val(),
		"avg_ttl is an estimate from sampled keys: 0 (none sampled) or within the TTLs, never an absolute time")
	require.NoError(t, f.rdb.Persist(ctx, "b").Err())
	require.Regexp(t, `db0:keys=3,expires=1,avg_ttl=(0|1000)\r\n`, f.rdb.Info(ctx, "keyspace").Val())
	// An expired key counts until something deletes it, as in Redis; a
	// write that meets it deletes it and counts it in expired_keys.
	b.advance(time.Second)
	require.Equal(t, int64(3), f.rdb.DBSize(ctx).Val())
	require.NoError(t, f.rdb.Set(ctx, "c", "2", 0).Err())
	info := f.rdb.Info(ctx, "keyspace", "stats").Val()
	require.Contains(t, info, "db0:keys=3,expires=0,avg_ttl=0")
	require.Contains(t, info, "expired_keys:1\r\n")
}

func TestTime(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	got, err := f.rdb.Time(f.ctx).Result()
	require.NoError(t, err)
	require.False(t, got.Before(before.Truncate(time.Microsecond)))
	require.False(t, got.After(time.Now()))
}

func TestInfoAvgTTLEstimate(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	// Every key has the same TTL and the fixture's clock stands still, so
	// every sample sees exactly 10 s left.
	pipe := f.rdb.Pipeline()
	for i := range 50 {
		pipe.Set(ctx, "k"+strconv.Itoa(i), "v", 10*time.Second)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	require.Contains(t, f.rdb.Info(ctx, "keyspace").Val(), "db0:keys=50,expires=50,avg_ttl=10000\r\n")
	f.backend.advance(4 * time.Second)
	require.Contains(t, f.rdb.Info(ctx, "keyspace").Val(), "db0:keys=50,expires=50,avg_ttl=6000\r\n")
}
