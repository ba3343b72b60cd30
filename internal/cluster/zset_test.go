package cluster

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestZSetCopyAndRenameKeepScoresAndRanks: a sorted set large enough to
// span many rank-index buckets, written through a follower, keeps every
// score and rank on every node after COPY and RENAME (the rank index is
// copied and moved with the members), and the copy is independent.
func TestZSetCopyAndRenameKeepScoresAndRanks(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	f := c.Client((leader + 1) % c.Size())

	const n = 3000
	for lo := 0; lo < n; lo += 500 {
		args := []any{"ZADD", "z"}
		for i := lo; i < lo+500; i++ {
			// Scores descend as i rises, so member i has rank n-1-i.
			args = append(args, strconv.Itoa(2*(n-i)), fmt.Sprintf("m%05d", i))
		}
		require.NoError(t, f.Do(ctx, args...).Err())
	}
	require.Equal(t, int64(1), f.Do(ctx, "COPY", "z", "zc").Val())
	require.Equal(t, "OK", f.Do(ctx, "RENAME", "z", "zr").Val())
	require.Equal(t, int64(0), f.Exists(ctx, "z").Val())
	// The copy changes on its own: a member in the middle moves to the top.
	require.Equal(t, int64(0), f.Do(ctx, "ZADD", "zc", "1e9", "m01000").Val())

	c.WaitConverged(10 * time.Second)
	probes := []int{0, 1, 511, 1023, 1024, 1500, 2047, 2999}
	for i := range c.Size() {
		r := c.Client(i)
		for _, key := range []string{"zr", "zc"} {
			require.Equal(t, int64(n), r.ZCard(ctx, key).Val(), "%s on %s", key, c.Name(i))
			require.Equal(t, "zset", r.Type(ctx, key).Val())
		}
		for _, p := range probes {
			m := fmt.Sprintf("m%05d", p)
			require.Equal(t, int64(n-1-p), r.ZRank(ctx, "zr", m).Val(), "ZRANK zr %s on %s", m, c.Name(i))
			require.Equal(t, float64(2*(n-p)), r.ZScore(ctx, "zr", m).Val())
			var want int64
			switch {
			case p == 1000:
				want = n - 1
			case p > 1000:
				want = int64(n - 1 - p) // below m01000's old rank: unchanged
			default:
				want = int64(n - 2 - p) // above it: one fewer now that it left
			}
			require.Equal(t, want, r.ZRank(ctx, "zc", m).Val(), "ZRANK zc %s on %s", m, c.Name(i))
		}
		require.Equal(t, []string{"m01500", "m01499"}, r.ZRange(ctx, "zr", 1499, 1500).Val())
		require.Equal(t, []string{"m01000"}, r.ZRangeArgs(ctx, goredis.ZRangeArgs{Key: "zc", Start: 0, Stop: 0, Rev: true}).Val())
		require.Equal(t, int64(1000), r.ZCount(ctx, "zr", "(2000", "4000").Val())
	}
	// Deleting the large set is one key; the copy stays.
	require.Equal(t, int64(1), f.Del(ctx, "zr").Val())
	require.Equal(t, int64(n), f.ZCard(ctx, "zc").Val())
	require.Equal(t, int64(0), f.ZCard(ctx, "zr").Val())
}
