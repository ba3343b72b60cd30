package redis

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// Sorted sets through a real go-redis client over loopback, against a
// real kv.Store: replies and errors as Redis 7.2 gives them.

func TestZSetAddScoreRankAndRange(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, int64(3), f.do("ZADD", "z", "1", "a", "2.5", "b", "-inf", "c").Val())
	require.Equal(t, int64(0), f.do("ZADD", "z", "1", "a").Val())
	require.Equal(t, int64(1), f.do("ZADD", "z", "CH", "3", "a").Val())
	require.Equal(t, "3", f.do("ZSCORE", "z", "a").Val())
	require.Equal(t, "2.5", f.do("ZSCORE", "z", "b").Val())
	require.Equal(t, "-inf", f.do("ZSCORE", "z", "c").Val())
	require.Equal(t, int64(3), f.do("ZCARD", "z").Val())
	require.Equal(t, []any{"c", "b", "a"}, f.do("ZRANGE", "z", "0", "-1").Val())
	require.Equal(t, []any{"a", "3", "b", "2.5"}, f.do("ZREVRANGE", "z", "0", "1", "WITHSCORES").Val())
	require.Equal(t, int64(2), f.do("ZRANK", "z", "a").Val())
	require.Equal(t, []any{int64(0), "3"}, f.do("ZREVRANK", "z", "a", "WITHSCORE").Val())
	require.Nil(t, f.do("ZRANK", "z", "nosuch").Val())
	require.Nil(t, f.do("ZRANK", "z", "nosuch", "WITHSCORE").Val())
	require.Equal(t, []any{"3", nil, "2.5"}, f.do("ZMSCORE", "z", "a", "x", "b").Val())
	require.Equal(t, "4.5", f.do("ZINCRBY", "z", "1.5", "a").Val())
	require.Equal(t, "0.1", f.do("ZINCRBY", "n", "0.1", "m").Val())
	require.Equal(t, "0.30000000000000004", f.do("ZINCRBY", "n", "0.2", "m").Val())
	// Removing the last member deletes the key.
	require.Equal(t, int64(1), f.do("ZREM", "n", "m", "x").Val())
	require.Equal(t, int64(0), f.do("EXISTS", "n").Val())
	require.Equal(t, "zset", f.do("TYPE", "z").Val())
}

func TestZSetAddOptionsAndErrors(t *testing.T) {
	f := newFixture(t)
	f.do("ZADD", "z", "10", "a")
	require.Equal(t, int64(0), f.do("ZADD", "z", "XX", "1", "new").Val())
	require.Equal(t, int64(1), f.do("ZADD", "z", "XX", "CH", "11", "a", "1", "new").Val())
	require.Equal(t, int64(1), f.do("ZADD", "z", "NX", "1", "a", "2", "b").Val())
	require.Equal(t, "11", f.do("ZSCORE", "z", "a").Val())
	require.Equal(t, int64(0), f.do("ZADD", "z", "GT", "CH", "5", "a").Val())
	require.Equal(t, int64(1), f.do("ZADD", "z", "LT", "CH", "5", "a").Val())
	require.Nil(t, f.do("ZADD", "z", "GT", "INCR", "-1", "a").Val())
	require.Equal(t, "6", f.do("ZADD", "z", "GT", "INCR", "1", "a").Val())
	require.Nil(t, f.do("ZADD", "nokey", "XX", "INCR", "1", "a").Val())
	require.Equal(t, int64(0), f.do("EXISTS", "nokey").Val())
	for _, c := range []struct {
		args []any
		want string
	}{
		{[]any{"ZADD", "z", "NX", "XX", "1", "a"}, "ERR XX and NX options at the same time are not compatible"},
		{[]any{"ZADD", "z", "GT", "LT", "1", "a"}, "ERR GT, LT, and/or NX options at the same time are not compatible"},
		{[]any{"ZADD", "z", "NX", "GT", "1", "a"}, "ERR GT, LT, and/or NX options at the same time are not compatible"},
		{[]any{"ZADD", "z", "INCR", "1", "a", "2", "b"}, "ERR INCR option supports a single increment-element pair"},
		{[]any{"ZADD", "z", "1", "a", "2"}, "ERR syntax error"},
		{[]any{"ZADD", "z", "nan", "a"}, "ERR value is not a valid float"},
		{[]any{"ZADD", "z", "", "a"}, "ERR value is not a valid float"},
		{[]any{"ZADD", "z", "1", "a", "x", "b"}, "ERR value is not a valid float"},
		{[]any{"ZINCRBY", "z", "abc", "a"}, "ERR value is not a valid float"},
		{[]any{"ZRANGEBYSCORE", "z", "(x", "1"}, "ERR min or max is not a float"},
		{[]any{"ZRANGEBYLEX", "z", "a", "+"}, "ERR min or max not valid string range item"},
		{[]any{"ZRANGE", "z", "0", "1", "LIMIT", "0", "1"}, "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"},
		{[]any{"ZRANGE", "z", "[a", "[b", "BYLEX", "WITHSCORES"}, "ERR syntax error, WITHSCORES not supported in combination with BYLEX"},
		{[]any{"ZRANGESTORE", "d", "z", "0", "1", "WITHSCORES"}, "ERR syntax error"},
		{[]any{"ZPOPMIN", "z", "-1"}, "ERR value is out of range, must be positive"},
		{[]any{"ZMPOP", "0", "z", "MIN"}, "ERR numkeys should be greater than 0"},
		{[]any{"ZMPOP", "1", "z", "MIN", "COUNT", "0"}, "ERR count should be greater than 0"},
		{[]any{"ZUNION", "0", "z"}, "ERR at least 1 input key is needed for 'zunion' command"},
		{[]any{"ZINTERSTORE", "d", "1", "z", "WEIGHTS", "x"}, "ERR weight value is not a float"},
		{[]any{"ZINTERCARD", "1", "z", "LIMIT", "-1"}, "ERR LIMIT can't be negative"},
		{[]any{"ZRANDMEMBER", "z", "-9223372036854775808"}, "ERR value is out of range"},
	} {
		requireErr(t, f.do(c.args...).Err(), c.want)
	}
	f.do("SET", "s", "x")
	for _, args := range [][]any{
		{"ZADD", "s", "1", "a"}, {"ZSCORE", "s", "a"}, {"ZRANGE", "s", "0", "-1"}, {"ZRANK", "s", "a"},
		{"ZPOPMIN", "s", "0"}, {"ZUNIONSTORE", "d", "2", "z", "s"}, {"ZUNION", "2", "z", "s", "WEIGHTS", "x"},
		{"ZCARD", "s"}, {"ZREMRANGEBYRANK", "s", "0", "1"}, {"ZRANGESTORE", "d", "s", "0", "1"},
	} {
		requireErr(t, f.do(args...).Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	}
	// NaN from inf + -inf.
	f.do("ZADD", "inf", "+inf", "a")
	requireErr(t, f.do("ZINCRBY", "inf", "-inf", "a").Err(), "ERR resulting score is not a number (NaN)")
	require.Equal(t, "inf", f.do("ZSCORE", "inf", "a").Val())
}

func TestZSetRangesByScoreAndLex(t *testing.T) {
	f := newFixture(t)
	f.do("ZADD", "z", "-inf", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "+inf", "g")
	require.Equal(t, []any{"a", "b", "c"}, f.do("ZRANGEBYSCORE", "z", "-inf", "2").Val())
	require.Equal(t, []any{"b"}, f.do("ZRANGEBYSCORE", "z", "(-inf", "(2").Val())
	require.Equal(t, []any{"g", "f", "e"}, f.do("ZREVRANGEBYSCORE", "z", "+inf", "4").Val())
	require.Equal(t, []any{"d", "e"}, f.do("ZRANGE", "z", "1", "5", "BYSCORE", "LIMIT", "2", "2").Val())
	require.Equal(t, []any{"d", "3", "c", "2"}, f.do("ZRANGE", "z", "5", "1", "BYSCORE", "REV", "LIMIT", "2", "2", "WITHSCORES").Val())
	require.Equal(t, []any{}, f.do("ZRANGE", "z", "1", "5", "BYSCORE", "LIMIT", "-1", "2").Val())
	require.Equal(t, int64(6), f.do("ZCOUNT", "z", "0", "+inf").Val())
	require.Equal(t, int64(0), f.do("ZCOUNT", "z", "(1", "(2").Val())
	require.Equal(t, []any{"g"}, f.do("ZRANGEBYSCORE", "z", "6", "+inf").Val())
	require.Equal(t, []any{}, f.do("ZRANGEBYSCORE", "z", "(6", "(+inf").Val())
	require.Equal(t, []any{}, f.do("ZRANGE", "nosuch", "0", "-1").Val())

	f.do("ZADD", "l", "0", "alpha", "0", "bar", "0", "cool", "0", "down", "0", "elephant", "0", "foo")
	require.Equal(t, []any{"alpha", "bar", "cool"}, f.do("ZRANGEBYLEX", "l", "-", "[cool").Val())
	require.Equal(t, []any{"bar", "cool", "down"}, f.do("ZRANGEBYLEX", "l", "[bar", "[down").Val())
	require.Equal(t, []any{"foo", "elephant", "down"}, f.do("ZREVRANGEBYLEX", "l", "+", "(cool").Val())
	require.Equal(t, []any{"cool", "down"}, f.do("ZRANGEBYLEX", "l", "-", "+", "LIMIT", "2", "2").Val())
	require.Equal(t, int64(3), f.do("ZLEXCOUNT", "l", "(alpha", "[down").Val())
	require.Equal(t, int64(0), f.do("ZLEXCOUNT", "l", "+", "-").Val())
	// Lex over differing scores walks members along the order, as Redis.
	f.do("ZADD", "m", "1", "a", "2", "b", "3", "c", "4", "d")
	require.Equal(t, []any{"b", "c"}, f.do("ZRANGE", "m", "[b", "[c", "BYLEX").Val())
	require.Equal(t, int64(2), f.do("ZLEXCOUNT", "m", "[b", "[c").Val())

	// Bounds past either end select nothing, by lex and by score, on a
	// uniform and a mixed set, in reads and on apply.
	for _, key := range []string{"l", "m"} {
		require.Equal(t, int64(0), f.do("ZLEXCOUNT", key, "+", "+").Val())
		require.Equal(t, int64(0), f.do("ZLEXCOUNT", key, "-", "-").Val())
		require.Equal(t, []any{}, f.do("ZRANGE", key, "+", "+", "BYLEX", "LIMIT", "1", "1").Val())
		require.Equal(t, []any{}, f.do("ZRANGE", key, "-", "+", "BYLEX", "REV", "LIMIT", "1", "1").Val())
		require.Equal(t, int64(0), f.do("ZRANGESTORE", "dst", key, "+", "+", "BYLEX", "LIMIT", "1", "1").Val())
		require.Equal(t, int64(0), f.do("ZREMRANGEBYLEX", key, "+", "+").Val())
		require.Equal(t, int64(0), f.do("ZREMRANGEBYSCORE", key, "(+inf", "+inf").Val())
	}
	require.Equal(t, int64(6), f.do("ZCARD", "l").Val())
	require.Equal(t, int64(2), f.do("ZREMRANGEBYLEX", "l", "[alpha", "(cool").Val())
	require.Equal(t, int64(2), f.do("ZREMRANGEBYSCORE", "z", "(-inf", "(3").Val())
	require.Equal(t, int64(2), f.do("ZREMRANGEBYRANK", "z", "-2", "-1").Val())
	require.Equal(t, []any{"a", "d", "e"}, f.do("ZRANGE", "z", "0", "-1").Val())
	require.Equal(t, int64(3), f.do("ZREMRANGEBYRANK", "z", "0", "-1").Val())
	require.Equal(t, int64(0), f.do("EXISTS", "z").Val())
}

func TestZSetPopsAndStores(t *testing.T) {
	f := newFixture(t)
	f.do("ZADD", "z", "1", "a", "2", "b", "3", "c")
	require.Equal(t, []any{"a", "1"}, f.do("ZPOPMIN", "z").Val())
	require.Equal(t, []any{"c", "3", "b", "2"}, f.do("ZPOPMAX", "z", "5").Val())
	require.Equal(t, []any{}, f.do("ZPOPMIN", "z").Val())
	require.Equal(t, []any{}, f.do("ZPOPMIN", "z", "0").Val())
	f.do("ZADD", "z2", "1", "a", "2", "b")
	require.Equal(t, []any{"z2", []any{[]any{"b", "2"}, []any{"a", "1"}}}, f.do("ZMPOP", "2", "z", "z2", "MAX", "COUNT", "10").Val())
	require.Nil(t, f.do("ZMPOP", "2", "z", "z2", "MIN").Val())

	f.do("ZADD", "s1", "1", "a", "2", "b", "3", "c")
	f.do("ZADD", "s2", "1", "b", "2", "c", "3", "d")
	require.Equal(t, []any{"a", "1", "b", "3", "d", "3", "c", "5"}, f.do("ZUNION", "2", "s1", "s2", "WITHSCORES").Val())
	require.Equal(t, []any{"b", "5", "c", "8"}, f.do("ZINTER", "2", "s1", "s2", "WEIGHTS", "2", "1", "WITHSCORES").Val())
	require.Equal(t, []any{"b", "1", "c", "2"}, f.do("ZINTER", "2", "s1", "s2", "AGGREGATE", "MIN", "WITHSCORES").Val())
	require.Equal(t, []any{"a"}, f.do("ZDIFF", "2", "s1", "s2").Val())
	require.Equal(t, int64(2), f.do("ZINTERCARD", "2", "s1", "s2").Val())
	require.Equal(t, int64(1), f.do("ZINTERCARD", "2", "s1", "s2", "LIMIT", "1").Val())
	require.Equal(t, int64(4), f.do("ZUNIONSTORE", "u", "2", "s1", "s2", "AGGREGATE", "MAX").Val())
	require.Equal(t, []any{"a", "1", "b", "2", "c", "3", "d", "3"}, f.do("ZRANGE", "u", "0", "-1", "WITHSCORES").Val())
	require.Equal(t, int64(2), f.do("ZRANK", "u", "c").Val())
	require.Equal(t, int64(0), f.do("ZINTERSTORE", "u", "2", "s1", "nosuch").Val())
	require.Equal(t, int64(0), f.do("EXISTS", "u").Val())
	require.Equal(t, int64(2), f.do("ZRANGESTORE", "r", "s1", "2", "1", "BYSCORE", "REV").Val())
	require.Equal(t, []any{"a", "1", "b", "2"}, f.do("ZRANGE", "r", "0", "-1", "WITHSCORES").Val())
	// A destination that is also a source is read before it is replaced.
	require.Equal(t, int64(1), f.do("ZRANGESTORE", "r", "r", "0", "0", "REV").Val())
	require.Equal(t, []any{"b", "2"}, f.do("ZRANGE", "r", "0", "-1", "WITHSCORES").Val())
	require.Equal(t, int64(3), f.do("ZUNIONSTORE", "r", "2", "r", "s1", "WEIGHTS", "10", "1").Val())
	require.Equal(t, []any{"a", "1", "c", "3", "b", "22"}, f.do("ZRANGE", "r", "0", "-1", "WITHSCORES").Val())
	// inf * 0 and inf + -inf count as 0, as in Redis.
	f.do("ZADD", "i1", "+inf", "x")
	f.do("ZADD", "i2", "-inf", "x")
	require.Equal(t, []any{"x", "0"}, f.do("ZUNION", "2", "i1", "i2", "WITHSCORES").Val())
	require.Equal(t, []any{"x", "0"}, f.do("ZUNION", "1", "i1", "WEIGHTS", "0", "WITHSCORES").Val())
}

// TestZSetRankOnALargeSet crosses many rank-index buckets: ranks, rank
// ranges with negative indexes and pops agree with the sorted order.
func TestZSetRankOnALargeSet(t *testing.T) {
	f := newFixture(t)
	const n = 5000
	args := []any{"ZADD", "big"}
	for i := range n {
		args = append(args, strconv.Itoa(n-i), fmt.Sprintf("m%05d", i))
	}
	require.Equal(t, int64(n), f.do(args...).Val())
	for _, i := range []int{0, 1, 511, 512, 1023, 1024, 2500, 4999} {
		// member m%05d has score n-i, so its rank is n-1-i.
		require.Equal(t, int64(n-1-i), f.do("ZRANK", "big", fmt.Sprintf("m%05d", i)).Val())
		require.Equal(t, int64(i), f.do("ZREVRANK", "big", fmt.Sprintf("m%05d", i)).Val())
	}
	require.Equal(t, []any{"m02000", "m01999"}, f.do("ZRANGE", "big", "2999", "3000").Val())
	require.Equal(t, []any{"m00001", "m00000"}, f.do("ZRANGE", "big", "-2", "-1").Val())
	require.Equal(t, []any{"m01999", "m01998"}, f.do("ZRANGE", "big", "3000", "3003", "BYSCORE", "LIMIT", "1", "2").Val())
	require.Equal(t, int64(1000), f.do("ZREMRANGEBYRANK", "big", "1000", "1999").Val())
	require.Equal(t, int64(2000), f.do("ZRANK", "big", "m01999").Val())
	require.Equal(t, int64(4000), f.do("ZCARD", "big").Val())
	got := f.do("ZRANDMEMBER", "big", "20", "WITHSCORES").Val().([]any)
	require.Len(t, got, 40)
	seen := map[string]bool{}
	for k := 0; k < len(got); k += 2 {
		m := got[k].(string)
		require.False(t, seen[m], "ZRANDMEMBER with a positive count repeats %s", m)
		seen[m] = true
		require.Equal(t, f.do("ZSCORE", "big", m).Val(), got[k+1])
	}
	require.Len(t, f.do("ZRANDMEMBER", "big", "-50").Val(), 50)
	require.Equal(t, int64(1), f.do("DEL", "big").Val())
	require.Equal(t, int64(0), f.do("ZCARD", "big").Val())
}

// TestZRandMemberIsUniform draws many single members from a small set
// and checks every member comes up about as often (a loose chi-square).
func TestZRandMemberIsUniform(t *testing.T) {
	f := newFixture(t)
	f.do("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e")
	counts := map[string]int{}
	got := f.do("ZRANDMEMBER", "z", "-5000").Val().([]any)
	for _, m := range got {
		counts[m.(string)]++
	}
	require.Len(t, counts, 5)
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - 1000
		chi += d * d / 1000
	}
	require.Less(t, chi, 30.0, "counts %v", counts) // 4 degrees of freedom: p << 1e-5
	require.Equal(t, []any{"a", "b", "c", "d", "e"}, f.do("ZRANDMEMBER", "z", "10").Val())
	require.Equal(t, []any{}, f.do("ZRANDMEMBER", "nosuch", "3").Val())
	require.Nil(t, f.do("ZRANDMEMBER", "nosuch").Val())
}

func TestZScanReturnsEveryMemberOnce(t *testing.T) {
	f := newFixture(t)
	args := []any{"ZADD", "z"}
	for i := range 300 {
		args = append(args, strconv.Itoa(i), fmt.Sprintf("m%03d", i))
	}
	f.do(args...)
	seen := map[string]string{}
	cursor := "0"
	for {
		r := f.do("ZSCAN", "z", cursor, "COUNT", "17").Val().([]any)
		cursor = r[0].(string)
		items := r[1].([]any)
		for k := 0; k < len(items); k += 2 {
			_, dup := seen[items[k].(string)]
			require.False(t, dup)
			seen[items[k].(string)] = items[k+1].(string)
		}
		if cursor == "0" {
			break
		}
	}
	require.Len(t, seen, 300)
	require.Equal(t, "42", seen["m042"])
}
