package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Membership changes and leadership transfer.
//
// Every change is a single V1 ConfChange (one member at a time, no joint
// consensus). Its Context is the JSON member record (what applyConfChange
// adopts) plus a request id, so the proposer can recognise its own entry in
// the log. A change is proposed only on the leader, only while no other
// change proposed here is unresolved, and the caller waits until the entry
// is applied on this node (ApplyConfChange done, membership record stored).
//
// Tracking a change (event loop only, in g.conf):
//   - proposed: RawNode.ProposeConfChange accepted it. Raft may still have
//     turned it into an empty entry (it does so, silently, while an earlier
//     change is unapplied, e.g. right after an election), so the next Ready
//     is searched for the entry: found means placed at that index, missing
//     means dropped, and the caller is told to retry (nothing was changed).
//   - placed: when the entry at that index is applied, it is either ours
//     (success) or another leader's (ErrProposalLost).

// Membership errors, for errors.Is.
var (
	// ErrMemberExists: the node id is already a voter or learner. An id is
	// never reused: a node that lost its disk must come back under a new id.
	ErrMemberExists = errors.New("node is already a member of the group")
	// ErrUnknownMember: no member has that name.
	ErrUnknownMember = errors.New("no such member")
	// ErrConfChangePending: another configuration change has not been
	// applied yet; retry once it has.
	ErrConfChangePending = errors.New("another membership change is still pending")
	// ErrNotLearner: promotion of a member that is not a learner.
	ErrNotLearner = errors.New("member is not a learner")
	// ErrLastVoter: the change would leave the group without a voter.
	ErrLastVoter = errors.New("cannot remove the last voter")
	// ErrTransferFailed: leadership did not move to the chosen member in time.
	ErrTransferFailed = errors.New("leadership transfer did not complete")
)

// Role names used in GroupProgress.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
	RoleLearner  = "learner"
)

// DefaultPromoteLag is how many entries behind the leader's last index an
// auto-promote learner may be when it is promoted to voter.
const DefaultPromoteLag = 128

// confContext is a ConfChange's Context: the member record, which every
// replica decodes as a Member (unknown fields are ignored), plus the
// proposer's request id.
type confContext struct {
	Member
	Req uint64 `json:"req,omitempty"`
}

// pendingConf is the one unresolved change proposed by this node; event
// loop only.
type pendingConf struct {
	req   uint64
	desc  string
	index uint64 // 0 until the entry is seen in a Ready
	// done receives the outcome (buffered, capacity 1); nil for changes the
	// leader makes on its own (auto-promotion), which nobody waits for.
	done chan confResult
}

type confResult struct {
	index uint64
	err   error
}

// errConfDropped: Raft replaced the change with an empty entry; nothing
// changed, so the proposal may be retried.
var errConfDropped = errors.New("configuration change dropped by raft")

// errAutoConfPending: the unresolved change is one the leader made on its
// own (auto-promotion, a member's format record); nobody else will retry
// for the caller, so changeMembership waits for it instead of failing.
var errAutoConfPending = errors.New("an automatic membership change is pending")

// MemberProgress is one member as the leader sees it.
type MemberProgress struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
	Addr string `json:"addr"`
	// Role is RoleLeader, RoleFollower or RoleLearner.
	Role string `json:"role"`
	// Match is the highest log index the member acknowledged; Lag is the
	// leader's last index minus Match. Both are 0 when Known is false.
	Match uint64 `json:"match"`
	Lag   uint64 `json:"lag"`
	// Known says Match and Lag come from the leader.
	Known bool `json:"known"`
	// Active says the leader heard from the member within an election
	// timeout.
	Active bool `json:"active"`
	// AutoPromote marks a learner the leader promotes once caught up.
	AutoPromote bool `json:"auto_promote,omitempty"`
}

// GroupProgress is the membership and replication progress of the group.
type GroupProgress struct {
	// Leader is the leader's id (0 if none is known).
	Leader    uint64           `json:"leader"`
	Term      uint64           `json:"term"`
	Commit    uint64           `json:"commit"`
	LastIndex uint64           `json:"last_index"`
	Members   []MemberProgress `json:"members"`
}

// inLoop runs fn on the event loop and waits for it. fn must not block.
func (g *Group) inLoop(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case g.ctlc <- func() { fn(); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-g.stopc:
		return ErrStopped
	}
	// The loop runs fn as soon as it receives it, so this wait is short.
	select {
	case <-done:
		return nil
	case <-g.stopc:
		return ErrStopped
	}
}

// AddMember adds m to the group, as a learner (which receives the log but
// does not vote) or as a voter, and returns once the change is applied on
// this node. A learner with m.AutoPromote set is promoted to voter by the
// leader once it has caught up. Only the leader accepts it; elsewhere it
// fails with a *NotLeaderError.
func (g *Group) AddMember(ctx context.Context, m Member, learner bool) error {
	if m.Name == "" {
		return errors.New("add member: empty name")
	}
	if _, _, err := net.SplitHostPort(m.Addr); err != nil {
		return fmt.Errorf("add member %s: address %q: %w", m.Name, m.Addr, err)
	}
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	} else {
		m.AutoPromote = false
	}
	return g.changeMembership(ctx, func() (*raftpb.ConfChange, Member, string, error) {
		if err := g.checkAdd(m); err != nil {
			return nil, m, "", err
		}
		role := "voter"
		if learner {
			role = "learner"
		}
		return &raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.ID())}, m, fmt.Sprintf("add %s %s (%s)", role, m.Name, m.Addr), nil
	})
}

// PromoteMember makes learner name a voter and returns once the change is
// applied on this node; leader only.
func (g *Group) PromoteMember(ctx context.Context, name string) error {
	return g.changeMembership(ctx, func() (*raftpb.ConfChange, Member, string, error) {
		id := NodeID(name)
		cur, ok := g.members[id]
		switch {
		case !ok || cur.Name != name:
			return nil, cur, "", fmt.Errorf("promote %s: %w", name, ErrUnknownMember)
		case !slices.Contains(g.confState.GetLearners(), id):
			return nil, cur, "", fmt.Errorf("promote %s: %w", name, ErrNotLearner)
		}
		// The promoted record drops AutoPromote: the member is a voter now.
		m := Member{Name: cur.Name, Addr: cur.Addr, MaxFormat: cur.MaxFormat}
		return &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id)}, m, "promote " + name, nil
	})
}

// RemoveMember removes name from the group and returns once the change is
// applied on this node; leader only. Removing the leader itself first
// transfers leadership to the most caught-up voter and then fails with a
// *NotLeaderError naming the new leader, which performs the removal: a
// leader never proposes its own removal, so the group is never left
// leaderless waiting for an election.
func (g *Group) RemoveMember(ctx context.Context, name string) error {
	if name == g.cfg.Self.Name {
		if g.Status().State != RoleLeader {
			return &NotLeaderError{LeaderID: g.Status().LeaderID}
		}
		if err := g.TransferLeadership(ctx, ""); err != nil {
			return fmt.Errorf("remove leader %s: %w", name, err)
		}
		return &NotLeaderError{LeaderID: g.Status().LeaderID}
	}
	return g.changeMembership(ctx, func() (*raftpb.ConfChange, Member, string, error) {
		id := NodeID(name)
		cur, ok := g.members[id]
		voters, learners := g.confState.GetVoters(), g.confState.GetLearners()
		switch {
		case !ok || cur.Name != name || !slices.Contains(voters, id) && !slices.Contains(learners, id):
			return nil, cur, "", fmt.Errorf("remove %s: %w", name, ErrUnknownMember)
		case slices.Contains(voters, id) && len(voters) == 1:
			return nil, cur, "", fmt.Errorf("remove %s: %w", name, ErrLastVoter)
		}
		return &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: proto.Uint64(id)}, cur, "remove " + name, nil
	})
}

// checkAdd validates an addition against the applied configuration; loop
// only.
func (g *Group) checkAdd(m Member) error {
	id := m.ID()
	if slices.Contains(g.confState.GetVoters(), id) || slices.Contains(g.confState.GetLearners(), id) {
		role := "voter"
		if slices.Contains(g.confState.GetLearners(), id) {
			role = "learner"
		}
		addr := m.Addr
		if cur, ok := g.members[id]; ok {
			addr = cur.Addr
		}
		return fmt.Errorf("add %s: %w (%s at %s)", m.Name, ErrMemberExists, role, addr)
	}
	if cur, ok := g.members[id]; ok && cur.Name != m.Name {
		return fmt.Errorf("add %s: its id collides with member %s; choose another name", m.Name, cur.Name)
	}
	return nil
}

// changeBuilder validates a change against the applied configuration
// (it runs on the event loop) and returns it with the member record for
// its context and a description for logs and errors.
type changeBuilder func() (*raftpb.ConfChange, Member, string, error)

// changeMembership proposes the change build returns and waits until it is
// applied. A change Raft dropped (an earlier change, possibly a previous
// leader's, is still unapplied) is retried until ctx ends: nothing was
// changed by it.
func (g *Group) changeMembership(ctx context.Context, build changeBuilder) error {
	for {
		if err := g.fatal(); err != nil {
			return err
		}
		done := make(chan confResult, 1)
		var perr error
		err := g.inLoop(ctx, func() {
			perr = g.proposeConfChange(build, done)
		})
		if err == nil {
			err = perr
		}
		if errors.Is(err, errAutoConfPending) {
			select {
			case <-time.After(g.cfg.HeartbeatInterval):
				continue
			case <-ctx.Done():
				// Nothing of the caller's was proposed.
				return fmt.Errorf("%w (%v): %w", ErrConfChangePending, err, ctx.Err())
			case <-g.stopc:
				return ErrStopped
			}
		}
		if err != nil {
			return err
		}
		var res confResult
		select {
		case res = <-done:
		case <-ctx.Done():
			return fmt.Errorf("membership change: %w: %w", ErrProposalUnknown, ctx.Err())
		case <-g.stopc:
			return ErrStopped
		}
		if errors.Is(res.err, errConfDropped) {
			select {
			case <-time.After(g.cfg.HeartbeatInterval):
				continue
			case <-ctx.Done():
				return fmt.Errorf("%w: %w", ErrConfChangePending, ctx.Err())
			case <-g.stopc:
				return ErrStopped
			}
		}
		if res.err != nil {
			return res.err
		}
		return g.applied.wait(ctx, res.index, g.stopc)
	}
}

// proposeConfChange validates and proposes one change; loop only.
func (g *Group) proposeConfChange(build changeBuilder, done chan confResult) error {
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return &NotLeaderError{LeaderID: st.Lead}
	}
	if g.conf != nil {
		if g.conf.done == nil {
			return fmt.Errorf("%w: %s", errAutoConfPending, g.conf.desc)
		}
		return fmt.Errorf("%w: %s", ErrConfChangePending, g.conf.desc)
	}
	cc, m, desc, err := build()
	if err != nil {
		return err
	}
	return g.startConfChange(cc, m, desc, done)
}

// startConfChange hands cc to Raft and records it as pending; loop only.
func (g *Group) startConfChange(cc *raftpb.ConfChange, m Member, desc string, done chan confResult) error {
	req := g.seq.Add(1)
	ctx, err := json.Marshal(confContext{Member: m, Req: req})
	if err != nil {
		return fmt.Errorf("encode conf change context: %w", err)
	}
	cc.Context = ctx
	if err := g.rn.ProposeConfChange(cc); err != nil {
		st := g.rn.BasicStatus()
		if st.RaftState != raft.StateLeader {
			return &NotLeaderError{LeaderID: st.Lead}
		}
		if st.LeadTransferee != 0 {
			return fmt.Errorf("%s: a leadership transfer is in progress: %w", desc, ErrConfChangePending)
		}
		return fmt.Errorf("propose %s: %w", desc, err)
	}
	g.conf = &pendingConf{req: req, desc: desc, done: done}
	g.log.Info("membership change proposed", "change", desc)
	return nil
}

// confReq returns the request id in a conf change entry, or 0.
func confReq(e *raftpb.Entry) uint64 {
	if e.GetType() != raftpb.EntryConfChange {
		return 0
	}
	var cc raftpb.ConfChange
	if proto.Unmarshal(e.GetData(), &cc) != nil {
		return 0
	}
	var c confContext
	if json.Unmarshal(cc.GetContext(), &c) != nil {
		return 0
	}
	return c.Req
}

// noteConfPlacement finds the pending change in the entries of the first
// Ready after it was proposed; loop only.
func (g *Group) noteConfPlacement(ents []*raftpb.Entry) {
	c := g.conf
	if c == nil || c.index != 0 {
		return
	}
	for _, e := range ents {
		if confReq(e) == c.req {
			c.index = e.GetIndex()
			return
		}
	}
	// Raft swapped it for an empty entry (see the package comment above).
	g.resolveConf(confResult{err: errConfDropped})
}

// noteConfApplied resolves the pending change when the entry at its index
// is committed; loop only, called for every committed entry in order.
func (g *Group) noteConfApplied(e *raftpb.Entry) {
	if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
		g.confSnapAt.Store(e.GetIndex())
	}
	c := g.conf
	if c == nil || c.index == 0 || e.GetIndex() != c.index {
		return
	}
	if confReq(e) == c.req {
		g.log.Info("membership change committed", "change", c.desc, "index", c.index)
		g.resolveConf(confResult{index: c.index})
		return
	}
	g.resolveConf(confResult{err: fmt.Errorf("%s: %w", c.desc, ErrProposalLost)})
}

// checkConfSkipped fails a pending change whose index a received snapshot
// covered: the entry itself is never seen here, so its fate is unknown
// (the operator checks the membership and retries); loop only.
func (g *Group) checkConfSkipped() {
	c := g.conf
	if c != nil && c.index != 0 && g.snapIndex.Load() >= c.index && g.rn.BasicStatus().RaftState != raft.StateLeader {
		g.resolveConf(confResult{err: fmt.Errorf("%s: %w: this node lost leadership and installed a snapshot past the change", c.desc, ErrProposalUnknown)})
	}
}

func (g *Group) resolveConf(r confResult) {
	c := g.conf
	g.conf = nil
	if r.err != nil && !errors.Is(r.err, errConfDropped) {
		g.log.Warn("membership change failed", "change", c.desc, "err", r.err)
	}
	if c.done != nil {
		c.done <- r
	}
}

// maybePromoteLearners proposes the promotion of one auto-promote learner
// that has caught up; the leader's event loop calls it every tick.
func (g *Group) maybePromoteLearners() {
	if g.conf != nil || len(g.confState.GetLearners()) == 0 {
		return
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return
	}
	lag := g.cfg.PromoteLag
	if lag == 0 {
		lag = DefaultPromoteLag
	}
	var pick *Member
	g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		m, ok := g.members[id]
		if pick != nil || typ != raft.ProgressTypeLearner || !ok || !m.AutoPromote {
			return
		}
		if g.active(id, pr) && pr.State == tracker.StateReplicate && pr.Match+lag >= last {
			pick = &Member{Name: m.Name, Addr: m.Addr, MaxFormat: m.MaxFormat}
		}
	})
	if pick == nil {
		return
	}
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(pick.ID())}
	if err := g.startConfChange(cc, *pick, "auto-promote "+pick.Name, nil); err != nil {
		g.log.Warn("auto-promotion not proposed", "member", pick.Name, "err", err)
	}
}

// noteActivity records, on the leader, which peers Raft currently counts
// as recently active. Raft clears that flag for every peer at each quorum
// check and sets it again on the peer's next response, so sampling it every
// tick and keeping the time it was last seen gives a steady "heard from
// within an election timeout"; loop only, every tick.
func (g *Group) noteActivity() {
	if g.rn.BasicStatus().RaftState != raft.StateLeader {
		g.heard = nil
		return
	}
	if g.heard == nil {
		g.heard = make(map[uint64]time.Time)
	}
	now := time.Now()
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pr.RecentActive {
			g.heard[id] = now
		}
	})
	for id := range g.heard {
		if _, ok := g.members[id]; !ok {
			delete(g.heard, id) // removed member
		}
	}
}

// active says whether the leader heard from peer id within an election
// timeout (plus a tick for the sampling); loop only.
func (g *Group) active(id uint64, pr tracker.Progress) bool {
	if id == g.id || pr.RecentActive {
		return true
	}
	at, ok := g.heard[id]
	return ok && time.Since(at) <= g.cfg.ElectionTimeout+g.cfg.HeartbeatInterval
}

// TransferLeadership moves leadership to the voter named to ("" picks the
// voter with the highest match index) and returns once that node leads.
// Leader only; a no-op when to is this node.
func (g *Group) TransferLeadership(ctx context.Context, to string) error {
	var target uint64
	var perr error
	err := g.inLoop(ctx, func() { target, perr = g.startTransfer(to) })
	if err == nil {
		err = perr
	}
	if err != nil || target == g.id {
		return err
	}
	// Raft abandons a transfer after an election timeout; allow a little
	// more for the new leader's election to be seen here.
	deadline := time.Now().Add(2*g.cfg.ElectionTimeout + time.Second)
	tick := time.NewTicker(max(g.cfg.HeartbeatInterval/5, 5*time.Millisecond))
	defer tick.Stop()
	for {
		st := g.Status()
		if st.LeaderID == target && st.State != RoleLeader {
			g.log.Info("leadership transferred", "to", g.nameOf(st, target), "term", st.Term)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: to %s (leader is now %s)", ErrTransferFailed, g.nameOf(st, target), g.nameOf(st, st.LeaderID))
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("leadership transfer to %s: %w", g.nameOf(st, target), ctx.Err())
		case <-g.stopc:
			return ErrStopped
		}
	}
}

func (g *Group) nameOf(st Status, id uint64) string {
	if m, ok := st.Members[id]; ok {
		return m.Name
	}
	if id == 0 {
		return "none"
	}
	return fmt.Sprintf("%x", id)
}

// startTransfer picks the target and asks Raft to hand over; loop only.
func (g *Group) startTransfer(to string) (uint64, error) {
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return 0, &NotLeaderError{LeaderID: st.Lead}
	}
	voters := g.confState.GetVoters()
	var target uint64
	if to != "" {
		target = NodeID(to)
		if m, ok := g.members[target]; !ok || m.Name != to || !slices.Contains(voters, target) {
			if slices.Contains(g.confState.GetLearners(), target) {
				return 0, fmt.Errorf("transfer leadership to %s: it is a learner; promote it first", to)
			}
			return 0, fmt.Errorf("transfer leadership to %s: %w", to, ErrUnknownMember)
		}
	} else {
		var best uint64
		g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
			if id == g.id || typ != raft.ProgressTypePeer || !g.active(id, pr) {
				return
			}
			if target == 0 || pr.Match > best || pr.Match == best && id < target {
				target, best = id, pr.Match
			}
		})
		if target == 0 {
			return 0, fmt.Errorf("transfer leadership: %w: no other active voter", ErrTransferFailed)
		}
	}
	if target != g.id {
		g.log.Info("transferring leadership", "to", g.memberName(target))
		g.rn.TransferLeader(target)
	}
	return target, nil
}

// Progress returns the membership with each member's replication progress
// as the leader sees it. On a follower it returns this node's view of the
// membership (roles, no progress) together with a *NotLeaderError.
func (g *Group) Progress(ctx context.Context) (GroupProgress, error) {
	var out GroupProgress
	var perr error
	if err := g.inLoop(ctx, func() { out, perr = g.progress() }); err != nil {
		return out, err
	}
	return out, perr
}

// progress builds a GroupProgress; loop only.
func (g *Group) progress() (GroupProgress, error) {
	st := g.rn.BasicStatus()
	out := GroupProgress{Leader: st.Lead, Term: st.GetTerm(), Commit: st.GetCommit()}
	out.LastIndex, _ = g.storage.LastIndex()
	member := func(id uint64) MemberProgress {
		mp := MemberProgress{ID: id, Role: RoleFollower}
		if m, ok := g.members[id]; ok {
			mp.Name, mp.Addr, mp.AutoPromote = m.Name, m.Addr, m.AutoPromote
		} else {
			mp.Name = fmt.Sprintf("%x", id)
		}
		if id == st.Lead {
			mp.Role = RoleLeader
		}
		return mp
	}
	if st.RaftState != raft.StateLeader {
		for _, id := range g.confState.GetVoters() {
			out.Members = append(out.Members, member(id))
		}
		for _, id := range g.confState.GetLearners() {
			mp := member(id)
			mp.Role = RoleLearner
			out.Members = append(out.Members, mp)
		}
		sortProgress(out.Members)
		return out, &NotLeaderError{LeaderID: st.Lead}
	}
	g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		mp := member(id)
		if typ == raft.ProgressTypeLearner {
			mp.Role = RoleLearner
		}
		mp.Known, mp.Match, mp.Active = true, pr.Match, g.active(id, pr)
		if id == g.id {
			// The leader's own match trails its log only by the WAL write
			// in flight; report what it holds.
			mp.Match = max(mp.Match, out.LastIndex)
		}
		if out.LastIndex > mp.Match {
			mp.Lag = out.LastIndex - mp.Match
		}
		out.Members = append(out.Members, mp)
	})
	sortProgress(out.Members)
	return out, nil
}

func sortProgress(ms []MemberProgress) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
}

// PeerNamer is an optional capability of a Config.Transport: it learns each
// member's name before the member is added as a peer (for logs and metric
// labels).
type PeerNamer interface {
	NamePeer(id uint64, name string)
}

// contactJoinMembers makes the cluster's members reachable before this
// blank node has learned the membership; Open only.
func (g *Group) contactJoinMembers() {
	for _, m := range g.cfg.JoinMembers {
		if m.ID() == g.id {
			continue
		}
		if pn, ok := g.cfg.Transport.(PeerNamer); ok {
			pn.NamePeer(m.ID(), m.Name)
		}
		g.cfg.Transport.AddPeer(m.ID(), m.Addr)
	}
}

// confSnapshotDue says the applier should snapshot now, at applied index
// last, because a configuration change was applied since the newest
// snapshot. Raft refuses a snapshot whose configuration does not include
// the receiver, so a node added after the newest snapshot could not catch
// up by snapshot until the next regular one (SnapshotCount entries later);
// a snapshot right after the change carries the new configuration.
func (g *Group) confSnapshotDue(last uint64) bool {
	at := g.confSnapAt.Load()
	return at != 0 && last >= at && g.snapIndex.Load() < at
}
