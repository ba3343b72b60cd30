package redis

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSetRange(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	// An empty value on a missing key creates nothing.
	require.Equal(t, int64(0), f.rdb.SetRange(ctx, "k", 5, "").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "k").Val())
	require.Equal(t, int64(7), f.rdb.SetRange(ctx, "k", 2, "hello").Val())
	require.Equal(t, "\x00\x00hello", f.rdb.Get(ctx, "k").Val())
	require.Equal(t, int64(7), f.rdb.SetRange(ctx, "k", 0, "HE").Val())
	require.Equal(t, "HEhello", f.rdb.Get(ctx, "k").Val())
	require.Equal(t, int64(7), f.rdb.SetRange(ctx, "k", 100, "").Val(), "an empty value replies the length")

	// A large value: a write in the middle and one far past the end.
	big := strings.Repeat("abcdefgh", 2048) // 16 KiB
	require.NoError(t, f.rdb.Set(ctx, "big", big, 0).Err())
	require.Equal(t, int64(len(big)), f.rdb.SetRange(ctx, "big", 5000, "MIDDLE").Val())
	require.Equal(t, int64(40010), f.rdb.SetRange(ctx, "big", 40000, "0123456789").Val())
	want := big[:5000] + "MIDDLE" + big[5006:] + strings.Repeat("\x00", 40000-len(big)) + "0123456789"
	require.Equal(t, want, f.rdb.Get(ctx, "big").Val())
	require.Equal(t, "MIDDLE", f.rdb.GetRange(ctx, "big", 5000, 5005).Val())

	// The TTL stays.
	require.NoError(t, f.rdb.Set(ctx, "t", "v", time.Minute).Err())
	require.Equal(t, int64(3), f.rdb.SetRange(ctx, "t", 1, "xy").Val())
	require.Equal(t, int64(60000), f.do("PTTL", "t").Val())

	requireErr(t, f.rdb.SetRange(ctx, "k", -1, "x").Err(), "ERR offset is out of range")
	requireErr(t, f.do("SETRANGE", "k", "x", "y").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.rdb.SetRange(ctx, "k", 512<<20, "x").Err(), "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	requireErr(t, f.do("SETRANGE", "k", "9223372036854775807", "x").Err(), "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
	require.Equal(t, "HEhello", f.rdb.Get(ctx, "k").Val())
}

func TestIncrByFloat(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	// The examples of Redis's INCRBYFLOAT page, reply for reply.
	require.NoError(t, f.rdb.Set(ctx, "mykey", "10.50", 0).Err())
	require.Equal(t, "10.6", f.do("INCRBYFLOAT", "mykey", "0.1").Val())
	require.Equal(t, "5.6", f.do("INCRBYFLOAT", "mykey", "-5").Val())
	require.NoError(t, f.rdb.Set(ctx, "mykey", "5.0e3", 0).Err())
	require.Equal(t, "5200", f.do("INCRBYFLOAT", "mykey", "2.0e2").Val())
	require.Equal(t, "5200", f.rdb.Get(ctx, "mykey").Val())

	require.Equal(t, "3", f.do("INCRBYFLOAT", "n", "3.0").Val(), "a missing key counts as 0")
	require.Equal(t, "17179869185.5", f.do("INCRBYFLOAT", "big", "17179869185.5").Val())

	require.NoError(t, f.rdb.Set(ctx, "t", "1", time.Minute).Err())
	require.Equal(t, "2.5", f.do("INCRBYFLOAT", "t", "1.5").Val())
	require.Equal(t, int64(60000), f.do("PTTL", "t").Val(), "the TTL stays")

	requireErr(t, f.do("INCRBYFLOAT", "n", "abc").Err(), "ERR value is not a valid float")
	requireErr(t, f.do("INCRBYFLOAT", "n", " 1").Err(), "ERR value is not a valid float")
	requireErr(t, f.do("INCRBYFLOAT", "n", "+inf").Err(), "ERR increment would produce NaN or Infinity")
	require.NoError(t, f.rdb.Set(ctx, "s", "hello", 0).Err())
	requireErr(t, f.do("INCRBYFLOAT", "s", "1").Err(), "ERR value is not a valid float")
	require.Equal(t, "3", f.rdb.Get(ctx, "n").Val(), "refused commands change nothing")
}

func TestMSetNX(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.True(t, f.rdb.MSetNX(ctx, "a", "1", "b", "2").Val())
	require.False(t, f.rdb.MSetNX(ctx, "c", "3", "a", "x").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "c").Val(), "nothing is set when one key exists")
	require.Equal(t, "1", f.rdb.Get(ctx, "a").Val())
	// An expired key counts as missing; what MSETNX sets has no TTL.
	require.NoError(t, f.rdb.Set(ctx, "e", "old", time.Second).Err())
	f.backend.advance(time.Second)
	require.True(t, f.rdb.MSetNX(ctx, "e", "new", "d", "4").Val())
	require.Equal(t, "new", f.rdb.Get(ctx, "e").Val())
	require.Equal(t, int64(-1), f.do("TTL", "e").Val())
	// A repeated key takes its last value, as in Redis.
	require.True(t, f.rdb.MSetNX(ctx, "r", "1", "r", "2").Val())
	require.Equal(t, "2", f.rdb.Get(ctx, "r").Val())
	requireErr(t, f.do("MSETNX", "a", "1", "b").Err(), "ERR wrong number of arguments for 'msetnx' command")
	requireErr(t, f.do("MSETNX", "a").Err(), "ERR wrong number of arguments for 'msetnx' command")
}

func TestRenameAndRenameNX(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	requireErr(t, f.rdb.Rename(ctx, "nope", "x").Err(), "ERR no such key")
	requireErr(t, f.rdb.Rename(ctx, "nope", "nope").Err(), "ERR no such key")
	requireErr(t, f.rdb.RenameNX(ctx, "nope", "x").Err(), "ERR no such key")

	require.NoError(t, f.rdb.Set(ctx, "a", "1", time.Minute).Err())
	require.Equal(t, "OK", f.rdb.Rename(ctx, "a", "a").Val())
	require.False(t, f.rdb.RenameNX(ctx, "a", "a").Val())
	require.Equal(t, "OK", f.rdb.Rename(ctx, "a", "b").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "a").Val())
	require.Equal(t, "1", f.rdb.Get(ctx, "b").Val())
	require.Equal(t, int64(60000), f.do("PTTL", "b").Val(), "the TTL moves with the key")

	require.NoError(t, f.rdb.Set(ctx, "c", "3", 0).Err())
	require.False(t, f.rdb.RenameNX(ctx, "b", "c").Val())
	require.Equal(t, "OK", f.rdb.Rename(ctx, "b", "c").Val(), "RENAME replaces the destination")
	require.Equal(t, "1", f.rdb.Get(ctx, "c").Val())
	require.Equal(t, int64(60000), f.do("PTTL", "c").Val())
	require.True(t, f.rdb.RenameNX(ctx, "c", "{x}d").Val())
	require.Equal(t, int64(1), f.rdb.DBSize(ctx).Val())

	// A large value renamed across slots and back reads the same.
	big := strings.Repeat("0123456789", 5000)
	require.NoError(t, f.rdb.Set(ctx, "{a}big", big, 0).Err())
	require.Equal(t, "OK", f.rdb.Rename(ctx, "{a}big", "{b}big").Val())
	require.Equal(t, int64(50004), f.rdb.Append(ctx, "{b}big", "tail").Val())
	require.Equal(t, "OK", f.rdb.Rename(ctx, "{b}big", "{a}big2").Val())
	require.Equal(t, big+"tail", f.rdb.Get(ctx, "{a}big2").Val())

	// An expired source is missing.
	require.NoError(t, f.rdb.Set(ctx, "e", "v", time.Second).Err())
	f.backend.advance(time.Second)
	requireErr(t, f.rdb.Rename(ctx, "e", "x").Err(), "ERR no such key")
}

func TestCopy(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.Equal(t, int64(0), f.rdb.Copy(ctx, "nope", "x", 0, false).Val())
	require.NoError(t, f.rdb.Set(ctx, "a", "1", time.Minute).Err())
	require.Equal(t, int64(1), f.rdb.Copy(ctx, "a", "b", 0, false).Val())
	require.Equal(t, "1", f.rdb.Get(ctx, "b").Val())
	require.Equal(t, int64(60000), f.do("PTTL", "b").Val(), "the TTL is copied")
	require.NoError(t, f.rdb.Set(ctx, "c", "3", 0).Err())
	require.Equal(t, int64(0), f.rdb.Copy(ctx, "a", "c", 0, false).Val())
	require.Equal(t, "3", f.rdb.Get(ctx, "c").Val())
	require.Equal(t, int64(1), f.do("COPY", "a", "c", "REPLACE").Val())
	require.Equal(t, "1", f.rdb.Get(ctx, "c").Val())
	require.Equal(t, int64(1), f.do("COPY", "a", "d", "DB", "0").Val())

	big := strings.Repeat("x", 100000)
	require.NoError(t, f.rdb.Set(ctx, "big", big, 0).Err())
	require.Equal(t, int64(1), f.do("COPY", "big", "{o}big").Val())
	require.Equal(t, int64(100000), f.rdb.Append(ctx, "big", "").Val())
	require.Equal(t, int64(100001), f.rdb.Append(ctx, "{o}big", "y").Val())
	require.Equal(t, big, f.rdb.Get(ctx, "big").Val(), "the copy is independent")

	requireErr(t, f.do("COPY", "a", "a").Err(), "ERR source and destination objects are the same")
	requireErr(t, f.do("COPY", "a", "z", "DB", "1").Err(), "ERR Copying to another database is not allowed in cluster mode")
	requireErr(t, f.do("COPY", "a", "z", "DB", "16").Err(), "ERR DB index is out of range")
	requireErr(t, f.do("COPY", "a", "z", "DB", "x").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.do("COPY", "a", "z", "FOO").Err(), "ERR syntax error")
	requireErr(t, f.do("COPY", "a", "z", "DB").Err(), "ERR syntax error")
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "z").Val())
}
