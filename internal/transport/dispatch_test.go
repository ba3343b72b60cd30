package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// pair starts nodes 1 and 2 in mode, node 1 knowing node 2, with recorders
// registered for group 7 on both.
func pair(t *testing.T, mode LaneMode, tweak func(*Config), prepare func(*GRPC)) (a, b *testNode, ra, rb *recorder) {
	t.Helper()
	ca, cb := testConfig(t, 1, mode), testConfig(t, 2, mode)
	if tweak != nil {
		tweak(&ca)
		tweak(&cb)
	}
	a = startNode(t, ca, prepare)
	b = startNode(t, cb, nil)
	ra, rb = newRecorder(), newRecorder()
	a.tr.Register(7, ra)
	b.tr.Register(7, rb)
	a.tr.AddPeer(2, b.addr)
	return a, b, ra, rb
}

func TestDispatchDeliversEveryLane(t *testing.T) {
	for _, mode := range []LaneMode{FourLanes, TwoLanes, laneModeSingle} {
		t.Run(mode.String(), func(t *testing.T) {
			a, _, ra, rb := pair(t, mode, nil, nil)
			const apps = 300
			for i := uint64(0); i < apps; i += 3 {
				a.tr.Send(7, []*raftpb.Message{
					appMsg(1, 2, i), msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, i+1), appMsg(1, 2, i+2),
				})
			}
			a.tr.Send(7, []*raftpb.Message{
				msg(raftpb.MsgTransferLeader, 1, 2),
				msg(raftpb.MsgVote, 1, 2),
				snapMsg(1, 2, []byte("small snapshot")),
				msg(raftpb.MsgForgetLeader, 1, 2),
			})
			waitFor(t, "every message delivered", func() bool {
				return rb.count(raftpb.MsgApp) == apps && rb.count(raftpb.MsgHeartbeat) == apps/3 &&
					rb.count(raftpb.MsgTransferLeader) == 1 && rb.count(raftpb.MsgVote) == 1 &&
					rb.count(raftpb.MsgSnap) == 1 && rb.count(raftpb.MsgForgetLeader) == 1
			})
			// Per-type order holds: one type, one lane, one stream.
			for i, m := range rb.ofType(raftpb.MsgApp) {
				require.Equal(t, uint64(i), m.GetIndex(), "MsgApp order")
			}
			require.Equal(t, []byte("small snapshot"), rb.ofType(raftpb.MsgSnap)[0].GetSnapshot().GetData())
			waitFor(t, "snapshot finish reported", func() bool { return ra.snapshotReports(raft.SnapshotFinish) == 1 })
			require.Zero(t, ra.unreachable(2))
			v, ok := metricValue(t, a.reg, "elastickv_raft_heartbeat_send_latency_seconds", nil)
			require.True(t, ok)
			require.Equal(t, float64(apps/3), v, "send latency observed per heartbeat (MsgVote is not one)")
		})
	}
}

func TestDispatchGroupsShareLanes(t *testing.T) {
	a, b, _, rb := pair(t, FourLanes, nil, nil)
	r8 := newRecorder()
	b.tr.Register(8, r8)
	a.tr.Send(8, []*raftpb.Message{appMsg(1, 2, 5)})
	a.tr.Send(7, []*raftpb.Message{appMsg(1, 2, 6)})
	a.tr.Send(9, []*raftpb.Message{appMsg(1, 2, 7)}) // nobody registered on b
	waitFor(t, "both groups served", func() bool { return r8.count(raftpb.MsgApp) == 1 && rb.count(raftpb.MsgApp) == 1 })
	require.Equal(t, uint64(5), r8.ofType(raftpb.MsgApp)[0].GetIndex())
	require.Equal(t, uint64(6), rb.ofType(raftpb.MsgApp)[0].GetIndex())
	waitFor(t, "unknown group counted", func() bool {
		return mustMetric(t, b.reg, "elastickv_raft_inbound_dropped_total", map[string]string{"reason": inboundUnknownGroup}) == 1
	})
}

func TestDispatchSnapshotDoesNotBlockReplication(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			a, _, _, rb := pair(t, mode, nil, nil)
			store := newStoreRecorder(make([]byte, 3<<20))
			store.blockRead = true
			a.tr.Register(7, store)

			a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, nil)})
			<-store.opened // the snapshot worker is now stuck reading the payload

			for i := uint64(0); i < 50; i++ {
				a.tr.Send(7, []*raftpb.Message{appMsg(1, 2, i), msg(raftpb.MsgHeartbeat, 1, 2)})
			}
			waitFor(t, "heartbeats flow past the stuck snapshot", func() bool { return rb.count(raftpb.MsgHeartbeat) == 50 })
			if mode == FourLanes {
				waitFor(t, "MsgApp flows past the stuck snapshot", func() bool { return rb.count(raftpb.MsgApp) == 50 })
			}
			// In the legacy layout MsgApp waits behind the snapshot in the
			// normal lane; that is the layout's known cost, not asserted here.
			require.Zero(t, rb.count(raftpb.MsgSnap))
		})
	}
}

// stallLane blocks the worker of (peer, lane) in its next stream write until
// release is called; entered is signalled once it is blocked.
type stallLane struct {
	peer    uint64
	lane    Lane
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newStall(peer uint64, lane Lane) *stallLane {
	return &stallLane{peer: peer, lane: lane, entered: make(chan struct{}, 1), release: make(chan struct{})}
}

func (s *stallLane) hook(peer uint64, lane Lane) {
	if peer == s.peer && lane == s.lane {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.release
	}
}

func (s *stallLane) unblock() { s.once.Do(func() { close(s.release) }) }

func TestDispatchFullLaneDropsCountsAndReports(t *testing.T) {
	small := func(c *Config) {
		c.HeartbeatBuffer, c.ReplicationBuffer, c.SnapshotBuffer, c.OtherBuffer = 8, 8, 2, 2
	}
	cases := []struct {
		mode        LaneMode
		lane        Lane
		typ         raftpb.MessageType
		unreachable bool
	}{
		{FourLanes, LaneHeartbeat, raftpb.MsgHeartbeat, false},
		{FourLanes, LaneReplication, raftpb.MsgApp, true},
		{FourLanes, LaneOther, raftpb.MsgTransferLeader, false},
		{TwoLanes, LaneHeartbeat, raftpb.MsgHeartbeat, false},
		{TwoLanes, LaneNormal, raftpb.MsgApp, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s/%s", tc.mode, tc.typ), func(t *testing.T) {
			stall := newStall(2, tc.lane)
			defer stall.unblock()
			a, _, ra, _ := pair(t, tc.mode, small, func(tr *GRPC) {
				tr.hooks.beforeSend = stall.hook
				tr.hooks.dropped = func(uint64, Lane, raftpb.MessageType) {}
			})
			t.Cleanup(stall.unblock) // before the nodes stop (cleanups run LIFO)
			a.tr.Send(7, []*raftpb.Message{msg(tc.typ, 1, 2)})
			<-stall.entered // the worker holds that message; the lane is empty

			capacity := a.cfg.bufferFor(tc.lane)
			const extra = 5
			for i := 0; i < capacity+extra; i++ {
				a.tr.Send(7, []*raftpb.Message{msg(tc.typ, 1, 2)})
			}
			labels := map[string]string{"peer": "2", "lane": tc.lane.String()}
			require.Equal(t, float64(extra), mustMetric(t, a.reg, "elastickv_raft_dispatch_drop_total", labels))
			require.Equal(t, float64(capacity), mustMetric(t, a.reg, "elastickv_raft_dispatch_queue_depth", labels))
			if tc.unreachable {
				require.Equal(t, extra, ra.unreachable(2), "a dropped MsgApp is reported so Raft re-probes")
			} else {
				require.Zero(t, ra.unreachable(2), "a local drop is not evidence the peer is down")
			}
			stall.unblock()
			waitFor(t, "lane drained", func() bool { return mustMetric(t, a.reg, "elastickv_raft_dispatch_queue_depth", labels) == 0 })
		})
	}
}

func TestDispatchDroppedSnapshotReportsFailure(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			a, _, _, _ := pair(t, mode, func(c *Config) { c.SnapshotBuffer, c.ReplicationBuffer, c.OtherBuffer = 2, 1, 1 }, nil)
			store := newStoreRecorder(make([]byte, 1024))
			store.blockRead = true
			a.tr.Register(7, store)
			a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, nil)})
			<-store.opened

			lane := laneFor(mode, raftpb.MsgSnap)
			capacity := a.cfg.bufferFor(lane)
			const extra = 3
			for i := 0; i < capacity+extra; i++ {
				a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, nil)})
			}
			require.Equal(t, extra, store.snapshotReports(raft.SnapshotFailure), "every dropped MsgSnap reports SnapshotFailure")
			require.Equal(t, float64(extra), mustMetric(t, a.reg, "elastickv_raft_dispatch_drop_total",
				map[string]string{"peer": "2", "lane": lane.String()}))

			// Removing the peer fails the stuck transfer and everything queued.
			a.tr.RemovePeer(2)
			require.Equal(t, extra+capacity+1, store.snapshotReports(raft.SnapshotFailure))
			require.Zero(t, store.snapshotReports(raft.SnapshotFinish))
		})
	}
}

func TestDispatchUnknownPeerAndLocalMessages(t *testing.T) {
	a, _, ra, _ := pair(t, FourLanes, nil, nil)
	a.tr.Send(7, []*raftpb.Message{
		msg(raftpb.MsgHeartbeat, 1, 99),
		appMsg(1, 99, 1),
		snapMsg(1, 99, []byte("s")),
		msg(raftpb.MsgHup, 1, 2),
		msg(raftpb.MsgStorageAppend, 1, raft.LocalAppendThread),
	})
	require.Equal(t, 2, ra.unreachable(99))
	require.Equal(t, 1, ra.snapshotReports(raft.SnapshotFailure))
	require.Equal(t, float64(3), mustMetric(t, a.reg, "elastickv_raft_dispatch_unroutable_total", map[string]string{"reason": unroutableUnknownPeer}))
	require.Equal(t, float64(2), mustMetric(t, a.reg, "elastickv_raft_dispatch_unroutable_total", map[string]string{"reason": unroutableLocal}))
	require.Zero(t, ra.unreachable(2), "local messages are not reported")
}

func TestDispatchMetricSeriesFollowPeers(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := testConfig(t, 1, mode)
			cfg.PeerName = func(id uint64) string { return "n" + strconv.FormatUint(id, 10) }
			a := startNode(t, cfg, nil)
			b := startNode(t, testConfig(t, 2, mode), nil)
			names := []string{"elastickv_raft_dispatch_drop_total", "elastickv_raft_dispatch_errors_total", "elastickv_raft_dispatch_queue_depth"}
			a.tr.AddPeer(2, b.addr)
			for _, l := range mode.Lanes() {
				for _, n := range names {
					require.Zero(t, mustMetric(t, a.reg, n, map[string]string{"peer": "n2", "lane": l.String()}), "%s %s", n, l)
				}
			}
			a.tr.RemovePeer(2)
			for _, l := range FourLanes.Lanes() {
				for _, n := range names {
					_, ok := metricValue(t, a.reg, n, map[string]string{"peer": "n2", "lane": l.String()})
					require.False(t, ok, "%s %s survives RemovePeer", n, l)
				}
			}
		})
	}
}

func TestDispatchPeerRemovalClosesEveryLane(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			a := startNode(t, testConfig(t, 1, mode), nil)
			b := startNode(t, testConfig(t, 2, mode), nil)
			ra, rb := newRecorder(), newRecorder()
			a.tr.Register(7, ra)
			b.tr.Register(7, rb)
			// Everything running now (servers, test runner) may stay; what
			// AddPeer starts must be gone after RemovePeer.
			base := goleak.IgnoreCurrent()

			a.tr.AddPeer(2, b.addr)
			a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1), snapMsg(1, 2, []byte("s")), msg(raftpb.MsgTransferLeader, 1, 2)})
			waitFor(t, "traffic on every lane", func() bool {
				return rb.count(raftpb.MsgHeartbeat) == 1 && rb.count(raftpb.MsgApp) == 1 &&
					rb.count(raftpb.MsgSnap) == 1 && rb.count(raftpb.MsgTransferLeader) == 1 &&
					ra.snapshotReports(raft.SnapshotFinish) == 1
			})
			a.tr.RemovePeer(2)
			require.NoError(t, goleak.Find(base), "lane workers, streams or connections outlived RemovePeer")

			a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), snapMsg(1, 2, []byte("s"))})
			require.Equal(t, 1, ra.unreachable(2))
			require.Equal(t, 1, ra.snapshotReports(raft.SnapshotFailure))
			a.tr.RemovePeer(2) // idempotent

			// The peer can come back.
			a.tr.AddPeer(2, b.addr)
			a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
			waitFor(t, "traffic after re-adding", func() bool { return rb.count(raftpb.MsgHeartbeat) == 2 })
		})
	}
}

func TestDispatchAddPeerNewAddress(t *testing.T) {
	a, _, _, rb := pair(t, FourLanes, nil, nil)
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1)})
	waitFor(t, "first address", func() bool { return rb.count(raftpb.MsgHeartbeat) == 1 && rb.count(raftpb.MsgApp) == 1 })

	b2 := startNode(t, testConfig(t, 2, FourLanes), nil)
	rb2 := newRecorder()
	b2.tr.Register(7, rb2)
	a.tr.AddPeer(2, b2.addr)
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 2)})
	waitFor(t, "second address", func() bool { return rb2.count(raftpb.MsgHeartbeat) == 1 && rb2.count(raftpb.MsgApp) == 1 })
}

func TestDispatchRefusesNonLoopbackPeer(t *testing.T) {
	a := startNode(t, testConfig(t, 1, FourLanes), nil)
	r := newRecorder()
	a.tr.Register(7, r)
	a.tr.AddPeer(2, "10.1.2.3:7000")
	a.tr.AddPeer(1, "127.0.0.1:7000") // self
	a.tr.AddPeer(3, "not-an-address")
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), msg(raftpb.MsgHeartbeat, 1, 3)})
	require.Equal(t, 1, r.unreachable(2))
	require.Equal(t, 1, r.unreachable(3))
}

func TestDispatchStalledPeerReportsUnreachable(t *testing.T) {
	a, b, ra, rb := pair(t, FourLanes, func(c *Config) { c.SendTimeout = 300 * time.Millisecond }, nil)
	rb.mu.Lock()
	rb.block = make(chan struct{})
	block := rb.block
	rb.mu.Unlock()
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	t.Cleanup(unblock)

	// The receiver stops reading; HTTP/2 flow control fills up and the
	// sender's writes stall until the watchdog tears the stream down.
	big := make([]byte, 32<<10)
	waitFor(t, "stuck peer reported unreachable", func() bool {
		m := msg(raftpb.MsgHeartbeat, 1, 2)
		m.Context = big
		a.tr.Send(7, []*raftpb.Message{m})
		return ra.unreachable(2) > 0
	})
	require.Positive(t, mustMetric(t, a.reg, "elastickv_raft_dispatch_errors_total", map[string]string{"peer": "2", "lane": "heartbeat"}))
	unblock()
	_ = b
}

func TestDispatchSnapshotRoundTrip(t *testing.T) {
	payload := make([]byte, 5<<20+12345)
	for i := range payload {
		payload[i] = byte(i*7 + i>>11)
	}
	for _, mode := range allModes {
		t.Run(mode.String()+"/store", func(t *testing.T) {
			a, b, _, _ := pair(t, mode, nil, nil)
			sa, sb := newStoreRecorder(payload), newStoreRecorder(nil)
			a.tr.Register(7, sa)
			b.tr.Register(7, sb)
			a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, []byte("descriptor"))})
			waitFor(t, "snapshot finished", func() bool { return sa.snapshotReports(raft.SnapshotFinish) == 1 })
			got := sb.receivedPayloads()
			require.Len(t, got, 1)
			require.Equal(t, payload, got[0])
			stepped := sb.ofType(raftpb.MsgSnap)
			require.Len(t, stepped, 1)
			require.Equal(t, []byte("descriptor"), stepped[0].GetSnapshot().GetData(), "the store's descriptor travels in the message")
			require.Equal(t, uint64(100), stepped[0].GetSnapshot().GetMetadata().GetIndex())
			require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
			require.Equal(t, float64(1), mustMetric(t, b.reg, "elastickv_raft_snapshot_transfers_total", map[string]string{"direction": "receive", "result": "ok"}))
		})
		t.Run(mode.String()+"/inline", func(t *testing.T) {
			a, b, ra, rb := pair(t, mode, func(c *Config) { c.SnapshotChunkBytes = 256 << 10 }, nil)
			a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, payload)})
			waitFor(t, "snapshot finished", func() bool { return ra.snapshotReports(raft.SnapshotFinish) == 1 })
			stepped := rb.ofType(raftpb.MsgSnap)
			require.Len(t, stepped, 1)
			require.Equal(t, payload, stepped[0].GetSnapshot().GetData())
			require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
		})
	}
}

func TestDispatchSnapshotRateLimited(t *testing.T) {
	payload := make([]byte, 200<<10)
	a, _, ra, rb := pair(t, FourLanes, func(c *Config) {
		c.SnapshotChunkBytes = 32 << 10
		c.SnapshotRateBytesPerSec = 1 << 20
	}, nil)
	a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, payload)})
	waitFor(t, "throttled snapshot finished", func() bool { return ra.snapshotReports(raft.SnapshotFinish) == 1 })
	require.Len(t, rb.ofType(raftpb.MsgSnap)[0].GetSnapshot().GetData(), len(payload))
}

func TestDispatchSnapshotRefusedByReceiver(t *testing.T) {
	a, _, ra, rb := pair(t, FourLanes, nil, nil)
	rb.mu.Lock()
	rb.stepErr = errors.New("group stopping")
	rb.mu.Unlock()
	a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, []byte("payload"))})
	waitFor(t, "failure reported", func() bool { return ra.snapshotReports(raft.SnapshotFailure) == 1 })
	require.Zero(t, ra.snapshotReports(raft.SnapshotFinish), "finish only once the receiver accepted")
}

// rawClient dials n's server directly, to send what a correct peer never would.
func rawClient(t *testing.T, n *testNode) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+n.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpcraw.CallOption()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// rawSnapshot sends frames on one Snapshot RPC and returns its outcome.
func rawSnapshot(t *testing.T, cc *grpc.ClientConn, frames ...[]byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamSnapshot], methodSnapshot)
	require.NoError(t, err)
	for _, f := range frames {
		if err := cs.SendMsg(&grpcraw.Frame{Data: f}); err != nil {
			break // the server gave up; RecvMsg has the status
		}
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	return cs.RecvMsg(&grpcraw.Frame{})
}

func TestDispatchSnapshotCorruptStreamRejected(t *testing.T) {
	_, b, _, rb := pair(t, FourLanes, nil, nil)
	sb := newStoreRecorder(nil)
	b.tr.Register(8, sb)
	cc := rawClient(t, b)

	payload := []byte("0123456789")
	hdrMsg, err := proto.Marshal(snapMsg(1, 2, nil))
	require.NoError(t, err)
	header := func(group uint64, size int64) []byte {
		return encodeSnapshotHeader(snapshotHeader{group: group, size: size, msg: hdrMsg})
	}
	chunk := func(p []byte) []byte { return append([]byte{snapChunk}, p...) }
	good := crc32Of(payload)

	cases := map[string]struct {
		frames [][]byte
		code   codes.Code
	}{
		"bad checksum":      {[][]byte{header(7, 10), chunk(payload), encodeSnapshotTrailer(good^1, 10)}, codes.DataLoss},
		"truncated":         {[][]byte{header(7, 10), chunk(payload[:5])}, codes.InvalidArgument},
		"short trailer":     {[][]byte{header(7, 10), chunk(payload[:5]), encodeSnapshotTrailer(crc32Of(payload[:5]), 5)}, codes.InvalidArgument},
		"longer than said":  {[][]byte{header(7, 4), chunk(payload)}, codes.InvalidArgument},
		"no header":         {nil, codes.InvalidArgument},
		"garbage header":    {[][]byte{{snapHeader, 1, 2}}, codes.InvalidArgument},
		"not a MsgSnap":     {[][]byte{encodeSnapshotHeader(snapshotHeader{group: 7, size: 0, msg: mustMarshal(t, appMsg(1, 2, 1))})}, codes.InvalidArgument},
		"unknown frame":     {[][]byte{header(7, 10), {'Z', 1}}, codes.InvalidArgument},
		"unknown group":     {[][]byte{header(99, 10), chunk(payload), encodeSnapshotTrailer(good, 10)}, codes.NotFound},
		"store bad crc":     {[][]byte{header(8, 10), chunk(payload), encodeSnapshotTrailer(good^1, 10)}, codes.DataLoss},
		"store truncated":   {[][]byte{header(8, 10), chunk(payload[:3])}, codes.InvalidArgument},
		"negative size":     {[][]byte{header(7, -1)}, codes.InvalidArgument},
		"garbage trailer":   {[][]byte{header(7, 10), chunk(payload), {snapTrailer, 1}}, codes.InvalidArgument},
		"proto in header":   {[][]byte{append(header(7, 0)[:snapHeaderFixed], 0xff, 0xff, 0xff)}, codes.InvalidArgument},
		"wrong destination": {[][]byte{encodeSnapshotHeader(snapshotHeader{group: 7, size: 0, msg: mustMarshal(t, snapMsg(1, 3, nil))})}, codes.InvalidArgument},
	}
	for name, tc := range cases {
		err := rawSnapshot(t, cc, tc.frames...)
		require.Error(t, err, name)
		require.Equal(t, tc.code, status.Code(err), "%s: %v", name, err)
	}
	require.Zero(t, rb.count(raftpb.MsgSnap), "nothing stepped")
	require.Zero(t, sb.count(raftpb.MsgSnap), "nothing handed to the store")
	require.Empty(t, sb.receivedPayloads())
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir), "spool files removed")

	// The good stream still works, for both kinds of handler.
	require.NoError(t, rawSnapshot(t, cc, header(7, 10), chunk(payload), encodeSnapshotTrailer(good, 10)))
	require.NoError(t, rawSnapshot(t, cc, header(8, 10), chunk(payload), encodeSnapshotTrailer(good, 10)))
	require.Equal(t, payload, rb.ofType(raftpb.MsgSnap)[0].GetSnapshot().GetData())
	require.Equal(t, [][]byte{payload}, sb.receivedPayloads())
	require.Empty(t, spoolEntries(t, b.cfg.SpoolDir))
}

func TestDispatchGarbageFramesFromPeer(t *testing.T) {
	a, b, _, rb := pair(t, FourLanes, nil, nil)
	cc := rawClient(t, b)
	good := mustMarshal(t, msg(raftpb.MsgHeartbeat, 1, 2))
	env := func(group uint64, m []byte) []byte { return appendEnvelope(newBatch(64), group, 0, m) }
	garbage := map[string][]byte{
		"empty":              {},
		"bad version":        {9, 1, 2, 3},
		"short header":       {batchVersion, 1, 2, 3},
		"length beyond end":  append(env(7, good)[:1+envelopeHeader-1], 0xff),
		"huge length":        {batchVersion, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		"not protobuf":       env(7, []byte{0xff, 0xff, 0xff, 0xff}),
		"truncated protobuf": env(7, good[:len(good)-1]),
	}
	for name, frame := range garbage {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamMessages], methodMessages)
		require.NoError(t, err)
		_ = cs.SendMsg(&grpcraw.Frame{Data: frame})
		_ = cs.CloseSend()
		err = cs.RecvMsg(&grpcraw.Frame{})
		cancel()
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}
	require.Equal(t, float64(len(garbage)), mustMetric(t, b.reg, "elastickv_raft_inbound_dropped_total", map[string]string{"reason": inboundMalformed}))

	// Well-formed but undeliverable messages are dropped, not errors.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamMessages], methodMessages)
	require.NoError(t, err)
	frame := newBatch(256)
	frame = appendEnvelope(frame, 7, 0, mustMarshal(t, msg(raftpb.MsgHup, 1, 2)))
	frame = appendEnvelope(frame, 7, 0, mustMarshal(t, msg(raftpb.MsgHeartbeat, 1, 3)))
	frame = appendEnvelope(frame, 7, 0, mustMarshal(t, snapMsg(1, 2, []byte("x"))))
	frame = appendEnvelope(frame, 7, 0, good)
	require.NoError(t, cs.SendMsg(&grpcraw.Frame{Data: frame}))
	require.NoError(t, cs.CloseSend())
	require.NoError(t, cs.RecvMsg(&grpcraw.Frame{}))
	require.Equal(t, 1, rb.count(raftpb.MsgHeartbeat))
	require.Zero(t, rb.count(raftpb.MsgHup))
	require.Zero(t, rb.count(raftpb.MsgSnap))
	for _, r := range []string{inboundLocalType, inboundWrongTo, inboundSnapOnStream} {
		require.Equal(t, float64(1), mustMetric(t, b.reg, "elastickv_raft_inbound_dropped_total", map[string]string{"reason": r}), r)
	}

	// The real peer is unaffected.
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
	waitFor(t, "peer traffic after garbage", func() bool { return rb.count(raftpb.MsgHeartbeat) == 2 })
}

func TestDispatchDecodeBatchNeverPanics(t *testing.T) {
	good := appendEnvelope(newBatch(64), 3, 42, []byte("hello"))
	good = appendEnvelope(good, 4, 43, nil)
	var got []envelope
	require.NoError(t, decodeBatch(good, func(e envelope) error { got = append(got, e); return nil }))
	require.Equal(t, []envelope{{group: 3, sentAt: 42, msg: []byte("hello")}, {group: 4, sentAt: 43, msg: []byte{}}}, got)

	// Every prefix and every single-byte corruption decodes or errors.
	for i := 0; i <= len(good); i++ {
		_ = decodeBatch(good[:i], func(envelope) error { return nil })
		_, _ = decodeSnapshotHeader(good[:i])
		_, _, _ = decodeSnapshotTrailer(good[:i])
	}
	for i := range good {
		for _, v := range []byte{0, 0x7f, 0xff} {
			c := append([]byte(nil), good...)
			c[i] = v
			_ = decodeBatch(c, func(envelope) error { return nil })
		}
	}
}

func TestDispatchCloseIsIdempotentAndFinal(t *testing.T) {
	a, _, ra, _ := pair(t, FourLanes, nil, nil)
	require.NoError(t, a.tr.Close())
	require.NoError(t, a.tr.Close())
	a.tr.Send(7, []*raftpb.Message{snapMsg(1, 2, []byte("s")), msg(raftpb.MsgHeartbeat, 1, 2)})
	require.Equal(t, 1, ra.snapshotReports(raft.SnapshotFailure))
	require.Equal(t, 1, ra.unreachable(2))
	a.tr.AddPeer(3, "127.0.0.1:1") // ignored after Close
	require.Equal(t, float64(2), mustMetric(t, a.reg, "elastickv_raft_dispatch_unroutable_total", map[string]string{"reason": unroutableClosed}))
}

func TestDispatchHeartbeatDeliveryDelayObserved(t *testing.T) {
	a, b, _, rb := pair(t, FourLanes, nil, nil)
	for i := 0; i < 10; i++ {
		a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), msg(raftpb.MsgVote, 1, 2)})
	}
	waitFor(t, "delivered", func() bool { return rb.count(raftpb.MsgHeartbeat) == 10 && rb.count(raftpb.MsgVote) == 10 })
	require.Equal(t, float64(10), mustMetric(t, b.reg, "elastickv_raft_heartbeat_delivery_delay_seconds", nil))
}

func mustMarshal(t *testing.T, m *raftpb.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	require.NoError(t, err)
	return b
}

func crc32Of(b []byte) uint32 {
	h := newCRC()
	h.Write(b)
	return h.Sum32()
}

func TestDispatchSnapshotBackoffOnlyOnNetworkFailure(t *testing.T) {
	require.True(t, isNetworkFailure(fmt.Errorf("send chunk: %w", errSendStalled)))
	require.True(t, isNetworkFailure(fmt.Errorf("open: %w", status.Error(codes.Unavailable, "down"))))
	require.True(t, isNetworkFailure(fmt.Errorf("ack: %w", status.Error(codes.DeadlineExceeded, "slow"))))
	require.False(t, isNetworkFailure(fmt.Errorf("ack: %w", status.Error(codes.Aborted, "group refused"))))
	require.False(t, isNetworkFailure(fmt.Errorf("ack: %w", status.Error(codes.DataLoss, "checksum"))))
	require.False(t, isNetworkFailure(errors.New("open snapshot payload: disk on fire")))
}

func TestDispatchReconnectsAfterPeerRestart(t *testing.T) {
	for _, mode := range allModes {
		t.Run(mode.String(), func(t *testing.T) {
			a, b, ra, rb := pair(t, mode, nil, nil)
			a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1)})
			waitFor(t, "first delivery", func() bool { return rb.count(raftpb.MsgHeartbeat) == 1 && rb.count(raftpb.MsgApp) == 1 })

			b.stop()
			// While b is down, sends fail and are reported, never block.
			waitFor(t, "peer down reported", func() bool {
				a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
				return ra.unreachable(2) > 0
			})

			b2 := startNodeAt(t, testConfig(t, 2, mode), b.addr, nil)
			rb2 := newRecorder()
			b2.tr.Register(7, rb2)
			waitFor(t, "delivery after restart", func() bool {
				a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 2)})
				return rb2.count(raftpb.MsgHeartbeat) > 0 && rb2.count(raftpb.MsgApp) > 0
			})
			require.Positive(t, mustMetric(t, a.reg, "elastickv_raft_dispatch_errors_total", map[string]string{"peer": "2", "lane": "heartbeat"}))
		})
	}
}
