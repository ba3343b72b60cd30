package cluster

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/chaos"
	"github.com/elastickv/elastickv/internal/node"
)

// withLinkProxies puts a chaos.Proxy on every directed peer link: node i
// dials node j through links[i][j] (PeerDialOverrides), for Raft and for
// forwarded writes alike. The proxies are closed after the nodes.
func withLinkProxies(t *testing.T, links map[[2]string]*chaos.Proxy, mu *sync.Mutex) Option {
	return func(_ int, c *node.Config) {
		c.PeerDialOverrides = map[string]string{}
		for _, m := range c.Peers {
			if m.Name == c.Name {
				continue
			}
			p, err := chaos.NewProxy(c.Name+"->"+m.Name, m.Addr, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			t.Cleanup(func() { _ = p.Close() }) // runs after the cluster's Close
			c.PeerDialOverrides[m.Name] = p.Addr()
			mu.Lock()
			links[[2]string{c.Name, m.Name}] = p
			mu.Unlock()
		}
	}
}

// TestForwardedWriteIsAtMostOnceWhenTheLinkDrops: a follower forwards an
// INCR to a real leader, which applies it; the link breaks after the
// request arrived and before the reply got back. The client is told
// "outcome unknown" (not an error that invites a blind retry, and not a
// success), and the follower does not resend: the counter was incremented
// exactly once, which the next INCR through the same follower (answered 2)
// and every replica (holding 2) show.
func TestForwardedWriteIsAtMostOnceWhenTheLinkDrops(t *testing.T) {
	links := map[[2]string]*chaos.Proxy{}
	var mu sync.Mutex
	c := New(t, 3, withLinkProxies(t, links, &mu))
	leader := c.WaitLeader(10 * time.Second)
	f := (leader + 1) % 3
	link := links[[2]string{c.Name(f), c.Name(leader)}]
	require.NotNil(t, link)
	fc := c.Client(f)

	// The forward connection is up and works.
	require.NoError(t, fc.Set(c.Ctx(10*time.Second), "warm", "1", 0).Err())
	okBefore, _ := forwardMetric(t, c, f, "elastickv_forward_batches_total", "ok")
	require.Equal(t, uint64(1), okBefore, "the warm-up write was forwarded")

	link.HoldReplies()
	errc := make(chan error, 1)
	go func() {
		errc <- fc.Incr(c.Ctx(10*time.Second), "ctr").Err()
	}()
	// The leader applies the forwarded INCR; its reply is held in the proxy.
	lc := c.Client(leader)
	require.Eventually(t, func() bool {
		v, err := lc.Get(c.Ctx(2*time.Second), "ctr").Result()
		return err == nil && v == "1"
	}, 10*time.Second, 10*time.Millisecond, "the leader never applied the forwarded INCR")
	select {
	case err := <-errc:
		t.Fatalf("the client was answered (%v) while the reply was held", err)
	default:
	}
	link.Cut(chaos.CutRefuse) // the connection drops with the reply in it

	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the client got no answer after the link dropped")
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "outcome unknown")
	link.Restore()

	failed, _ := forwardMetric(t, c, f, "elastickv_forward_batches_total", "failed")
	require.Equal(t, uint64(1), failed, "the dropped batch counts as failed")
	// Nothing resent: the next INCR through the same follower sees exactly
	// one earlier increment, and the follower sent exactly one more batch.
	var n int64
	require.Eventually(t, func() bool {
		n, err = fc.Incr(c.Ctx(5*time.Second), "ctr").Result()
		// The link just came back: a write may find no connection yet
		// and be refused as not sent (TRYAGAIN); that one is not applied.
		return err == nil || !strings.Contains(err.Error(), "TRYAGAIN")
	}, 20*time.Second, 50*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the INCR whose reply was lost was applied %d times", n-1)
	okAfter, _ := forwardMetric(t, c, f, "elastickv_forward_batches_total", "ok")
	failedAfter, _ := forwardMetric(t, c, f, "elastickv_forward_batches_total", "failed")
	require.Equal(t, okBefore+1, okAfter, "batches answered since the drop")
	require.Equal(t, failed, failedAfter)

	c.WaitConverged(20 * time.Second)
	for i := range c.Size() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		v, err := c.Client(i).Get(ctx, "ctr").Result()
		cancel()
		require.NoError(t, err)
		require.Equal(t, "2", v, "%s", c.Name(i))
	}
}
