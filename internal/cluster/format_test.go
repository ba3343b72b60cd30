package cluster

import (
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/node"
	eraft "github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/transport"
)

// withMaxFormat makes node i claim max as its binary's maximum format.
func withMaxFormat(i int, max uint8) Option {
	return func(j int, c *node.Config) {
		if j == i {
			c.MaxFormat = max
		}
	}
}

// formats returns each running node's FormatStatus.
func formats(c *Cluster) string {
	out := ""
	for i := range c.Size() {
		if n := c.Node(i); n != nil {
			cl, bin, low := n.FormatStatus()
			out += fmt.Sprintf("%s:%d/%d/%d ", c.Name(i), cl, bin, low)
		}
	}
	return out
}

// allAtFormat reports whether every running node applied cluster format v.
func allAtFormat(c *Cluster, v uint8) bool {
	for i := range c.Size() {
		if n := c.Node(i); n != nil && n.Store().FormatVersion() != v {
			return false
		}
	}
	return true
}

// TestFreshClusterRaisesFormatSoonAfterElection: a new cluster of this
// binary starts at format 1 and its first leader raises it to 2 as soon as
// it has written every member's record (one round trip each); INFO's
// figures (FormatStatus) agree on every node, stamps are on everywhere,
// and a write after the raise applies at a stamped time, the same on
// every replica.
func TestFreshClusterRaisesFormatSoonAfterElection(t *testing.T) {
	start := time.Now()
	c := New(t, 3) // waits for the raise (waitFormat), at most 10 s
	require.Truef(t, allAtFormat(c, kv.MaxFormat), "formats: %s", formats(c))
	t.Logf("3 nodes started, elected a leader and raised the format in %v", time.Since(start))
	ctx := c.Ctx(10 * time.Second)
	before := uint64(time.Now().Add(-time.Minute).UnixMilli())
	require.NoError(t, c.Client(c.Leader()).Set(ctx, "k", "v", 0).Err())
	c.WaitConverged(10 * time.Second)
	for i := range c.Size() {
		n := c.Node(i)
		cl, bin, low := n.FormatStatus()
		require.Equal(t, [3]uint8{kv.MaxFormat, kv.MaxFormat, kv.MaxFormat}, [3]uint8{cl, bin, low}, c.Name(i))
		require.True(t, n.Group().StampsEnabled(), c.Name(i))
	}
	// The leader also proposes idle stamps, so compare the replicas at one
	// applied index: the same index, the same stamped apply time.
	require.Eventually(t, func() bool {
		type at struct{ index, time uint64 }
		var first at
		for i := range c.Size() {
			n := c.Node(i)
			idx, _, err := n.Store().Hash()
			require.NoError(t, err)
			got := at{idx, n.Store().ApplyTime()}
			if got.time <= before || (i > 0 && got != first) {
				return false
			}
			first = got
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "every replica applied the write at the same stamped time")
}

// TestMemberWithLowerMaxBlocksTheRaiseUntilUpgraded: a member whose binary
// supports only format 1 keeps the cluster at 1 (its record is corrected
// to 1 by the leader, who hears its advert); the cluster serves at format
// 1 meanwhile. Once that member restarts with a binary that supports 2, the
// leader updates its record and raises the format.
func TestMemberWithLowerMaxBlocksTheRaiseUntilUpgraded(t *testing.T) {
	c := New(t, 3, withMaxFormat(2, 1))
	l := c.Leader()
	g := c.Node(l).Group()
	// The leader has heard everybody and its records are the adverts: the
	// raise loop, which polls every heartbeat, now sees min 1.
	require.Eventually(t, func() bool { return g.FormatSettled() && g.MinMemberFormat() == 1 }, 10*time.Second, 10*time.Millisecond)
	ctx := c.Ctx(20 * time.Second)
	for i := range 20 {
		require.NoError(t, c.Client(l).Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err())
	}
	c.WaitConverged(10 * time.Second)
	require.Truef(t, allAtFormat(c, 1), "formats: %s", formats(c))
	_, bin, _ := c.Node(2).FormatStatus()
	require.Equal(t, uint8(1), bin)

	// Upgrade n3: same data directory, a binary that supports 2.
	c.Stop(2)
	c.cfgs[2].MaxFormat = 0
	c.Restart(2)
	require.Eventuallyf(t, func() bool { return allAtFormat(c, kv.MaxFormat) }, 10*time.Second, 10*time.Millisecond,
		"formats: %s", formats(c))
	require.NoError(t, c.Client(c.WaitLeader(10*time.Second)).Set(ctx, "after", "raise", 0).Err())
	c.WaitConverged(10 * time.Second)
	for i := range c.Size() {
		got, err := c.Client(i).Get(ctx, "k7").Result()
		require.NoError(t, err)
		require.Equal(t, "v", got)
	}
}

// TestNodeBelowClusterFormatRefusesToStart: after the raise, a binary that
// supports less than the data directory's format refuses to start, naming
// both numbers.
func TestNodeBelowClusterFormatRefusesToStart(t *testing.T) {
	c := New(t, 3)
	require.Eventually(t, func() bool { return allAtFormat(c, kv.MaxFormat) }, 5*time.Second, 10*time.Millisecond)
	c.Stop(2)
	c.cfgs[2].MaxFormat = 1
	err := c.TryRestart(2)
	require.ErrorContains(t, err, fmt.Sprintf("at cluster log format %d, but this binary supports at most 1", kv.MaxFormat))
}

// stepRecorder is a transport.Handler that counts what it is stepped.
type stepRecorder struct {
	mu sync.Mutex
	n  int
}

func (r *stepRecorder) Step(*raftpb.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	return nil
}
func (r *stepRecorder) ReportUnreachable(uint64)                   {}
func (r *stepRecorder) ReportSnapshot(uint64, raft.SnapshotStatus) {}
func (r *stepRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// TestPeerBelowClusterFormatIsRefused: after the raise, an old binary in
// n3's place (its id and address, a transport that advertises nothing)
// is refused by the leader both ways: its heartbeat at a higher term,
// which would depose the leader if stepped, is dropped and counted, and
// the leader sends it nothing. The two others keep serving.
func TestPeerBelowClusterFormatIsRefused(t *testing.T) {
	c := New(t, 3)
	require.Eventually(t, func() bool { return allAtFormat(c, kv.MaxFormat) }, 5*time.Second, 10*time.Millisecond)
	l := c.WaitLeader(10 * time.Second)
	victim := 2
	if l == victim {
		victim = 1
	}
	c.Stop(victim)

	// The old binary: its transport sends no advert (LocalMaxFormat 0).
	oldID := eraft.NodeID(c.Name(victim))
	tcfg := transport.DefaultConfig()
	tcfg.LocalID = oldID
	tcfg.SpoolDir = t.TempDir()
	tcfg.Logger = slog.New(slog.DiscardHandler)
	tcfg.LocalMaxFormat = 0
	tr, err := transport.New(tcfg)
	require.NoError(t, err)
	ln, err := listenRetry(c.RaftAddr(victim))
	require.NoError(t, err)
	srv := grpc.NewServer(tcfg.ServerOptions()...)
	tr.RegisterService(srv)
	var serving sync.WaitGroup
	serving.Add(1)
	go func() {
		defer serving.Done()
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		_ = tr.Close()
		serving.Wait()
	})
	rec := &stepRecorder{}
	tr.Register(1, rec)
	leaderID := c.Node(l).Group().ID()
	tr.AddPeer(leaderID, c.RaftAddr(l))

	const refused = "elastickv_transport_format_refused_total"
	before := metric(t, c, l, refused)
	term := c.Node(l).Group().Status().Term
	hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(oldID), To: proto.Uint64(leaderID),
		Term: proto.Uint64(term + 10)}
	require.Eventually(t, func() bool {
		tr.Send(1, []*raftpb.Message{hb})
		return metric(t, c, l, refused) >= before+3
	}, 10*time.Second, 20*time.Millisecond)

	ctx := c.Ctx(20 * time.Second)
	require.NoError(t, c.Client(l).Set(ctx, "still", "serving", 0).Err())
	st := c.Node(l).Group().Status()
	require.Equal(t, eraft.RoleLeader, st.State, "the old peer's heartbeat did not depose the leader")
	require.Less(t, st.Term, term+10)
	other := 3 - l - victim
	got, err := c.Client(other).Get(ctx, "still").Result()
	require.NoError(t, err)
	require.Equal(t, "serving", got)
	// The leader has been refusing to send to it all along (its lanes wait
	// for an advert that never comes): nothing reached the old binary.
	require.Zero(t, rec.count())
}

// TestJoinBelowClusterFormatIsRefused: after the raise, a node whose
// binary supports less cannot join (the admin call is refused with both
// numbers, and nothing was added), while a node of this binary can.
func TestJoinBelowClusterFormatIsRefused(t *testing.T) {
	c := New(t, 3)
	require.Eventually(t, func() bool { return allAtFormat(c, kv.MaxFormat) }, 5*time.Second, 10*time.Millisecond)
	follower := (c.WaitLeader(10*time.Second) + 1) % 3 // forwarded to the leader
	_, err := c.JoinAs("old", follower, func(_ int, cfg *node.Config) { cfg.MaxFormat = 1 })
	require.ErrorContains(t, err, fmt.Sprintf("this cluster is at log format %d and old's binary supports at most 1", kv.MaxFormat))
	for _, m := range c.Node(0).Group().Members() {
		require.NotEqual(t, "old", m.Name)
	}
	i, err := c.Join(follower)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return c.Node(i).Store().FormatVersion() == kv.MaxFormat }, 10*time.Second, 10*time.Millisecond)
}
