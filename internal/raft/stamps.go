package raft

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Replicated time (issue #14, section 2).
//
// Once the cluster format allows it (EnableStamps), the leader's event loop
// stamps every batch of proposals with a time T in Unix milliseconds,
// written into the entry's v2 header (proposals.go), and the state machine
// applies each entry at max(stamp, previous apply time), never reading a
// clock. Reads evaluate expiry at a read time R the group returns with the
// read index (ReadAt, LeaseReadAt). The rules:
//
//	T = max(wall clock, previous stamp, office floor, every R served)
//	office floor = newest stamp in this node's log + Δ, taken when it
//	               became leader (per term)
//	R (leader) = max(served, min(T_now, C + Δ, P))
//
// where T_now is what the next stamp would be, C the newest committed
// stamp, P the stamp of the first stamped entry above the commit index
// (none: no bound), served the newest R handed out, and Δ is
// Config.StampSkew. R is computed when the leader answers the read (its
// own round, or a follower's MsgReadIndexResp, whose context then carries
// R back: stampReadResponses), and the read's wait index is raised to the
// commit index R was computed at. A lease read computes R when it is
// served. A follower's read uses its leader's R; a round answered without
// one (a leader that has not turned stamping on yet) is sent again rather
// than served at a time the follower would have to guess. P counts the
// stamps this loop pass assigned and Raft has not yet handed back in a
// Ready: a lease read may run between the two.
//
// Invariant S1 (stamps never decrease in log order). Within a term the
// leader assigns T in proposal order and every T >= the previous one. A
// new leader's first stamp is >= its floor = (newest stamp in its log) +
// Δ, which exceeds every stamp in its log; entries of older terms that
// follow its log's end are overwritten, never kept after its own. Stamps
// of entries it received in a snapshot are counted through the snapshot
// descriptor and the state machine (AppliedStamper).
//
// Invariant S2 (no write applies below a read that did not see it). For
// every R served with wait index I (the read waits until applied >= I),
// every entry with index > I has stamp >= R. Proof: I >= c, the commit
// index R's bound P was taken at (a lease read: I = max(grant index, c),
// c published under the same lock; a ReadIndex answer: I is raised to
// c). By S1 every stamped entry above c that exists then has stamp >= P
// >= R unless R = served; entries stamped later have stamp >= served >= R
// because T includes served. For R = served the same holds of the read
// that set served, whose c' <= c (c only grows). So a PERSIST or SET that
// raced with a read reporting a key expired either is in that read's
// state or applies at a time >= R, where the key is expired too.
//
// Invariant S3 (read times never go back across nodes). Let a read return
// R1 and a later read (one that began after the first ended) return R2.
// Same leader: R2 is computed after R1 raised served, so R2 >= served >=
// R1. Different leaders, the first at leader L1: R1 <= C1 + Δ where C1 is
// the stamp of an entry L1 knew committed; a later leader L2 holds that
// entry (or a snapshot covering it) in its log, so its floor >= C1 + Δ >=
// R1 and so is every T_now of L2. Its C2 (newest committed stamp) is >=
// C1 once L2 has committed an entry of its own term, which Raft requires
// before L2 answers any read (ReadIndex waits for it; a lease needs a
// completed round), and R is computed only when answering. Its P is then
// a stamp of its own term, >= its floor. So every term of min(...) is >=
// R1. A follower returns its leader's R, and the state machine evaluates
// at max(R, its apply time). An apply time is a committed stamp, and
// every R a leader computes is >= its C (T_now, C + Δ and P all are, by
// S1), which is >= any stamp committed before, so apply times do not
// break S3 either. And by S2, nothing stamped afterwards applies below
// R1.
//
// Δ and the clocks. Δ (DefaultStampSkew, 500 ms) is the assumed bound on
// the difference between any two nodes' wall clocks. It is not needed for
// safety: S1-S3 hold whatever the clocks do. It bounds how far expiry can
// run late or early: a leader whose clock is behind by more than Δ stamps
// at (floor, then) the previous stamps rather than its clock, so time on
// the cluster runs slow until its clock catches up; a read never runs
// more than Δ ahead of the newest committed stamp. Compare the lease
// (lease.go), which bounds the clocks' rate (LeaseMaxClockDrift, 10%)
// over at most an election timeout, never their offset: the two bounds
// are independent, and a cluster needs both (NTP keeps offsets far below
// 500 ms and rates far below 10%). Stamps use the wall clock
// (Config.WallClock), because they are compared across nodes and
// restarts; leases use the monotonic clock, because they compare one
// node's readings with each other.

// DefaultStampSkew is the default Config.StampSkew: the assumed bound on
// wall-clock offset between nodes (see stamps.go).
const DefaultStampSkew = 500 * time.Millisecond

// readTimeTag marks a leader's read time appended to a follower's read
// context: seq (8 bytes) | readTimeTag | R (8 bytes, BE).
const (
	readTimeTag    = 'T'
	readCtxLen     = 8
	readCtxTimeLen = readCtxLen + 1 + 8
)

// pendingStamp is a stamped entry above the commit index: its index, or 0
// for one assigned in this loop pass and not yet seen in a Ready.
type pendingStamp struct{ index, stamp uint64 }

// stampState is the group's replicated clock. The event loop writes it;
// lease readers (any goroutine) compute read times from it; both under mu.
//
// Invariant: pending is in log order, its stamps are non-decreasing (S1),
// every index in it is above commit, and the unplaced ones (index 0) come
// last.
type stampState struct {
	enabled atomic.Bool
	skew    uint64 // Δ in ms
	wall    Clock

	mu sync.Mutex
	// prev is the newest stamp this node assigned.
	prev uint64
	// floor is this node's office floor in term floorTerm.
	floor, floorTerm uint64
	// served is the newest read time this node handed out (or learned
	// from its leader).
	served uint64
	// logMax is the newest stamp in this node's log, or covered by a
	// snapshot it holds; an over-estimate (entries later overwritten
	// still count) only raises a future floor.
	logMax uint64
	// committed is the newest stamp at or below commit.
	committed uint64
	commit    uint64
	pending   []pendingStamp
}

func newStampState(cfg *Config) *stampState {
	s := &stampState{skew: uint64(cfg.StampSkew / time.Millisecond), wall: cfg.WallClock}
	if s.wall == nil {
		s.wall = wallClock{}
	}
	s.enabled.Store(cfg.Stamps)
	return s
}

// wallClock reads time.Now for stamps.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// wallMs is the wall clock in Unix milliseconds (0 before 1970).
func (s *stampState) wallMs() uint64 {
	ms := s.wall.Now().UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

// nextLocked is T: what the next stamp would be.
func (s *stampState) nextLocked() uint64 {
	return max(s.wallMs(), s.prev, s.floor, s.served)
}

// takeOfficeLocked sets the floor for term on the first use in that term.
func (s *stampState) takeOfficeLocked(term uint64) {
	if s.floorTerm != term {
		s.floorTerm = term
		s.floor = max(s.floor, s.logMax+s.skew)
	}
}

// readTimeLocked computes and records a leader's read time R.
func (s *stampState) readTimeLocked() uint64 {
	r := min(s.nextLocked(), s.committed+s.skew)
	if len(s.pending) > 0 {
		// Every pending entry is above commit; the first has the least
		// stamp (S1).
		r = min(r, s.pending[0].stamp)
	}
	r = max(r, s.served)
	s.served = r
	return r
}

// noteEntries records the stamps of entries entering the log (a Ready's
// Entries, which replace any tail from their first index on). Loop only.
func (s *stampState) noteEntries(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.index != 0 && p.index < first {
			keep = append(keep, p)
		}
	}
	s.pending = keep
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal {
			continue
		}
		st := entryStamp(e.GetData())
		if st == 0 {
			continue
		}
		s.sawStampLocked()
		s.logMax = max(s.logMax, st)
		if e.GetIndex() > s.commit {
			s.pending = append(s.pending, pendingStamp{index: e.GetIndex(), stamp: st})
		} else {
			s.committed = max(s.committed, st)
		}
	}
}

// noteCommit moves entries at or below commit out of pending. Loop only;
// the lease's published commit index moves under the same lock, so a
// lease read's index is never below s.commit.
func (s *stampState) noteCommit(commit uint64, publish *atomic.Uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Never below s.commit, which a snapshot (noteCovered) may have
	// raised first: every index up to it is committed too.
	publish.Store(max(commit, s.commit))
	if commit <= s.commit {
		return
	}
	s.commit = commit
	n := 0
	for n < len(s.pending) && s.pending[n].index != 0 && s.pending[n].index <= commit {
		s.committed = max(s.committed, s.pending[n].stamp)
		n++
	}
	s.pending = append(s.pending[:0], s.pending[n:]...)
}

// noteCovered records a stamp covering everything up to index (a snapshot
// or the state machine's applied state).
func (s *stampState) noteCovered(index, stamp uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stamp != 0 {
		s.sawStampLocked()
	}
	s.logMax = max(s.logMax, stamp)
	s.committed = max(s.committed, stamp)
	if index > s.commit {
		s.commit = index
		n := 0
		for n < len(s.pending) && s.pending[n].index != 0 && s.pending[n].index <= index {
			n++
		}
		s.pending = append(s.pending[:0], s.pending[n:]...)
	}
}

// sawStampLocked turns stamping on when a stamp is found in the log: only
// a leader that applied the format raise writes one, so the cluster is at
// format 2. A node that takes office before its own state machine applied
// the raise (and told it through EnableStamps) thus still stamps, and
// still serves read times, whenever any stamp was committed before.
func (s *stampState) sawStampLocked() {
	if !s.enabled.Load() {
		s.enabled.Store(true)
	}
}

// EnableStamps turns stamping on, for good: from the next proposal batch
// on, the leader writes v2 headers carrying stamps, and read times come
// from stamps rather than the wall clock. The node calls it when the
// cluster format reaches 2 (and at open if it already has). Safe from any
// goroutine.
func (g *Group) EnableStamps() { g.stamps.enabled.Store(true) }

// StampsEnabled reports whether EnableStamps was called (or Config.Stamps
// set).
func (g *Group) StampsEnabled() bool { return g.stamps.enabled.Load() }

// leaderStamping reports whether this node leads with stamping on, taking
// office (setting the floor) on the first call in a term. Loop only.
func (g *Group) leaderStamping() bool {
	if !g.stamps.enabled.Load() {
		return false
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return false
	}
	g.stamps.mu.Lock()
	g.stamps.takeOfficeLocked(st.GetTerm())
	g.stamps.mu.Unlock()
	return true
}

// assignStamp returns the stamp for the batch the loop is about to step,
// recording it as pending (unplaced). Loop only, on the leader.
func (g *Group) assignStamp() uint64 {
	s := g.stamps
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.nextLocked()
	s.prev = t
	s.pending = append(s.pending, pendingStamp{stamp: t})
	return t
}

// unassignStamp forgets the stamp of a batch Raft refused (nothing was
// appended). Loop only.
func (g *Group) unassignStamp(t uint64) {
	s := g.stamps
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.pending); n > 0 && s.pending[n-1] == (pendingStamp{stamp: t}) {
		s.pending = s.pending[:n-1]
	}
}

// stampReadResponses appends this leader's read time to the context of
// every MsgReadIndexResp it is about to send, and raises the response's
// read index to the commit index R is computed at. Raft echoes the
// follower's context in the response, so the follower finds its round and
// the time (splitReadCtx). Only a leader makes these responses, and Raft
// answers a read only once the leader has committed an entry of its term,
// so R obeys S3 here, even if this node stepped down in the same pass
// (its floor and committed stamp are what they were); and the follower
// waits for an index >= the commit index R's bound P was taken at, so R
// obeys S2 (a higher read index than Raft's is still linearizable: every
// entry up to it committed before the answer was sent). Loop only, before
// the messages are sent.
func (g *Group) stampReadResponses(msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() != raftpb.MsgReadIndexResp || m.GetTo() == g.id || len(m.GetEntries()) != 1 ||
			len(m.GetEntries()[0].GetData()) != readCtxLen || !g.stamps.enabled.Load() {
			continue
		}
		s := g.stamps
		s.mu.Lock()
		r := s.readTimeLocked()
		commit := s.commit
		s.mu.Unlock()
		ctx := make([]byte, readCtxTimeLen)
		copy(ctx, m.GetEntries()[0].GetData())
		ctx[readCtxLen] = readTimeTag
		binary.BigEndian.PutUint64(ctx[readCtxLen+1:], r)
		m.Entries = []*raftpb.Entry{{Data: ctx}}
		if m.GetIndex() < commit {
			m.Index = &commit
		}
		g.metrics.followerReadTimes.Inc()
	}
}

// localTimedRead is the read index and time for this node's own round,
// which Raft answered while it led: R is computed now, and the index
// raised to the commit index R is bounded at, as for a follower's read
// (stampReadResponses). Loop only.
func (g *Group) localTimedRead(index uint64) (uint64, uint64) {
	s := g.stamps
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(index, s.commit), s.readTimeLocked()
}

// wallTimeServed is R without stamping: the wall clock, recorded as served
// so that once stamping starts, stamps and read times stay above it.
func (s *stampState) wallTimeServed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.served = max(s.served, s.wallMs())
	return s.served
}

// learnServed records a read time a leader served.
func (s *stampState) learnServed(r uint64) {
	s.mu.Lock()
	s.served = max(s.served, r)
	s.mu.Unlock()
}

// splitReadCtx parses a read context: the round's sequence number and,
// when the leader appended one, its read time.
func splitReadCtx(ctx []byte) (seq, r uint64, hasTime, ok bool) {
	switch {
	case len(ctx) == readCtxLen:
		return binary.BigEndian.Uint64(ctx), 0, false, true
	case len(ctx) == readCtxTimeLen && ctx[readCtxLen] == readTimeTag:
		return binary.BigEndian.Uint64(ctx), binary.BigEndian.Uint64(ctx[readCtxLen+1:]), true, true
	}
	return 0, 0, false, false
}

// maybeIdleStamp proposes an empty stamped entry when this leader has
// proposed nothing for Δ/2, so that the newest committed stamp, and with
// it read times, keep up with the clock. Loop only (tick).
func (g *Group) maybeIdleStamp(now time.Time) {
	if !g.leaderStamping() {
		return
	}
	if idle := now.Sub(g.lastPropose); idle >= 0 && idle < g.cfg.StampSkew/2 {
		return
	}
	t := g.assignStamp()
	err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(g.id),
		Entries: []*raftpb.Entry{{Data: encodeProposalV2(0, 0, t, nil)}}})
	if err != nil {
		g.unassignStamp(t)
		return
	}
	g.lastPropose = now
	g.metrics.idleStamps.Inc()
}

// observeStampLag sets the stamp lag gauge on the leader. Loop only.
func (g *Group) observeStampLag() {
	s := g.stamps
	if !s.enabled.Load() || g.rn.BasicStatus().RaftState != raft.StateLeader {
		g.metrics.stampLag.Set(0)
		return
	}
	s.mu.Lock()
	c := s.committed
	s.mu.Unlock()
	g.metrics.stampLag.Set((float64(s.wallMs()) - float64(c)) / 1000)
}

// smAppliedStamp is the state machine's newest applied stamp, 0 when it
// does not report one (AppliedStamper).
func smAppliedStamp(sm StateMachine) uint64 {
	if as, ok := sm.(AppliedStamper); ok {
		return as.AppliedStamp()
	}
	return 0
}

// noteAppliedStamps records the newest stamp of an applied batch. Applier
// only.
func (g *Group) noteAppliedStamps(ents []ApplyEntry) {
	for i := len(ents) - 1; i >= 0; i-- {
		if st := ents[i].Stamp; st != 0 {
			if st > g.appliedStamp.Load() {
				g.appliedStamp.Store(st)
			}
			return // S1: the last stamped entry has the newest stamp
		}
	}
}

// loadStamps scans the log once at Open: the floor a term of this node
// will start from must exceed every stamp in its log, entries replayed
// from the WAL included, and every stamp its state machine holds (entries
// compacted into a snapshot). Entries the WAL holds beyond the commit
// index may later be overwritten; counting them only raises the floor, a
// conservative over-estimate (time jumps ahead by at most what a deposed
// leader stamped, never back).
func (g *Group) loadStamps() error {
	s := g.stamps
	sm := smAppliedStamp(g.cfg.StateMachine)
	g.appliedStamp.Store(sm)
	hs, _, err := g.storage.InitialState()
	if err != nil {
		return fmt.Errorf("load stamps: %w", err)
	}
	first, err := g.storage.FirstIndex()
	if err != nil {
		return fmt.Errorf("load stamps: %w", err)
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return fmt.Errorf("load stamps: %w", err)
	}
	s.mu.Lock()
	s.logMax, s.committed, s.commit = sm, sm, hs.GetCommit()
	if sm != 0 {
		s.sawStampLocked()
	}
	s.mu.Unlock()
	g.lease.commit.Store(hs.GetCommit())
	if last < first {
		return nil
	}
	ents, err := g.storage.Entries(first, last+1, math.MaxUint64)
	if err != nil {
		return fmt.Errorf("load stamps: read log %d..%d: %w", first, last, err)
	}
	s.noteEntries(ents)
	return nil
}
