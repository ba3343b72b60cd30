package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestListsReplicateAndKeepOrder: list writes through any node reach every
// replica in one order; LRANGE, LINDEX and LLEN on every node read it;
// COPY and RENAME (within a slot and across slots) keep the elements and
// their order; TYPE says list; DEL and EXPIRE remove the whole list.
func TestListsReplicateAndKeepOrder(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % c.Size()
	lc, fc := c.Client(leader), c.Client(follower)

	require.Equal(t, int64(3), fc.RPush(ctx, "l", "b", "c", "d").Val())
	require.Equal(t, int64(4), lc.LPush(ctx, "l", "a").Val())
	require.Equal(t, int64(5), fc.LInsertAfter(ctx, "l", "b", "b2").Val())
	require.NoError(t, lc.LSet(ctx, "l", -1, "D").Err())
	want := []string{"a", "b", "b2", "c", "D"}
	for i := range c.Size() {
		cl := c.Client(i)
		require.Equal(t, want, cl.LRange(ctx, "l", 0, -1).Val(), "LRANGE on %s", c.Name(i))
		require.Equal(t, "b2", cl.LIndex(ctx, "l", 2).Val(), "LINDEX on %s", c.Name(i))
		require.Equal(t, int64(5), cl.LLen(ctx, "l").Val())
		require.Equal(t, "list", cl.Type(ctx, "l").Val())
	}

	// COPY, then RENAME within the slot ({l}) and across slots.
	require.True(t, fc.Copy(ctx, "l", "copy", 0, false).Val() == 1)
	require.NoError(t, fc.Rename(ctx, "l", "renamed").Err())
	require.NoError(t, lc.Rename(ctx, "copy", "{copy}.moved").Err())
	for i := range c.Size() {
		cl := c.Client(i)
		require.Equal(t, want, cl.LRange(ctx, "renamed", 0, -1).Val(), "renamed on %s", c.Name(i))
		require.Equal(t, want, cl.LRange(ctx, "{copy}.moved", 0, -1).Val(), "copied and renamed on %s", c.Name(i))
		require.Equal(t, int64(0), cl.Exists(ctx, "l", "copy").Val())
	}
	// The renamed list keeps working at both ends.
	require.Equal(t, "a", fc.LPop(ctx, "renamed").Val())
	require.Equal(t, int64(5), lc.RPush(ctx, "renamed", "E").Val())
	require.Equal(t, []string{"b", "b2", "c", "D", "E"}, fc.LRange(ctx, "renamed", 0, -1).Val())

	require.True(t, lc.PExpire(ctx, "{copy}.moved", time.Millisecond).Val())
	require.Equal(t, int64(1), fc.Del(ctx, "renamed").Val())
	require.Eventually(t, func() bool {
		for i := range c.Size() {
			if c.Client(i).DBSize(ctx).Val() != 0 {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond, "the deleted and the expired lists are gone on every node")
	c.WaitConverged(10 * time.Second)
}

// TestConcurrentListWritesConverge: clients on every node push, pop and
// move at once; no element is lost or duplicated, and the replicas end
// byte-identical.
func TestConcurrentListWritesConverge(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(90 * time.Second)
	c.WaitLeader(5 * time.Second)
	const perClient = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		popped []string
	)
	for i := range c.Size() {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl := c.Client(i)
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			for n := range perClient {
				v := fmt.Sprintf("%d-%d", i, n)
				if err := cl.RPush(ctx, "{q}a", v).Err(); err != nil {
					t.Errorf("RPUSH on %s: %v", c.Name(i), err)
					return
				}
				switch rnd.IntN(3) {
				case 0:
					got, err := cl.LPop(ctx, "{q}a").Result()
					if err == nil {
						mu.Lock()
						popped = append(popped, got)
						mu.Unlock()
					} else if !errors.Is(err, goredis.Nil) {
						t.Errorf("LPOP on %s: %v", c.Name(i), err)
						return
					}
				case 1:
					if err := cl.LMove(ctx, "{q}a", "{q}b", "LEFT", "RIGHT").Err(); err != nil && !errors.Is(err, goredis.Nil) {
						t.Errorf("LMOVE on %s: %v", c.Name(i), err)
						return
					}
				}
			}
		}(i)
	}
	wg.Wait()
	cl := c.Client(0)
	all := append(slices.Clone(popped), cl.LRange(ctx, "{q}a", 0, -1).Val()...)
	all = append(all, cl.LRange(ctx, "{q}b", 0, -1).Val()...)
	require.Len(t, all, c.Size()*perClient)
	slices.Sort(all)
	require.Len(t, slices.Compact(all), c.Size()*perClient, "no element is duplicated")
	c.WaitConverged(10 * time.Second)
}
