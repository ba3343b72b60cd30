package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/transport"
)

// hostilePeer speaks the transport's Snapshot RPC by hand, from its wire
// format (internal/transport/envelope.go), to send what no correct peer
// would.
type hostilePeer struct {
	t  *testing.T
	cc *grpc.ClientConn
}

func newHostilePeer(t *testing.T, addr string) *hostilePeer {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpcraw.CallOption()),
		// It claims to support the cluster's log format: a peer that
		// advertises less is refused before anything below the transport
		// sees it (TestPeerBelowClusterFormatIsRefused); these tests
		// attack what lies behind that gate.
		grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
			streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-elastickv-max-format", strconv.Itoa(int(kv.MaxFormat)))
			return streamer(ctx, desc, cc, method, opts...)
		}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return &hostilePeer{t: t, cc: cc}
}

var snapshotStream = grpc.StreamDesc{StreamName: "Snapshot", ClientStreams: true}

const snapshotMethod = "/elastickv.transport.v1.RaftTransport/Snapshot"

// header encodes the first frame: 'H', group, sentAt, declared size, MsgSnap.
func snapshotHeaderFrame(group uint64, size int64, m *raftpb.Message) ([]byte, error) {
	mb, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	b := []byte{'H'}
	b = binary.BigEndian.AppendUint64(b, group)
	b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(size))
	return append(b, mb...), nil
}

// sendSnapshot streams payload as one snapshot of group 1 and returns the
// receiver's verdict (nil: it acknowledged).
func (h *hostilePeer) sendSnapshot(m *raftpb.Message, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := h.cc.NewStream(ctx, &snapshotStream, snapshotMethod)
	require.NoError(h.t, err)
	hdr, err := snapshotHeaderFrame(1, int64(len(payload)), m)
	require.NoError(h.t, err)
	trailer := []byte{'T'}
	trailer = binary.BigEndian.AppendUint32(trailer, crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
	trailer = binary.BigEndian.AppendUint64(trailer, uint64(len(payload)))
	frames := [][]byte{hdr}
	for len(payload) > 0 {
		n := min(len(payload), 512<<10)
		frames = append(frames, append([]byte{'C'}, payload[:n]...))
		payload = payload[n:]
	}
	frames = append(frames, trailer)
	for _, f := range frames {
		if cs.SendMsg(&grpcraw.Frame{Data: f}) != nil {
			break // refused; RecvMsg says why
		}
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	return cs.RecvMsg(&grpcraw.Frame{})
}

// snapFiles maps each file in node i's snapshot directory to its digest.
func snapFiles(t *testing.T, c *Cluster, i int) map[string][32]byte {
	t.Helper()
	dir := filepath.Join(c.Dir, c.Name(i), "raft", "snap")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	out := map[string][32]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// TestHostilePeerSnapshotNamesCannotTouchLocalSnapshots: the file name in a
// snapshot's descriptor is the sender's word. A peer that names one of the
// victim's own snapshot files (to replace it), a name that sorts after all
// of them (so purge would delete the real ones instead), or a path out of
// the snapshot directory changes no file of the victim's, and the victim
// keeps serving, restarts from its own snapshots, and loses nothing.
func TestHostilePeerSnapshotNamesCannotTouchLocalSnapshots(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(50))
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	victim := (leader + 1) % 3
	const keys = 260
	for i := range keys {
		require.NoError(t, c.Client(i%3).Set(ctx, fmt.Sprintf("k%04d", i), "v", 0).Err())
	}
	c.WaitConverged(20 * time.Second)
	var before map[string][32]byte
	require.Eventually(t, func() bool {
		before = snapFiles(t, c, victim)
		return len(before) >= 2
	}, 10*time.Second, 20*time.Millisecond, "the victim keeps several snapshots of its own")
	var names []string
	for n := range before {
		names = append(names, n)
	}
	oldest, newest := names[0], names[0]
	for _, n := range names {
		oldest, newest = min(oldest, n), max(newest, n)
	}
	// A genuine snapshot file: the victim's own oldest, whose index and
	// term the message must state (the receiver checks them).
	payload, err := os.ReadFile(filepath.Join(c.Dir, c.Name(victim), "raft", "snap", oldest))
	require.NoError(t, err)
	var idx, term uint64
	_, err = fmt.Sscanf(strings.TrimSuffix(oldest, ".snap"), "%016x-%016x", &idx, &term)
	require.NoError(t, err)

	h := newHostilePeer(t, c.RaftAddr(victim))
	members := []raft.Member{}
	for i := range c.Size() {
		members = append(members, raft.Member{Name: c.Name(i), Addr: c.RaftAddr(i)})
	}
	snapMsg := func(file string) *raftpb.Message {
		desc, err := json.Marshal(map[string]any{"file": file, "size": len(payload), "members": members})
		require.NoError(t, err)
		voters := []uint64{}
		for i := range c.Size() {
			voters = append(voters, raft.NodeID(c.Name(i)))
		}
		return &raftpb.Message{
			Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(raft.NodeID(c.Name(leader))),
			To: proto.Uint64(raft.NodeID(c.Name(victim))), Term: proto.Uint64(term),
			Snapshot: &raftpb.Snapshot{Data: desc, Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(idx), Term: proto.Uint64(term), ConfState: &raftpb.ConfState{Voters: voters},
			}},
		}
	}
	// Names that fail the descriptor check are refused outright.
	for _, name := range []string{"../../raft/snap/x.snap", "../wal/x.snap", "/tmp/x.snap", "x.wal", ""} {
		err := h.sendSnapshot(snapMsg(name), payload)
		require.Error(t, err, name)
		require.Equal(t, codes.Aborted, status.Code(err), "%s: %v", name, err)
	}
	// Well-formed names of the sender's choosing are ignored: the file is
	// named for its index and term, which the victim already holds.
	for _, name := range []string{newest, "ffffffffffffffff-ffffffffffffffff.snap"} {
		_ = h.sendSnapshot(snapMsg(name), payload) // stale: Raft ignores it
	}
	require.Equal(t, before, snapFiles(t, c, victim), "no snapshot file of the victim was created, replaced or removed")
	_, err = os.Stat(filepath.Join(c.Dir, "raft"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written outside the data dirs")

	// The victim keeps serving, restarts from its own snapshots and WAL,
	// and has every acknowledged write.
	require.NoError(t, c.Client(victim).Set(ctx, "after", "x", 0).Err())
	c.WaitConverged(20 * time.Second)
	c.Stop(victim)
	c.Restart(victim)
	c.WaitConverged(20 * time.Second)
	n, err := c.Client(victim).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(keys+1), n)
}

// metric sums every series of one metric of node i.
func metric(t *testing.T, c *Cluster, i int, name string) float64 {
	t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestHostilePeerSnapshotFloodLeavesTheClusterServing: a peer that declares
// a snapshot larger than the spool budget, holds every inbound snapshot
// slot of a follower, opens many more streams and sends garbage gets
// errors; meanwhile every node keeps serving and replicating. Once it
// leaves, the follower, stopped and left behind, catches up by snapshot:
// nothing the hostile peer did outlives it.
func TestHostilePeerSnapshotFloodLeavesTheClusterServing(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(50))
	ctx := c.Ctx(90 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	victim := (leader + 1) % 3
	h := newHostilePeer(t, c.RaftAddr(victim))
	header := func(size int64) []byte {
		m := &raftpb.Message{
			Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(raft.NodeID(c.Name(leader))),
			To: proto.Uint64(raft.NodeID(c.Name(victim))), Term: proto.Uint64(1),
			Snapshot: &raftpb.Snapshot{Data: []byte(`{"file":"x.snap"}`), Metadata: &raftpb.SnapshotMetadata{
				Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: &raftpb.ConfState{},
			}},
		}
		b, err := snapshotHeaderFrame(1, size, m)
		require.NoError(t, err)
		return b
	}
	open := func(ctx context.Context, frames ...[]byte) grpc.ClientStream {
		cs, err := h.cc.NewStream(ctx, &snapshotStream, snapshotMethod)
		require.NoError(t, err)
		for _, f := range frames {
			if cs.SendMsg(&grpcraw.Frame{Data: f}) != nil {
				break
			}
		}
		return cs
	}
	verdict := func(cs grpc.ClientStream) error {
		_ = cs.CloseSend()
		return cs.RecvMsg(&grpcraw.Frame{})
	}
	refused := func(reason string) float64 {
		mfs, err := c.Node(victim).Registry().Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != "elastickv_raft_snapshot_inbound_refused_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == reason {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}

	// 1 PiB, far beyond the spool budget: refused before a byte is spooled.
	err := verdict(open(ctx, header(1<<50), []byte{'C', 0}))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Equal(t, 1.0, refused("spool_budget"))

	// Hold every slot with streams that declare a snapshot and stall.
	hold, release := context.WithCancel(ctx)
	defer release()
	for range transport.DefaultLimits().MaxInboundSnapshots {
		open(hold, header(1<<20))
	}
	require.Eventually(t, func() bool {
		return metric(t, c, victim, "elastickv_raft_snapshot_inbound_streams") == float64(transport.DefaultLimits().MaxInboundSnapshots)
	}, 10*time.Second, 10*time.Millisecond, "the hostile streams hold every slot")
	for range 20 {
		err := verdict(open(ctx, header(10)))
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	}
	require.Equal(t, 20.0, refused("too_many_streams"))
	// Garbage on the Messages stream, too.
	for i := range 10 {
		cs, err := h.cc.NewStream(ctx, &grpc.StreamDesc{StreamName: "Messages", ClientStreams: true}, "/elastickv.transport.v1.RaftTransport/Messages")
		require.NoError(t, err)
		_ = cs.SendMsg(&grpcraw.Frame{Data: []byte{byte(i), 0xff, 0xfe}})
		require.Equal(t, codes.InvalidArgument, status.Code(verdict(cs)))
	}

	// Every node keeps serving writes and reads, the victim included.
	const keys = 150
	for i := range keys {
		require.NoError(t, c.Client(i%3).Set(ctx, fmt.Sprintf("k%04d", i), "v", 0).Err())
	}
	c.WaitConverged(20 * time.Second)

	// The hostile peer leaves: its slots and spool bytes are returned.
	release()
	require.Eventually(t, func() bool {
		return metric(t, c, victim, "elastickv_raft_snapshot_inbound_streams") == 0 &&
			metric(t, c, victim, "elastickv_raft_snapshot_spool_bytes") == 0
	}, 10*time.Second, 10*time.Millisecond)

	// The victim, left behind the leader's compacted log, catches up by
	// snapshot, and has every acknowledged write.
	c.Stop(victim)
	for i := keys; i < 2*keys; i++ {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%04d", i), "v", 0).Err())
	}
	c.Restart(victim)
	c.WaitConverged(30 * time.Second)
	require.Equal(t, 1.0, metric(t, c, victim, "elastickv_raft_snapshots_installed_total"), "caught up by snapshot")
	n, err := c.Client(victim).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(2*keys), n)
	entries, err := os.ReadDir(filepath.Join(c.Dir, c.Name(victim), "snap-spool"))
	require.NoError(t, err)
	require.Empty(t, entries, "no spool file left behind")
}

// TestHostilePeerHeartbeatBeyondTheLogDoesNotCrashAFollower: etcd Raft
// panics on a heartbeat whose commit index lies beyond the follower's log,
// and steps a heartbeat of the current (or a newer) term from anyone. One
// such message from a buggy or hostile peer must not take the node down.
func TestHostilePeerHeartbeatBeyondTheLogDoesNotCrashAFollower(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	victim := (leader + 1) % 3
	require.NoError(t, c.Client(leader).Set(ctx, "before", "x", 0).Err())
	st := c.Node(leader).Group().Status()

	h := newHostilePeer(t, c.RaftAddr(victim))
	hb, err := proto.Marshal(&raftpb.Message{
		Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(st.ID),
		To: proto.Uint64(raft.NodeID(c.Name(victim))), Term: proto.Uint64(st.Term), Commit: proto.Uint64(1 << 60),
	})
	require.NoError(t, err)
	frame := []byte{1} // batch version
	frame = binary.BigEndian.AppendUint64(frame, 1)
	frame = binary.BigEndian.AppendUint64(frame, uint64(time.Now().UnixNano()))
	frame = binary.BigEndian.AppendUint32(frame, uint32(len(hb)))
	frame = append(frame, hb...)
	cs, err := h.cc.NewStream(ctx, &grpc.StreamDesc{StreamName: "Messages", ClientStreams: true}, "/elastickv.transport.v1.RaftTransport/Messages")
	require.NoError(t, err)
	require.NoError(t, cs.SendMsg(&grpcraw.Frame{Data: frame}))
	require.NoError(t, cs.CloseSend())
	require.NoError(t, cs.RecvMsg(&grpcraw.Frame{}), "a well-formed message is delivered")
	require.Eventually(t, func() bool {
		return metric(t, c, victim, "elastickv_raft_inbound_commit_clamped_total") == 1
	}, 10*time.Second, 10*time.Millisecond, "the heartbeat reached Raft, clamped")

	// The group's own drop counter is registered beside the transport's
	// (it had the transport's name, and so was never exported).
	mfs, err := c.Node(victim).Registry().Gather()
	require.NoError(t, err)
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "elastickv_raft_step_queue_dropped_total"
	}
	require.True(t, found, "elastickv_raft_step_queue_dropped_total is exported")

	// The victim is up, serves, and commits only what the leader did.
	require.NoError(t, c.Client(victim).Set(ctx, "after", "y", 0).Err())
	c.WaitConverged(10 * time.Second)
	require.Less(t, c.Node(victim).Group().Status().Commit, uint64(1<<60))
	v, err := c.Client(victim).Get(ctx, "before").Result()
	require.NoError(t, err)
	require.Equal(t, "x", v)
}

// TestHostilePeerFloodsAFollowersLanes: a peer pushes a flood of stale
// heartbeats and appends, some with 64 KiB of entries, at a follower as
// fast as the follower reads them. The follower's step queues overflow
// their byte budget (--peer-inbound-mb; messages dropped and counted,
// which Raft tolerates) and never hold more than it, writes
// through the leader keep being acknowledged meanwhile, and afterwards the
// follower serves and holds every acknowledged write.
func TestHostilePeerFloodsAFollowersLanes(t *testing.T) {
	const inboundBudget = 4 << 20
	c := New(t, 3, func(_ int, cfg *node.Config) { cfg.MaxInboundBytes = inboundBudget })
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	victim := (leader + 1) % 3
	// From no member: Raft answers a stale message to its sender, and
	// answers to an unknown node go nowhere; the flood stays between the
	// hostile peer and its victim.
	from, to := uint64(999), raft.NodeID(c.Name(victim))
	envelope := func(b []byte, m *raftpb.Message) []byte {
		mb, err := proto.Marshal(m)
		require.NoError(t, err)
		b = binary.BigEndian.AppendUint64(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(time.Now().UnixNano()))
		b = binary.BigEndian.AppendUint32(b, uint32(len(mb)))
		return append(b, mb...)
	}
	frame := []byte{1}
	for i := range 1000 {
		// Term 1 is stale (the first election made term 2 at least).
		size := 256
		if i%10 == 1 {
			size = 64 << 10
		}
		if i%2 == 0 {
			frame = envelope(frame, &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: &from, To: &to, Term: proto.Uint64(1)})
		} else {
			frame = envelope(frame, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: &from, To: &to, Term: proto.Uint64(1),
				Index: proto.Uint64(uint64(i)), LogTerm: proto.Uint64(1),
				Entries: []*raftpb.Entry{{Index: proto.Uint64(uint64(i + 1)), Term: proto.Uint64(1), Data: make([]byte, size)}}})
		}
	}
	h := newHostilePeer(t, c.RaftAddr(victim))
	flood, stop := context.WithCancel(ctx)
	defer stop()
	floodDone := make(chan int)
	go func() {
		sent := 0
		defer func() { floodDone <- sent }()
		for flood.Err() == nil {
			cs, err := h.cc.NewStream(flood, &grpc.StreamDesc{StreamName: "Messages", ClientStreams: true}, "/elastickv.transport.v1.RaftTransport/Messages")
			if err != nil {
				return
			}
			for flood.Err() == nil && cs.SendMsg(&grpcraw.Frame{Data: frame}) == nil {
				sent++
			}
		}
	}()

	const keys = 100
	start := time.Now()
	for i := range keys {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%04d", i), "v", 0).Err(), "write %d during the flood", i)
	}
	t.Logf("%d writes during the flood took %v", keys, time.Since(start))
	require.Eventually(t, func() bool {
		require.LessOrEqual(t, metric(t, c, victim, "elastickv_raft_step_queue_bytes"), float64(inboundBudget))
		return metric(t, c, victim, "elastickv_raft_step_queue_budget_dropped_total") > 0
	}, 20*time.Second, 5*time.Millisecond, "the flood overflowed the follower's step queue byte budget")
	t.Logf("step queue overflowed after %v", time.Since(start))
	stop()
	frames := <-floodDone
	t.Logf("flood: %d frames of 1000 messages", frames)

	require.NoError(t, c.Client(victim).Set(ctx, "after", "x", 0).Err())
	c.WaitConverged(20 * time.Second)
	n, err := c.Client(victim).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(keys+1), n)
}
