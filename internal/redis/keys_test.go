package redis

import (
	"context"
	"fmt"
	"sort"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestDelExistsType(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.MSet(ctx, "a", "1", "b", "2").Err())

	// EXISTS counts a key once per mention, as Redis does.
	require.Equal(t, int64(3), f.rdb.Exists(ctx, "a", "a", "b", "missing").Val())
	require.Equal(t, "string", f.rdb.Type(ctx, "a").Val())
	require.Equal(t, "none", f.rdb.Type(ctx, "missing").Val())

	// DEL counts keys that existed, each once.
	require.Equal(t, int64(2), f.rdb.Del(ctx, "a", "a", "b", "missing").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "a", "b").Val())
	requireErr(t, f.do("DEL").Err(), "ERR wrong number of arguments for 'del' command")
	requireErr(t, f.do("EXISTS").Err(), "ERR wrong number of arguments for 'exists' command")
}

func TestDBSizeKeysFlush(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.MSet(ctx, "user:1", "a", "user:2", "b", "user:10", "c", "other", "d", "us", "e").Err())
	require.Equal(t, int64(5), f.rdb.DBSize(ctx).Val())

	keys := func(pattern string) []string {
		ks, err := f.rdb.Keys(ctx, pattern).Result()
		require.NoError(t, err)
		sort.Strings(ks)
		return ks
	}
	require.Equal(t, []string{"other", "us", "user:1", "user:10", "user:2"}, keys("*"))
	require.Equal(t, []string{"user:1", "user:10", "user:2"}, keys("user:*"))
	require.Equal(t, []string{"user:1", "user:2"}, keys("user:?"))
	require.Equal(t, []string{"user:10"}, keys("*0"))
	require.Equal(t, []string{"us"}, keys("us"))
	require.Empty(t, keys("nope*"))

	require.NoError(t, f.rdb.FlushDB(ctx).Err())
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
	require.NoError(t, f.rdb.Set(ctx, "x", "1", 0).Err())
	require.NoError(t, f.rdb.FlushAllAsync(ctx).Err())
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
	require.NoError(t, f.do("FLUSHALL", "sync").Err())
	requireErr(t, f.do("FLUSHALL", "later").Err(), "ERR syntax error")
	requireErr(t, f.do("FLUSHDB", "async", "sync").Err(), "ERR syntax error")
}

func TestScanReturnsEveryKeyExactlyOnce(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	const n = 3000
	want := make(map[string]bool, n)
	for batch := 0; batch < n; batch += 500 {
		var pairs []any
		for i := batch; i < batch+500; i++ {
			k := fmt.Sprintf("key:%05d", i)
			want[k] = true
			pairs = append(pairs, k, i)
		}
		require.NoError(t, f.rdb.MSet(ctx, pairs...).Err())
	}

	seen := make(map[string]int, n)
	var cursor uint64
	calls := 0
	for {
		keys, next, err := f.rdb.Scan(ctx, cursor, "", 7).Result()
		require.NoError(t, err)
		require.LessOrEqual(t, len(keys), 7, "COUNT bounds each page")
		for _, k := range keys {
			seen[k]++
		}
		calls++
		if next == 0 {
			break
		}
		cursor = next
	}
	require.Len(t, seen, n)
	for k, c := range seen {
		require.True(t, want[k], "unexpected key %q", k)
		require.Equal(t, 1, c, "key %q returned %d times", k, c)
	}
	require.Equal(t, (n+6)/7, calls, "the last page carries cursor 0")
	require.LessOrEqual(t, f.srv.cursors.len(), maxScanCursors)

	// MATCH filters the examined keys; the iterator helper sees them all.
	var matched []string
	it := f.rdb.Scan(ctx, 0, "key:0123*", 50).Iterator()
	for it.Next(ctx) {
		matched = append(matched, it.Val())
	}
	require.NoError(t, it.Err())
	require.Len(t, matched, 10)

	// TYPE string is everything; other types are nothing.
	keys, cur, err := f.rdb.ScanType(ctx, 0, "", 5000, "string").Result()
	require.NoError(t, err)
	require.Len(t, keys, n)
	require.Zero(t, cur)
	// TYPE hash walks the keyspace like any scan and keeps nothing.
	keys, cur, err = f.rdb.ScanType(ctx, 0, "", 5000, "hash").Result()
	require.NoError(t, err)
	require.Empty(t, keys)
	require.Zero(t, cur)
}

func TestScanCursorsAreReusableAndValidated(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.MSet(ctx, "a", 1, "b", 2, "c", 3, "d", 4).Err())

	k0, cur, err := f.rdb.Scan(ctx, 0, "", 2).Result()
	require.NoError(t, err)
	require.NotZero(t, cur)
	// A retried SCAN (e.g. after a lost reply) gets the same page.
	k1, c1, err := f.rdb.Scan(ctx, cur, "", 2).Result()
	require.NoError(t, err)
	k2, c2, err := f.rdb.Scan(ctx, cur, "", 2).Result()
	require.NoError(t, err)
	// Keys come in hash-slot order, not byte order: the two pages hold
	// every key once.
	require.ElementsMatch(t, []string{"a", "b", "c", "d"}, append(k0, k1...))
	require.Equal(t, k1, k2)
	require.Zero(t, c1)
	require.Zero(t, c2)

	requireErr(t, f.do("SCAN", "12345").Err(), "ERR invalid cursor")
	requireErr(t, f.do("SCAN", "-1").Err(), "ERR invalid cursor")
	requireErr(t, f.do("SCAN", "abc").Err(), "ERR invalid cursor")
	requireErr(t, f.do("SCAN", "0", "COUNT", "0").Err(), "ERR syntax error")
	requireErr(t, f.do("SCAN", "0", "COUNT", "x").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.do("SCAN", "0", "MATCH").Err(), "ERR syntax error")
	requireErr(t, f.do("SCAN", "0", "FOO", "bar").Err(), "ERR syntax error")
}

func TestKeysCommandsOnEmptyKeyspace(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	keys, cur, err := f.rdb.Scan(ctx, 0, "*", 10).Result()
	require.NoError(t, err)
	require.Empty(t, keys)
	require.Zero(t, cur)
	require.Empty(t, f.rdb.Keys(ctx, "*").Val())
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
	require.ErrorIs(t, f.rdb.Get(ctx, "x").Err(), goredis.Nil)
}

func TestRepliesAreBounded(t *testing.T) {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: newStoreBackend(t)})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	f := &fixture{t: t, ctx: context.Background(), srv: s, rdb: newClient(t, s)}
	ctx := f.ctx
	var pairs []any
	for i := range 20 {
		pairs = append(pairs, fmt.Sprintf("key:%02d", i), "0123456789")
	}
	require.NoError(t, f.rdb.MSet(ctx, pairs...).Err())
	// Each element counts its bytes plus respOverhead: ten 6-byte keys
	// (310) fit, eleven 10-byte values (385) do not. The reply bound is the
	// query buffer limit, set here below what CONFIG SET allows (it must
	// exceed proto-max-bulk-len); the commands below are shorter still.
	s.live.queryLimit.Store(350)

	requireErr(t, f.rdb.Keys(ctx, "*").Err(), string(errReplyTooLarge))
	require.Len(t, f.rdb.Keys(ctx, "key:1*").Val(), 10, "a narrower pattern fits")
	requireErr(t, f.rdb.MGet(ctx, "key:00", "key:01", "key:02", "key:03", "key:04",
		"key:05", "key:06", "key:07", "key:08", "key:09", "key:10").Err(), string(errReplyTooLarge))
	require.Len(t, f.rdb.MGet(ctx, "key:00", "key:01").Val(), 2)
}

// TestUnlinkTouchRandomKey: UNLINK replies as DEL does, TOUCH counts
// existing keys as EXISTS does (a key named twice counts twice), and
// RANDOMKEY answers nil on an empty keyspace and on one whose keys were
// all deleted, and otherwise picks each key (the Redis suite's test: two
// keys, both seen within 100 draws).
func TestUnlinkTouchRandomKey(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx

	require.Equal(t, goredis.Nil, f.rdb.RandomKey(ctx).Err())
	require.NoError(t, f.rdb.Set(ctx, "x", "10", 0).Err())
	require.Equal(t, "x", f.rdb.RandomKey(ctx).Val())
	require.Equal(t, int64(1), f.rdb.Del(ctx, "x").Val())
	require.Equal(t, goredis.Nil, f.rdb.RandomKey(ctx).Err(), "a deleted key is never picked")

	require.NoError(t, f.rdb.MSet(ctx, "foo", "x", "bar", "y").Err())
	seen := map[string]bool{}
	for range 100 {
		k, err := f.rdb.RandomKey(ctx).Result()
		require.NoError(t, err)
		seen[k] = true
	}
	require.Equal(t, map[string]bool{"foo": true, "bar": true}, seen)

	require.Equal(t, int64(2), f.rdb.Touch(ctx, "key0", "foo", "bar", "key3").Val())
	require.Equal(t, int64(3), f.rdb.Touch(ctx, "foo", "foo", "bar").Val())
	require.Equal(t, "x", f.rdb.Get(ctx, "foo").Val(), "TOUCH changes nothing")

	require.Equal(t, int64(2), f.rdb.Unlink(ctx, "foo", "foo", "bar", "missing").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "foo", "bar").Val())
	require.Equal(t, int64(0), f.rdb.Unlink(ctx, "foo").Val())
	require.Equal(t, goredis.Nil, f.rdb.RandomKey(ctx).Err())

	requireErr(t, f.do("UNLINK").Err(), "ERR wrong number of arguments for 'unlink' command")
	requireErr(t, f.do("TOUCH").Err(), "ERR wrong number of arguments for 'touch' command")
	requireErr(t, f.do("RANDOMKEY", "x").Err(), "ERR wrong number of arguments for 'randomkey' command")
}

// TestPipelinedUnlinkTouchRandomKey: the three commands run in a pipeline
// (UNLINK batched with other writes, TOUCH and RANDOMKEY with other reads)
// answer in order what they answer alone.
func TestPipelinedUnlinkTouchRandomKey(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	var touch1, unlink1, touch2, unlink2, unlink3 *goredis.IntCmd
	var random *goredis.StringCmd
	_, err := f.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, "a", "1", 0)
		p.Set(ctx, "b", "2", 0)
		touch1 = p.Touch(ctx, "a", "b", "c")
		unlink1 = p.Unlink(ctx, "a", "c")
		p.Set(ctx, "c", "3", 0)
		touch2 = p.Touch(ctx, "a", "b", "c")
		unlink2 = p.Unlink(ctx, "b")
		unlink3 = p.Unlink(ctx, "c", "b")
		random = p.RandomKey(ctx)
		return nil
	})
	require.ErrorIs(t, err, goredis.Nil, "the last RANDOMKEY answers nil")
	require.Equal(t, []int64{2, 1, 2, 1, 1},
		[]int64{touch1.Val(), unlink1.Val(), touch2.Val(), unlink2.Val(), unlink3.Val()})
	require.Equal(t, goredis.Nil, random.Err())
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
}
