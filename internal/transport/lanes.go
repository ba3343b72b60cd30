package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// Reconnect backoff of a lane whose stream failed. While it lasts, messages
// fail fast (reported unreachable) instead of piling up behind a dead peer:
// stale heartbeats and appends are worthless, Raft resends fresh ones.
const (
	minBackoff = 20 * time.Millisecond
	maxBackoff = time.Second
)

// maxBatchMessages bounds how many queued messages one stream write
// carries, so a deep queue cannot delay the worker's next check of ctx.
const maxBatchMessages = 512

// Stream metadata keys, informational only (logs on the receiver).
const (
	mdFrom = "x-elastickv-from"
	mdLane = "x-elastickv-lane"
)

var (
	errSendStalled = errors.New("stream write stalled")
	errBackoff     = errors.New("peer recently failed, backing off")
	errPeerClosed  = errors.New("peer removed")
)

// outMsg is one queued message. data is proto.Marshal of the group's
// message, made by Send so the group may reuse its message at once.
type outMsg struct {
	group  uint64
	typ    raftpb.MessageType
	data   []byte
	queued time.Time // Send time; its Unix nanos travel in the envelope
	// charged: len(data) counts against the peer's byte budget until the
	// message was dispatched or dropped.
	charged bool
}

// connClass names one gRPC connection (one TCP connection) to a peer.
type connClass uint8

const (
	// connHeartbeat carries only the heartbeat lane, so its bytes never
	// queue in TCP or HTTP/2 flow control behind bulk traffic.
	connHeartbeat connClass = iota
	// connData carries replication and other (or the legacy normal lane,
	// or the single lane).
	connData
	// connSnapshot carries only snapshot streams, which would otherwise
	// fill the shared connection's flow-control window for seconds.
	connSnapshot

	numConnClasses
)

func (c connClass) String() string {
	switch c {
	case connHeartbeat:
		return "heartbeat"
	case connSnapshot:
		return "snapshot"
	default:
		return "data"
	}
}

// connFor returns the connection lane l writes to.
func connFor(l Lane) connClass {
	switch l {
	case LaneHeartbeat:
		return connHeartbeat
	case LaneSnapshot:
		return connSnapshot
	default:
		return connData
	}
}

// peer is one remote node: its lanes, their workers and its connections.
// A peer is created by AddPeer and lives until RemovePeer or Close, which
// cancel ctx and wait for wg.
type peer struct {
	id     uint64
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	lanes  [numLanes]*lane
	conns  [numConnClasses]*peerConn
	wg     sync.WaitGroup

	// queued is the marshalled bytes of charged messages queued, held or
	// being dispatched by the lanes (Limits.PeerQueueBytes).
	// Invariant: queued <= budget, or queued is one message admitted into
	// an empty queue.
	queued     atomic.Int64
	budget     int64
	queueBytes prometheus.Gauge

	// advert is the peer's advertised maximum log format, 0 until the
	// transport heard one (format.go).
	advert atomic.Uint32
}

// budgetFull reports whether the peer's queue is at its byte budget.
func (p *peer) budgetFull() bool { return p.queued.Load() >= p.budget }

// charge admits n bytes into the peer's queue if they fit the budget or
// the queue is empty (so one message larger than the budget still goes).
func (p *peer) charge(n int) bool {
	for {
		cur := p.queued.Load()
		if cur > 0 && cur+int64(n) > p.budget {
			return false
		}
		if p.queued.CompareAndSwap(cur, cur+int64(n)) {
			p.queueBytes.Set(float64(cur + int64(n)))
			return true
		}
	}
}

// uncharge returns n bytes to the budget.
func (p *peer) uncharge(n int) {
	p.queueBytes.Set(float64(p.queued.Add(-int64(n))))
}

// settle returns the bytes of a message that left the queue.
func (p *peer) settle(m *outMsg) {
	if m.charged {
		p.uncharge(len(m.data))
	}
}

func (t *GRPC) newPeer(id uint64, addr string) *peer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &peer{id: id, name: t.cfg.peerName(id), ctx: ctx, cancel: cancel, budget: t.cfg.PeerQueueBytes}
	p.queueBytes = t.met.queueBytes.WithLabelValues(p.name)
	p.queueBytes.Set(0)
	t.met.formatRefused.WithLabelValues(p.name) // visible at zero
	for _, l := range t.cfg.Lanes.Lanes() {
		cls := connFor(l)
		if p.conns[cls] == nil {
			p.conns[cls] = &peerConn{t: t, peer: p.name, class: cls, addr: addr}
		}
		p.lanes[l] = &lane{
			t:    t,
			p:    p,
			kind: l,
			conn: p.conns[cls],
			ch:   make(chan outMsg, t.cfg.bufferFor(l)),
			met:  t.met.forLane(p.name, l),
		}
		p.lanes[l].met.depth.Set(0)
	}
	return p
}

// start launches one worker per lane.
func (p *peer) start() {
	for _, l := range p.lanes {
		if l != nil {
			p.wg.Add(1)
			go l.run()
		}
	}
}

// stop cancels every lane, waits for the workers (which report what was
// still queued) and closes the connections. The caller must already have
// removed p from the peer map, so nothing new can be queued.
func (p *peer) stop() {
	p.cancel()
	p.wg.Wait()
	for _, c := range p.conns {
		if c != nil {
			c.close()
		}
	}
}

// setAddr points every connection at addr. If it changed, open streams
// break and their workers reconnect to the new address; if not, nothing
// happens (every group re-adds its members on start).
func (p *peer) setAddr(addr string) {
	for _, c := range p.conns {
		if c != nil && c.address() != addr {
			c.reset(addr)
		}
	}
}

// peerConn is a lazily dialled *grpc.ClientConn, shared by the lanes of one
// connClass.
type peerConn struct {
	t     *GRPC
	peer  string
	class connClass

	mu     sync.Mutex
	addr   string
	cc     *grpc.ClientConn
	closed bool
}

// get returns the connection, creating it on first use. grpc.NewClient does
// not connect; the first stream does, bounded by DialTimeout.
func (c *peerConn) get() (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errPeerClosed
	}
	if c.cc != nil {
		return c.cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+c.addr, c.t.dialOptions()...)
	if err != nil {
		return nil, fmt.Errorf("dial %s (peer %s, %s connection): %w", c.addr, c.peer, c.class, err)
	}
	c.cc = cc
	return cc, nil
}

func (c *peerConn) address() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// reset forgets the current connection so the next get dials addr.
func (c *peerConn) reset(addr string) {
	c.mu.Lock()
	old := c.cc
	c.cc, c.addr = nil, addr
	c.mu.Unlock()
	if old != nil {
		_ = old.Close() // only fails if already closed
	}
}

func (c *peerConn) close() {
	c.mu.Lock()
	old := c.cc
	c.cc, c.closed = nil, true
	c.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// lane is one bounded queue toward a peer and the goroutine draining it.
// Everything below ch is owned by that goroutine.
type lane struct {
	t    *GRPC
	p    *peer
	kind Lane
	conn *peerConn
	ch   chan outMsg
	met  laneMetrics

	held   *outMsg    // dequeued but did not fit the previous batch
	stream *msgStream // open Messages stream, or nil
	// streamFormat is the cluster format when stream was opened: a stream
	// opened before a raise was never checked against it (format.go).
	streamFormat uint32
	used         bool      // stream has carried a batch successfully
	retryAt      time.Time // fail fast until then
	backoff      time.Duration
}

// run is the lane's worker. It exits when the peer's ctx is cancelled,
// after reporting whatever was still queued.
func (l *lane) run() {
	defer l.p.wg.Done()
	defer l.closeStream()
	defer l.drain()
	batch := make([]outMsg, 0, 64)
	for {
		if l.held != nil {
			batch = append(batch[:0], *l.held)
			l.held = nil
		} else {
			select {
			case <-l.p.ctx.Done():
				return
			case m := <-l.ch:
				batch = append(batch[:0], m)
			}
		}
		batch = l.gather(batch)
		l.met.depth.Set(float64(len(l.ch)))
		l.dispatch(batch)
		for i := range batch {
			l.p.settle(&batch[i])
		}
		clear(batch) // let the payloads go
		if l.p.ctx.Err() != nil {
			return
		}
	}
}

// gather adds whatever else is already queued to batch, up to
// maxBatchBytes (or MaxMessageBytes if smaller) and maxBatchMessages. It
// stops after a MsgSnap, which is sent on its own stream and may take long:
// messages behind it stay counted in the queue depth instead of waiting
// invisibly in the batch.
func (l *lane) gather(batch []outMsg) []outMsg {
	size := len(batch[0].data)
	if batch[0].typ == raftpb.MsgSnap {
		return batch
	}
	limit := min(maxBatchBytes, l.t.cfg.MaxMessageBytes)
	for len(batch) < maxBatchMessages {
		select {
		case m := <-l.ch:
			if m.typ == raftpb.MsgSnap {
				return append(batch, m)
			}
			if size+len(m.data) > limit {
				l.held = &m
				return batch
			}
			size += len(m.data)
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// dispatch sends batch in order: runs of ordinary messages as one stream
// write, each MsgSnap through its own snapshot stream.
func (l *lane) dispatch(batch []outMsg) {
	start := 0
	for i := range batch {
		if batch[i].typ == raftpb.MsgSnap {
			l.sendMessages(batch[start:i])
			l.sendSnapshot(batch[i])
			start = i + 1
		}
	}
	l.sendMessages(batch[start:])
}

// sendMessages writes msgs as one batch frame. A stream that breaks after
// having worked is retried once on a fresh stream (the usual case is a peer
// that restarted); any other failure fails the batch: the messages are
// counted as errors and their groups get ReportUnreachable.
func (l *lane) sendMessages(msgs []outMsg) {
	if len(msgs) == 0 {
		return
	}
	if h := l.t.hooks.beforeSend; h != nil {
		h(l.p.id, l.kind)
	}
	if time.Now().Before(l.retryAt) {
		l.fail(msgs, errBackoff)
		return
	}
	if l.stream != nil && l.formatStale() {
		l.closeStream() // reopened below, which checks the peer's advert
	}
	frame := encodeBatch(msgs)
	err := l.write(frame)
	if err != nil && l.used && !errors.Is(err, errSendStalled) && !errors.Is(err, errFormatRefused) && l.p.ctx.Err() == nil {
		l.closeStream()
		err = l.write(frame)
	}
	if err != nil {
		if errors.Is(err, errFormatRefused) {
			l.t.refuse(l.p.id, uint8(l.p.advert.Load()), len(msgs), "outbound")
		}
		l.closeStream()
		l.noteFailure()
		l.fail(msgs, err)
		return
	}
	l.backoff = 0
	l.used = true
	for i := range msgs {
		if isHeartbeat(msgs[i].typ) {
			l.t.met.hbSend.Observe(time.Since(msgs[i].queued).Seconds())
		}
	}
}

// formatStale reports whether the open stream must be re-checked against
// the cluster format: a raise happened since it was opened, or the peer
// has since advertised a maximum below the cluster format.
func (l *lane) formatStale() bool {
	c := l.t.clusterFormat.Load()
	if c > 1 && c > l.streamFormat {
		return true
	}
	a := l.p.advert.Load()
	return a != 0 && l.t.refuses(uint8(a))
}

// write sends one frame, opening the stream first if needed.
func (l *lane) write(frame []byte) error {
	if l.stream == nil {
		s, err := l.openStream()
		if err != nil {
			return err
		}
		l.stream, l.used = s, false
	}
	if err := l.stream.send(frame, l.t.cfg.SendTimeout); err != nil {
		return fmt.Errorf("send %s lane to peer %s: %w", l.kind, l.p.name, err)
	}
	return nil
}

func encodeBatch(msgs []outMsg) []byte {
	payload := 0
	for i := range msgs {
		payload += len(msgs[i].data)
	}
	// A fresh buffer per frame: gRPC may still hold the previous one,
	// queued for its writer goroutine, after SendMsg returned.
	b := newBatch(batchSize(payload, len(msgs)))
	for i := range msgs {
		b = appendEnvelope(b, msgs[i].group, msgs[i].queued.UnixNano(), msgs[i].data)
	}
	return b
}

// fail accounts for msgs that could not be written and tells their groups
// the peer is unreachable (once per group).
func (l *lane) fail(msgs []outMsg, err error) {
	l.met.errors.Add(float64(len(msgs)))
	if !errors.Is(err, errBackoff) && l.p.ctx.Err() == nil {
		l.t.log.logf(slog.LevelWarn, logKey{event: "send-failed", peer: l.p.id, lane: l.kind},
			"raft transport: send failed",
			slog.String("peer", l.p.name), slog.String("lane", l.kind.String()),
			slog.Int("messages", len(msgs)), slog.Any("err", err))
	}
	var seen [4]uint64 // most batches hold one or two groups
	groups := seen[:0]
	for i := range msgs {
		g := msgs[i].group
		dup := false
		for _, s := range groups {
			if s == g {
				dup = true
				break
			}
		}
		if !dup {
			groups = append(groups, g)
			l.t.report(pendingReport{group: g, peer: l.p.id, kind: reportUnreachable})
		}
	}
}

// noteFailure starts or doubles the reconnect backoff.
func (l *lane) noteFailure() {
	l.backoff = min(max(2*l.backoff, minBackoff), maxBackoff)
	l.retryAt = time.Now().Add(l.backoff)
}

// drain reports everything still queued when the lane stops. Nothing can be
// queued concurrently: the peer is already out of the peer map.
func (l *lane) drain() {
	report := func(m outMsg) {
		l.p.settle(&m)
		l.t.report(pendingReport{group: m.group, peer: l.p.id, kind: reportForUnknownPeer(m.typ)})
	}
	if l.held != nil {
		report(*l.held)
		l.held = nil
	}
	for {
		select {
		case m := <-l.ch:
			report(m)
		default:
			l.met.depth.Set(0)
			return
		}
	}
}

func (l *lane) closeStream() {
	if l.stream != nil {
		l.stream.close()
		l.stream = nil
	}
}

// openStream opens a long-lived Messages stream on the lane's connection.
func (l *lane) openStream() (*msgStream, error) {
	cc, err := l.conn.get()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(l.p.ctx)
	ctx = metadata.AppendToOutgoingContext(ctx, append([]string{
		mdFrom, strconv.FormatUint(l.t.cfg.LocalID, 10), mdLane, l.kind.String()}, l.t.advertPairs()...)...)
	wd := newWatchdog(cancel)
	// Read before the stream opens: a raise in between makes the next
	// batch re-check the stream, never skip the check.
	format := l.t.clusterFormat.Load()
	wd.arm(l.t.cfg.DialTimeout)
	cs, err := cc.NewStream(ctx, &serviceDesc.Streams[streamMessages], methodMessages)
	fired := !wd.disarm()
	if err != nil || fired {
		cancel()
		if fired {
			err = fmt.Errorf("%w (no stream within %s): %v", context.DeadlineExceeded, l.t.cfg.DialTimeout, err)
		}
		return nil, fmt.Errorf("open %s stream to peer %s at %s: %w", l.kind, l.p.name, l.conn.address(), err)
	}
	if err := l.t.checkStreamFormat(l.p, cs, wd); err != nil {
		cancel()
		return nil, fmt.Errorf("open %s stream to peer %s at %s: %w", l.kind, l.p.name, l.conn.address(), err)
	}
	l.streamFormat = format
	return &msgStream{cs: cs, cancel: cancel, wd: wd}, nil
}

// msgStream is a client-streaming Messages RPC plus the watchdog that
// cancels it when a write stalls.
type msgStream struct {
	cs     grpc.ClientStream
	cancel context.CancelFunc
	wd     *watchdog
}

// send writes one frame, bounded by timeout. gRPC's SendMsg blocks while
// HTTP/2 flow control is exhausted, i.e. while the peer does not read;
// the watchdog cancels the stream so a stuck peer becomes an error.
func (s *msgStream) send(frame []byte, timeout time.Duration) error {
	s.wd.arm(timeout)
	err := s.cs.SendMsg(&grpcraw.Frame{Data: frame})
	if !s.wd.disarm() {
		return fmt.Errorf("%w for %s: %v", errSendStalled, timeout, err)
	}
	if errors.Is(err, io.EOF) {
		// The server ended the stream; its status says why.
		s.wd.arm(timeout)
		rerr := s.cs.RecvMsg(&grpcraw.Frame{})
		s.wd.disarm()
		if rerr == nil || errors.Is(rerr, io.EOF) {
			return errors.New("stream closed by peer")
		}
		return rerr
	}
	return err
}

func (s *msgStream) close() {
	s.wd.disarm()
	s.cancel()
}

// watchdog cancels a stream's context if a network call outlives its
// deadline. One timer is reused for every call on the stream.
type watchdog struct{ t *time.Timer }

func newWatchdog(cancel context.CancelFunc) *watchdog {
	t := time.AfterFunc(time.Hour, cancel)
	t.Stop()
	return &watchdog{t: t}
}

// arm starts the countdown for one call.
func (w *watchdog) arm(d time.Duration) { w.t.Reset(d) }

// disarm stops the countdown; false means it already fired.
func (w *watchdog) disarm() bool { return w.t.Stop() }
