package transport

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/metadata"
)

// formatRecorder is a recorder that is also a FormatObserver.
type formatRecorder struct {
	*recorder
	fmu     sync.Mutex
	adverts map[uint64][]uint8 // every report, in order
}

func newFormatRecorder() *formatRecorder {
	return &formatRecorder{recorder: newRecorder(), adverts: map[uint64][]uint8{}}
}

func (r *formatRecorder) PeerFormat(id uint64, max uint8) {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	r.adverts[id] = append(r.adverts[id], max)
}

// last returns the last advert reported for id, 0 if none.
func (r *formatRecorder) last(id uint64) uint8 {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	a := r.adverts[id]
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1]
}

func (r *formatRecorder) reports(id uint64) int {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	return len(r.adverts[id])
}

func formatNode(t *testing.T, id uint64, max uint8) *testNode {
	cfg := testConfig(t, id, FourLanes)
	cfg.LocalMaxFormat = max
	cfg.PeerName = func(id uint64) string { return map[uint64]string{1: "n1", 2: "n2", 3: "n3"}[id] }
	return startNode(t, cfg, nil)
}

func TestParseFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		md   metadata.MD
		want uint8
	}{
		{"absent is the binary before adverts", metadata.MD{}, 1},
		{"nil metadata", nil, 1},
		{"two", metadata.Pairs(mdMaxFormat, "2"), 2},
		{"zero is not a format", metadata.Pairs(mdMaxFormat, "0"), 1},
		{"garbage", metadata.Pairs(mdMaxFormat, "two"), 1},
		{"out of range", metadata.Pairs(mdMaxFormat, "256"), 1},
		{"largest", metadata.Pairs(mdMaxFormat, "255"), 255},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, parseFormat(tc.md))
		})
	}
}

// TestPeerAdvertReachesObserver: the receiver of a stream learns the
// sender's maximum from it and tells its FormatObserver once, however
// many lanes open streams; a group registered later hears it on Register.
func TestPeerAdvertReachesObserver(t *testing.T) {
	a, b := formatNode(t, 1, 2), formatNode(t, 2, 2)
	rb := newFormatRecorder()
	b.tr.Register(7, rb)
	a.tr.AddPeer(2, b.addr)
	// Heartbeats and appends open two lanes' streams.
	a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1)})
	waitFor(t, "both messages", func() bool { return rb.count(raftpb.MsgHeartbeat) == 1 && rb.count(raftpb.MsgApp) == 1 })
	require.Equal(t, uint8(2), rb.last(1))
	require.Equal(t, 1, rb.reports(1), "the same advert on every lane is reported once")
	got, ok := b.tr.PeerFormat(1)
	require.True(t, ok)
	require.Equal(t, uint8(2), got)

	late := newFormatRecorder()
	b.tr.Register(8, late)
	require.Equal(t, uint8(2), late.last(1), "Register replays known adverts")
}

// TestSenderWithoutAdvertCountsAsFormat1: a sender that puts nothing in
// its metadata (the binary before adverts) is recorded and reported as 1,
// and its messages are delivered while the cluster format is 1.
func TestSenderWithoutAdvertCountsAsFormat1(t *testing.T) {
	old, b := formatNode(t, 1, 0), formatNode(t, 2, 2)
	rb := newFormatRecorder()
	b.tr.Register(7, rb)
	old.tr.AddPeer(2, b.addr)
	old.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
	waitFor(t, "heartbeat", func() bool { return rb.count(raftpb.MsgHeartbeat) == 1 })
	require.Equal(t, uint8(1), rb.last(1))
}

// TestInboundFromPeerBelowClusterFormatIsDropped: after the raise, what a
// peer advertising a lower maximum (or none) sends is dropped and counted,
// while a peer that supports the format is still heard.
func TestInboundFromPeerBelowClusterFormatIsDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint8
	}{{"advertises 1", 1}, {"advertises nothing", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			low, b, good := formatNode(t, 1, tc.max), formatNode(t, 2, 2), formatNode(t, 3, 2)
			rb := newFormatRecorder()
			b.tr.Register(7, rb)
			b.tr.SetClusterFormat(2)
			b.tr.SetClusterFormat(1) // never lowered
			require.Equal(t, uint8(2), b.tr.ClusterFormat())
			low.tr.AddPeer(2, b.addr)
			b.tr.AddPeer(1, low.addr) // so the counter is labelled by name
			good.tr.AddPeer(2, b.addr)

			low.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2), appMsg(1, 2, 1), appMsg(1, 2, 2)})
			waitFor(t, "three refusals", func() bool {
				v, _ := metricValue(t, b.reg, "elastickv_transport_format_refused_total", map[string]string{"peer": "n1"})
				return v == 3
			})
			good.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 3, 2)})
			waitFor(t, "the good peer's heartbeat", func() bool { return len(rb.ofType(raftpb.MsgHeartbeat)) == 1 })
			for _, m := range rb.ofType(raftpb.MsgHeartbeat) {
				require.Equal(t, uint64(3), m.GetFrom())
			}
			require.Zero(t, rb.count(raftpb.MsgApp), "nothing of the low peer was stepped")
			require.Equal(t, uint8(1), rb.last(1))
		})
	}
}

// TestNothingIsSentToPeerBelowClusterFormat: after the raise, a node does
// not write to a peer whose response header advertises less than the
// cluster format, or that sends no header at all (the binary before
// adverts); the group hears ReportUnreachable and the drops are counted.
// Once the peer comes back with a binary that supports the format, the
// messages flow again.
func TestNothingIsSentToPeerBelowClusterFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint8
	}{{"advertises 1", 1}, {"advertises nothing", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			acfg := testConfig(t, 1, FourLanes)
			acfg.LocalMaxFormat = 2
			acfg.DialTimeout = 300 * time.Millisecond // bounds the wait for a header
			acfg.PeerName = func(id uint64) string { return map[uint64]string{1: "n1", 2: "n2"}[id] }
			a := startNode(t, acfg, nil)
			ra := newRecorder()
			a.tr.Register(7, ra)
			a.tr.SetClusterFormat(2)

			low := formatNode(t, 2, tc.max)
			rl := newRecorder()
			low.tr.Register(7, rl)
			a.tr.AddPeer(2, low.addr)

			a.tr.Send(7, []*raftpb.Message{appMsg(1, 2, 1)})
			waitFor(t, "a refusal", func() bool {
				v, _ := metricValue(t, a.reg, "elastickv_transport_format_refused_total", map[string]string{"peer": "n2"})
				return v >= 1
			})
			waitFor(t, "ReportUnreachable", func() bool { return ra.unreachable(2) >= 1 })
			require.Zero(t, rl.count(raftpb.MsgApp), "the low peer received nothing")
			got, ok := a.tr.PeerFormat(2)
			require.True(t, ok)
			require.Equal(t, uint8(1), got)

			// The peer is upgraded: same address, a binary that supports 2.
			addr := low.addr
			low.stop()
			upcfg := testConfig(t, 2, FourLanes)
			upcfg.LocalMaxFormat = 2
			up := startNodeAt(t, upcfg, addr, nil)
			ru := newRecorder()
			up.tr.Register(7, ru)
			waitFor(t, "delivery to the upgraded peer", func() bool {
				a.tr.Send(7, []*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2)})
				return ru.count(raftpb.MsgHeartbeat) > 0
			})
			got, _ = a.tr.PeerFormat(2)
			require.Equal(t, uint8(2), got)
		})
	}
}

// TestRaiseReChecksOpenStreams: a stream opened before the raise to a
// peer that advertises 1 is not used after it.
func TestRaiseReChecksOpenStreams(t *testing.T) {
	a, low := formatNode(t, 1, 2), formatNode(t, 2, 1)
	ra, rl := newRecorder(), newRecorder()
	a.tr.Register(7, ra)
	low.tr.Register(7, rl)
	a.tr.AddPeer(2, low.addr)
	a.tr.Send(7, []*raftpb.Message{appMsg(1, 2, 1)})
	waitFor(t, "delivery before the raise", func() bool { return rl.count(raftpb.MsgApp) == 1 })

	a.tr.SetClusterFormat(2)
	a.tr.Send(7, []*raftpb.Message{appMsg(1, 2, 2)})
	waitFor(t, "a refusal", func() bool {
		v, _ := metricValue(t, a.reg, "elastickv_transport_format_refused_total", map[string]string{"peer": "n2"})
		return v >= 1
	})
	require.Equal(t, 1, rl.count(raftpb.MsgApp), "nothing after the raise")
}

// lockedBuffer is a log sink safe for the transport's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// TestRefusalIsLoggedOncePerPeer: however many messages of a peer are
// refused, one Error line names the peer and both versions; it is logged
// again only after the peer advertised enough and then regressed.
func TestRefusalIsLoggedOncePerPeer(t *testing.T) {
	var logs lockedBuffer
	bcfg := testConfig(t, 2, FourLanes)
	bcfg.LocalMaxFormat = 2
	bcfg.PeerName = func(id uint64) string { return map[uint64]string{1: "n1", 2: "n2"}[id] }
	bcfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))
	b := startNode(t, bcfg, nil)
	b.tr.Register(7, newRecorder())
	b.tr.SetClusterFormat(2)
	low := formatNode(t, 1, 1)
	b.tr.AddPeer(1, low.addr)
	low.tr.AddPeer(2, b.addr)
	refused := func() float64 {
		v, _ := metricValue(t, b.reg, "elastickv_transport_format_refused_total", map[string]string{"peer": "n1"})
		return v
	}
	for i := range 5 {
		low.tr.Send(7, []*raftpb.Message{appMsg(1, 2, uint64(i))})
		waitFor(t, "the refusal", func() bool { return refused() == float64(i+1) })
	}
	require.Equal(t, 1, strings.Count(logs.String(), "level=ERROR"), logs.String())
	line := logs.String()
	for _, want := range []string{"peer=n1", "peer_max_format=1", "cluster_format=2"} {
		require.Contains(t, line, want)
	}

	// The peer comes back able, then regresses: logged again, once.
	b.tr.notePeerFormat(1, 2)
	b.tr.notePeerFormat(1, 1)
	low.tr.Send(7, []*raftpb.Message{appMsg(1, 2, 9)})
	waitFor(t, "the refusal", func() bool { return refused() == 6 })
	require.Equal(t, 2, strings.Count(logs.String(), "level=ERROR"), logs.String())
}
