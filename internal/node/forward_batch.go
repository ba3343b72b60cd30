package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
)

// Batched forwarding.
//
// Every client connection on a follower forwards its writes to the leader.
// Rather than one RPC (and one log entry) per write, concurrent forwarded
// writes are coalesced: a write joins a queue, and a sender takes everything
// queued for the same leader (up to maxForwardBatchCalls commands,
// maxForwardBatchBytes bytes and kv.MaxBatch sub-commands) into one
// ForwardBatch RPC. While maxForwardInflight batches are in flight the next
// one accumulates, so batches grow with load and a lone write is sent at
// once. The leader proposes the whole batch as ONE log entry (an OpBatch of
// every command, a forwarded OpBatch spliced in) and replies one result per
// command, in order.
//
// Coalescing writes of different clients into one entry is linearizable:
// each write is applied, in the entry's order, between the moment its
// client sent it and the moment it gets its reply.
//
// The rules of forward.go hold per batch: a batch is sent once and never
// resent. Only a reply that proves nothing was proposed (fwdNotLeader, or a
// connection never made) lets each caller retry; any other failure after
// the batch was sent fails every command in it as "outcome unknown". A
// caller whose context ends while its batch is in flight gets "outcome
// unknown" too; one whose command was still queued is withdrawn, never
// sent, and may be retried.
//
// Commands whose reply carries a stored value (GETDEL, SET ... GET, or an
// OpBatch holding one) travel alone: their replies can be as large as a
// value, and a batch of them could exceed the gRPC message limit after the
// leader applied them. Every other reply is a few bytes.

// forwardBatchMethod is the batched forwarding RPC.
const forwardBatchMethod = "/elastickv.node.Node/ForwardBatch"

// Client-side batching limits.
const (
	// maxForwardBatchCalls caps the forwarded commands of one batch.
	maxForwardBatchCalls = 256
	// maxForwardBatchBytes caps the encoded commands of one batch; a single
	// larger command is sent alone.
	maxForwardBatchBytes = 1 << 20
	// maxForwardInflight is how many batch RPCs one node keeps in flight.
	// Two let the leader append the next batch while the previous one
	// waits for its quorum.
	maxForwardInflight = 2
	// defaultForwardTimeout bounds a batch whose callers set no deadline.
	defaultForwardTimeout = 5 * time.Second
	// legacyLeaderRetry is how long a leader without ForwardBatch (an older
	// version during a rolling update) is sent single Forward calls before
	// ForwardBatch is tried again.
	legacyLeaderRetry = 30 * time.Second
)

// Errors of the batched path (see outcomeError for how Write reports them).
var (
	// errOutcomeUnknown: the command was sent and may or may not be applied.
	errOutcomeUnknown = errors.New("write outcome unknown")
	// errNotSent: the caller's context ended while the command was still
	// queued on this node; it was never sent.
	errNotSent = errors.New("write not sent to the leader")
	// errBatchUnsupported: the leader does not implement ForwardBatch
	// (gRPC Unimplemented, so nothing was proposed); use Forward.
	errBatchUnsupported = errors.New("leader does not support batched forwarding")
	// errMalformedBatch: a ForwardBatch request or response does not decode.
	errMalformedBatch = errors.New("malformed forward batch")
)

var forwardBatchMethodDesc = grpc.MethodDesc{
	MethodName: "ForwardBatch",
	Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var req grpcraw.Frame
		if err := dec(&req); err != nil {
			return nil, err
		}
		return srv.(*forwardServer).forwardBatch(ctx, &req), nil
	},
}

// ---- wire format ----
//
// Request:  8-byte group id, uvarint n (1..kv.MaxBatch), then n times
//           uvarint length + encoded kv.Command.
// Response: fwdOK, uvarint n, then n times uvarint length + encoded
//           kv.Result (one per command, in order; a forwarded OpBatch gets
//           its ResultBatch);
//           or fwdNotLeader + 8-byte leader id: nothing was proposed;
//           or fwdFailed + message: the outcome may be unknown.

// appendForwardBatchRequest appends a request frame for payloads to dst.
func appendForwardBatchRequest(dst []byte, group uint64, payloads [][]byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, group)
	dst = binary.AppendUvarint(dst, uint64(len(payloads)))
	for _, p := range payloads {
		dst = binary.AppendUvarint(dst, uint64(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

// decodeForwardBatchRequest parses a request frame. The returned payloads
// alias b.
func decodeForwardBatchRequest(b []byte) (uint64, [][]byte, error) {
	if len(b) < 8 {
		return 0, nil, fmt.Errorf("%w: short header", errMalformedBatch)
	}
	group := binary.BigEndian.Uint64(b)
	b = b[8:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n == 0 || n > kv.MaxBatch || n > uint64(len(b)) {
		return 0, nil, fmt.Errorf("%w: bad command count", errMalformedBatch)
	}
	b = b[k:]
	payloads := make([][]byte, n)
	for i := range payloads {
		if payloads[i], b, k = lengthPrefixed(b); k <= 0 {
			return 0, nil, fmt.Errorf("%w: command %d truncated", errMalformedBatch, i)
		}
	}
	if len(b) != 0 {
		return 0, nil, fmt.Errorf("%w: %d trailing bytes", errMalformedBatch, len(b))
	}
	return group, payloads, nil
}

// appendForwardBatchResults appends the fwdOK body for results to dst.
func appendForwardBatchResults(dst []byte, results []kv.Result) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(results)))
	for i := range results {
		enc := results[i].AppendEncode(nil)
		dst = binary.AppendUvarint(dst, uint64(len(enc)))
		dst = append(dst, enc...)
	}
	return dst
}

// decodeForwardBatchResults parses a fwdOK body that must hold want
// results. The results alias b.
func decodeForwardBatchResults(b []byte, want int) ([]kv.Result, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n != uint64(want) {
		return nil, fmt.Errorf("%w: %d results for %d commands", errMalformedBatch, n, want)
	}
	b = b[k:]
	out := make([]kv.Result, want)
	for i := range out {
		var enc []byte
		if enc, b, k = lengthPrefixed(b); k <= 0 {
			return nil, fmt.Errorf("%w: result %d truncated", errMalformedBatch, i)
		}
		r, err := kv.DecodeResult(enc)
		if err != nil {
			return nil, fmt.Errorf("%w: result %d: %v", errMalformedBatch, i, err)
		}
		out[i] = r
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMalformedBatch, len(b))
	}
	return out, nil
}

// lengthPrefixed splits a uvarint-length-prefixed field off b. k <= 0 means
// b does not hold a whole field.
func lengthPrefixed(b []byte) (field, rest []byte, k int) {
	l, k := binary.Uvarint(b)
	if k <= 0 || l > uint64(len(b)-k) {
		return nil, b, -1
	}
	end := k + int(l)
	return b[k:end:end], b[end:], k
}

// ---- leader side ----

// forwardedEntry is the single log entry a ForwardBatch request becomes.
type forwardedEntry struct {
	payload []byte
	// spans holds, per forwarded command, -1 for a plain command or the
	// number of sub-commands of a forwarded OpBatch (spliced in order).
	spans []int
	// minFormat is the newest log format any of the commands needs.
	minFormat uint8
}

// combineForwarded validates every forwarded command and builds the entry:
// a lone command is proposed as it came; several become one OpBatch.
func combineForwarded(payloads [][]byte) (forwardedEntry, error) {
	e := forwardedEntry{spans: make([]int, len(payloads))}
	cmds := make([]kv.Command, len(payloads))
	total := 0
	for i, p := range payloads {
		cmd, err := kv.DecodeCommand(p)
		if err == nil {
			err = cmd.Validate()
		}
		if err == nil && !kv.IsCanonical(p) {
			err = errNotCanonical
		}
		if err != nil {
			return e, fmt.Errorf("command %d: %w", i, err)
		}
		e.minFormat = max(e.minFormat, cmd.MinFormat())
		e.spans[i] = -1
		total++
		if cmd.Op == kv.OpBatch {
			e.spans[i] = len(cmd.Values)
			total += len(cmd.Values) - 1
		}
		cmds[i] = cmd
	}
	if len(payloads) == 1 {
		e.payload = payloads[0]
		return e, nil
	}
	for i := range cmds {
		// A follower sends these alone (forwardShape); one that did not
		// would have the leader propose a batch that apply refuses,
		// halting the group.
		if cmds[i].Op != kv.OpBatch && !kv.Batchable(cmds[i].Op) {
			return e, fmt.Errorf("command %d: op %d travels alone", i, cmds[i].Op)
		}
	}
	if total > kv.MaxBatch {
		return e, fmt.Errorf("%d commands exceed the %d of one batch", total, kv.MaxBatch)
	}
	bc := kv.Command{Op: kv.OpBatch, Values: make([][]byte, 0, total)}
	for i := range cmds {
		if e.spans[i] < 0 {
			bc.Values = append(bc.Values, payloads[i])
		} else {
			bc.Values = append(bc.Values, cmds[i].Values...)
		}
	}
	e.payload = bc.AppendEncode(make([]byte, 0, bc.Size()))
	return e, nil
}

// split hands each forwarded command its part of the entry's result.
func (e forwardedEntry) split(r kv.Result) ([]kv.Result, error) {
	if len(e.spans) == 1 {
		return []kv.Result{r}, nil
	}
	if r.Kind != kv.ResultBatch {
		return nil, fmt.Errorf("batch entry applied with result kind %d", r.Kind)
	}
	out := make([]kv.Result, len(e.spans))
	pos := 0
	for i, s := range e.spans {
		n := max(s, 1)
		if pos+n > len(r.Batch) {
			return nil, fmt.Errorf("batch entry applied with %d results", len(r.Batch))
		}
		if s < 0 {
			out[i] = r.Batch[pos]
		} else {
			out[i] = kv.Result{Kind: kv.ResultBatch, Batch: r.Batch[pos : pos+n : pos+n]}
		}
		pos += n
	}
	if pos != len(r.Batch) {
		return nil, fmt.Errorf("batch entry applied with %d results, want %d", len(r.Batch), pos)
	}
	return out, nil
}

// forwardBatch handles one ForwardBatch request: validate everything, then
// propose one entry. A malformed frame is refused before anything is
// proposed.
func (f *forwardServer) forwardBatch(ctx context.Context, req *grpcraw.Frame) *grpcraw.Frame {
	group, payloads, err := decodeForwardBatchRequest(req.Data)
	if err != nil {
		return failedFrame(err)
	}
	if group != groupID {
		return failedFrame(fmt.Errorf("unknown raft group %d", group))
	}
	entry, err := combineForwarded(payloads)
	if err != nil {
		return failedFrame(fmt.Errorf("malformed forwarded command: %w", err))
	}
	if err := f.n.checkForwardFormat(entry.minFormat); err != nil {
		return failedFrame(err)
	}
	r, fail := f.propose(ctx, entry.payload)
	if fail != nil {
		return fail
	}
	results, err := entry.split(r)
	if err != nil {
		return failedFrame(err)
	}
	return &grpcraw.Frame{Data: appendForwardBatchResults([]byte{fwdOK}, results)}
}

func notLeaderFrame(leader uint64) *grpcraw.Frame {
	out := make([]byte, 9)
	out[0] = fwdNotLeader
	binary.BigEndian.PutUint64(out[1:], leader)
	return &grpcraw.Frame{Data: out}
}

// ---- follower side ----

// fwdCall is one caller's forwarded command waiting for its batch.
type fwdCall struct {
	ctx      context.Context
	deadline time.Time
	addr     string
	payload  []byte
	subs     int  // sub-commands it adds to the leader's entry
	solo     bool // its reply may carry a value: never batched with others
	done     chan fwdReply

	// Guarded by forwardBatcher.mu. Invariant: a call is in the queue
	// exactly while queued is set; sent is set once it left in a batch.
	queued, sent bool
}

type fwdReply struct {
	res kv.Result
	err error
}

// batchSender performs one batch RPC; forwardClient.sendBatch in
// production, replaced by tests.
type batchSender func(ctx context.Context, addr string, payloads [][]byte) ([]kv.Result, error)

// forwardBatcher coalesces concurrent forwarded writes. It owns its sender
// goroutines: one is started when a call is queued and fewer than
// maxForwardInflight run; a sender exits when the queue is empty. close
// stops them and waits.
type forwardBatcher struct {
	send    batchSender
	metrics *forwardMetrics
	// ready, if set, returns once a batch could leave for addr, or an
	// errNotProposed error. A sender asks before it takes a batch, so that
	// calls waiting for a connection stay queued (withdrawn unsent if
	// their deadline comes first) instead of counting as sent.
	ready func(ctx context.Context, addr string) error

	ctx    context.Context // cancelled by close: aborts in-flight RPCs
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	queue   []*fwdCall
	senders int
	closed  bool
}

func newForwardBatcher(send batchSender, m *forwardMetrics) *forwardBatcher {
	ctx, cancel := context.WithCancel(context.Background())
	return &forwardBatcher{send: send, metrics: m, ctx: ctx, cancel: cancel}
}

// do forwards payload to addr in the next batch and waits for its result.
// Errors: errNotProposed (retry), errBatchUnsupported (use Forward),
// errNotSent (withdrawn before sending), errOutcomeUnknown, raft.ErrStopped.
func (b *forwardBatcher) do(ctx context.Context, addr string, payload []byte, subs int, solo bool) (kv.Result, error) {
	c := &fwdCall{ctx: ctx, addr: addr, payload: payload, subs: subs, solo: solo, done: make(chan fwdReply, 1)}
	if d, ok := ctx.Deadline(); ok {
		c.deadline = d
	} else {
		c.deadline = time.Now().Add(defaultForwardTimeout)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return kv.Result{}, fmt.Errorf("forward: %w (write not sent)", raft.ErrStopped)
	}
	c.queued = true
	b.queue = append(b.queue, c)
	if b.senders < maxForwardInflight {
		b.senders++
		b.wg.Add(1)
		go b.run()
	}
	b.mu.Unlock()

	select {
	case r := <-c.done:
		return r.res, r.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	sent := c.sent
	if c.queued {
		b.remove(c)
	}
	b.mu.Unlock()
	if !sent {
		return kv.Result{}, fmt.Errorf("%w: %w", errNotSent, ctx.Err())
	}
	select {
	case r := <-c.done: // the reply raced the deadline: it is the truth
		return r.res, r.err
	default:
	}
	return kv.Result{}, fmt.Errorf("%w: %w", errOutcomeUnknown, ctx.Err())
}

// remove takes a queued call out of the queue. b.mu is held.
func (b *forwardBatcher) remove(c *fwdCall) {
	if i := slices.Index(b.queue, c); i >= 0 {
		b.queue = slices.Delete(b.queue, i, i+1)
	}
	c.queued = false
}

// run is a sender: it sends batches until the queue is empty or the
// batcher closes.
func (b *forwardBatcher) run() {
	defer b.wg.Done()
	for {
		b.mu.Lock()
		if b.ready != nil && !b.closed && len(b.queue) > 0 {
			addr := b.queue[0].addr
			b.mu.Unlock()
			if err := b.ready(b.ctx, addr); err != nil {
				b.failQueued(addr, err)
				continue
			}
			b.mu.Lock()
		}
		var batch []*fwdCall
		if !b.closed {
			batch = b.take()
		}
		if len(batch) == 0 {
			b.senders--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.sendBatch(batch)
	}
}

// failQueued fails with err every call still queued for addr: none was
// sent (so no batch RPC is counted either).
func (b *forwardBatcher) failQueued(addr string, err error) {
	b.mu.Lock()
	var failed []*fwdCall
	kept := b.queue[:0]
	for _, c := range b.queue {
		if c.addr == addr {
			c.queued = false
			failed = append(failed, c)
			continue
		}
		kept = append(kept, c)
	}
	clear(b.queue[len(kept):])
	b.queue = kept
	b.mu.Unlock()
	for _, c := range failed {
		c.done <- fwdReply{err: err}
	}
}

// take removes the next batch from the queue and marks it sent: the oldest
// calls for the leader the oldest call wants, in order, within the limits.
// Calls whose context already ended are dropped unsent (their callers are
// returning). b.mu is held.
func (b *forwardBatcher) take() []*fwdCall {
	var (
		batch       []*fwdCall
		addr        string
		bytes, subs int
		full        bool
	)
	kept := b.queue[:0]
	for _, c := range b.queue {
		switch {
		case c.ctx.Err() != nil:
			c.queued = false
			continue
		case full || (batch != nil && c.addr != addr):
			kept = append(kept, c)
			continue
		case batch != nil && (c.solo || len(batch) >= maxForwardBatchCalls ||
			subs+c.subs > kv.MaxBatch || bytes+len(c.payload) > maxForwardBatchBytes):
			full = true // keep FIFO order for this leader: stop here
			kept = append(kept, c)
			continue
		}
		addr = c.addr
		batch = append(batch, c)
		bytes += len(c.payload)
		subs += c.subs
		c.queued, c.sent = false, true
		if c.solo {
			full = true
		}
	}
	clear(b.queue[len(kept):])
	b.queue = kept
	return batch
}

// sendBatch sends one batch and hands every call its reply. The RPC's
// deadline is the latest of its callers'.
func (b *forwardBatcher) sendBatch(batch []*fwdCall) {
	deadline := batch[0].deadline
	payloads := make([][]byte, len(batch))
	for i, c := range batch {
		payloads[i] = c.payload
		if c.deadline.After(deadline) {
			deadline = c.deadline
		}
	}
	ctx, cancel := context.WithDeadline(b.ctx, deadline)
	results, err := b.send(ctx, batch[0].addr, payloads)
	cancel()
	b.metrics.observe(len(batch), err)
	for i, c := range batch {
		if err != nil {
			c.done <- fwdReply{err: err}
		} else {
			c.done <- fwdReply{res: results[i]}
		}
	}
}

// close fails queued calls (never sent), aborts in-flight batches (their
// callers get "outcome unknown") and waits for the senders.
func (b *forwardBatcher) close() {
	b.mu.Lock()
	b.closed = true
	queued := b.queue
	b.queue = nil
	for _, c := range queued {
		c.queued = false
	}
	b.mu.Unlock()
	for _, c := range queued {
		c.done <- fwdReply{err: fmt.Errorf("forward: %w (write not sent)", raft.ErrStopped)}
	}
	b.cancel()
	b.wg.Wait()
}

// sendBatch performs one ForwardBatch RPC to addr. Errors: errNotProposed
// (nothing was proposed: retry), errBatchUnsupported, or errOutcomeUnknown.
func (c *forwardClient) sendBatch(ctx context.Context, addr string, payloads [][]byte) ([]kv.Result, error) {
	cc, err := c.readyConn(ctx, addr)
	if err != nil {
		return nil, err
	}
	size := 8 + binary.MaxVarintLen64
	for _, p := range payloads {
		size += binary.MaxVarintLen64 + len(p)
	}
	req := &grpcraw.Frame{Data: appendForwardBatchRequest(make([]byte, 0, size), groupID, payloads)}
	var resp grpcraw.Frame
	if err := cc.Invoke(ctx, forwardBatchMethod, req, &resp); err != nil {
		if neverSent(err) {
			return nil, fmt.Errorf("%w: dial %s: %v", errNotProposed, addr, err)
		}
		if status.Code(err) == codes.Unimplemented {
			// The server found no such method: no handler ran.
			return nil, fmt.Errorf("%w: %s: %v", errBatchUnsupported, addr, err)
		}
		return nil, fmt.Errorf("%w: forward batch to leader %s: %w", errOutcomeUnknown, addr, err)
	}
	if len(resp.Data) == 0 {
		return nil, fmt.Errorf("%w: forward batch to leader %s: empty response", errOutcomeUnknown, addr)
	}
	switch resp.Data[0] {
	case fwdOK:
		results, err := decodeForwardBatchResults(resp.Data[1:], len(payloads))
		if err != nil {
			return nil, fmt.Errorf("%w: forward batch to leader %s: %w", errOutcomeUnknown, addr, err)
		}
		return results, nil
	case fwdNotLeader:
		if len(resp.Data) != 9 {
			return nil, fmt.Errorf("%w: forward batch to leader %s: malformed response", errOutcomeUnknown, addr)
		}
		return nil, errNotProposed
	default:
		return nil, fmt.Errorf("%w: leader %s: %s", errOutcomeUnknown, addr, resp.Data[1:])
	}
}

// forwardShape says how a command joins a batch: the sub-commands it adds
// to the leader's entry, and whether its reply may carry a stored value.
// Sub-commands of an OpBatch are inspected by their first two bytes, the op
// and flags (kv.Command.AppendEncode's layout).
func forwardShape(cmd *kv.Command) (subs int, solo bool) {
	// APPENDs are combined like other writes although applying one puts
	// its key's whole value into the apply batch: sending them alone made
	// a flood of APPENDs to one large key write that value once per
	// entry instead of once per batch (peak RSS 1.6 GiB instead of 0.7 in
	// TestHostileAppendFloodOnABigValue). The cost is that one entry of
	// APPENDs to many distinct keys near the 512 MiB string cap could
	// outgrow a Pebble batch (4 GiB); the store then stops with an error
	// (commitChunk). Chunked strings (keyspace v2) remove that case.
	returnsValue := func(op kv.Op, flags kv.SetFlags) bool {
		return op == kv.OpGetDel || (op == kv.OpSet && flags&kv.SetGet != 0)
	}
	if cmd.Op != kv.OpBatch {
		// An EXEC is applied alone in its chunk and may reply values: it
		// must be its own entry.
		return 1, returnsValue(cmd.Op, cmd.Flags) || !kv.Batchable(cmd.Op)
	}
	for _, v := range cmd.Values {
		if len(v) < 2 || returnsValue(kv.Op(v[0]), kv.SetFlags(v[1])) {
			return len(cmd.Values), true
		}
	}
	return len(cmd.Values), false
}

// ---- metrics ----

type forwardMetrics struct {
	commands prometheus.Histogram
	batches  *prometheus.CounterVec
}

func newForwardMetrics(reg prometheus.Registerer) *forwardMetrics {
	m := &forwardMetrics{
		commands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "elastickv_forward_batch_commands",
			Help:    "Forwarded writes per batch RPC a follower sent to the leader.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_forward_batches_total",
			Help: "Batch RPCs a follower sent to the leader, by result: ok, not_leader (not the leader or never connected: nothing proposed, callers retry), unsupported (leader without ForwardBatch), failed (outcome unknown).",
		}, []string{"result"}),
	}
	for _, r := range []string{"ok", "not_leader", "unsupported", "failed"} {
		m.batches.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.commands, m.batches)
	}
	return m
}

func (m *forwardMetrics) observe(n int, err error) {
	m.commands.Observe(float64(n))
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, errNotProposed):
		result = "not_leader"
	case errors.Is(err, errBatchUnsupported):
		result = "unsupported"
	default:
		result = "failed"
	}
	m.batches.WithLabelValues(result).Inc()
}
