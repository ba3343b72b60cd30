package raft

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/elastickv/elastickv/internal/transport"
)

// formatCluster is a set of groups over real gRPC transports on loopback,
// each node with its own advertised maximum format.
type formatCluster struct {
	t       *testing.T
	members []Member
	lns     map[string]net.Listener
	groups  map[string]*Group
	stops   []func()
	mu      sync.Mutex
}

func newFormatCluster(t *testing.T, names ...string) *formatCluster {
	c := &formatCluster{t: t, lns: map[string]net.Listener{}, groups: map[string]*Group{}}
	for _, n := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		c.lns[n] = ln
		c.members = append(c.members, Member{Name: n, Addr: ln.Addr().String()})
	}
	t.Cleanup(func() {
		// Groups first, then servers and transports, as the node does.
		for i := len(c.stops) - 1; i >= 0; i-- {
			c.stops[i]()
		}
	})
	return c
}

// listener reserves an address for a node that is not a bootstrap member.
func (c *formatCluster) listener(name string) Member {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(c.t, err)
	c.lns[name] = ln
	return Member{Name: name, Addr: ln.Addr().String()}
}

// start opens node self with max as both its transport advert and its
// group's LocalMaxFormat; join makes it a blank joiner of the bootstrap
// members instead of a bootstrap member.
func (c *formatCluster) start(self Member, max uint8, join bool) *Group {
	t := c.t
	tcfg := transport.DefaultConfig()
	tcfg.LocalID = self.ID()
	tcfg.SpoolDir = t.TempDir()
	tcfg.Logger = slog.New(slog.DiscardHandler)
	tcfg.LocalMaxFormat = max
	tr, err := transport.New(tcfg)
	require.NoError(t, err)
	srv := grpc.NewServer(tcfg.ServerOptions()...)
	tr.RegisterService(srv)
	var serving sync.WaitGroup
	serving.Add(1)
	go func() {
		defer serving.Done()
		_ = srv.Serve(c.lns[self.Name])
	}()
	cfg := DefaultConfig()
	cfg.Self = self
	if join {
		cfg.Join = true
		cfg.JoinMembers = c.members
	} else {
		cfg.Bootstrap = c.members
	}
	cfg.Dir = t.TempDir()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.StateMachine = newBenchMachine()
	cfg.SnapshotCount = 0
	cfg.Transport = tr
	cfg.LocalMaxFormat = max
	cfg.Logger = slog.New(slog.DiscardHandler)
	g, err := Open(cfg)
	require.NoError(t, err)
	c.mu.Lock()
	c.groups[self.Name] = g
	c.mu.Unlock()
	c.stops = append(c.stops, func() {
		require.NoError(t, g.Close())
		srv.Stop()
		require.NoError(t, tr.Close())
		serving.Wait()
	})
	return g
}

func (c *formatCluster) leader() *Group {
	var out *Group
	require.Eventually(c.t, func() bool {
		for _, g := range c.groups {
			if g.Status().State == RoleLeader {
				out = g
				return true
			}
		}
		return false
	}, 10*time.Second, 5*time.Millisecond)
	return out
}

// records returns each member's recorded MaxFormat as group g sees it
// (none reads as 1).
func records(g *Group) map[string]uint8 {
	out := map[string]uint8{}
	for _, m := range g.Status().Members {
		out[m.Name] = effectiveFormat(m.MaxFormat)
	}
	return out
}

// TestMemberRecordsConvergeToAdvertisedFormats: bootstrapped by binaries
// of different maxima, every replica starts with the same records (no
// MaxFormat: 1), and the leader writes each member's advertised maximum,
// so every replica ends with the same, true records and MinMemberFormat
// is the lowest everywhere.
func TestMemberRecordsConvergeToAdvertisedFormats(t *testing.T) {
	c := newFormatCluster(t, "n1", "n2", "n3")
	c.start(c.members[0], 2, false)
	c.start(c.members[1], 2, false)
	c.start(c.members[2], 1, false)
	want := fmt.Sprint(map[string]uint8{"n1": 2, "n2": 2, "n3": 1})
	for name, g := range c.groups {
		require.Eventuallyf(t, func() bool { return fmt.Sprint(records(g)) == want },
			10*time.Second, 5*time.Millisecond, "records on %s", name)
		require.Equal(t, uint8(1), g.MinMemberFormat(), name)
	}
	require.Eventually(t, c.leader().FormatSettled, 10*time.Second, 5*time.Millisecond)
}

// TestMinMemberFormatCountsLearners: a learner's binary counts as much as
// a voter's. A learner added with a record that claims 2 but whose binary
// advertises 1 gets its record corrected, and the group's minimum drops
// to 1 on every replica.
func TestMinMemberFormatCountsLearners(t *testing.T) {
	c := newFormatCluster(t, "n1", "n2", "n3")
	for _, m := range c.members {
		c.start(m, 2, false)
	}
	for _, g := range c.groups {
		require.Eventually(t, func() bool { return g.MinMemberFormat() == 2 }, 10*time.Second, 5*time.Millisecond)
	}
	l := c.leader()
	require.Eventually(t, l.FormatSettled, 10*time.Second, 5*time.Millisecond)

	n4 := c.listener("n4")
	claimed := n4
	claimed.MaxFormat = 2 // what the record says; the binary says 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, l.AddMember(ctx, claimed, true))
	require.False(t, l.FormatSettled(), "n4 has not been heard")
	c.start(n4, 1, true)
	for name, g := range c.groups {
		require.Eventuallyf(t, func() bool { return records(g)["n4"] == 1 }, 10*time.Second, 5*time.Millisecond,
			"n4's record on %s", name)
		require.Equal(t, uint8(1), g.MinMemberFormat(), name)
	}
	require.Eventually(t, l.FormatSettled, 10*time.Second, 5*time.Millisecond)
}
