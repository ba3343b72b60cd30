package raft

import (
	"encoding/binary"
	"sync"
)

// Every normal entry this package proposes starts with a header naming the
// proposer and a proposer-local sequence number, so the applier can find the
// caller waiting for it. Layout: version byte, proposer id (8 bytes BE),
// sequence (8 bytes BE), payload.
const (
	headerVersion = 1
	headerLen     = 1 + 8 + 8
)

func encodeProposal(proposer, seq uint64, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	b[0] = headerVersion
	binary.BigEndian.PutUint64(b[1:], proposer)
	binary.BigEndian.PutUint64(b[9:], seq)
	copy(b[headerLen:], payload)
	return b
}

// decodeProposal splits an entry's data. ok is false for data this package
// did not write (which is then applied as having no payload).
func decodeProposal(b []byte) (proposer, seq uint64, payload []byte, ok bool) {
	if len(b) < headerLen || b[0] != headerVersion {
		return 0, 0, nil, false
	}
	return binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:]), b[headerLen:], true
}

// proposal is one caller waiting for its entry to be applied.
type proposal struct {
	seq  uint64
	data []byte // header + payload, as proposed
	done chan proposalResult
}

type proposalResult struct {
	value any
	err   error
}

// pendingProposals tracks proposals between Propose and their completion.
//
// Invariant: a proposal completes exactly once (complete removes it under mu
// before sending on its buffered done channel).
type pendingProposals struct {
	mu    sync.Mutex
	byseq map[uint64]*pendingEntry
}

type pendingEntry struct {
	p     *proposal
	index uint64 // log index once the leader appended it; 0 before
	term  uint64
}

func newPendingProposals() *pendingProposals {
	return &pendingProposals{byseq: make(map[uint64]*pendingEntry)}
}

func (pp *pendingProposals) add(p *proposal) {
	pp.mu.Lock()
	pp.byseq[p.seq] = &pendingEntry{p: p}
	pp.mu.Unlock()
}

// placed records where the leader appended a proposal's entry.
func (pp *pendingProposals) placed(seq, index, term uint64) {
	pp.mu.Lock()
	if e, ok := pp.byseq[seq]; ok {
		e.index, e.term = index, term
	}
	pp.mu.Unlock()
}

func (pp *pendingProposals) complete(seq uint64, r proposalResult) {
	pp.mu.Lock()
	e, ok := pp.byseq[seq]
	if ok {
		delete(pp.byseq, seq)
	}
	pp.mu.Unlock()
	if ok {
		e.p.done <- r
	}
}

// cancel forgets a proposal whose caller gave up.
func (pp *pendingProposals) cancel(seq uint64) {
	pp.mu.Lock()
	delete(pp.byseq, seq)
	pp.mu.Unlock()
}

// failOverwritten completes, with ErrProposalLost, every proposal placed at
// an index <= applied that was not completed by its own entry: another entry
// took that index, so this one can never commit.
func (pp *pendingProposals) failOverwritten(applied uint64) {
	pp.failPlacedUpTo(applied, ErrProposalLost)
}

// failPlacedUpTo completes, with err, every proposal placed at an index <=
// upTo.
func (pp *pendingProposals) failPlacedUpTo(upTo uint64, err error) {
	pp.mu.Lock()
	var lost []*proposal
	for seq, e := range pp.byseq {
		if e.index != 0 && e.index <= upTo {
			lost = append(lost, e.p)
			delete(pp.byseq, seq)
		}
	}
	pp.mu.Unlock()
	for _, p := range lost {
		p.done <- proposalResult{err: err}
	}
}

// failAll completes every pending proposal with err.
func (pp *pendingProposals) failAll(err error) {
	pp.mu.Lock()
	all := pp.byseq
	pp.byseq = make(map[uint64]*pendingEntry)
	pp.mu.Unlock()
	for _, e := range all {
		e.p.done <- proposalResult{err: err}
	}
}
