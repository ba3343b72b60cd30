package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGetRangeAndLCSOnEveryNode: GETRANGE, SUBSTR and LCS read a write
// made through the leader on every node, alone and pipelined (the batched
// read path), with the same answers.
func TestGetRangeAndLCSOnEveryNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(20 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(leader).MSet(ctx, "key1", "ohmytext", "key2", "mynewtext").Err())
	for i := range c.Size() {
		cl := c.Client(i)
		require.Equal(t, "myt", cl.GetRange(ctx, "key1", 2, 4).Val(), "through %s", c.Name(i))
		require.Equal(t, "text", cl.Do(ctx, "SUBSTR", "key2", -4, -1).Val(), "through %s", c.Name(i))
		require.Equal(t, "mytext", cl.Do(ctx, "LCS", "key1", "key2").Val(), "through %s", c.Name(i))

		pipe := cl.Pipeline()
		gr := pipe.GetRange(ctx, "key1", 0, 1)
		lcs := pipe.Do(ctx, "LCS", "key1", "key2", "LEN")
		sub := pipe.Do(ctx, "SUBSTR", "missing", 0, -1)
		_, err := pipe.Exec(ctx)
		require.NoError(t, err, "through %s", c.Name(i))
		require.Equal(t, "oh", gr.Val())
		require.Equal(t, int64(6), lcs.Val())
		require.Equal(t, "", sub.Val())
	}
}

// TestHostileLCSOfHugeStringsOnAFollower: LCS of two 1 MiB strings,
// asked of a follower, is refused before either is read whole; the
// follower keeps serving, and every node still holds both values.
func TestHostileLCSOfHugeStringsOnAFollower(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % c.Size()
	big := strings.Repeat("GATTACA!", 1<<17) // 1 MiB
	require.NoError(t, c.Client(leader).MSet(ctx, "big1", big, "big2", big).Err())

	for range 4 {
		err := c.Client(follower).Do(ctx, "LCS", "big1", "big2", "IDX").Err()
		require.ErrorContains(t, err, "ERR Insufficient memory, transient memory for LCS exceeds the limit of 16777216 table cells")
	}
	require.NoError(t, c.Client(follower).Set(ctx, "after", "ok", 0).Err())
	for i := range c.Size() {
		require.Equal(t, big, c.Client(i).Get(ctx, "big1").Val(), "through %s", c.Name(i))
		require.Equal(t, "ok", c.Client(i).Get(ctx, "after").Val(), "through %s", c.Name(i))
	}
}
