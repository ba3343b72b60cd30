package raft

import (
	"encoding/binary"
	"time"
)

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

// flush starts one ReadIndex round for every waiting request.
func (g *Group) flushReads() {
	rs := g.reads
	if len(rs.waiting) == 0 {
		return
	}
	rs.seq++
	var ctx [8]byte
	binary.BigEndian.PutUint64(ctx[:], rs.seq)
	rs.inflight[rs.seq] = &readBatch{reqs: rs.waiting, started: time.Now()}
	rs.waiting = nil
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
	for _, r := range b.reqs {
		r.done <- readResult{index: index}
	}
}

// expireReads fails rounds that Raft silently dropped (no leader, leader
// changed, message lost): the callers retry with a fresh round.
func (g *Group) expireReads(now time.Time, leader uint64) {
	for seq, b := range g.reads.inflight {
		if now.Sub(b.started) < g.cfg.ElectionTimeout {
			continue
		}
		delete(g.reads.inflight, seq)
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
		for _, r := range b.reqs {
			r.done <- readResult{err: err}
		}
	}
}
