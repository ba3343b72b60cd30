package redis

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestSortList(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.RPush(ctx, "{u}ids", "3", "1", "2").Err())
	require.NoError(t, f.rdb.MSet(ctx, "{u}w_1", "30", "{u}w_2", "10", "{u}w_3", "20", "{u}name_1", "one", "{u}name_3", "three").Err())
	require.Equal(t, []string{"1", "2", "3"}, f.rdb.Sort(ctx, "{u}ids", &goredis.Sort{}).Val())
	require.Equal(t, []string{"3", "2", "1"}, f.rdb.SortRO(ctx, "{u}ids", &goredis.Sort{Order: "DESC"}).Val())
	require.Equal(t, []string{"2", "3", "1"}, f.rdb.Sort(ctx, "{u}ids", &goredis.Sort{By: "{u}w_*"}).Val())
	require.Equal(t, []string{"3", "1", "2"}, f.rdb.Sort(ctx, "{u}ids", &goredis.Sort{By: "nosort"}).Val())
	require.Equal(t, []string{"2", "1"}, f.rdb.Sort(ctx, "{u}ids", &goredis.Sort{Offset: 1, Count: 2, Order: "DESC"}).Val())

	// GET: a missing key is a nil element.
	got, err := f.rdb.SortInterfaces(ctx, "{u}ids", &goredis.Sort{By: "{u}w_*", Get: []string{"#", "{u}name_*"}}).Result()
	require.NoError(t, err)
	require.Equal(t, []any{"2", nil, "3", "three", "1", "one"}, got)

	// STORE makes a list and replies its length; the source is untouched.
	require.NoError(t, f.rdb.Set(ctx, "{u}dst", "x", time.Minute).Err())
	require.Equal(t, int64(3), f.rdb.SortStore(ctx, "{u}ids", "{u}dst", &goredis.Sort{Alpha: true, Order: "DESC"}).Val())
	require.Equal(t, []string{"3", "2", "1"}, f.rdb.LRange(ctx, "{u}dst", 0, -1).Val())
	require.Equal(t, time.Duration(-1), f.rdb.TTL(ctx, "{u}dst").Val())
	require.Equal(t, []string{"3", "1", "2"}, f.rdb.LRange(ctx, "{u}ids", 0, -1).Val())
	require.Equal(t, int64(0), f.rdb.SortStore(ctx, "none", "{u}dst", &goredis.Sort{}).Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "{u}dst").Val())

	// Errors, in Redis's (and Redis Cluster's) words.
	require.NoError(t, f.rdb.RPush(ctx, "words", "a", "b").Err())
	requireErr(t, f.rdb.Sort(ctx, "words", &goredis.Sort{}).Err(), "ERR One or more scores can't be converted into double")
	requireErr(t, f.rdb.Sort(ctx, "words", &goredis.Sort{By: "w_*"}).Err(),
		"ERR BY option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.")
	requireErr(t, f.rdb.Sort(ctx, "words", &goredis.Sort{Get: []string{"w_*"}}).Err(),
		"ERR GET option of SORT denied in Cluster mode when keys formed by the pattern may be in different slots.")
	requireErr(t, f.do("SORT", "words", "LIMIT", "1").Err(), "ERR syntax error")
	requireErr(t, f.do("SORT", "words", "LIMIT", "x", "1").Err(), "ERR value is not an integer or out of range")
	requireErr(t, f.do("SORT_RO", "words", "STORE", "x").Err(), "ERR syntax error")
	requireErr(t, f.do("SORT", "{u}w_1").Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	requireErr(t, f.do("SORT", "{u}w_1", "STORE", "d").Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	require.Equal(t, []string{"a", "b"}, f.rdb.Sort(ctx, "words", &goredis.Sort{Alpha: true}).Val())
}

func TestPatternSlot(t *testing.T) {
	slot := func(s string) int { return patternSlot([]byte(s)) }
	require.Equal(t, slot("u"), slot("{u}w_*"))
	require.Equal(t, slot("u"), slot("{u}w_*->field"))
	require.Equal(t, -1, slot("w_*"))
	require.Equal(t, -1, slot("w_*{u}"))
	require.Equal(t, -1, slot("{}w_*"))
	require.Equal(t, -1, slot(`\{u}w_*`))
	require.Equal(t, slot("plainkey"), slot("plainkey"))
	require.NotEqual(t, -1, slot("plainkey"))
}

// SORT reads sorted sets (BY nosort keeps their score order) and hash
// fields named by "->".
func TestSortZSetAndHashFields(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.ZAdd(ctx, "{z}s", goredis.Z{Score: 3, Member: "a"}, goredis.Z{Score: 1, Member: "c"}, goredis.Z{Score: 2, Member: "b"}).Err())
	require.Equal(t, []string{"c", "b", "a"}, f.rdb.Sort(ctx, "{z}s", &goredis.Sort{By: "nosort"}).Val())
	require.Equal(t, []string{"b", "c"}, f.rdb.Sort(ctx, "{z}s", &goredis.Sort{By: "nosort", Order: "DESC", Offset: 1, Count: 2}).Val())
	require.Equal(t, []string{"a", "b", "c"}, f.rdb.Sort(ctx, "{z}s", &goredis.Sort{Alpha: true}).Val())
	require.NoError(t, f.rdb.HSet(ctx, "{z}h_a", "w", "5", "n", "A").Err())
	require.NoError(t, f.rdb.HSet(ctx, "{z}h_b", "w", "-1").Err())
	got, err := f.rdb.SortInterfaces(ctx, "{z}s", &goredis.Sort{By: "{z}h_*->w", Get: []string{"#", "{z}h_*->n"}}).Result()
	require.NoError(t, err)
	// c has no hash: weight 0, between b (-1) and a (5).
	require.Equal(t, []any{"b", nil, "c", nil, "a", "A"}, got)
	require.Equal(t, int64(3), f.rdb.SortStore(ctx, "{z}s", "{z}out", &goredis.Sort{By: "{z}h_*->w", Order: "DESC"}).Val())
	require.Equal(t, []string{"a", "c", "b"}, f.rdb.LRange(ctx, "{z}out", 0, -1).Val())
}

// A set sorts numerically or ALPHA; BY nosort gives its members in byte
// order, the order SORT ... STORE of a set needs to be the same on every
// replica.
func TestSortSet(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.SAdd(ctx, "{s}set", "10", "9", "100", "-1").Err())
	require.Equal(t, []string{"-1", "9", "10", "100"}, f.rdb.Sort(ctx, "{s}set", &goredis.Sort{}).Val())
	require.Equal(t, []string{"9", "100", "10", "-1"}, f.rdb.Sort(ctx, "{s}set", &goredis.Sort{Alpha: true, Order: "DESC"}).Val())
	require.Equal(t, []string{"-1", "10", "100", "9"}, f.rdb.Sort(ctx, "{s}set", &goredis.Sort{By: "nosort"}).Val())
	require.Equal(t, int64(2), f.rdb.SortStore(ctx, "{s}set", "{s}out", &goredis.Sort{By: "nosort", Order: "DESC", Count: 2}).Val())
	require.Equal(t, []string{"9", "100"}, f.rdb.LRange(ctx, "{s}out", 0, -1).Val())
}
