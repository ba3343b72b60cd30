package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
)

// The admin service runs on the peer gRPC server of every node: status,
// membership changes and leadership transfer. Requests and responses are
// JSON in raw frames (grpcraw): the operations are rare and small, and JSON
// keeps the service readable without generated code.
//
// Any node accepts a request. A follower forwards it to the leader once
// (marked Forwarded, so it is never forwarded again) and, like write
// forwarding, never resends a change blindly: only an explicit "not the
// leader, nothing proposed" answer, or a connection that was never made, is
// retried; any other failure after sending is reported as "outcome
// unknown" (the operator checks `admin status`).
const adminService = "elastickv.node.Admin"

// Admin operations (gRPC method names).
const (
	opStatus         = "Status"
	opAddMember      = "AddMember"
	opPromoteMember  = "PromoteMember"
	opRemoveMember   = "RemoveMember"
	opTransferLeader = "TransferLeader"
)

// maxAdminWait bounds a request whose caller set no deadline.
const maxAdminWait = time.Minute

// defaultAdminTimeout is the client's deadline when its context has none.
const defaultAdminTimeout = 30 * time.Second

// Response codes, mapped back to the raft package's sentinel errors by the
// client so callers can use errors.Is across the wire.
const (
	codeNotLeader      = "not_leader"
	codeNoLeader       = "no_leader"
	codeExists         = "exists"
	codeUnknownMember  = "unknown_member"
	codePending        = "pending"
	codeNotLearner     = "not_learner"
	codeLastVoter      = "last_voter"
	codeTransferFailed = "transfer_failed"
	codeLost           = "lost"
	codeUnknown        = "outcome_unknown"
	codeError          = "error"
)

// ErrOutcomeUnknown: a change may or may not have been made (the call or
// its wait ended early); check the cluster's status before retrying.
var ErrOutcomeUnknown = errors.New("outcome unknown")

var codeErrors = map[string]error{
	codeNotLeader:      raft.ErrNotLeader,
	codeNoLeader:       raft.ErrNoLeader,
	codeExists:         raft.ErrMemberExists,
	codeUnknownMember:  raft.ErrUnknownMember,
	codePending:        raft.ErrConfChangePending,
	codeNotLearner:     raft.ErrNotLearner,
	codeLastVoter:      raft.ErrLastVoter,
	codeTransferFailed: raft.ErrTransferFailed,
	codeLost:           raft.ErrProposalLost,
	codeUnknown:        ErrOutcomeUnknown,
}

type adminRequest struct {
	Name        string `json:"name,omitempty"`
	Addr        string `json:"addr,omitempty"`
	Learner     bool   `json:"learner,omitempty"`
	AutoPromote bool   `json:"auto_promote,omitempty"`
	// Forwarded marks a request a follower passed on to the leader.
	Forwarded bool `json:"forwarded,omitempty"`
	// MaxFormat is, in an AddMember, the highest log format the new
	// member's binary supports: the joining node's own, or the admin
	// client's (which assumes the node it adds runs its binary). Absent
	// (an older binary) means 1 (format.go, checkJoinFormat).
	MaxFormat uint8 `json:"max_format,omitempty"`
}

type adminResponse struct {
	Status *ClusterStatus `json:"status,omitempty"`
	Code   string         `json:"code,omitempty"`
	Error  string         `json:"error,omitempty"`
	// Leader is the leader's id the answering node knows, with
	// codeNotLeader.
	Leader uint64 `json:"leader,omitempty"`
}

// ClusterStatus is the answer to every admin call: the membership and each
// member's progress as the leader sees it.
type ClusterStatus struct {
	// Node is the node that produced this view.
	Node string `json:"node"`
	// Leader is the leader's name ("" if none is known).
	Leader    string `json:"leader"`
	Term      uint64 `json:"term"`
	Commit    uint64 `json:"commit"`
	LastIndex uint64 `json:"last_index"`
	// Local is set when no leader could be asked: Members then carry roles
	// from Node's view of the configuration, without progress.
	Local   bool                  `json:"local,omitempty"`
	Members []raft.MemberProgress `json:"members"`
}

// Member returns the entry for name, if present.
func (s *ClusterStatus) Member(name string) (raft.MemberProgress, bool) {
	for _, m := range s.Members {
		if m.Name == name {
			return m, true
		}
	}
	return raft.MemberProgress{}, false
}

type adminServer struct{ n *Node }

func adminMethod(op string) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: op,
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req grpcraw.Frame
			if err := dec(&req); err != nil {
				return nil, err
			}
			return srv.(*adminServer).handle(ctx, op, &req), nil
		},
	}
}

var adminDesc = grpc.ServiceDesc{
	ServiceName: adminService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		adminMethod(opStatus), adminMethod(opAddMember), adminMethod(opPromoteMember),
		adminMethod(opRemoveMember), adminMethod(opTransferLeader),
	},
	Metadata: "elastickv/node/admin",
}

func (a *adminServer) handle(ctx context.Context, op string, req *grpcraw.Frame) *grpcraw.Frame {
	var r adminRequest
	var resp adminResponse
	if err := json.Unmarshal(req.Data, &r); err != nil {
		resp = errorResponse(fmt.Errorf("malformed admin request: %w", err))
	} else {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, maxAdminWait)
			defer cancel()
		}
		if op == opStatus {
			resp = a.status(ctx, r)
		} else {
			resp = a.change(ctx, op, r)
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(errorResponse(fmt.Errorf("encode admin response: %w", err)))
	}
	return &grpcraw.Frame{Data: b}
}

// local runs op on this node's group.
func (a *adminServer) local(ctx context.Context, g *raft.Group, op string, r adminRequest) (*ClusterStatus, error) {
	var err error
	switch op {
	case opStatus:
		return a.n.leaderStatus(ctx, g)
	case opAddMember:
		if err := a.n.checkJoinFormat(r); err != nil {
			return nil, err
		}
		err = g.AddMember(ctx, raft.Member{Name: r.Name, Addr: r.Addr, AutoPromote: r.AutoPromote}, r.Learner)
	case opPromoteMember:
		err = g.PromoteMember(ctx, r.Name)
	case opRemoveMember:
		err = g.RemoveMember(ctx, r.Name)
	case opTransferLeader:
		err = g.TransferLeadership(ctx, r.Name)
	default:
		return nil, fmt.Errorf("unknown admin operation %q", op)
	}
	if err != nil {
		return nil, err
	}
	a.n.log.Info("admin change done", "op", op, "member", r.Name)
	st, err := a.n.leaderStatus(ctx, g)
	if err != nil {
		// The change is done; a status this node cannot give (it just
		// handed leadership over) is not a failure of the call.
		st = a.n.localStatus(ctx, g)
	}
	return st, nil
}

// change runs a membership or leadership operation on the leader,
// forwarding to it from a follower.
func (a *adminServer) change(ctx context.Context, op string, r adminRequest) adminResponse {
	hb := a.n.cfg.HeartbeatInterval
	for {
		st, err := a.attempt(ctx, op, r)
		if err == nil {
			return adminResponse{Status: st}
		}
		if !errors.Is(err, errNotProposed) {
			return errorResponse(err)
		}
		var nl *raft.NotLeaderError
		if r.Forwarded && errors.As(err, &nl) {
			return adminResponse{Code: codeNotLeader, Error: err.Error(), Leader: nl.LeaderID}
		}
		// Nothing was proposed anywhere: wait for the leader to settle.
		select {
		case <-time.After(hb):
		case <-ctx.Done():
			return errorResponse(fmt.Errorf("%s: %w: %w", op, raft.ErrNoLeader, ctx.Err()))
		}
	}
}

// attempt runs op once, here or on the leader. An error wrapping
// errNotProposed is safe to retry.
func (a *adminServer) attempt(ctx context.Context, op string, r adminRequest) (*ClusterStatus, error) {
	g := a.n.served.Load()
	if g == nil {
		return nil, fmt.Errorf("%w: %w", errNotProposed, &raft.NotLeaderError{})
	}
	st, err := a.local(ctx, g, op, r)
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) {
		return st, err
	}
	if r.Forwarded || nl.LeaderID == 0 || nl.LeaderID == g.ID() {
		return nil, fmt.Errorf("%w: %w", errNotProposed, err)
	}
	m, ok := g.Members()[nl.LeaderID]
	if !ok {
		return nil, fmt.Errorf("%w: %w", errNotProposed, err)
	}
	addr := a.n.dialAddr(m)
	fr := r
	fr.Forwarded = true
	resp, err := a.n.callAdmin(ctx, addr, op, fr)
	switch {
	case err != nil && neverSent(err):
		return nil, fmt.Errorf("%w: dial leader %s: %v", errNotProposed, addr, err)
	case err != nil && op == opStatus:
		return nil, fmt.Errorf("%w: ask leader %s: %v", errNotProposed, addr, err)
	case err != nil:
		return nil, fmt.Errorf("forward %s to leader %s: %w: %v", op, addr, ErrOutcomeUnknown, err)
	case resp.Code == codeNotLeader:
		return nil, fmt.Errorf("%w: %s", errNotProposed, resp.Error)
	case resp.Code != "":
		return nil, responseError(resp)
	}
	return resp.Status, nil
}

// status asks the leader (through this node) for the cluster status, and
// falls back to this node's own view when no leader answers in time.
func (a *adminServer) status(ctx context.Context, r adminRequest) adminResponse {
	if r.Forwarded {
		st, err := a.attempt(ctx, opStatus, r)
		var nl *raft.NotLeaderError
		switch {
		case err == nil:
			return adminResponse{Status: st}
		case errors.As(err, &nl):
			return adminResponse{Code: codeNotLeader, Error: err.Error(), Leader: nl.LeaderID}
		default:
			return errorResponse(err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 2*a.n.cfg.ElectionTimeout+time.Second)
	defer cancel()
	for {
		st, err := a.attempt(sctx, opStatus, r)
		if err == nil {
			return adminResponse{Status: st}
		}
		if !errors.Is(err, errNotProposed) {
			return errorResponse(err)
		}
		select {
		case <-time.After(a.n.cfg.HeartbeatInterval):
			continue
		case <-sctx.Done():
		}
		g := a.n.served.Load()
		if g == nil || ctx.Err() != nil {
			return errorResponse(fmt.Errorf("status: %w", raft.ErrNoLeader))
		}
		return adminResponse{Status: a.n.localStatus(ctx, g)}
	}
}

// leaderStatus is the status on the leader; a *NotLeaderError elsewhere.
func (n *Node) leaderStatus(ctx context.Context, g *raft.Group) (*ClusterStatus, error) {
	p, err := g.Progress(ctx)
	if err != nil {
		return nil, err
	}
	return n.clusterStatus(g, p, false), nil
}

// localStatus is this node's own view, for when no leader answers.
func (n *Node) localStatus(ctx context.Context, g *raft.Group) *ClusterStatus {
	p, _ := g.Progress(ctx)
	st := n.clusterStatus(g, p, true)
	if len(st.Members) == 0 {
		// Progress failed altogether (stopping): fall back to the membership.
		for id, m := range g.Members() {
			st.Members = append(st.Members, raft.MemberProgress{ID: id, Name: m.Name, Addr: m.Addr})
		}
	}
	return st
}

func (n *Node) clusterStatus(g *raft.Group, p raft.GroupProgress, local bool) *ClusterStatus {
	gs := g.Status()
	st := &ClusterStatus{Node: n.cfg.Name, Term: p.Term, Commit: p.Commit, LastIndex: p.LastIndex, Local: local, Members: p.Members}
	if m, ok := gs.Members[p.Leader]; ok {
		st.Leader = m.Name
	}
	if st.Members == nil {
		st.Members = []raft.MemberProgress{}
	}
	return st
}

// callAdmin invokes op on the node at addr.
func (n *Node) callAdmin(ctx context.Context, addr, op string, r adminRequest) (adminResponse, error) {
	cc, err := n.fwd.conn(addr)
	if err != nil {
		return adminResponse{}, err
	}
	return invokeAdmin(ctx, cc, op, r)
}

func invokeAdmin(ctx context.Context, cc *grpc.ClientConn, op string, r adminRequest) (adminResponse, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultAdminTimeout)
		defer cancel()
	}
	b, err := json.Marshal(r)
	if err != nil {
		return adminResponse{}, fmt.Errorf("encode admin request: %w", err)
	}
	var out grpcraw.Frame
	if err := cc.Invoke(ctx, "/"+adminService+"/"+op, &grpcraw.Frame{Data: b}, &out, grpcraw.CallOption()); err != nil {
		return adminResponse{}, err
	}
	var resp adminResponse
	if err := json.Unmarshal(out.Data, &resp); err != nil {
		return adminResponse{}, fmt.Errorf("decode admin response: %w", err)
	}
	return resp, nil
}

func errorResponse(err error) adminResponse {
	code := codeError
	for c, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			code = c
			break
		}
	}
	if code == codeError && (errors.Is(err, raft.ErrProposalUnknown) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		code = codeUnknown
	}
	return adminResponse{Code: code, Error: err.Error()}
}

// adminError is an error answered by a remote node: its message, and the
// sentinel its code stands for.
type adminError struct {
	msg      string
	sentinel error
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.sentinel }

func responseError(resp adminResponse) error {
	return &adminError{msg: resp.Error, sentinel: codeErrors[resp.Code]}
}

// AdminClient calls the admin service of one node, which forwards to the
// leader as needed. Every call waits until its change is applied.
type AdminClient struct {
	endpoint string
	cc       *grpc.ClientConn
}

// DialAdmin returns a client for the node whose peer (Raft) address is
// endpoint. No connection is made until the first call.
func DialAdmin(endpoint string) (*AdminClient, error) {
	cc, err := grpc.NewClient(endpoint,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpcraw.CallOption()))
	if err != nil {
		return nil, fmt.Errorf("admin client for %s: %w", endpoint, err)
	}
	return &AdminClient{endpoint: endpoint, cc: cc}, nil
}

// Close releases the connection.
func (c *AdminClient) Close() error { return c.cc.Close() }

func (c *AdminClient) call(ctx context.Context, op string, r adminRequest) (*ClusterStatus, error) {
	resp, err := invokeAdmin(ctx, c.cc, op, r)
	if err != nil {
		if op != opStatus && !neverSent(err) {
			return nil, fmt.Errorf("ask %s: %w: %v", c.endpoint, ErrOutcomeUnknown, err)
		}
		return nil, fmt.Errorf("ask %s: %w", c.endpoint, err)
	}
	if resp.Code != "" {
		return nil, responseError(resp)
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("ask %s: empty response", c.endpoint)
	}
	return resp.Status, nil
}

// Status returns the cluster's membership and progress, from the leader
// when one answers (ClusterStatus.Local is false).
func (c *AdminClient) Status(ctx context.Context) (*ClusterStatus, error) {
	return c.call(ctx, opStatus, adminRequest{})
}

// AddMember adds name at addr (its peer address) as a voter, or as a
// learner. autoPromote asks the leader to promote the learner once it has
// caught up.
func (c *AdminClient) AddMember(ctx context.Context, name, addr string, learner, autoPromote bool) (*ClusterStatus, error) {
	return c.call(ctx, opAddMember, adminRequest{Name: name, Addr: addr, Learner: learner, AutoPromote: autoPromote && learner,
		MaxFormat: kv.MaxFormat})
}

// PromoteMember makes learner name a voter.
func (c *AdminClient) PromoteMember(ctx context.Context, name string) (*ClusterStatus, error) {
	return c.call(ctx, opPromoteMember, adminRequest{Name: name})
}

// RemoveMember removes name from the cluster (the leader hands leadership
// over first when name is the leader).
func (c *AdminClient) RemoveMember(ctx context.Context, name string) (*ClusterStatus, error) {
	return c.call(ctx, opRemoveMember, adminRequest{Name: name})
}

// TransferLeader moves leadership to name, or to the most caught-up voter
// when name is empty.
func (c *AdminClient) TransferLeader(ctx context.Context, name string) (*ClusterStatus, error) {
	return c.call(ctx, opTransferLeader, adminRequest{Name: name})
}
