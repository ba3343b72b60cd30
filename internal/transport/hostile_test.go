package transport

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// Hostile-peer tests: a raw gRPC client speaks the transport's service as
// no correct peer would, over real loopback sockets, while a real peer
// (node 1) keeps talking to the victim (node 2). Each shows the victim
// refuses with an error, stays up, keeps serving the real peer and keeps
// nothing the hostile peer sent.

// hostileSnapshotHeader is a well-formed header for a MsgSnap 1 -> 2 of
// group 7 declaring size payload bytes.
func hostileSnapshotHeader(t *testing.T, size int64) []byte {
	t.Helper()
	return encodeSnapshotHeader(snapshotHeader{group: 7, size: size, msg: mustMarshal(t, snapMsg(1, 2, nil))})
}

// requireStillServes shows the victim b still delivers a real peer's
// heartbeat and accepts its snapshot.
func requireStillServes(t *testing.T, a *testNode, ra, rb *recorder) {
	t.Helper()
	hb := rb.count(raftpb.MsgHeartbeat)
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
	waitFor(t, "heartbeat from the real peer", func() bool { return rb.count(raftpb.MsgHeartbeat) == hb+1 })
	ok, snaps := ra.snapshotReports(raft.SnapshotFinish), rb.count(raftpb.MsgSnap)
	payload := bytes.Repeat([]byte("snapshot"), 1000)
	a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, payload)})
	waitFor(t, "snapshot from the real peer", func() bool { return ra.snapshotReports(raft.SnapshotFinish) == ok+1 })
	got := rb.ofType(raftpb.MsgSnap)
	require.Len(t, got, snaps+1)
	require.Equal(t, payload, got[snaps].GetSnapshot().GetData())
}

func TestHostilePeerDeclaresHugeSnapshot(t *testing.T) {
	a, b, ra, rb := pair(t, FourLanes, func(c *Config) { c.SnapshotSpoolBytes = 1 << 30 }, nil)
	cc := rawClient(t, b)
	refused := func(reason string) float64 {
		return mustMetric(t, b.reg, "elastickv_raft_snapshot_inbound_refused_total", map[string]string{"reason": reason})
	}

	// Beyond the spool budget: refused before a spool file exists. Group 8
	// keeps its snapshots on disk (SnapshotStore), as elastickv's do.
	b.tr.Register(8, newStoreRecorder(nil))
	storeHdr := func(size int64) []byte {
		return encodeSnapshotHeader(snapshotHeader{group: 8, size: size, msg: mustMarshal(t, snapMsg(1, 2, nil))})
	}
	err := rawSnapshot(t, cc, storeHdr(2<<30), []byte{snapChunk, 1, 2, 3})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "SnapshotSpoolBytes")
	require.Equal(t, 1.0, refused(refusedSpoolBudget))
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))

	// An in-memory snapshot (a handler without SnapshotStore) is read back
	// whole: it may declare at most MaxMessageBytes.
	err = rawSnapshot(t, cc, hostileSnapshotHeader(t, int64(b.cfg.MaxMessageBytes)+1))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Equal(t, 1.0, refused(refusedTooLarge))

	// Within the budget but beyond the disk: a store-backed group (no
	// memory cap) on a victim whose budget is unlimited.
	_, c, _, _ := pair(t, FourLanes, func(c *Config) { c.SnapshotSpoolBytes = math.MaxInt64 }, nil)
	c.tr.Register(8, newStoreRecorder(nil))
	free, ok := diskFree(c.cfg.SpoolDir)
	require.True(t, ok, "statfs of the spool dir")
	err = rawSnapshot(t, rawClient(t, c), storeHdr(free+1), []byte{snapChunk, 1})
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	require.Contains(t, err.Error(), "free")
	require.Equal(t, 1.0, mustMetric(t, c.reg, "elastickv_raft_snapshot_inbound_refused_total", map[string]string{"reason": refusedDiskSpace}))
	require.Empty(t, spoolEntries(t, c.cfg.SpoolDir))

	require.Zero(t, rb.count(raftpb.MsgSnap), "nothing stepped")
	requireStillServes(t, a, ra, rb)
	require.Zero(t, mustMetric(t, b.reg, "elastickv_raft_snapshot_spool_bytes", nil), "every reservation returned")
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
}

func TestHostilePeerOpensManySnapshotStreams(t *testing.T) {
	a, b, ra, rb := pair(t, FourLanes, func(c *Config) { c.MaxInboundSnapshots = 2 }, nil)
	cc := rawClient(t, b)
	streams := func() float64 { return mustMetric(t, b.reg, "elastickv_raft_snapshot_inbound_streams", nil) }

	// Two streams that declare a snapshot and then send nothing hold both
	// slots (until SnapshotIdleTimeout).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamSnapshot], methodSnapshot)
		require.NoError(t, err)
		require.NoError(t, cs.SendMsg(&grpcraw.Frame{Data: hostileSnapshotHeader(t, 1<<20)}))
	}
	waitFor(t, "both slots taken", func() bool { return streams() == 2 })
	waitFor(t, "both reservations made", func() bool {
		return mustMetric(t, b.reg, "elastickv_raft_snapshot_spool_bytes", nil) == 2<<20
	})

	// Every further stream is refused at once, whatever it sends.
	for range 8 {
		err := rawSnapshot(t, cc, hostileSnapshotHeader(t, 10))
		require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
		require.Contains(t, err.Error(), "MaxInboundSnapshots")
	}
	require.Equal(t, 8.0, mustMetric(t, b.reg, "elastickv_raft_snapshot_inbound_refused_total", map[string]string{"reason": refusedTooManyStreams}))

	// A real sender's snapshot is refused too, and its Raft group is told.
	a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, []byte("refused"))})
	waitFor(t, "sender told the snapshot failed", func() bool { return ra.snapshotReports(raft.SnapshotFailure) == 1 })
	require.Zero(t, ra.snapshotReports(raft.SnapshotFinish))
	// Its other traffic is untouched.
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1)})
	waitFor(t, "heartbeat and append delivered", func() bool {
		return rb.count(raftpb.MsgHeartbeat) == 1 && rb.count(raftpb.MsgApp) == 1
	})

	// Once the hostile streams end, their slots and spool bytes are free.
	cancel()
	waitFor(t, "slots released", func() bool { return streams() == 0 })
	require.Zero(t, mustMetric(t, b.reg, "elastickv_raft_snapshot_spool_bytes", nil))
	requireStillServes(t, a, ra, rb)
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
}

func TestHostilePeerSendsGarbageAndOversizeFrames(t *testing.T) {
	// MaxMessageBytes at its floor, one chunk: gRPC refuses anything above
	// it plus frameOverhead before the transport sees a byte.
	a, b, ra, rb := pair(t, FourLanes, func(c *Config) { c.MaxMessageBytes = MaxSnapshotChunkBytes }, nil)
	cc := rawClient(t, b)
	oversize := make([]byte, b.cfg.grpcMessageLimit()+1)
	send := func(method string, desc *grpc.StreamDesc, frames ...[]byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cs, err := cc.NewStream(ctx, desc, method)
		require.NoError(t, err)
		for _, f := range frames {
			if cs.SendMsg(&grpcraw.Frame{Data: f}) != nil {
				break
			}
		}
		_ = cs.CloseSend()
		return cs.RecvMsg(&grpcraw.Frame{})
	}
	msgs := &serviceDesc.Streams[streamMessages]
	snaps := &serviceDesc.Streams[streamSnapshot]

	err := send(methodMessages, msgs, oversize)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	err = send(methodSnapshot, snaps, hostileSnapshotHeader(t, 10), oversize)
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)

	// A batch whose envelope declares 4 GiB, and a snapshot header whose
	// size is the largest int64: errors, not allocations.
	huge := appendEnvelope(newBatch(64), 7, 0, nil)
	huge[len(huge)-4], huge[len(huge)-3], huge[len(huge)-2], huge[len(huge)-1] = 0xff, 0xff, 0xff, 0xff
	err = send(methodMessages, msgs, huge)
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	err = send(methodSnapshot, snaps, hostileSnapshotHeader(t, math.MaxInt64))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)

	// Random garbage on both streams.
	for i := range 50 {
		junk := bytes.Repeat([]byte{byte(i), byte(i * 7), 0xff}, i+1)
		require.Error(t, send(methodMessages, msgs, junk))
		require.Error(t, send(methodSnapshot, snaps, junk, junk))
	}
	requireStillServes(t, a, ra, rb)
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
}

func TestHostileSlowPeerLaneQueueIsBoundedInBytes(t *testing.T) {
	const budget = 256 << 10
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			// The replication worker is stuck writing to a peer that does
			// not read: what Raft keeps sending must stay within budget.
			lane := laneFor(mode, raftpb.MsgApp)
			stall := newStall(2, lane)
			a, _, ra, rb := pair(t, mode, func(c *Config) { c.PeerQueueBytes = budget }, func(tr *GRPC) {
				tr.hooks.beforeSend = stall.hook
			})
			t.Cleanup(stall.unblock)
			big := func(idx uint64) *raftpb.Message {
				m := appMsg(1, 2, idx)
				m.Entries[0].Data = make([]byte, 16<<10)
				return m
			}
			a.tr.Send(7, []*raftpb.Message{big(0)})
			<-stall.entered
			queued := func() float64 {
				return mustMetric(t, a.reg, "elastickv_raft_dispatch_queue_bytes", map[string]string{"peer": "2"})
			}
			const flood = 200 // 3.2 MiB of appends, far above the budget, far below the lane's depth
			for i := uint64(1); i <= flood; i++ {
				a.tr.Send(7, []*raftpb.Message{big(i)})
				require.LessOrEqual(t, queued(), float64(budget))
			}
			drops := mustMetric(t, a.reg, "elastickv_raft_dispatch_budget_drop_total", map[string]string{"peer": "2", "lane": lane.String()})
			require.Greater(t, drops, float64(flood/2), "most of the flood was dropped")
			require.Equal(t, int(drops), ra.unreachable(2), "each dropped MsgApp reported as a full lane's is")
			require.Zero(t, mustMetric(t, a.reg, "elastickv_raft_dispatch_drop_total", map[string]string{"peer": "2", "lane": lane.String()}),
				"the lane itself never filled")

			// Heartbeats are exempt: they still reach the peer.
			a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
			waitFor(t, "heartbeat past a full budget", func() bool { return rb.count(raftpb.MsgHeartbeat) == 1 })

			// Once the peer reads again the queue drains, what was queued
			// arrives, and the budget is whole again.
			stall.unblock()
			sent := flood + 1 - int(drops)
			waitFor(t, "queued appends delivered", func() bool { return rb.count(raftpb.MsgApp) == sent })
			waitFor(t, "queue bytes back to zero", func() bool { return queued() == 0 })
			a.tr.Send(7, []*raftpb.Message{big(flood + 1)})
			waitFor(t, "appends flow again", func() bool { return rb.count(raftpb.MsgApp) == sent+1 })
		})
	}
}

func TestPeerQueueAdmitsOneOversizeMessage(t *testing.T) {
	p := &peer{budget: 100, queueBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_queue_bytes"})}
	require.True(t, p.charge(500), "an empty queue admits any one message")
	require.False(t, p.charge(1), "nothing joins it")
	p.uncharge(500)
	require.True(t, p.charge(60))
	require.True(t, p.charge(40))
	require.False(t, p.charge(1))
	require.True(t, p.budgetFull())
}

func TestHostilePeerCannotGrowTheLogLimiter(t *testing.T) {
	a, b, ra, rb := pair(t, FourLanes, nil, nil)
	cc := rawClient(t, b)
	// Undeliverable messages, each from another made-up node: every one
	// is logged under its sender's id, rate-limited per id.
	const senders = 5 * maxLogKeys
	frame := newBatch(senders * 32)
	for i := range senders {
		frame = appendEnvelope(frame, 7, 0, mustMarshal(t, msg(raftpb.MsgHeartbeat, uint64(1000+i), 3)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamMessages], methodMessages)
	require.NoError(t, err)
	require.NoError(t, cs.SendMsg(&grpcraw.Frame{Data: frame}))
	require.NoError(t, cs.CloseSend())
	require.NoError(t, cs.RecvMsg(&grpcraw.Frame{}))
	require.Equal(t, float64(senders), mustMetric(t, b.reg, "elastickv_raft_inbound_dropped_total", map[string]string{"reason": inboundWrongTo}))
	require.LessOrEqual(t, b.tr.log.keys(), maxLogKeys+1, "the limiter's state stays bounded")
	requireStillServes(t, a, ra, rb)
}
