package redis

import (
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestListPushPopAndRange(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.Equal(t, int64(3), f.rdb.RPush(ctx, "l", "a", "b", "c").Val())
	require.Equal(t, int64(5), f.rdb.LPush(ctx, "l", "y", "x").Val(), "LPUSH x after y puts x first")
	require.Equal(t, []string{"x", "y", "a", "b", "c"}, f.rdb.LRange(ctx, "l", 0, -1).Val())
	require.Equal(t, []string{"b", "c"}, f.rdb.LRange(ctx, "l", -2, 100).Val())
	require.Equal(t, []string{}, f.rdb.LRange(ctx, "l", 4, 2).Val())
	require.Equal(t, []string{}, f.rdb.LRange(ctx, "missing", 0, -1).Val())
	require.Equal(t, int64(5), f.rdb.LLen(ctx, "l").Val())
	require.Equal(t, "a", f.rdb.LIndex(ctx, "l", 2).Val())
	require.Equal(t, "c", f.rdb.LIndex(ctx, "l", -1).Val())
	require.ErrorIs(t, f.rdb.LIndex(ctx, "l", 5).Err(), goredis.Nil)
	require.Equal(t, "list", f.rdb.Type(ctx, "l").Val())

	require.Equal(t, int64(0), f.rdb.LPushX(ctx, "nx", "v").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "nx").Val())
	require.Equal(t, int64(6), f.rdb.RPushX(ctx, "l", "z").Val())

	require.Equal(t, "x", f.rdb.LPop(ctx, "l").Val())
	require.Equal(t, "z", f.rdb.RPop(ctx, "l").Val())
	require.Equal(t, []string{"y", "a"}, f.rdb.LPopCount(ctx, "l", 2).Val())
	require.Equal(t, []string{"c", "b"}, f.rdb.RPopCount(ctx, "l", 10).Val(), "a count past the length pops all")
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "l").Val(), "an emptied list is deleted")
	require.ErrorIs(t, f.rdb.LPop(ctx, "l").Err(), goredis.Nil)

	// Wrong types and argument errors, in Redis's words.
	require.NoError(t, f.rdb.Set(ctx, "s", "v", 0).Err())
	for _, err := range []error{
		f.rdb.LPush(ctx, "s", "x").Err(), f.rdb.LLen(ctx, "s").Err(), f.rdb.LRange(ctx, "s", 0, 1).Err(),
		f.rdb.LIndex(ctx, "s", 0).Err(), f.rdb.LPop(ctx, "s").Err(), f.do("LPOP", "s", "0").Err(),
		f.rdb.LSet(ctx, "s", 0, "x").Err(), f.rdb.LRem(ctx, "s", 0, "x").Err(), f.rdb.LTrim(ctx, "s", 0, 1).Err(),
		f.rdb.LPos(ctx, "s", "x", goredis.LPosArgs{}).Err(),
	} {
		requireErr(t, err, "WRONGTYPE Operation against a key holding the wrong kind of value")
	}
	requireErr(t, f.do("LPOP", "s", "-1").Err(), "ERR value is out of range, must be positive")
	requireErr(t, f.do("LPOP", "s", "x").Err(), "ERR value is out of range, must be positive")
	requireErr(t, f.do("LPOP", "s", "1", "2").Err(), "ERR wrong number of arguments for 'lpop' command")
	requireErr(t, f.do("LRANGE", "s", "a", "1").Err(), "ERR value is not an integer or out of range")
}

// Redis answers nil arrays (*-1) and empty arrays (*0) in exactly these
// cases.
func TestListPopRepliesNilAndEmptyArrays(t *testing.T) {
	f := newFixture(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("LPOP", "none", "1"))
	require.Equal(t, "*-1", r.line())
	r.send(cmd("LPOP", "none", "0"))
	require.Equal(t, "*-1", r.line())
	r.send(cmd("LPOP", "none"))
	require.Equal(t, "$-1", r.line())
	r.send(cmd("RPUSH", "l", "a"))
	require.Equal(t, int64(1), r.reply())
	r.send(cmd("LPOP", "l", "0"))
	require.Equal(t, "*0", r.line())
	r.send(cmd("LMPOP", "2", "none", "other", "LEFT"))
	require.Equal(t, "*-1", r.line())
	r.send(cmd("LPOS", "none", "a"))
	require.Equal(t, "$-1", r.line())
	r.send(cmd("LPOS", "none", "a", "COUNT", "0"))
	require.Equal(t, "*0", r.line())
}

func TestListLMPop(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.RPush(ctx, "b", "1", "2", "3").Err())
	key, vals, err := f.rdb.LMPop(ctx, "left", 2, "a", "b").Result()
	require.NoError(t, err)
	require.Equal(t, "b", key)
	require.Equal(t, []string{"1", "2"}, vals)
	key, vals, err = f.rdb.LMPop(ctx, "right", 1, "a", "b").Result()
	require.NoError(t, err)
	require.Equal(t, "b", key)
	require.Equal(t, []string{"3"}, vals)
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "b").Val())
	requireErr(t, f.do("LMPOP", "0", "a", "LEFT").Err(), "ERR numkeys should be greater than 0")
	requireErr(t, f.do("LMPOP", "x", "a", "LEFT").Err(), "ERR numkeys should be greater than 0")
	requireErr(t, f.do("LMPOP", "2", "a", "LEFT").Err(), "ERR syntax error")
	requireErr(t, f.do("LMPOP", "1", "a", "UP").Err(), "ERR syntax error")
	requireErr(t, f.do("LMPOP", "1", "a", "LEFT", "COUNT", "0").Err(), "ERR count should be greater than 0")
	requireErr(t, f.do("LMPOP", "1", "a", "LEFT", "COUNT", "1", "COUNT", "1").Err(), "ERR syntax error")
	requireErr(t, f.do("LMPOP", "1", "a", "LEFT", "COUNT").Err(), "ERR syntax error")
	require.NoError(t, f.rdb.Set(ctx, "s", "v", 0).Err())
	require.NoError(t, f.rdb.RPush(ctx, "c", "x").Err())
	requireErr(t, f.do("LMPOP", "2", "s", "c", "LEFT").Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	require.Equal(t, int64(1), f.rdb.LLen(ctx, "c").Val())
}

func TestListSetInsertRemTrim(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	requireErr(t, f.rdb.LSet(ctx, "l", 0, "x").Err(), "ERR no such key")
	require.NoError(t, f.rdb.RPush(ctx, "l", "a", "b", "c", "b", "a").Err())
	require.NoError(t, f.rdb.LSet(ctx, "l", -1, "A").Err())
	requireErr(t, f.rdb.LSet(ctx, "l", 5, "x").Err(), "ERR index out of range")
	requireErr(t, f.rdb.LSet(ctx, "l", -6, "x").Err(), "ERR index out of range")
	require.Equal(t, []string{"a", "b", "c", "b", "A"}, f.rdb.LRange(ctx, "l", 0, -1).Val())

	require.Equal(t, int64(6), f.rdb.LInsertBefore(ctx, "l", "b", "B").Val())
	require.Equal(t, int64(7), f.rdb.LInsertAfter(ctx, "l", "A", "Z").Val())
	require.Equal(t, int64(-1), f.rdb.LInsertAfter(ctx, "l", "nope", "x").Val())
	require.Equal(t, int64(0), f.rdb.LInsertAfter(ctx, "none", "a", "x").Val())
	requireErr(t, f.do("LINSERT", "l", "MIDDLE", "a", "x").Err(), "ERR syntax error")
	require.Equal(t, []string{"a", "B", "b", "c", "b", "A", "Z"}, f.rdb.LRange(ctx, "l", 0, -1).Val())

	require.Equal(t, int64(1), f.rdb.LRem(ctx, "l", -1, "b").Val())
	require.Equal(t, []string{"a", "B", "b", "c", "A", "Z"}, f.rdb.LRange(ctx, "l", 0, -1).Val())
	require.Equal(t, int64(0), f.rdb.LRem(ctx, "l", 0, "nope").Val())

	require.NoError(t, f.rdb.LTrim(ctx, "l", 1, -2).Err())
	require.Equal(t, []string{"B", "b", "c", "A"}, f.rdb.LRange(ctx, "l", 0, -1).Val())
	require.NoError(t, f.rdb.LTrim(ctx, "l", 5, 10).Err())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "l").Val(), "an empty trim deletes the list")
	require.NoError(t, f.rdb.LTrim(ctx, "none", 0, 1).Err())
}

func TestListLPos(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	// The list of Redis's own LPOS tests.
	require.NoError(t, f.rdb.RPush(ctx, "l", "a", "b", "c", "1", "2", "3", "c", "c").Err())
	require.Equal(t, int64(2), f.rdb.LPos(ctx, "l", "c", goredis.LPosArgs{}).Val())
	require.Equal(t, int64(6), f.rdb.LPos(ctx, "l", "c", goredis.LPosArgs{Rank: 2}).Val())
	require.Equal(t, int64(7), f.rdb.LPos(ctx, "l", "c", goredis.LPosArgs{Rank: -1}).Val())
	require.ErrorIs(t, f.rdb.LPos(ctx, "l", "c", goredis.LPosArgs{Rank: 4}).Err(), goredis.Nil)
	require.Equal(t, []int64{2, 6, 7}, f.rdb.LPosCount(ctx, "l", "c", 0, goredis.LPosArgs{}).Val())
	require.Equal(t, []int64{7, 6}, f.rdb.LPosCount(ctx, "l", "c", 2, goredis.LPosArgs{Rank: -1}).Val())
	require.Equal(t, []int64{7, 6}, f.rdb.LPosCount(ctx, "l", "c", 0, goredis.LPosArgs{Rank: -1, MaxLen: 3}).Val())
	require.Equal(t, []int64{6}, f.rdb.LPosCount(ctx, "l", "c", 0, goredis.LPosArgs{Rank: 2, MaxLen: 7}).Val())
	requireErr(t, f.do("LPOS", "l", "c", "RANK", "0").Err(),
		"ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
	requireErr(t, f.do("LPOS", "l", "c", "RANK", "-9223372036854775808").Err(),
		"ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
	requireErr(t, f.do("LPOS", "l", "c", "COUNT", "-1").Err(), "ERR COUNT can't be negative")
	requireErr(t, f.do("LPOS", "l", "c", "MAXLEN", "-1").Err(), "ERR MAXLEN can't be negative")
	requireErr(t, f.do("LPOS", "l", "c", "RANK").Err(), "ERR syntax error")
}

func TestListMove(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.RPush(ctx, "src", "1", "2", "3").Err())
	require.Equal(t, "3", f.do("RPOPLPUSH", "src", "dst").Val())
	require.Equal(t, "1", f.rdb.LMove(ctx, "src", "dst", "LEFT", "RIGHT").Val())
	require.Equal(t, []string{"3", "1"}, f.rdb.LRange(ctx, "dst", 0, -1).Val())
	require.Equal(t, "3", f.rdb.LMove(ctx, "dst", "dst", "LEFT", "RIGHT").Val(), "a rotation")
	require.Equal(t, []string{"1", "3"}, f.rdb.LRange(ctx, "dst", 0, -1).Val())
	require.Equal(t, "2", f.rdb.LMove(ctx, "src", "dst", "RIGHT", "LEFT").Val())
	require.Equal(t, int64(0), f.rdb.Exists(ctx, "src").Val())
	require.ErrorIs(t, f.rdb.LMove(ctx, "src", "dst", "LEFT", "LEFT").Err(), goredis.Nil)
	requireErr(t, f.do("LMOVE", "src", "dst", "UP", "LEFT").Err(), "ERR syntax error")
	require.NoError(t, f.rdb.Set(ctx, "s", "v", 0).Err())
	requireErr(t, f.rdb.LMove(ctx, "dst", "s", "LEFT", "LEFT").Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	require.ErrorIs(t, f.do("RPOPLPUSH", "none", "s").Err(), goredis.Nil, "the destination is checked only with a source")
	require.Equal(t, []string{"2", "1", "3"}, f.rdb.LRange(ctx, "dst", 0, -1).Val())
}

// A list's TTL, RENAME and COPY keep its elements and order.
func TestListKeyspaceCommands(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.RPush(ctx, "l", "a", "b", "c").Err())
	require.NoError(t, f.rdb.LPush(ctx, "l", "z").Err())
	require.True(t, f.rdb.Expire(ctx, "l", 100_000_000_000).Val())
	require.Equal(t, int64(1), f.rdb.Copy(ctx, "l", "c", 0, false).Val())
	require.NoError(t, f.rdb.Rename(ctx, "l", "r").Err())
	require.Equal(t, []string{"z", "a", "b", "c"}, f.rdb.LRange(ctx, "r", 0, -1).Val())
	require.Equal(t, []string{"z", "a", "b", "c"}, f.rdb.LRange(ctx, "c", 0, -1).Val())
	require.Equal(t, int64(1), f.rdb.RPush(ctx, "c", "d").Val()-4)
	require.Equal(t, []string{"z", "a", "b", "c"}, f.rdb.LRange(ctx, "r", 0, -1).Val(), "the copy is independent")
	require.Equal(t, int64(2), f.rdb.Del(ctx, "r", "c").Val())
	require.Equal(t, int64(0), f.rdb.DBSize(ctx).Val())
}

// Pipelined list commands run as one batch (one write entry, one read
// barrier) and still answer each command its own reply, nil arrays
// included.
func TestListCommandsPipelined(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	p := f.rdb.Pipeline()
	push := p.RPush(ctx, "l", "a", "b", "c")
	lpush := p.LPush(ctx, "l", "z")
	pop := p.LPopCount(ctx, "l", 2)
	none := p.LPopCount(ctx, "none", 2)
	moved := p.LMove(ctx, "l", "m", "RIGHT", "LEFT")
	bad := p.LPush(ctx, "l")
	_, _ = p.Exec(ctx)
	require.Equal(t, int64(3), push.Val())
	require.Equal(t, int64(4), lpush.Val())
	require.Equal(t, []string{"z", "a"}, pop.Val())
	require.ErrorIs(t, none.Err(), goredis.Nil)
	require.Equal(t, "c", moved.Val())
	requireErr(t, bad.Err(), "ERR wrong number of arguments for 'lpush' command")

	p = f.rdb.Pipeline()
	rng := p.LRange(ctx, "l", 0, -1)
	ln := p.LLen(ctx, "m")
	idx := p.LIndex(ctx, "m", 0)
	pos := p.LPos(ctx, "l", "b", goredis.LPosArgs{})
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"b"}, rng.Val())
	require.Equal(t, int64(1), ln.Val())
	require.Equal(t, "c", idx.Val())
	require.Equal(t, int64(0), pos.Val())
}

// TestHostileLongListReadsStopAtDeadline: LRANGE, LPOS and SORT of a list
// of 200k elements under a request timeout of a millisecond answer an
// error naming the limit, while LINDEX and LLEN, O(1), answer.
func TestHostileLongListReadsStopAtDeadline(t *testing.T) {
	f := newFixture(t, generous)
	ctx := f.ctx
	chunk := make([]any, 1000)
	for i := range chunk {
		chunk[i] = strconv.Itoa(i)
	}
	p := f.rdb.Pipeline()
	for range 200 {
		p.RPush(ctx, "big", chunk...)
	}
	_, err := p.Exec(ctx)
	require.NoError(t, err)
	short := startServer(t, Config{Backend: leaseBackend{f.backend}, RequestTimeout: time.Millisecond})
	rdb := newClient(t, short, func(o *goredis.Options) { o.MaxRetries = -1 })
	for cmd, err := range map[string]error{
		"LRANGE": rdb.LRange(ctx, "big", 0, -1).Err(),
		"LPOS":   rdb.LPos(ctx, "big", "none", goredis.LPosArgs{}).Err(),
		"SORT":   rdb.Sort(ctx, "big", &goredis.Sort{}).Err(),
	} {
		require.Error(t, err, cmd)
		require.True(t, strings.HasPrefix(err.Error(), "ERR "+cmd+" exceeded its time limit of 1ms"), "%v", err)
	}
	require.Equal(t, "500", rdb.LIndex(ctx, "big", 100_500).Val())
	require.Equal(t, int64(200_000), rdb.LLen(ctx, "big").Val())
}
