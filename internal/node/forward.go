package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
)

// The forwarding service lets a follower hand a client's write to the
// leader. A forwarded write is sent once and never resent blindly: if the
// call fails after the leader may have proposed it, the client gets an
// error, because a paused leader that wakes up would apply the first copy
// too and an old value could reappear after a newer one. The only failure
// that is retried is the leader's explicit "not leader, not proposed".
//
// Followers send their writes in batches (forward_batch.go, ForwardBatch);
// the single-command Forward stays for followers of an older version
// during a rolling update, and is what this node falls back to when the
// leader does not know ForwardBatch.
const forwardMethod = "/elastickv.node.Node/Forward"

// Forward response status bytes.
const (
	fwdOK        = 0 // followed by an encoded kv.Result
	fwdNotLeader = 1 // followed by the 8-byte id of the leader it knows (0 if none); nothing was proposed
	fwdFailed    = 2 // followed by an error message; the outcome may be unknown
)

// errNotProposed wraps a NotLeaderError received from a remote node: safe to
// retry because the remote did not propose the command.
var errNotProposed = errors.New("forward target is not the leader")

// errNotCanonical refuses a forwarded command whose bytes are not the
// encoder's own (kv.IsCanonical): only exact encodings are proposed, so a
// log entry always re-encodes to itself. Peers running this code never
// send one; only a buggy or hostile peer does.
var errNotCanonical = errors.New("command is not canonically encoded")

type forwardServer struct{ n *Node }

var forwardDesc = grpc.ServiceDesc{
	ServiceName: "elastickv.node.Node",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Forward",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req grpcraw.Frame
			if err := dec(&req); err != nil {
				return nil, err
			}
			return srv.(*forwardServer).forward(ctx, &req), nil
		},
	}, forwardBatchMethodDesc, probeMethodDesc},
	Metadata: "elastickv/node",
}

// forward handles one forwarded write. Request: 8-byte group id, then the
// encoded kv.Command.
func (f *forwardServer) forward(ctx context.Context, req *grpcraw.Frame) *grpcraw.Frame {
	if len(req.Data) < 8 {
		return failedFrame(errors.New("malformed forward request"))
	}
	// Only group 1 exists today; the id is on the wire so sharding fits.
	if g := binary.BigEndian.Uint64(req.Data); g != groupID {
		return failedFrame(fmt.Errorf("unknown raft group %d", g))
	}
	payload := req.Data[8:]
	cmd, err := kv.DecodeCommand(payload)
	if err == nil {
		err = cmd.Validate()
	}
	if err == nil && !kv.IsCanonical(payload) {
		err = errNotCanonical
	}
	if err != nil {
		return failedFrame(fmt.Errorf("malformed forwarded command: %w", err))
	}
	if err := f.n.checkForwardFormat(cmd.MinFormat()); err != nil {
		return failedFrame(err)
	}
	r, fail := f.propose(ctx, payload)
	if fail != nil {
		return fail
	}
	return &grpcraw.Frame{Data: r.AppendEncode([]byte{fwdOK})}
}

// propose proposes a forwarded entry on this node's group and returns its
// result, or the reply frame for a failure: "not leader" when nothing was
// proposed, "failed" otherwise.
func (f *forwardServer) propose(ctx context.Context, payload []byte) (kv.Result, *grpcraw.Frame) {
	g := f.n.served.Load()
	if g == nil {
		return kv.Result{}, notLeaderFrame(0) // not serving yet: nothing proposed
	}
	if g.Err() != nil {
		// Stopped for good (health.go): nothing will be proposed, so the
		// sender may safely try the next leader.
		return kv.Result{}, notLeaderFrame(0)
	}
	res, err := g.Propose(ctx, payload)
	var nl *raft.NotLeaderError
	if errors.As(err, &nl) {
		return kv.Result{}, notLeaderFrame(nl.LeaderID)
	}
	if err != nil {
		return kv.Result{}, failedFrame(err)
	}
	r, ok := res.(kv.Result)
	if !ok {
		return kv.Result{}, failedFrame(fmt.Errorf("unexpected apply result %T", res))
	}
	return r, nil
}

// neverSent reports whether a failed call provably never reached the wire:
// gRPC fails it with Unavailable and a dial error when no connection could
// be made.
func neverSent(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Unavailable && strings.Contains(st.Message(), "while dialing")
}

// forwardReadyWait bounds how long a forward waits for its connection to
// the leader to come up (a first dial, or a reconnect after a reset).
const forwardReadyWait = 250 * time.Millisecond

// awaitReady returns nil once cc is connected, or an errNotProposed error
// if it is not within forwardReadyWait (or before ctx ends). A call made
// on a connection that is down fails at once with the connection's last
// error (a broken pipe, a reset) without reaching the wire, but nothing
// in that error says so: sent blindly, every write forwarded while a link
// flaps would end "outcome unknown". Not sending it at all keeps the
// outcome known (nothing was proposed, the caller retries and re-resolves
// the leader). A connection that breaks between this check and the call
// still fails as unknown.
func awaitReady(ctx context.Context, cc *grpc.ClientConn, addr string) error {
	st := cc.GetState()
	if st == connectivity.Ready {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, forwardReadyWait)
	defer cancel()
	for st != connectivity.Ready {
		if st == connectivity.Idle {
			cc.Connect()
		}
		if !cc.WaitForStateChange(wctx, st) {
			return fmt.Errorf("%w: no connection to %s (%s)", errNotProposed, addr, st)
		}
		st = cc.GetState()
	}
	return nil
}

func failedFrame(err error) *grpcraw.Frame {
	return &grpcraw.Frame{Data: append([]byte{fwdFailed}, err.Error()...)}
}

// forwardClient keeps one connection per leader address and batches the
// writes forwarded over it. It owns the batcher's goroutines: close stops
// them.
type forwardClient struct {
	maxMsg  int
	batcher *forwardBatcher
	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	// legacy holds leaders without ForwardBatch, until when to send them
	// single Forward calls.
	legacy map[string]time.Time
}

// newForwardClient registers the batching metrics on reg (if not nil).
func newForwardClient(maxMsg int, reg prometheus.Registerer) *forwardClient {
	c := &forwardClient{maxMsg: maxMsg, conns: make(map[string]*grpc.ClientConn), legacy: make(map[string]time.Time)}
	c.batcher = newForwardBatcher(c.sendBatch, newForwardMetrics(reg))
	c.batcher.ready = func(ctx context.Context, addr string) error {
		_, err := c.readyConn(ctx, addr)
		return err
	}
	return c
}

// readyConn returns the connection to addr once it is up (see awaitReady),
// or an errNotProposed error: nothing was sent.
func (c *forwardClient) readyConn(ctx context.Context, addr string) (*grpc.ClientConn, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotProposed, err)
	}
	if err := awaitReady(ctx, cc, addr); err != nil {
		return nil, err
	}
	return cc, nil
}

// forward sends cmd (encoded as payload) to the leader at addr, batched
// with concurrent writes, and returns its result. A command that cannot
// ride in a batch (an EXEC) takes a Forward call of its own: through the
// batcher it would wait for one of its maxForwardInflight senders, so
// concurrent EXECs from a follower's clients went one at a time. Like send it returns
// errNotProposed when nothing was proposed; every other error after the
// command left this node means its outcome is unknown.
func (c *forwardClient) forward(ctx context.Context, addr string, cmd *kv.Command, payload []byte) (kv.Result, error) {
	c.mu.Lock()
	until, legacy := c.legacy[addr]
	if legacy && time.Now().After(until) {
		delete(c.legacy, addr)
		legacy = false
	}
	c.mu.Unlock()
	if !legacy && kv.Batchable(cmd.Op) {
		subs, solo := forwardShape(cmd)
		r, err := c.batcher.do(ctx, addr, payload, subs, solo)
		if !errors.Is(err, errBatchUnsupported) {
			return r, err
		}
		c.mu.Lock()
		c.legacy[addr] = time.Now().Add(legacyLeaderRetry)
		c.mu.Unlock()
	}
	r, _, err := c.send(ctx, addr, groupID, payload)
	return r, err
}

func (c *forwardClient) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpcraw.CallOption(),
			grpc.MaxCallSendMsgSize(c.maxMsg), grpc.MaxCallRecvMsgSize(c.maxMsg)))
	if err != nil {
		return nil, fmt.Errorf("dial leader %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// send forwards an encoded command to addr. It returns errNotProposed (with
// the leader the remote knows) when the remote refused without proposing.
func (c *forwardClient) send(ctx context.Context, addr string, group uint64, payload []byte) (kv.Result, uint64, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return kv.Result{}, 0, err
	}
	req := &grpcraw.Frame{Data: make([]byte, 8, 8+len(payload))}
	binary.BigEndian.PutUint64(req.Data, group)
	req.Data = append(req.Data, payload...)
	var resp grpcraw.Frame
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := awaitReady(ctx, cc, addr); err != nil {
		return kv.Result{}, 0, err
	}
	// WaitForReady(false): a leader we cannot reach fails fast rather than
	// holding the client until its deadline.
	if err := cc.Invoke(ctx, forwardMethod, req, &resp); err != nil {
		if neverSent(err) {
			// The connection was never established, so the request never
			// left this node: as safe to retry as a "not leader" answer.
			return kv.Result{}, 0, fmt.Errorf("%w: dial %s: %v", errNotProposed, addr, err)
		}
		return kv.Result{}, 0, fmt.Errorf("forward to leader %s: %w", addr, err)
	}
	if len(resp.Data) == 0 {
		return kv.Result{}, 0, fmt.Errorf("forward to leader %s: empty response", addr)
	}
	switch resp.Data[0] {
	case fwdOK:
		r, err := kv.DecodeResult(resp.Data[1:])
		if err != nil {
			return kv.Result{}, 0, fmt.Errorf("forward to leader %s: %w", addr, err)
		}
		return r, 0, nil
	case fwdNotLeader:
		if len(resp.Data) != 9 {
			return kv.Result{}, 0, fmt.Errorf("forward to leader %s: malformed response", addr)
		}
		return kv.Result{}, binary.BigEndian.Uint64(resp.Data[1:]), errNotProposed
	default:
		return kv.Result{}, 0, fmt.Errorf("leader %s: %s", addr, resp.Data[1:])
	}
}

func (c *forwardClient) close() {
	c.batcher.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, cc := range c.conns {
		_ = cc.Close()
		delete(c.conns, a)
	}
}
