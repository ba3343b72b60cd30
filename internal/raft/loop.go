package raft

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Burst sizes bound how much one kind of work can do before the loop looks
// at the others, so ticks and heartbeats are never starved.
const (
	priorityBurst = 256
	stepBurst     = 512
	proposeBurst  = 1024
)

// run is the event loop; it owns the RawNode.
//
// Each iteration first takes in, without blocking, everything that queued
// while the last Ready was being persisted: peer messages (the follower
// acknowledgements that commit the last batch), proposals and reads. They
// then share one Ready: one WAL write and fsync covers the new entries and
// the commit, where taking a Ready between them would make the commit wait
// behind a second fsync. Only when nothing is queued does the loop block.
func (g *Group) run() {
	defer close(g.loopDone)
	defer close(g.applyc)
	ticker := time.NewTicker(g.cfg.HeartbeatInterval)
	defer ticker.Stop()
	for {
		// Under steady load the loop may never block in the select below,
		// so everything but the bulk queues is polled here too (one event
		// per pass): stopping, heartbeats, membership and leadership
		// requests, progress queries, transport reports and finished
		// snapshots must not wait for a quiet moment.
		select {
		case <-g.stopc:
			g.failReads(ErrStopped)
			return
		case <-ticker.C:
			g.tick()
		case <-g.reports.notify:
			g.reports.drain(g.rn)
		case reply := <-g.progressc:
			g.answerProgress(reply)
		case fn := <-g.ctlc:
			fn()
		case s := <-g.snapDone:
			if !g.finishLocalSnapshot(s) {
				return
			}
		default:
		}
		g.stepQueued(g.prioc, priorityBurst)
		g.stepQueued(g.recvc, stepBurst)
		g.proposeQueued()
		g.queueReads()
		g.flushReads()
		if g.rn.HasReady() {
			if err := g.handleReady(); err != nil {
				// Without Advance no further Ready may be taken: every error,
				// stopping included, ends the loop.
				if !errors.Is(err, ErrStopped) {
					g.setFatal(err)
				}
				g.failReads(err)
				return
			}
			// Advance can make a new Ready at once (e.g. the commit that
			// waited for this node's own log write), more input may have
			// queued meanwhile, and a finished read round lets the reads
			// queued behind it start theirs: look again before blocking.
			continue
		}
		select {
		case <-g.stopc:
			g.failReads(ErrStopped)
			return
		case <-ticker.C:
			g.tick()
		case m := <-g.prioc:
			g.step(m)
		case m := <-g.recvc:
			g.step(m)
		case p := <-g.propc:
			// Proposed with whatever else queued, at the top of the loop.
			g.propBuf = append(g.propBuf, p)
		case r := <-g.readc:
			g.reads.waiting = append(g.reads.waiting, r)
		case <-g.reports.notify:
			g.reports.drain(g.rn)
		case reply := <-g.progressc:
			g.answerProgress(reply)
		case fn := <-g.ctlc:
			fn()
		case s := <-g.snapDone:
			if !g.finishLocalSnapshot(s) {
				return
			}
		}
	}
}

// answerProgress sends reply the match index of every member (nil unless
// this node leads).
func (g *Group) answerProgress(reply chan<- map[uint64]uint64) {
	var out map[uint64]uint64
	if g.rn.BasicStatus().RaftState == raft.StateLeader {
		out = make(map[uint64]uint64)
		g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
			out[id] = pr.Match
		})
	}
	reply <- out
}

// finishLocalSnapshot records a snapshot the background writer finished;
// false if that failed fatally and the loop must end.
func (g *Group) finishLocalSnapshot(s localSnap) bool {
	if err := g.installLocalSnapshot(s); err != nil {
		g.setFatal(err)
		g.failReads(err)
		return false
	}
	return true
}

func (g *Group) tick() {
	g.releaseCommits()
	g.proposeAcks()
	g.rn.Tick()
	now := g.clock.now().at
	g.pruneReadRounds(now)
	g.maybeIdleStamp(now)
	g.observeStampLag()
	g.noteActivity()
	g.maybePromoteLearners()
	g.maybeUpdateFormats()
	g.checkConfSkipped()
}

// stepQueued steps the messages already queued on ch, at most burst.
func (g *Group) stepQueued(ch <-chan *raftpb.Message, burst int) {
	for i := 0; i < burst; i++ {
		select {
		case m := <-ch:
			g.step(m)
		default:
			return
		}
	}
}

// proposeQueued proposes the proposals already queued (and any the select
// took), at most proposeBurst, as one batch. Group commit: everything queued
// while the last Ready was being persisted rides in the next one.
func (g *Group) proposeQueued() {
	batch := g.propBuf
	for len(batch) < proposeBurst {
		select {
		case p := <-g.propc:
			batch = append(batch, p)
			continue
		default:
		}
		break
	}
	if len(batch) > 0 {
		g.propose(batch)
		clear(batch)
	}
	g.propBuf = batch[:0]
}

// queueReads moves the reads already queued, at most proposeBurst, to the
// waiting list flushReads starts rounds for.
func (g *Group) queueReads() {
	for i := 0; i < proposeBurst; i++ {
		select {
		case r := <-g.readc:
			g.reads.waiting = append(g.reads.waiting, r)
		default:
			return
		}
	}
}

func (g *Group) step(m *raftpb.Message) {
	g.inbound.release(msgBytes(m)) // out of the queue (Group.Step charged it)
	switch m.GetType() {
	case raftpb.MsgVote, raftpb.MsgPreVote:
		if g.voteGate(m) {
			return
		}
	case raftpb.MsgForgetLeader:
		// A local request only (it makes a follower forget its leader,
		// lifting the vote rule leases rest on); never from a peer.
		return
	case raftpb.MsgHeartbeat:
		g.clampHeartbeatCommit(m)
	default:
		// Every other type goes to Raft as it came.
	}
	if err := g.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
		g.log.Debug("step failed", "type", m.GetType().String(), "from", m.GetFrom(), "err", err)
	}
}

// propose appends a batch of proposals as one MsgProp: Raft then appends
// and broadcasts them once (one MsgApp per follower, one reply each), where
// a Propose call per entry would send a MsgApp per entry per follower.
//
// With stamping on, the whole batch carries one stamp (stamps.go), taken
// here, as Raft appends it: stamps then follow log order (S1).
func (g *Group) propose(batch []*proposal) {
	stamped := g.leaderStamping()
	var stamp uint64
	if stamped {
		stamp = g.assignStamp()
	}
	ents := make([]*raftpb.Entry, len(batch))
	for i, p := range batch {
		ents[i] = &raftpb.Entry{Data: p.entryData(stamped, stamp)}
	}
	err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(g.id), Entries: ents})
	if err == nil {
		if stamped {
			g.lastPropose = g.clock.now().at
		}
		return
	}
	if stamped {
		g.unassignStamp(stamp)
	}
	st := g.rn.BasicStatus()
	var e error = &NotLeaderError{LeaderID: st.Lead}
	switch {
	case st.RaftState == raft.StateLeader && errors.Is(err, raft.ErrProposalDropped):
		// Leadership is being handed over, this leader is leaving the
		// group, or its uncommitted log is over MaxUncommittedBytes:
		// nothing was appended, so the caller may retry (once the new
		// leader is known, or once followers have caught up).
		if st.LeadTransferee == 0 {
			g.metrics.droppedBudget.Inc()
		}
		e = &NotLeaderError{}
	case st.RaftState == raft.StateLeader:
		e = fmt.Errorf("propose: %w", err)
	}
	for _, p := range batch {
		g.pending.complete(p.seq, proposalResult{err: e})
	}
}

// handleReady processes one Ready in the order Raft requires.
func (g *Group) handleReady() error {
	rd := g.rn.Ready()
	// Stamps first: a node taking office below sets its floor from them.
	g.stamps.noteEntries(rd.Entries)
	if rd.SoftState != nil {
		g.onSoftState(rd.SoftState)
	}
	if rd.HardState != nil {
		// Before any message of this Ready goes out: a follower may learn
		// of (and apply, and serve through ReadIndex) any index up to this
		// once they do, so a lease read started later must wait for it.
		// Published with the stamps' commit index (stamps.go, S2).
		g.stamps.noteCommit(rd.HardState.GetCommit(), &g.lease.commit)
	}
	if g.cfg.ReadMode == ReadModeLease {
		g.fenceLeaseForTransfer(rd.Messages)
	}
	// After noteCommit above (S2); whatever this node's role now: the
	// responses were made while it led, and may go out after it stepped
	// down in this same pass.
	g.stampReadResponses(rd.Messages)
	isLeader := g.rn.BasicStatus().RaftState == raft.StateLeader
	if isLeader {
		// The leader may replicate while it writes its own log (see doc.go).
		g.sendAsLeader(rd.Messages, !commitsConfChange(rd.CommittedEntries))
	}
	var restore *restoreTask
	if !raft.IsEmptySnap(rd.Snapshot) {
		// Snapshot before entries: the WAL must record the snapshot before
		// the entries that follow it.
		var err error
		if restore, err = g.installReceivedSnapshot(rd.Snapshot); err != nil {
			return err
		}
		g.confState = rd.Snapshot.GetMetadata().GetConfState()
	}
	start := time.Now()
	if err := g.wal.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("save to wal: %w", err)
	}
	if len(rd.Entries) > 0 || rd.HardState != nil {
		g.metrics.walSave.Observe(time.Since(start).Seconds())
	}
	if rd.HardState != nil {
		if err := g.storage.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("set hard state: %w", err)
		}
	}
	if len(rd.Entries) > 0 {
		if err := g.storage.Append(rd.Entries); err != nil {
			return fmt.Errorf("append to raft storage: %w", err)
		}
		if isLeader {
			g.notePlacements(rd.Entries)
		}
	}
	// On any node: the entries of the first Ready after a membership
	// proposal tell whether Raft kept it.
	g.noteConfPlacement(rd.Entries)
	if !isLeader {
		g.cfg.Transport.Send(g.cfg.GroupID, rd.Messages)
	}
	for _, rs := range rd.ReadStates {
		g.readIndexReady(rs.RequestCtx, rs.Index)
	}
	if restore != nil {
		select {
		case g.applyc <- applyTask{restore: restore}:
		case <-g.stopc:
			return ErrStopped // the Ready is abandoned: the loop must exit
		}
	}
	if len(rd.CommittedEntries) > 0 {
		task, err := g.prepareApply(rd.CommittedEntries)
		if err != nil {
			return err
		}
		select {
		case g.applyc <- task:
		case <-g.stopc:
			return ErrStopped // the Ready is abandoned: the loop must exit
		}
	}
	g.rn.Advance(rd)
	g.updateStatus()
	return nil
}

func (g *Group) onSoftState(ss *raft.SoftState) {
	prev := g.Status()
	if ss.RaftState != raft.StateLeader {
		g.forgetCommits()
		clear(g.ackChecked)
		g.revokeLease()
	}
	g.leadershipChanged()
	if ss.RaftState == raft.StateLeader {
		g.leaderStamping() // takes office: the floor is set before any read or stamp
	}
	if ss.Lead != prev.LeaderID && ss.Lead != raft.None {
		g.metrics.leaderChanges.Inc()
		g.log.Info("leader changed", "leader", g.memberName(ss.Lead), "term", g.rn.BasicStatus().GetTerm())
	}
	if ss.RaftState != raft.StateLeader && prev.State == "leader" {
		// Proposals this node accepted as leader may still commit under
		// the new leader (they are then completed by the applier), or be
		// overwritten (failOverwritten catches those once the index is
		// applied). Nothing to do eagerly.
		g.log.Info("stepped down", "state", ss.RaftState.String())
	}
}

// notePlacements tells pending proposals where their entries landed, so a
// proposal overwritten after a leader change can be failed instead of
// waiting for its deadline.
func (g *Group) notePlacements(ents []*raftpb.Entry) {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal {
			continue
		}
		if proposer, seq, _, _, ok := decodeProposal(e.GetData()); ok && proposer == g.id {
			g.pending.placed(seq, e.GetIndex(), e.GetTerm())
		}
	}
}

// prepareApply turns committed entries into an apply task, applying
// configuration changes to Raft on the way (Raft requires ApplyConfChange in
// log order, and it must happen on this goroutine).
func (g *Group) prepareApply(ents []*raftpb.Entry) (applyTask, error) {
	t := applyTask{entries: make([]ApplyEntry, len(ents)), owners: make([]owner, len(ents))}
	for i, e := range ents {
		g.noteConfApplied(e)
		ae := ApplyEntry{Index: e.GetIndex()}
		switch e.GetType() {
		case raftpb.EntryNormal:
			// Every normal entry is one of: empty (a new leader's entry),
			// an acknowledgement record, or a proposal. Anything else was
			// written by a newer binary or is damaged; applying it as
			// empty (as this package once did) would let this replica
			// diverge from those that understand it, so the group stops.
			if len(e.GetData()) == 0 {
				break
			}
			if id, ok := decodeAckedRecord(e.GetData()); ok {
				ae.Meta = []MetaRecord{{Name: ackedName(id), Value: []byte{1}}}
			} else if proposer, seq, stamp, payload, ok := decodeProposal(e.GetData()); ok {
				ae.Stamp = stamp
				if len(payload) > 0 {
					// An empty payload is an idle stamp (Propose
					// refuses empty payloads): time only, no command.
					ae.Data = payload
				}
				t.owners[i] = owner{proposer, seq}
			} else {
				g.metrics.undecodableEntries.Inc()
				return t, fmt.Errorf("%w: entry %d (term %d) starts with tag %#x", ErrUndecodable, e.GetIndex(), e.GetTerm(), e.GetData()[0])
			}
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return t, fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
			}
			g.applyConfChange(&cc)
			meta, err := g.membersRecord()
			if err != nil {
				return t, err
			}
			ae.Meta = []MetaRecord{meta}
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
				return t, fmt.Errorf("decode conf change at %d: %w", e.GetIndex(), err)
			}
			g.confState = g.rn.ApplyConfChange(&cc)
			meta, err := g.membersRecord()
			if err != nil {
				return t, err
			}
			ae.Meta = []MetaRecord{meta}
		}
		t.entries[i] = ae
	}
	last := ents[len(ents)-1]
	t.lastTerm = last.GetTerm()
	// Both are replaced, never mutated, when membership changes, so the
	// task can share them.
	t.confState = g.confState
	t.members = g.membersView
	return t, nil
}

func (g *Group) applyConfChange(cc *raftpb.ConfChange) {
	cs := g.rn.ApplyConfChange(cc)
	g.confState = cs
	g.isLearner = false
	for _, l := range cs.GetLearners() {
		g.isLearner = g.isLearner || l == g.id
	}
	id := cc.GetNodeId()
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode, raftpb.ConfChangeUpdateNode:
		var m Member
		if err := json.Unmarshal(cc.GetContext(), &m); err != nil || m.ID() != id {
			g.log.Warn("conf change without a valid member record", "node", id, "err", err)
			return
		}
		g.addMember(m)
	case raftpb.ConfChangeRemoveNode:
		g.removeMember(id)
	}
}

func (g *Group) membersRecord() (MetaRecord, error) {
	b, err := json.Marshal(sortedMembers(g.members))
	if err != nil {
		return MetaRecord{}, fmt.Errorf("encode membership: %w", err)
	}
	return MetaRecord{Name: MetaMembers, Value: b}, nil
}

func (g *Group) memberName(id uint64) string {
	if m, ok := g.members[id]; ok {
		return m.Name
	}
	return fmt.Sprintf("%x", id)
}

// updateStatus publishes the loop's view for other goroutines.
func (g *Group) updateStatus() {
	bs := g.rn.BasicStatus()
	state := strings.ToLower(strings.TrimPrefix(bs.RaftState.String(), "State"))
	if bs.RaftState == raft.StateFollower && g.isLearner {
		state = "learner"
	}
	if g.fatal() != nil {
		state, bs.Lead = StateFailed, raft.None
	}
	term, commit := bs.GetTerm(), bs.GetCommit()
	g.statusMu.Lock()
	g.status = Status{
		ID:       g.id,
		Name:     g.cfg.Self.Name,
		State:    state,
		LeaderID: bs.Lead,
		Term:     term,
		Commit:   commit,
		Members:  g.membersView,
	}
	g.statusMu.Unlock()
	g.metrics.observeStatus(term, commit, g.applied.get(), state == RoleLeader)
	g.metrics.snapshotIndex.Set(float64(g.snapIndex.Load()))
	if bs.Lead != g.lastLead || state != g.lastState {
		g.lastLead, g.lastState = bs.Lead, state
		name := ""
		if bs.Lead != raft.None {
			name = g.memberName(bs.Lead)
		}
		g.metrics.observeRoles(name, state)
	}
}

// sortedMembers lists members by name: the record is part of the replicated
// state, so every replica must encode it identically.
func sortedMembers(ms map[uint64]Member) []Member {
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// clampHeartbeatCommit keeps a heartbeat's commit index within this node's
// stored log. Raft panics on a commit index beyond its last index ("was the
// raft log corrupted, truncated, or lost?"), and a heartbeat at a new term
// is stepped whoever sends it: one message from a buggy or hostile peer
// would crash the node. A correct leader never sends more than the index
// this node acknowledged, which it had stored, so the clamp never changes
// a correct heartbeat; a lower commit index is always safe to apply.
func (g *Group) clampHeartbeatCommit(m *raftpb.Message) {
	last, err := g.storage.LastIndex()
	if err != nil || m.GetCommit() <= last {
		return
	}
	g.metrics.commitClamped.Inc()
	g.log.Debug("heartbeat commit index beyond the log, clamped", "from", m.GetFrom(), "commit", m.GetCommit(), "last", last)
	m.Commit = proto.Uint64(last)
}
