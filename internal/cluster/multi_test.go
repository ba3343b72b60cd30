package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// MULTI/EXEC/WATCH across a 3-node cluster: an EXEC is one log entry that
// every replica applies, wherever it was sent.

// TestExecOnFollowerIsForwardedAndAppliedOnce sends transactions to a
// follower: each is forwarded to the leader as one entry, replies what
// the entry did, and runs exactly once on every replica.
func TestExecOnFollowerIsForwardedAndAppliedOnce(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	cl := c.Client((leader + 1) % c.Size())
	const rounds = 20
	for i := 1; i <= rounds; i++ {
		var a1, a2 *goredis.IntCmd
		var get *goredis.StringCmd
		_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			a1 = p.Incr(ctx, "n")
			a2 = p.Incr(ctx, "n")
			get = p.Get(ctx, "n")
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, int64(2*i-1), a1.Val())
		require.Equal(t, int64(2*i), a2.Val())
		require.Equal(t, strconv.Itoa(2*i), get.Val())
	}
	c.WaitConverged(20 * time.Second)
	for i := range c.Size() {
		require.Equal(t, strconv.Itoa(2*rounds), c.Client(i).Get(ctx, "n").Val(), "on %s", c.Name(i))
	}
}

// TestWatchSeesWritesMadeThroughOtherNodes watches a key through one node
// and writes it through another: EXEC fails, whichever node is which.
func TestWatchSeesWritesMadeThroughOtherNodes(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	for watcher := range c.Size() {
		writer := (watcher + 1) % c.Size()
		key := fmt.Sprintf("w%d", watcher)
		require.NoError(t, c.Client(writer).Set(ctx, key, "0", 0).Err())

		// Untouched: EXEC runs.
		err := c.Client(watcher).Watch(ctx, func(tx *goredis.Tx) error {
			_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, key, "1", 0)
				return nil
			})
			return err
		}, key)
		require.NoError(t, err, "watch on %s, no write", c.Name(watcher))

		// Written through another node between WATCH and EXEC: null.
		err = c.Client(watcher).Watch(ctx, func(tx *goredis.Tx) error {
			if err := c.Client(writer).Set(ctx, key, "other", 0).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, key, "mine", 0)
				return nil
			})
			return err
		}, key)
		require.ErrorIs(t, err, goredis.TxFailedErr, "watch on %s, write on %s", c.Name(watcher), c.Name(writer))

		// Absent at WATCH, created and deleted through another node: null.
		absent := key + ":absent"
		err = c.Client(watcher).Watch(ctx, func(tx *goredis.Tx) error {
			if err := c.Client(writer).Set(ctx, absent, "x", 0).Err(); err != nil {
				return err
			}
			if err := c.Client(writer).Del(ctx, absent).Err(); err != nil {
				return err
			}
			_, err := tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, absent, "mine", 0)
				return nil
			})
			return err
		}, absent)
		require.ErrorIs(t, err, goredis.TxFailedErr, "absent key on %s, created and deleted on %s", c.Name(watcher), c.Name(writer))
		require.Equal(t, "other", c.Client(watcher).Get(ctx, key).Val())
		require.Equal(t, int64(0), c.Client(watcher).Exists(ctx, absent).Val())
	}
}

// TestTxPipelinedOnEveryNode runs a transaction that mixes collection and
// string commands through each node, and checks the replies and that
// every replica holds the result.
func TestTxPipelinedOnEveryNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	for i := range c.Size() {
		cl := c.Client(i)
		k := func(name string) string { return fmt.Sprintf("{tx%d}%s", i, name) }
		var (
			set     *goredis.StatusCmd
			rpush   *goredis.IntCmd
			lmove   *goredis.StringCmd
			hincr   *goredis.IntCmd
			zadd    *goredis.IntCmd
			zrange  *goredis.ZSliceCmd
			sadd    *goredis.IntCmd
			sinter  *goredis.IntCmd
			append_ *goredis.IntCmd
			get     *goredis.StringCmd
			wrong   *goredis.IntCmd
			lrange  *goredis.StringSliceCmd
		)
		_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			set = p.Set(ctx, k("s"), "v", 0)
			rpush = p.RPush(ctx, k("l"), "a", "b", "c")
			lmove = p.LMove(ctx, k("l"), k("l2"), "LEFT", "RIGHT")
			hincr = p.HIncrBy(ctx, k("h"), "f", 5)
			zadd = p.ZAdd(ctx, k("z"), goredis.Z{Score: 2, Member: "two"}, goredis.Z{Score: 1, Member: "one"})
			zrange = p.ZRangeWithScores(ctx, k("z"), 0, -1)
			sadd = p.SAdd(ctx, k("set"), "x", "y")
			sinter = p.SInterStore(ctx, k("dst"), k("set"), k("set"))
			append_ = p.Append(ctx, k("s"), "w")
			get = p.Get(ctx, k("s"))
			wrong = p.Incr(ctx, k("l"))
			lrange = p.LRange(ctx, k("l"), 0, -1)
			return nil
		})
		require.Error(t, err, "the INCR on a list fails inside the transaction")
		require.Equal(t, "OK", set.Val())
		require.Equal(t, int64(3), rpush.Val())
		require.Equal(t, "a", lmove.Val())
		require.Equal(t, int64(5), hincr.Val())
		require.Equal(t, int64(2), zadd.Val())
		require.Equal(t, []goredis.Z{{Score: 1, Member: "one"}, {Score: 2, Member: "two"}}, zrange.Val())
		require.Equal(t, int64(2), sadd.Val())
		require.Equal(t, int64(2), sinter.Val())
		require.Equal(t, int64(2), append_.Val())
		require.Equal(t, "vw", get.Val())
		require.EqualError(t, wrong.Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
		require.Equal(t, []string{"b", "c"}, lrange.Val())
	}
	c.WaitConverged(20 * time.Second)
	for i := range c.Size() {
		for j := range c.Size() {
			cl := c.Client(j)
			k := func(name string) string { return fmt.Sprintf("{tx%d}%s", i, name) }
			require.Equal(t, "vw", cl.Get(ctx, k("s")).Val(), "on %s", c.Name(j))
			require.Equal(t, []string{"a"}, cl.LRange(ctx, k("l2"), 0, -1).Val())
			require.Equal(t, int64(2), cl.SCard(ctx, k("dst")).Val())
		}
	}
}

// TestConcurrentRandomTransactionsConverge runs many transactions of
// random commands, randomised ones (SPOP, SRANDMEMBER, RANDOMKEY, ZADD of
// random members) included, from clients on every node at once, then
// checks that every replica holds the same state: the random choices made
// on apply are the same everywhere.
func TestConcurrentRandomTransactionsConverge(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(120 * time.Second)
	const workers, txPerWorker = 6, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 17))
			cl := c.Client(w % c.Size())
			for range txPerWorker {
				_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
					for range 1 + rng.IntN(6) {
						randomTxCommand(ctx, p, rng)
					}
					return nil
				})
				// Runtime errors (WRONGTYPE...) are part of the test; a
				// transport or queueing failure is not.
				var rerr goredis.Error
				if err != nil && !errors.As(err, &rerr) {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				if err != nil && strings.HasPrefix(err.Error(), "EXECABORT") {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	c.WaitConverged(30 * time.Second)
	var digest string
	var members []string
	for i := range c.Size() {
		v, err := c.Client(i).Do(ctx, "DEBUG", "DIGEST").Text()
		require.NoError(t, err)
		_, d, ok := strings.Cut(v, ":")
		require.True(t, ok, "DEBUG DIGEST replied %q", v)
		m, err := c.Client(i).SMembers(ctx, "{r}set").Result()
		require.NoError(t, err)
		sort.Strings(m)
		if i == 0 {
			digest, members = d, m
		}
		require.Equal(t, digest, d, "DEBUG DIGEST on %s", c.Name(i))
		require.Equal(t, members, m, "SMEMBERS on %s", c.Name(i))
	}
}

// randomTxCommand queues one random command on a small set of keys.
func randomTxCommand(ctx context.Context, p goredis.Pipeliner, rng *rand.Rand) {
	member := strconv.Itoa(rng.IntN(20))
	switch rng.IntN(12) {
	case 0:
		p.SAdd(ctx, "{r}set", member, strconv.Itoa(rng.IntN(20)))
	case 1:
		p.SPop(ctx, "{r}set")
	case 2:
		p.SPopN(ctx, "{r}set", 2)
	case 3:
		p.SRandMemberN(ctx, "{r}set", -3)
	case 4:
		p.RandomKey(ctx)
	case 5:
		p.Incr(ctx, "{r}n")
	case 6:
		p.LPush(ctx, "{r}list", member)
	case 7:
		p.RPopLPush(ctx, "{r}list", "{r}list2")
	case 8:
		p.ZIncrBy(ctx, "{r}z", 1, member)
	case 9:
		p.HSet(ctx, "{r}h", member, rng.IntN(100))
	case 10:
		p.Do(ctx, "SRANDMEMBER", "{r}set", 2)
		p.SMove(ctx, "{r}set", "{r}set2", member)
	case 11:
		p.Expire(ctx, "{r}list2", time.Hour)
		p.Do(ctx, "ZRANDMEMBER", "{r}z", 2)
	}
}
