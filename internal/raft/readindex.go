package raft

import (
	"encoding/binary"
	"time"

	"go.etcd.io/raft/v3"
)

// readRequest is one caller waiting for a read index.
type readRequest struct {
	done chan readResult // buffered, capacity 1
}

type readResult struct {
	index uint64
	time  uint64 // the read time R (stamps.go)
	err   error
}

// readBatch is the set of reads one ReadIndex round answers: every request
// that queued while the previous batch was in flight. N concurrent readers
// cost one heartbeat round, not N.
//
// Invariant: a batch's requests are fixed before its first round is sent.
// Any of its rounds may answer it, and a round's index only covers the
// writes acknowledged before that round reached the leader; a request
// added later could be answered by an older round and miss a write that
// completed before it began.
type readBatch struct {
	reqs []*readRequest
	done bool // answered or failed; later answers for it are ignored
}

// readRound is one ReadIndex request sent to Raft for a batch. A batch may
// be sent more than once (Raft drops rounds silently on a leader change,
// and a MsgReadIndex can be lost); whichever round is answered first
// answers the batch.
type readRound struct {
	batch   *readBatch
	started instant // read from g.clock before the round was sent
	// asLeader: sent while this node led, so Raft answers it locally
	// (leader reads are never forwarded) and the read time is this
	// node's to compute.
	asLeader bool
}

// readState is the event loop's bookkeeping for reads; loop goroutine only.
//
// Invariant: at most one batch is in flight (current). Reads arriving
// meanwhile wait and form the next batch, so under load every round carries
// a batch and the heartbeats rounds broadcast cannot flood the heartbeat
// lane.
type readState struct {
	seq     uint64
	waiting []*readRequest // not yet sent to Raft
	rounds  map[uint64]readRound
	current *readBatch // in flight, or nil
	// currentStart is when current's newest round was sent.
	currentStart time.Time
	// resend asks for current to be sent again at once: the leadership
	// changed, and Raft dropped its pending rounds.
	resend bool
}

func newReadState() *readState {
	return &readState{rounds: make(map[uint64]readRound)}
}

// roundTimeout is when a round is presumed lost and its batch is sent
// again. A round normally ends within a round trip; the batch in flight
// holds back every read queued behind it, so a lost MsgReadIndex must not
// cost a whole election timeout. The first round's answer is still taken
// if it arrives after the resend.
func (g *Group) roundTimeout() time.Duration { return 3 * g.cfg.HeartbeatInterval }

// flushReads starts a round for the waiting reads (or an empty one when the
// leader lease wants renewing) unless a batch is in flight, and resends the
// batch in flight if its round timed out or the leadership changed.
func (g *Group) flushReads() {
	rs := g.reads
	if rs.current == nil && len(rs.waiting) == 0 && g.cfg.ReadMode == ReadModeReadIndex {
		return // the common case, without a clock read
	}
	now := g.clock.now()
	if rs.current != nil {
		// A negative age is a clock that went backwards: the round's age
		// is unknown, so it is treated as timed out.
		if age := now.at.Sub(rs.currentStart); !rs.resend && age >= 0 && age < g.roundTimeout() {
			return
		}
		rs.resend = false
		b := rs.current
		switch {
		case len(b.reqs) == 0:
			// A lease renewal: not worth resending; the reads waiting
			// (if any) start a batch of their own below.
			g.finishBatch(b)
		case g.rn.BasicStatus().Lead == 0:
			// No leader to ask: the callers wait a beat and retry.
			g.failBatch(b, ErrNoLeader)
			return
		default:
			// Resent as it is: the reads waiting now must not join it, or
			// the answer to its first round, computed before they
			// arrived, could answer them too (a stale read).
			g.sendRound(b, now)
			return
		}
	}
	renew := g.wantLeaseRenewal(now.at)
	if len(rs.waiting) == 0 && !renew {
		return
	}
	b := &readBatch{reqs: rs.waiting}
	rs.waiting = nil
	if renew {
		g.lease.used.Store(false)
	}
	g.sendRound(b, now)
}

// sendRound starts a ReadIndex round for b, which becomes current.
func (g *Group) sendRound(b *readBatch, now instant) {
	rs := g.reads
	rs.seq++
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], rs.seq)
	// now is taken before Raft sends the round's heartbeats, so a lease
	// measured from it is never longer than the truth.
	rs.rounds[rs.seq] = readRound{batch: b, started: now, asLeader: g.rn.BasicStatus().RaftState == raft.StateLeader}
	rs.current, rs.currentStart = b, now.at
	g.lease.lastRound = now.at
	g.rn.ReadIndex(ctx[:])
}

// readIndexReady answers the batch of the round Raft answered.
func (g *Group) readIndexReady(ctx []byte, index uint64) {
	seq, at, hasTime, ok := splitReadCtx(ctx)
	if !ok {
		return
	}
	r, ok := g.reads.rounds[seq]
	if !ok {
		return
	}
	delete(g.reads.rounds, seq)
	// A quorum acknowledged this round whatever became of its batch.
	g.extendLease(r.started, index)
	if r.batch.done {
		return
	}
	switch {
	case hasTime:
		// The leader's R (it stamps, even if this node has not yet
		// applied the format raise): remember it, so that should this
		// node lead next, it never serves or stamps below it.
		g.stamps.learnServed(at)
	case !g.stamps.enabled.Load():
		at = g.stamps.wallTimeServed() // format 1: no expiry
	case r.asLeader:
		// Raft answered this node's own round while it led (it may have
		// stepped down since in this pass; the answer still came after
		// a commit of its term, which is what S3 needs).
		index, at = g.localTimedRead(index)
	default:
		// A leader that sent no time: it has not turned stamping on yet
		// (the format raise is applied here and not there). No time this
		// node could pick is known to be safe, so the batch goes out
		// again at once, until the leader stamps.
		if g.reads.current == r.batch {
			g.reads.resend = true
		}
		return
	}
	for _, req := range r.batch.reqs {
		req.done <- readResult{index: index, time: at}
	}
	g.finishBatch(r.batch)
}

// finishBatch marks b answered (or abandoned) and frees the slot.
func (g *Group) finishBatch(b *readBatch) {
	b.done = true
	rs := g.reads
	if rs.current == b {
		rs.current = nil
	}
}

func (g *Group) failBatch(b *readBatch, err error) {
	if b.done {
		return
	}
	for _, req := range b.reqs {
		req.done <- readResult{err: err}
	}
	g.finishBatch(b)
}

// leadershipChanged makes the batch in flight go out again at the next
// flush: Raft forgets pending read requests whenever this node's role or
// term changes.
func (g *Group) leadershipChanged() {
	if g.reads.current != nil {
		g.reads.resend = true
	}
}

// pruneReadRounds forgets rounds of answered batches, and any round older
// than an election timeout: their answers, should they come, are no longer
// wanted.
func (g *Group) pruneReadRounds(now time.Time) {
	for seq, r := range g.reads.rounds {
		if r.batch.done || now.Sub(r.started.at) > g.cfg.ElectionTimeout {
			delete(g.reads.rounds, seq)
		}
	}
}

func (g *Group) failReads(err error) {
	for _, r := range g.reads.waiting {
		r.done <- readResult{err: err}
	}
	g.reads.waiting = nil
	if b := g.reads.current; b != nil {
		g.failBatch(b, err)
	}
	clear(g.reads.rounds)
	g.revokeLease()
}
