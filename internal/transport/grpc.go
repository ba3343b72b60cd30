package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// The gRPC service, defined by hand: payloads are grpcraw frames (see
// envelope.go for their layout), so there is no .proto file.
const (
	serviceName     = "elastickv.transport.v1.RaftTransport"
	methodMessages  = "/" + serviceName + "/Messages"
	methodSnapshot  = "/" + serviceName + "/Snapshot"
	streamMessages  = 0
	streamSnapshot  = 1
	spoolFilePrefix = "raft-snap-"
	spoolFileSuffix = ".part"
)

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		streamMessages: {
			StreamName:    "Messages",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(*GRPC).serveMessages(ss) },
			ClientStreams: true,
		},
		streamSnapshot: {
			StreamName:    "Snapshot",
			Handler:       func(srv any, ss grpc.ServerStream) error { return srv.(*GRPC).serveSnapshot(ss) },
			ClientStreams: true,
		},
	},
	Metadata: "internal/transport/grpc.go",
}

// GRPC is the gRPC implementation of Transport. The node owns the
// *grpc.Server and its listener (other services share them): it builds the
// server with Config.ServerOptions and calls RegisterService. GRPC dials
// its peers itself.
type GRPC struct {
	cfg     Config
	log     *limitedLogger
	met     *metrics
	limiter *rate.Limiter // nil: snapshots unthrottled
	admit   *snapshotAdmission

	done      chan struct{} // closed by Close; ends inbound streams
	closeOnce sync.Once

	// peerOps serialises AddPeer, RemovePeer and Close end to end, so a
	// peer re-added while its predecessor is being retired cannot lose its
	// metric series to the predecessor's cleanup. Send never takes it.
	peerOps sync.Mutex

	// mu guards peers. Send holds it shared while queueing, so RemovePeer
	// (exclusive) knows no message can enter a lane it is closing.
	mu     sync.RWMutex
	peers  map[uint64]*peer
	closed bool

	groupsMu sync.RWMutex
	groups   map[uint64]Handler

	// clusterFormat is the cluster's log format version (SetClusterFormat);
	// it only rises. fmtMu guards formats, the peers' adverts (format.go).
	clusterFormat atomic.Uint32
	fmtMu         sync.Mutex
	formats       map[uint64]peerFormat

	hooks testHooks
}

var _ Transport = (*GRPC)(nil)

// testHooks let in-package tests and the benchmark observe or stall the
// transport. All nil in production.
type testHooks struct {
	// beforeSend runs in a lane worker before each stream write.
	beforeSend func(peer uint64, lane Lane)
	// delivered runs for every inbound message before it is stepped.
	delivered func(group uint64, m *raftpb.Message, sent, received time.Time)
	// dropped runs for every message dropped because its lane was full.
	dropped func(peer uint64, lane Lane, t raftpb.MessageType)
}

// New validates cfg and returns a transport with no peers. It creates
// cfg.SpoolDir if needed and deletes spool files a previous run left behind.
func New(cfg Config) (*GRPC, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, fmt.Errorf("create snapshot spool dir: %w", err)
	}
	stale, err := filepath.Glob(filepath.Join(cfg.SpoolDir, spoolFilePrefix+"*"+spoolFileSuffix))
	if err != nil {
		return nil, fmt.Errorf("list snapshot spool dir: %w", err)
	}
	for _, f := range stale {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("remove stale snapshot spool file: %w", err)
		}
	}
	met, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	t := &GRPC{
		cfg:     cfg,
		log:     newLimitedLogger(cfg.Logger.With(slog.String("component", "raft-transport"))),
		met:     met,
		done:    make(chan struct{}),
		peers:   make(map[uint64]*peer),
		groups:  make(map[uint64]Handler),
		formats: make(map[uint64]peerFormat),
	}
	t.admit = newSnapshotAdmission(cfg.Limits, cfg.SpoolDir, met)
	if cfg.SnapshotRateBytesPerSec > 0 {
		// Burst of one chunk: WaitN never asks for more than that.
		t.limiter = rate.NewLimiter(rate.Limit(cfg.SnapshotRateBytesPerSec), cfg.SnapshotChunkBytes)
	}
	return t, nil
}

// RegisterService registers the transport's gRPC service on s. The server
// must be built with Config.ServerOptions (codec and size limits).
func (t *GRPC) RegisterService(s grpc.ServiceRegistrar) {
	s.RegisterService(&serviceDesc, t)
}

// dialOptions are shared by every connection the transport opens.
func (t *GRPC) dialOptions() []grpc.DialOption {
	limit := t.cfg.grpcMessageLimit()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(
			grpcraw.CallOption(),
			grpc.MaxCallSendMsgSize(limit),
			grpc.MaxCallRecvMsgSize(limit),
		),
		// gRPC's own reconnect backoff defaults to a 120s ceiling; a
		// restarted peer must be back within about an election timeout.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  50 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   time.Second,
			},
			MinConnectTimeout: t.cfg.DialTimeout,
		}),
	}
	if t.cfg.KeepaliveInterval > 0 {
		opts = append(opts, grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                t.cfg.KeepaliveInterval,
			Timeout:             t.cfg.KeepaliveInterval,
			PermitWithoutStream: true,
		}))
	}
	return opts
}

// Register routes inbound messages of group to h (nil unregisters).
func (t *GRPC) Register(group uint64, h Handler) {
	t.groupsMu.Lock()
	defer t.groupsMu.Unlock()
	if h == nil {
		delete(t.groups, group)
		return
	}
	t.groups[group] = h
	if o, ok := h.(FormatObserver); ok {
		// Outside groupsMu would be nicer, but replaying under it keeps a
		// concurrent notePeerFormat from being missed; PeerFormat returns
		// at once by contract.
		t.replayFormats(o)
	}
}

// Unregister stops routing group's messages; its queued outbound messages
// are still sent, but their outcomes are no longer reported.
func (t *GRPC) Unregister(group uint64) {
	t.groupsMu.Lock()
	defer t.groupsMu.Unlock()
	delete(t.groups, group)
}

func (t *GRPC) handler(group uint64) Handler {
	t.groupsMu.RLock()
	defer t.groupsMu.RUnlock()
	return t.groups[group]
}

// AddPeer makes peer id reachable at addr (host:port). The peer's lanes
// and their metric series exist from this call on; connections are opened
// on first use. Re-adding a peer with a new address redirects its lanes
// without losing what is queued. Unless Config.AllowNonLoopback is set,
// only loopback addresses are accepted (the transport has no TLS).
func (t *GRPC) AddPeer(id uint64, addr string) {
	log := t.cfg.Logger.With(slog.String("peer", t.cfg.peerName(id)), slog.String("addr", addr))
	if id == 0 || id == t.cfg.LocalID {
		log.Error("raft transport: refusing to add self or id 0 as peer")
		return
	}
	if err := t.checkAddr(addr); err != nil {
		log.Error("raft transport: refusing peer address", slog.Any("err", err))
		return
	}
	t.peerOps.Lock()
	defer t.peerOps.Unlock()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if p, ok := t.peers[id]; ok {
		t.mu.Unlock()
		p.setAddr(addr)
		return
	}
	p := t.newPeer(id, addr)
	t.peers[id] = p
	p.start()
	t.mu.Unlock()
	log.Info("raft transport: peer added", slog.String("lanes", t.cfg.Lanes.String()))
}

func (t *GRPC) checkAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("peer address %q: %w", addr, err)
	}
	if t.cfg.AllowNonLoopback || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("peer address %q is not loopback and AllowNonLoopback is off", addr)
	}
	return nil
}

// RemovePeer closes every lane of peer id and waits for their workers;
// queued messages are reported as to an unknown peer (ReportUnreachable,
// SnapshotFailure for MsgSnap). Later messages to id are dropped and
// reported the same way. The peer's metric series are deleted.
func (t *GRPC) RemovePeer(id uint64) {
	t.peerOps.Lock()
	defer t.peerOps.Unlock()
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p == nil {
		return
	}
	t.retire(p)
	t.cfg.Logger.Info("raft transport: peer removed", slog.String("peer", p.name))
}

// retire stops a peer that is no longer in the peer map.
func (t *GRPC) retire(p *peer) {
	p.stop()
	for _, l := range p.lanes {
		if l != nil {
			t.met.deleteLane(p.name, l.kind)
		}
	}
	t.met.deletePeer(p.name)
	t.log.forget(p.id)
	t.forgetPeerFormat(p.id)
}

// Close stops every lane, waits for every worker, ends inbound streams and
// refuses new ones. It is idempotent. The gRPC server is the node's to stop.
func (t *GRPC) Close() error {
	t.closeOnce.Do(func() {
		t.peerOps.Lock()
		defer t.peerOps.Unlock()
		close(t.done)
		t.mu.Lock()
		t.closed = true
		peers := t.peers
		t.peers = make(map[uint64]*peer)
		t.mu.Unlock()
		// Cancel all first so the peers wind down in parallel.
		for _, p := range peers {
			p.cancel()
		}
		for _, p := range peers {
			t.retire(p)
		}
	})
	return nil
}

// pendingReport is an outcome to tell a group, delivered outside t.mu.
type pendingReport struct {
	group, peer uint64
	kind        dropReport
}

func (t *GRPC) report(r pendingReport) {
	if r.kind == reportNothing {
		return
	}
	h := t.handler(r.group)
	if h == nil {
		return
	}
	switch r.kind {
	case reportNothing:
		// Returned above, before the handler lookup.
	case reportUnreachable:
		h.ReportUnreachable(r.peer)
	case reportSnapshotFailure:
		h.ReportSnapshot(r.peer, raft.SnapshotFailure)
	}
}

// Send queues msgs of group, each in its peer's lane for its type. It
// never blocks: a message whose lane is full is dropped (the lane is
// checked before the message is marshalled, so an overloaded lane costs
// almost nothing), counted in elastickv_raft_dispatch_drop_total and
// reported per reportForLocalDrop. Local message types are dropped and
// logged. Send marshals each message, so the caller may reuse msgs at once.
// Heartbeat-lane types are queued before the rest of msgs.
func (t *GRPC) Send(group uint64, msgs []*raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	var reports []pendingReport
	t.mu.RLock()
	// Heartbeat-lane messages first: marshalling a Ready's worth of MsgApp
	// can take milliseconds, and a heartbeat must not wait for it. Only
	// per-type order matters, and it is kept within each pass.
	for pass := 0; pass < 2; pass++ {
		priority := pass == 0
		for _, m := range msgs {
			if IsPriority(m.GetType()) != priority {
				continue
			}
			if r := t.enqueue(group, m, now); r.kind != reportNothing {
				reports = append(reports, r)
			}
		}
	}
	t.mu.RUnlock()
	// Handlers are called outside the lock: one may re-enter the transport.
	for _, r := range reports {
		t.report(r)
	}
}

// enqueue queues one message; t.mu is held shared.
func (t *GRPC) enqueue(group uint64, m *raftpb.Message, now time.Time) pendingReport {
	typ := m.GetType()
	to := m.GetTo()
	c := classify(typ)
	switch {
	case c.local:
		t.met.unroutable.WithLabelValues(unroutableLocal).Inc()
		t.log.logf(slog.LevelWarn, logKey{event: "local-msg"}, "raft transport: dropping local message type",
			slog.Uint64("group", group), slog.String("type", typ.String()))
		return pendingReport{}
	case !c.known:
		t.log.logf(slog.LevelWarn, logKey{event: "unknown-type"}, "raft transport: unknown message type, routing to other lane",
			slog.Uint64("group", group), slog.String("type", typ.String()))
	case typ == raftpb.MsgProp:
		t.log.logf(slog.LevelInfo, logKey{event: "msgprop"}, "raft transport: forwarding MsgProp (is DisableProposalForwarding off?)",
			slog.Uint64("group", group), slog.String("peer", t.cfg.peerName(to)))
	}
	if t.closed {
		t.met.unroutable.WithLabelValues(unroutableClosed).Inc()
		return pendingReport{group: group, peer: to, kind: reportForUnknownPeer(typ)}
	}
	p := t.peers[to]
	if p == nil {
		t.met.unroutable.WithLabelValues(unroutableUnknownPeer).Inc()
		t.log.logf(slog.LevelWarn, logKey{event: "unknown-peer", peer: to}, "raft transport: message to unknown peer dropped",
			slog.Uint64("group", group), slog.String("peer", t.cfg.peerName(to)), slog.String("type", typ.String()))
		return pendingReport{group: group, peer: to, kind: reportForUnknownPeer(typ)}
	}
	l := p.lanes[laneFor(t.cfg.Lanes, typ)]
	if len(l.ch) >= cap(l.ch) {
		return l.dropFull(group, typ)
	}
	// Heartbeat-lane types are exempt from the byte budget (see
	// Limits.PeerQueueBytes); the check is by type so it holds in every
	// lane layout.
	charged := !IsPriority(typ)
	if charged && p.budgetFull() {
		return l.dropBudget(group, typ) // before paying for the marshal
	}
	data, err := proto.Marshal(m)
	if err == nil && typ != raftpb.MsgSnap && len(data) > t.cfg.MaxMessageBytes {
		err = fmt.Errorf("marshalled size %d exceeds MaxMessageBytes %d", len(data), t.cfg.MaxMessageBytes)
	}
	if err != nil {
		l.met.errors.Inc()
		t.log.logf(slog.LevelError, logKey{event: "marshal", peer: to, lane: l.kind}, "raft transport: cannot send message",
			slog.Uint64("group", group), slog.String("peer", p.name), slog.String("type", typ.String()), slog.Any("err", err))
		return pendingReport{group: group, peer: to, kind: reportForLocalDrop(typ)}
	}
	if charged && !p.charge(len(data)) {
		return l.dropBudget(group, typ)
	}
	select {
	case l.ch <- outMsg{group: group, typ: typ, data: data, queued: now, charged: charged}:
		l.met.depth.Set(float64(len(l.ch)))
		return pendingReport{}
	default: // filled up since the check above
		if charged {
			p.uncharge(len(data))
		}
		return l.dropFull(group, typ)
	}
}

// dropBudget accounts for a message that did not fit the peer's byte
// budget. The group hears what it would for a full lane: the effect, a
// message that never reached the wire, is the same.
func (l *lane) dropBudget(group uint64, typ raftpb.MessageType) pendingReport {
	l.met.budgetDrops.Inc()
	if h := l.t.hooks.dropped; h != nil {
		h(l.p.id, l.kind, typ)
	}
	l.t.log.logf(slog.LevelWarn, logKey{event: "peer-budget", peer: l.p.id, lane: l.kind}, "raft transport: peer queue byte budget full, message dropped",
		slog.String("peer", l.p.name), slog.String("lane", l.kind.String()),
		slog.Uint64("group", group), slog.String("type", typ.String()),
		slog.Int64("queued_bytes", l.p.queued.Load()), slog.Int64("budget", l.t.cfg.PeerQueueBytes))
	return pendingReport{group: group, peer: l.p.id, kind: reportForLocalDrop(typ)}
}

// dropFull accounts for a message that did not fit its lane.
func (l *lane) dropFull(group uint64, typ raftpb.MessageType) pendingReport {
	l.met.drops.Inc()
	if h := l.t.hooks.dropped; h != nil {
		h(l.p.id, l.kind, typ)
	}
	l.t.log.logf(slog.LevelWarn, logKey{event: "lane-full", peer: l.p.id, lane: l.kind}, "raft transport: lane full, message dropped",
		slog.String("peer", l.p.name), slog.String("lane", l.kind.String()),
		slog.Uint64("group", group), slog.String("type", typ.String()), slog.Int("buffer", cap(l.ch)))
	return pendingReport{group: group, peer: l.p.id, kind: reportForLocalDrop(typ)}
}

// recvResult is one frame read by recvFrames.
type recvResult struct {
	data []byte
	at   time.Time
	err  error
}

// recvFrames reads ss on its own goroutine so that the handler can also
// wait on t.done and timers (see serveMessages for why). The goroutine ends
// once stop was called and RecvMsg returns, which it does as soon as the
// handler has returned and gRPC cancelled the stream.
func recvFrames(ss grpc.ServerStream) (frames <-chan recvResult, stop func()) {
	out := make(chan recvResult)
	done := make(chan struct{})
	go func() {
		for {
			f := new(grpcraw.Frame)
			err := ss.RecvMsg(f)
			select {
			case out <- recvResult{data: f.Data, at: time.Now(), err: err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out, func() { close(done) }
}

// streamOrigin names the sending node of an inbound stream, for logs.
func streamOrigin(ss grpc.ServerStream) (from uint64, lane string) {
	md, _ := metadata.FromIncomingContext(ss.Context())
	if v := md.Get(mdFrom); len(v) > 0 {
		from, _ = strconv.ParseUint(v[0], 10, 64)
	}
	if v := md.Get(mdLane); len(v) > 0 {
		lane = v[0]
	}
	return from, lane
}

// serveMessages is the server side of one peer lane's Messages stream:
// decode each batch and step every message into its group, in order.
// Garbage ends the stream with InvalidArgument; the sender reconnects.
//
// Frames are read and delivered on a goroutine of their own (one hop, not
// two, between the network and Handler.Step), while the handler goroutine
// waits for that reader to finish or for the transport to close: a handler
// blocked in RecvMsg could not notice Close, and the node's GracefulStop
// would wait on it forever. The reader exits once it has reported, or when
// RecvMsg fails, which happens as soon as the handler returned and gRPC
// cancelled the stream.
func (t *GRPC) serveMessages(ss grpc.ServerStream) error {
	select {
	case <-t.done:
		return status.Error(codes.Unavailable, "raft transport closed")
	default:
	}
	from, laneName := streamOrigin(ss)
	t.sendAdvertHeader(ss)
	adv := parseStreamFormat(ss)
	t.notePeerFormat(from, adv)
	ended := make(chan error, 1)
	go func() {
		for {
			f := new(grpcraw.Frame)
			if err := ss.RecvMsg(f); err != nil {
				ended <- err
				return
			}
			if t.refuses(adv) {
				// Checked per frame: the raise may come while the
				// stream is open.
				t.refuse(from, adv, countEnvelopes(f.Data), "inbound")
				continue
			}
			if err := t.deliverBatch(f.Data, time.Now()); err != nil {
				t.met.inbound.WithLabelValues(inboundMalformed).Inc()
				t.log.logf(slog.LevelWarn, logKey{event: "garbage", peer: from}, "raft transport: malformed frame from peer, closing stream",
					slog.String("peer", t.cfg.peerName(from)), slog.String("lane", laneName), slog.Any("err", err))
				ended <- status.Errorf(codes.InvalidArgument, "raft transport: %v", err)
				return
			}
			select {
			case <-t.done:
				ended <- status.Error(codes.Unavailable, "raft transport closed")
				return
			default:
			}
		}
	}()
	select {
	case <-t.done:
		return status.Error(codes.Unavailable, "raft transport closed")
	case err := <-ended:
		if errors.Is(err, io.EOF) {
			return ss.SendMsg(&grpcraw.Frame{})
		}
		return err
	}
}

// deliverBatch decodes one frame and delivers its messages.
func (t *GRPC) deliverBatch(frame []byte, at time.Time) error {
	return decodeBatch(frame, func(env envelope) error {
		m := new(raftpb.Message)
		if err := proto.Unmarshal(env.msg, m); err != nil {
			return fmt.Errorf("%w: group %d: unmarshal raft message: %v", errMalformed, env.group, err)
		}
		t.deliver(env.group, env.sentAt, at, m)
		return nil
	})
}

// deliver checks one inbound message and steps it into its group.
func (t *GRPC) deliver(group uint64, sentAt int64, at time.Time, m *raftpb.Message) {
	typ := m.GetType()
	switch {
	case raftpb.MessageType_name[int32(typ)] == "":
		// A type raft does not define: raft.IsLocalMsg indexes a table
		// by it and panicked on a negative one (found by
		// FuzzEnvelopeDecode), so one message from any peer could crash
		// the node.
		t.dropInbound(inboundMalformed, group, m)
		return
	case raft.IsLocalMsg(typ):
		t.dropInbound(inboundLocalType, group, m)
		return
	case typ == raftpb.MsgSnap:
		// Snapshots only travel on the Snapshot stream, where their payload
		// is verified; a bare one would carry a descriptor, not the data.
		t.dropInbound(inboundSnapOnStream, group, m)
		return
	case m.GetTo() != t.cfg.LocalID:
		t.dropInbound(inboundWrongTo, group, m)
		return
	}
	sent := time.Unix(0, sentAt)
	if isHeartbeat(typ) {
		t.met.hbDelivery.Observe(max(0, at.Sub(sent).Seconds()))
	}
	if h := t.hooks.delivered; h != nil {
		h(group, m, sent, at)
	}
	h := t.handler(group)
	if h == nil {
		t.dropInbound(inboundUnknownGroup, group, m)
		return
	}
	if err := h.Step(m); err != nil {
		t.met.inbound.WithLabelValues(inboundStepRefused).Inc()
		t.log.logf(slog.LevelDebug, logKey{event: "step-refused", peer: m.GetFrom()}, "raft transport: group refused message",
			slog.Uint64("group", group), slog.String("peer", t.cfg.peerName(m.GetFrom())),
			slog.String("type", typ.String()), slog.Any("err", err))
	}
}

func (t *GRPC) dropInbound(reason string, group uint64, m *raftpb.Message) {
	t.met.inbound.WithLabelValues(reason).Inc()
	t.log.logf(slog.LevelWarn, logKey{event: "inbound-" + reason, peer: m.GetFrom()}, "raft transport: inbound message dropped",
		slog.String("reason", reason), slog.Uint64("group", group), slog.String("peer", t.cfg.peerName(m.GetFrom())),
		slog.String("type", m.GetType().String()), slog.Uint64("to", m.GetTo()))
}
