package raft

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ReadMode selects how the leader proves a read is linearizable.
type ReadMode int

const (
	// ReadModeReadIndex runs a ReadIndex round (a heartbeat round a quorum
	// acknowledges) for every batch of reads: always safe, whatever the
	// clocks do.
	ReadModeReadIndex ReadMode = iota
	// ReadModeLease lets the leader answer without a network round while
	// its lease holds (see leaderLease). Followers still use ReadIndex.
	ReadModeLease
)

// String returns the flag spelling of m.
func (m ReadMode) String() string {
	if m == ReadModeLease {
		return "lease"
	}
	return "readindex"
}

// ParseReadMode parses the --read-mode flag.
func ParseReadMode(s string) (ReadMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "lease":
		return ReadModeLease, nil
	case "readindex", "read-index", "read_index":
		return ReadModeReadIndex, nil
	}
	return 0, fmt.Errorf("unknown read mode %q (want lease or readindex)", s)
}

// LeaseMaxClockDrift bounds how much faster any node's monotonic clock may
// run than the leader's (0.1 = 10%). The lease is shortened by this factor.
//
// It is one of the two clock assumptions; the other is StampSkew
// (DefaultStampSkew, 500 ms, stamps.go), the bound on the offset between
// nodes' wall clocks that replicated time uses. They are independent: the
// lease compares one node's monotonic readings over at most an election
// timeout, so only rates matter to it and an offset of hours is harmless;
// stamps compare wall clocks across nodes, so only offsets matter, and a
// rate error shows up as offset only over time, which NTP corrects. The
// lease's bound is needed for safety (a stale read); the stamps' is not
// (replicated time never goes back whatever the clocks do): it bounds
// only how far replicated time, and so expiry, strays from the clocks. A
// read runs at most StampSkew ahead of the newest committed stamp; each
// leader change moves time at least StampSkew ahead of the newest stamp,
// after which it stands still until the new leader's clock passes it.
const LeaseMaxClockDrift = 0.1

// The leader lease.
//
// Why it is safe. A ReadIndex round issued at time T (leader's monotonic
// clock) completes when a quorum acknowledged heartbeats that were sent
// after T. Each acknowledging follower reset its election timer on receipt,
// so, with CheckQuorum, it refuses to vote for anyone else (Raft's
// "in lease" rule: electionElapsed < electionTimeout ticks) until it has
// counted electionTimeout ticks of its own. Any new leader needs a vote from
// at least one of them, so no other leader can exist, and no write can be
// acknowledged elsewhere, before T + that many ticks. Two adjustments make
// this a bound on the leader's clock:
//
//   - Tick phase: a follower's ticker may hold one tick buffered from before
//     the reset and deliver the next one almost at once, so E ticks can pass
//     in (E-2) intervals. The lease uses E-2 intervals.
//   - Clock rate: a follower whose clock runs faster by a factor (1+ρ)
//     counts those intervals in less of the leader's time; the lease is
//     divided by 1+LeaseMaxClockDrift.
//
// With the defaults (1 s election timeout, 100 ms heartbeat) the lease is
// 8 × 100 ms / 1.1 ≈ 727 ms from the round's start. Only the rate of the
// clocks matters, never their offset, and the monotonic clock keeps running
// while a process is stopped: a leader resumed after SIGSTOP finds its lease
// expired, where a lease counted in its own Raft ticks would still look
// valid. A frozen machine is another matter: CLOCK_MONOTONIC stops during
// system suspend, and a hypervisor pause or live migration may hide the
// gap from the guest, so a leader woken from those can trust a stale lease
// (README: use --read-mode readindex there). Every node must run with the
// same --heartbeat-interval and
// --election-timeout; a follower with a shorter timeout breaks the bound.
//
// Leadership transfer bypasses the vote rule (MsgTimeoutNow forces an
// election), so the lease ends the moment this leader sends MsgTimeoutNow
// and is not granted again in that term: a delayed MsgTimeoutNow could still
// start an election after an aborted transfer.
//
// Restarts. The vote rule lives in memory: a follower that acknowledged a
// lease round and then restarted would grant votes at once. So a node that
// starts with state on disk refuses votes for normal campaigns for one
// election timeout after it opens (voteGate), whatever its own read mode:
// the rule protects other nodes' leases. A restarted node could not
// campaign itself any sooner, so elections are not slowed down.
//
// What a lease read returns. Acknowledged writes are not the only thing a
// read must not go behind: a follower serves reads at the leader's commit
// index (ReadIndex), and may apply an entry before the leader does, so a
// lease read that started after such a follower read ended must see that
// entry too (the chaos checker caught a lease read that waited only for
// the lease's own read index). A lease read therefore waits until this
// node has applied its current commit index, published before any
// message carrying it leaves (loop.go), and at least the grant's read
// index, which covers the entries of earlier leaders.
//
// The clock. Every reading comes from g.clock (clock.go): the configured
// Clock, time.Now in production, behind a guard that starts a new epoch
// whenever a reading is earlier than one already taken. A grant belongs to
// the epoch its round started in and holds in no other, so a clock that
// jumps forward only ends a lease sooner, and one that jumps backward ends
// it at once; neither can stretch it. Deterministic tests drive the lease
// through a fake clock (lease_clock_test.go).
type leaderLease struct {
	term  uint64
	epoch uint64    // clock epoch of the round that started the lease
	index uint64    // read index of the round that last extended the lease
	until time.Time // clock reading; the lease holds strictly before this
}

// leaseDuration is how long after a round's start its lease lasts.
func (c *Config) leaseDuration() time.Duration {
	ticks := c.electionTicks() - 2
	if ticks < 1 {
		return 0
	}
	return time.Duration(float64(time.Duration(ticks)*c.HeartbeatInterval) / (1 + LeaseMaxClockDrift))
}

// leaseState is the loop's side of the lease; the published grant is read
// by any goroutine.
type leaseState struct {
	grant atomic.Pointer[leaderLease]
	// fencedTerm is a term in which this node sent MsgTimeoutNow: no lease
	// in it. Loop only.
	fencedTerm uint64
	// lastRound is when the newest ReadIndex round started. Loop only.
	lastRound time.Time
	// used is set by lease reads: an idle leader does not renew, so it
	// sends no heartbeat rounds beyond Raft's own.
	used atomic.Bool
	// commit is the commit index as of the newest Ready, published before
	// that Ready's messages are sent.
	commit atomic.Uint64
}

// leaseIndex returns the read index to wait for if the lease holds now.
func (g *Group) leaseIndex(now instant) (uint64, bool) {
	if !g.lease.used.Load() {
		g.lease.used.Store(true)
	}
	l := g.lease.grant.Load()
	if l == nil || l.epoch != now.epoch || !now.at.Before(l.until) {
		return 0, false
	}
	return max(l.index, g.lease.commit.Load()), true
}

// extendLease records a completed ReadIndex round that started at started.
// A round that started before the clock last jumped backwards grants
// nothing: its start cannot be compared with readings taken since. Loop
// only.
func (g *Group) extendLease(started instant, index uint64) {
	if g.cfg.ReadMode != ReadModeLease || started.epoch != g.clock.currentEpoch() {
		return
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 || st.GetTerm() == g.lease.fencedTerm {
		return
	}
	until := started.at.Add(g.cfg.leaseDuration())
	cur := g.lease.grant.Load()
	same := cur != nil && cur.term == st.GetTerm() && cur.epoch == started.epoch
	if same && !until.After(cur.until) && index <= cur.index {
		return
	}
	next := &leaderLease{term: st.GetTerm(), epoch: started.epoch, index: index, until: until}
	if same {
		// Rounds may complete out of order; keep the latest expiry and
		// the highest index.
		if cur.until.After(next.until) {
			next.until = cur.until
		}
		if cur.index > next.index {
			next.index = cur.index
		}
	}
	g.lease.grant.Store(next)
}

// revokeLease ends the lease at once. Loop only.
func (g *Group) revokeLease() { g.lease.grant.Store(nil) }

// fenceLeaseForTransfer revokes the lease for the rest of the term if msgs
// hand leadership to another node. It must run before msgs are sent.
func (g *Group) fenceLeaseForTransfer(msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgTimeoutNow {
			g.lease.fencedTerm = g.rn.BasicStatus().GetTerm()
			g.revokeLease()
			return
		}
	}
}

// wantLeaseRenewal reports whether the loop should start an empty ReadIndex
// round to keep the lease fresh (it is asked only when no round is in
// flight): lease mode, lease reads since the last renewal, no round for a
// heartbeat interval, leader.
// Renewing every interval keeps a busy leader's lease from ever lapsing
// (it lasts several intervals).
func (g *Group) wantLeaseRenewal(now time.Time) bool {
	// A negative age (a clock that went backwards) counts as due.
	if age := now.Sub(g.lease.lastRound); g.cfg.ReadMode != ReadModeLease ||
		(age >= 0 && age < g.cfg.HeartbeatInterval) || !g.lease.used.Load() {
		return false
	}
	st := g.rn.BasicStatus()
	return st.RaftState == raft.StateLeader && st.LeadTransferee == 0 && st.GetTerm() != g.lease.fencedTerm
}

// LeaseRemaining reports how long this node's leader lease still holds: 0
// when it holds none (a follower, ReadModeReadIndex, or a lapsed lease).
func (g *Group) LeaseRemaining() time.Duration {
	l := g.lease.grant.Load()
	if l == nil {
		return 0
	}
	now := g.clock.now()
	if now.epoch != l.epoch {
		return 0
	}
	return max(l.until.Sub(now.at), 0)
}

// LeaseReadNow reports whether a linearizable read may run on the local
// state right now without waiting: this node holds its leader lease and has
// applied the index a lease read waits for (leaseIndex). Callers that get
// false use ReadIndex. It is LeaseReadAt without the read time.
func (g *Group) LeaseReadNow() bool {
	_, ok := g.LeaseReadAt()
	return ok
}

// LeaseReadAt is LeaseReadNow that also returns the read time R at which
// the read must evaluate expiry (see ReadAt and stamps.go).
func (g *Group) LeaseReadAt() (uint64, bool) {
	if g.cfg.ReadMode != ReadModeLease || g.fatal() != nil {
		return 0, false
	}
	idx, r, ok := g.leaseReadIf(g.clock.now(), true)
	if !ok || g.applied.get() < idx {
		return 0, false
	}
	g.metrics.leaseReads.Inc()
	return r, true
}

// leaseRead returns the index a lease read waits for and its read time, if
// the lease holds now.
func (g *Group) leaseRead(now instant) (idx, r uint64, ok bool) {
	return g.leaseReadIf(now, false)
}

// leaseReadIf is leaseRead; with needApplied, it also requires the index to
// be applied already, and serves no read time otherwise. The index and R
// are taken under the stamp lock, with which the loop publishes the
// commit index, so idx >= the commit index R was computed at (S2 in
// stamps.go).
func (g *Group) leaseReadIf(now instant, needApplied bool) (idx, r uint64, ok bool) {
	s := g.stamps
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, ok = g.leaseIndex(now)
	if !ok || (needApplied && g.applied.get() < idx) {
		return 0, 0, false
	}
	if !s.enabled.Load() {
		s.served = max(s.served, s.wallMs())
		return idx, s.served, true
	}
	if l := g.lease.grant.Load(); l == nil || l.term != s.floorTerm {
		// The loop has not taken office in the lease's term: its floor,
		// which read times must respect, is not set yet. A round sets it.
		return 0, 0, false
	}
	return idx, s.readTimeLocked(), true
}

// voteGate reports whether a vote request must be dropped: one for a normal
// campaign (not a leadership transfer, which the sending leader fenced)
// while this restarted node may still owe a previous leader its lease.
// Loop only.
func (g *Group) voteGate(m *raftpb.Message) bool {
	if g.voteGateUntil.IsZero() {
		return false
	}
	if !g.clock.now().at.Before(g.voteGateUntil) {
		g.voteGateUntil = time.Time{}
		return false
	}
	return string(m.GetContext()) != campaignTransfer
}

// campaignTransfer is the Context etcd raft puts on the votes of a
// campaign started by MsgTimeoutNow.
const campaignTransfer = "CampaignTransfer"
