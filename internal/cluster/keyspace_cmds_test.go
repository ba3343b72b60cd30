package cluster

import (
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestUnlinkTouchRandomKeyAcrossNodes: UNLINK through a follower is
// forwarded and replicated like DEL; TOUCH and RANDOMKEY on any node read
// that node's linearizable view, so a key unlinked through one node is
// never picked by RANDOMKEY on another afterwards; SELECT of another
// database is refused on every node.
func TestUnlinkTouchRandomKeyAcrossNodes(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % c.Size()

	require.NoError(t, c.Client(leader).MSet(ctx, "a", "1", "b", "2", "c", "3").Err())
	for i := range c.Size() {
		require.Equal(t, int64(3), c.Client(i).Touch(ctx, "a", "b", "c", "d").Val(), "TOUCH on %s", c.Name(i))
	}

	n, err := c.Client(follower).Unlink(ctx, "a", "b", "d").Result()
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	for i := range c.Size() {
		for range 20 {
			k, err := c.Client(i).RandomKey(ctx).Result()
			require.NoError(t, err, "RANDOMKEY on %s", c.Name(i))
			require.Equal(t, "c", k, "RANDOMKEY on %s picked an unlinked key", c.Name(i))
		}
		require.Equal(t, int64(1), c.Client(i).Touch(ctx, "a", "b", "c").Val())
	}

	require.Equal(t, int64(1), c.Client(leader).Unlink(ctx, "c").Val())
	for i := range c.Size() {
		require.Equal(t, goredis.Nil, c.Client(i).RandomKey(ctx).Err(), "RANDOMKEY on %s", c.Name(i))
		require.EqualError(t, c.Client(i).Do(ctx, "SELECT", "1").Err(), "ERR SELECT is not allowed in cluster mode")
		require.NoError(t, c.Client(i).Do(ctx, "SELECT", "0").Err())
	}
}
