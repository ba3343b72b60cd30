package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Blocking commands across a cluster (issue #16, "Blocking, under Raft").

// blockedClients reads node i's INFO blocked_clients.
func (c *Cluster) blockedClients(ctx context.Context, i int) int {
	c.t.Helper()
	info, err := c.Client(i).Info(ctx, "clients").Result()
	if err != nil {
		return -1
	}
	m := regexp.MustCompile(`blocked_clients:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		c.t.Fatalf("INFO clients of %s has no blocked_clients", c.Name(i))
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// waitBlocked waits until n clients are blocked on node i.
func (c *Cluster) waitBlocked(ctx context.Context, i, n int) {
	c.t.Helper()
	require.Eventually(c.t, func() bool { return c.blockedClients(ctx, i) == n }, 10*time.Second, 5*time.Millisecond,
		"%d clients blocked on %s", n, c.Name(i))
}

// blockingClient is a go-redis client of node i of its own (one
// connection), closed with the test.
func blockingClient(t testing.TB, c *Cluster, i int) *goredis.Client {
	t.Helper()
	cl := goredis.NewClient(&goredis.Options{Addr: c.Node(i).RedisAddr(), PoolSize: 1, ReadTimeout: 10 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// asyncResult runs f on its own goroutine and hands its result back.
func asyncResult[T any](f func() (T, error)) <-chan result[T] {
	ch := make(chan result[T], 1)
	go func() {
		v, err := f()
		ch <- result[T]{v, err}
	}()
	return ch
}

type result[T any] struct {
	v   T
	err error
}

// await waits for a result, failing the test after 10 s.
func await[T any](t *testing.T, ch <-chan result[T], what string) result[T] {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no reply", what)
		return result[T]{}
	}
}

// followers returns the indexes of two nodes other than the leader.
func followers(c *Cluster) (int, int) {
	l := c.Leader()
	return (l + 1) % 3, (l + 2) % 3
}

func TestBlockedPopOnFollowerWokenByPushOnAnotherNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	got := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "q").Result() })
	c.waitBlocked(ctx, f1, 1)
	require.NoError(t, c.Client(f2).RPush(ctx, "q", "x").Err())
	r := await(t, got, "BLPOP")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "x"}, r.v)
	c.waitBlocked(ctx, f1, 0)
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Client(i).Exists(ctx, "q").Val() == 0 }, 5*time.Second, 5*time.Millisecond)
	}
}

func TestBlockedPopTimesOutWithNil(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, _ := followers(c)
	start := time.Now()
	err := blockingClient(t, c, f1).BLPop(ctx, 300*time.Millisecond, "q").Err()
	require.ErrorIs(t, err, goredis.Nil)
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	c.waitBlocked(ctx, f1, 0)
}

func TestBlockedPopsAreFIFOOnOneNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	first := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "q").Result() })
	c.waitBlocked(ctx, f1, 1)
	second := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "q").Result() })
	c.waitBlocked(ctx, f1, 2)
	require.NoError(t, c.Client(f2).RPush(ctx, "q", "one").Err())
	r := await(t, first, "first BLPOP")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "one"}, r.v)
	c.waitBlocked(ctx, f1, 1)
	require.NoError(t, c.Client(f2).RPush(ctx, "q", "two").Err())
	r = await(t, second, "second BLPOP")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "two"}, r.v)
}

func TestOnePushServesOneWaiterAcrossNodes(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	leader := c.Leader()
	w1 := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "q").Result() })
	w2 := asyncResult(func() ([]string, error) { return blockingClient(t, c, f2).BLPop(ctx, 0, "q").Result() })
	c.waitBlocked(ctx, f1, 1)
	c.waitBlocked(ctx, f2, 1)
	require.NoError(t, c.Client(leader).RPush(ctx, "q", "only").Err())
	var winner result[[]string]
	var waiting <-chan result[[]string]
	var waitingNode int
	select {
	case winner = <-w1:
		waiting, waitingNode = w2, f2
	case winner = <-w2:
		waiting, waitingNode = w1, f1
	case <-time.After(10 * time.Second):
		t.Fatal("no waiter got the element")
	}
	require.NoError(t, winner.err)
	require.Equal(t, []string{"q", "only"}, winner.v)
	// The other waiter keeps waiting: still blocked after the pop it may
	// have lost was applied on its node, and the list is gone.
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Client(i).Exists(ctx, "q").Val() == 0 }, 5*time.Second, 5*time.Millisecond)
	}
	require.Equal(t, 1, c.blockedClients(ctx, waitingNode))
	select {
	case r := <-waiting:
		t.Fatalf("the second waiter was answered %v, %v with nothing pushed for it", r.v, r.err)
	default:
	}
	require.NoError(t, c.Client(leader).RPush(ctx, "q", "next").Err())
	r := await(t, waiting, "second waiter")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "next"}, r.v)
}

func TestBLMoveMovesAtomically(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	got := asyncResult(func() (string, error) {
		return blockingClient(t, c, f1).BLMove(ctx, "src", "dst", "RIGHT", "LEFT", 0).Result()
	})
	c.waitBlocked(ctx, f1, 1)
	require.NoError(t, c.Client(f2).RPush(ctx, "src", "a").Err())
	r := await(t, got, "BLMOVE")
	require.NoError(t, r.err)
	require.Equal(t, "a", r.v)
	// One entry moved it: no node ever sees it in both lists or in none.
	for i := range c.Size() {
		require.Eventually(t, func() bool {
			v, err := c.Client(i).LRange(ctx, "dst", 0, -1).Result()
			return err == nil && len(v) == 1 && v[0] == "a"
		}, 5*time.Second, 5*time.Millisecond)
		require.Equal(t, int64(0), c.Client(i).Exists(ctx, "src").Val())
	}
	// BRPOPLPUSH is BLMOVE RIGHT LEFT.
	got = asyncResult(func() (string, error) { return blockingClient(t, c, f2).Do(ctx, "BRPOPLPUSH", "src", "dst", 0).Text() })
	c.waitBlocked(ctx, f2, 1)
	require.NoError(t, c.Client(f1).RPush(ctx, "src", "b", "c").Err())
	r = await(t, got, "BRPOPLPUSH")
	require.NoError(t, r.err)
	require.Equal(t, "c", r.v)
	require.Equal(t, []string{"c", "a"}, c.Client(f2).LRange(ctx, "dst", 0, -1).Val())
	require.Equal(t, []string{"b"}, c.Client(f2).LRange(ctx, "src", 0, -1).Val())
}

func TestBlockedClientsSurviveALeaderTransfer(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.Leader()
	f1, _ := followers(c)
	onLeader := asyncResult(func() ([]string, error) { return blockingClient(t, c, leader).BLPop(ctx, 0, "q").Result() })
	onFollower := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "q2").Result() })
	c.waitBlocked(ctx, leader, 1)
	c.waitBlocked(ctx, f1, 1)
	// Leadership moves to the follower that has a blocked client.
	_, err := c.Admin(f1).TransferLeader(ctx, c.Name(f1))
	require.NoError(t, err)
	require.Equal(t, f1, c.WaitLeader(10*time.Second))
	require.NoError(t, c.Client(f1).RPush(ctx, "q", "a").Err())
	require.NoError(t, c.Client(leader).RPush(ctx, "q2", "b").Err())
	r := await(t, onLeader, "BLPOP on the old leader")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "a"}, r.v)
	r = await(t, onFollower, "BLPOP on the new leader")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q2", "b"}, r.v)
}

// rawBlocking sends a command on a plain connection to node i and
// returns the connection and a reader of its reply lines.
func rawBlocking(t *testing.T, c *Cluster, i int, args ...string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", c.Node(i).RedisAddr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err = io.WriteString(conn, b.String())
	require.NoError(t, err)
	return conn, bufio.NewReader(conn)
}

func TestBlockedClientThatDisconnectsPopsNothing(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	pops := func() float64 { return counterValue(t, c, f1, "elastickv_redis_blocked_pops_total") }
	conn, _ := rawBlocking(t, c, f1, "BLPOP", "q", "0")
	c.waitBlocked(ctx, f1, 1)
	before := pops()
	require.NoError(t, conn.Close())
	// The node sees the close while the client waits, and forgets it.
	c.waitBlocked(ctx, f1, 0)
	require.NoError(t, c.Client(f2).RPush(ctx, "q", "kept").Err())
	require.Eventually(t, func() bool {
		v, err := c.Client(f1).LRange(ctx, "q", 0, -1).Result()
		return err == nil && len(v) == 1 && v[0] == "kept"
	}, 5*time.Second, 5*time.Millisecond, "the push reached the node the client left")
	require.Equal(t, before, pops(), "no pop was proposed for the client that left")
}

func TestClientUnblockEndsABlockedPop(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, _ := followers(c)
	bc := blockingClient(t, c, f1)
	id, err := bc.ClientID(ctx).Result()
	require.NoError(t, err)
	got := asyncResult(func() ([]string, error) { return bc.BLPop(ctx, 0, "q").Result() })
	c.waitBlocked(ctx, f1, 1)
	require.Equal(t, int64(1), c.Client(f1).ClientUnblockWithError(ctx, id).Val())
	r := await(t, got, "BLPOP")
	var rerr goredis.Error
	require.True(t, errors.As(r.err, &rerr), "got %v", r.err)
	require.Equal(t, "UNBLOCKED client unblocked via CLIENT UNBLOCK", r.err.Error())
	c.waitBlocked(ctx, f1, 0)
}

// counterValue reads a counter (without labels) from node i's registry.
func counterValue(t testing.TB, c *Cluster, i int, name string) float64 {
	t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s on %s", name, c.Name(i))
	return 0
}

func TestBlockedSortedSetPopsOnFollowers(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	minPop := asyncResult(func() (*goredis.ZWithKey, error) {
		return blockingClient(t, c, f1).BZPopMin(ctx, 0, "z1", "z2").Result()
	})
	c.waitBlocked(ctx, f1, 1)
	require.NoError(t, c.Client(f2).ZAdd(ctx, "z2", goredis.Z{Score: 2, Member: "b"}, goredis.Z{Score: 1, Member: "a"}).Err())
	r := await(t, minPop, "BZPOPMIN")
	require.NoError(t, r.err)
	require.Equal(t, &goredis.ZWithKey{Key: "z2", Z: goredis.Z{Score: 1, Member: "a"}}, r.v)

	type mpop struct {
		key string
		zs  []goredis.Z
	}
	multi := asyncResult(func() (mpop, error) {
		k, zs, err := blockingClient(t, c, f2).BZMPop(ctx, 0, "max", 5, "z3").Result()
		return mpop{k, zs}, err
	})
	c.waitBlocked(ctx, f2, 1)
	require.NoError(t, c.Client(f1).ZAdd(ctx, "z3", goredis.Z{Score: 1, Member: "x"}, goredis.Z{Score: 3, Member: "y"}).Err())
	m := await(t, multi, "BZMPOP")
	require.NoError(t, m.err)
	require.Equal(t, mpop{"z3", []goredis.Z{{Score: 3, Member: "y"}, {Score: 1, Member: "x"}}}, m.v)
	for i := range c.Size() {
		require.Eventually(t, func() bool { return c.Client(i).Exists(ctx, "z3").Val() == 0 }, 5*time.Second, 5*time.Millisecond)
	}
}

// TestBlockedPopBehindAnotherWaiterSeesAnOldElement: a client that blocks
// behind another waiter of its node (they share a key) on keys one of
// which has long held an element must get it: no event will come for it,
// so its own linearizable first look is what finds it. (It used to skip
// that look and time out with nil: the chaos queue checker's missed
// wakeup.)
func TestBlockedPopBehindAnotherWaiterSeesAnOldElement(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	f1, f2 := followers(c)
	require.NoError(t, c.Client(f2).RPush(ctx, "q", "a").Err())
	first := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "z").Result() })
	c.waitBlocked(ctx, f1, 1)
	// The timeout (0.8 s) comes before the periodic re-check (1 s).
	second := asyncResult(func() ([]string, error) {
		return blockingClient(t, c, f1).Do(ctx, "BLPOP", "z", "q", "0.8").StringSlice()
	})
	r := await(t, second, "second BLPOP")
	require.NoError(t, r.err)
	require.Equal(t, []string{"q", "a"}, r.v)
	require.NoError(t, c.Client(f2).RPush(ctx, "z", "b").Err())
	r = await(t, first, "first BLPOP")
	require.NoError(t, r.err)
	require.Equal(t, []string{"z", "b"}, r.v)
}

// TestBlockedPopOnANodeWithoutLeaderAnswersAnError: a node that cannot
// reach a leader cannot tell whether its list holds anything, so a
// blocking pop there, behind another waiter or not, answers an error at
// the latest at its timeout, never nil.
func TestBlockedPopOnANodeWithoutLeaderAnswersAnError(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	l := c.Leader()
	f1, f2 := followers(c)
	require.NoError(t, c.Client(l).RPush(ctx, "q", "a").Err())
	first := asyncResult(func() ([]string, error) { return blockingClient(t, c, f1).BLPop(ctx, 0, "z").Result() })
	c.waitBlocked(ctx, f1, 1)
	c.Stop(l)
	c.Stop(f2)
	for _, keys := range [][]string{{"z", "q"}, {"q"}} {
		args := []any{"BLPOP"}
		for _, k := range keys {
			args = append(args, k)
		}
		args = append(args, "0.5")
		err := blockingClient(t, c, f1).Do(ctx, args...).Err()
		require.Error(t, err, "BLPOP %v", keys)
		require.NotErrorIs(t, err, goredis.Nil, "BLPOP %v", keys)
		require.Contains(t, err.Error(), "TRYAGAIN", "BLPOP %v", keys)
	}
	_ = first // ends with the cluster
}
