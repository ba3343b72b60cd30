package raft

import (
	"encoding/binary"
	"time"
)

// maxReadRounds bounds this node's ReadIndex rounds in flight.
const maxReadRounds = 1

// readRequest is one caller waiting for a read index.
type readRequest struct {
	done chan readResult // buffered, capacity 1
}

type readResult struct {
	index uint64
	err   error
}

// readBatch is one ReadIndex round shared by every request that arrived
// while the previous round was being prepared: N concurrent readers cost one
// heartbeat round, not N.
type readBatch struct {
	reqs    []*readRequest
	started time.Time
}

// readState is the event loop's bookkeeping for reads; loop goroutine only.
type readState struct {
	seq      uint64
	waiting  []*readRequest // not yet sent to Raft
	inflight map[uint64]*readBatch
}

func newReadState() *readState {
	return &readState{inflight: make(map[uint64]*readBatch)}
}

// flushReads starts one ReadIndex round for every waiting request, or an
// empty one when the leader lease wants renewing.
func (g *Group) flushReads() {
	rs := g.reads
	if len(rs.waiting) == 0 && g.cfg.ReadMode == ReadModeReadIndex {
		return // the common case, without a clock read
	}
	if len(rs.inflight) >= maxReadRounds {
		// Reads arriving now ride the next round, started when this one
		// ends: under load every round carries a batch, and the
		// heartbeats the rounds broadcast cannot flood the heartbeat
		// lane.
		return
	}
	now := time.Now()
	renew := g.wantLeaseRenewal(now)
	if len(rs.waiting) == 0 && !renew {
		return
	}
	rs.seq++
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], rs.seq)
	// started is taken before Raft sends the round's heartbeats, so the
	// lease measured from it is never longer than the truth.
	rs.inflight[rs.seq] = &readBatch{reqs: rs.waiting, started: now}
	rs.waiting = nil
	g.lease.lastRound = now
	if renew {
		g.lease.renewing = rs.seq
		g.lease.used.Store(false)
	}
	g.rn.ReadIndex(ctx[:])
}

// readIndexReady completes the batch whose round Raft answered.
func (g *Group) readIndexReady(ctx []byte, index uint64) {
	if len(ctx) != 8 {
		return
	}
	seq := binary.BigEndian.Uint64(ctx)
	b, ok := g.reads.inflight[seq]
	if !ok {
		return
	}
	delete(g.reads.inflight, seq)
	g.roundEnded(seq)
	g.extendLease(b.started, index)
	for _, r := range b.reqs {
		r.done <- readResult{index: index}
	}
}

// readsCanStart reports whether flushReads would start a round for waiting
// reads.
func (g *Group) readsCanStart() bool {
	return len(g.reads.waiting) > 0 && len(g.reads.inflight) < maxReadRounds
}

// roundEnded forgets a finished or abandoned round.
func (g *Group) roundEnded(seq uint64) {
	if g.lease.renewing == seq {
		g.lease.renewing = 0
	}
}

// roundTimeout is when a round is presumed dropped. A round normally ends
// within a round trip; one in flight holds back every read queued behind
// it, so a lost MsgReadIndex must not cost a whole election timeout.
func (g *Group) roundTimeout() time.Duration { return 3 * g.cfg.HeartbeatInterval }

// expireReads fails rounds that Raft silently dropped (no leader, leader
// changed, message lost): the callers retry with a fresh round.
func (g *Group) expireReads(now time.Time, leader uint64) {
	for seq, b := range g.reads.inflight {
		if now.Sub(b.started) < g.roundTimeout() {
			continue
		}
		delete(g.reads.inflight, seq)
		g.roundEnded(seq)
		err := errReadRetry
		if leader == 0 {
			err = ErrNoLeader
		}
		for _, r := range b.reqs {
			r.done <- readResult{err: err}
		}
	}
}

func (g *Group) failReads(err error) {
	for _, r := range g.reads.waiting {
		r.done <- readResult{err: err}
	}
	g.reads.waiting = nil
	for seq, b := range g.reads.inflight {
		delete(g.reads.inflight, seq)
		g.roundEnded(seq)
		for _, r := range b.reqs {
			r.done <- readResult{err: err}
		}
	}
	g.revokeLease()
}
