package raft

import (
	"encoding/binary"
	"sync"
)

// Every normal entry this package proposes starts with a header naming the
// proposer and a proposer-local sequence number, so the applier can find the
// caller waiting for it. Two versions exist:
//
//	v1: version byte 1, proposer id (8 bytes BE), sequence (8 bytes BE), payload
//	v2: version byte 2, proposer id (8 bytes BE), sequence (8 bytes BE),
//	    stamp (8 bytes BE, Unix milliseconds), payload
//
// v1 is what every binary writes while stamping is off (cluster format 1),
// byte for byte what binaries before stamps wrote; v2 is written only once
// the cluster format allows it (Group.EnableStamps), because a binary that
// predates it stops its group at the first v2 entry (ErrUndecodable). The
// stamp is the leader's replicated clock (stamps.go). A v2 entry with
// proposer 0, sequence 0 and no payload is an idle stamp: it carries only
// time.
const (
	headerVersion   = 1
	headerVersionV2 = 2
	headerLen       = 1 + 8 + 8
	headerLenV2     = headerLen + 8
	// maxHeaderLen is the larger header: the entry size budget counts it
	// whatever the current version, so a payload accepted before stamps
	// are enabled still fits once its entry is stamped.
	maxHeaderLen = headerLenV2
)

// encodeProposal returns the v1 encoding of a proposal (tests and fuzz
// seeds; Propose builds a proposalBuf so the loop can choose the version
// without copying the payload).
func encodeProposal(proposer, seq uint64, payload []byte) []byte {
	b := make([]byte, headerLen+len(payload))
	putHeaderV1(b, proposer, seq)
	copy(b[headerLen:], payload)
	return b
}

// encodeProposalV2 returns the v2 encoding of a proposal stamped at stamp.
func encodeProposalV2(proposer, seq, stamp uint64, payload []byte) []byte {
	b := make([]byte, headerLenV2+len(payload))
	putHeaderV2(b, proposer, seq, stamp)
	copy(b[headerLenV2:], payload)
	return b
}

func putHeaderV1(b []byte, proposer, seq uint64) {
	b[0] = headerVersion
	binary.BigEndian.PutUint64(b[1:], proposer)
	binary.BigEndian.PutUint64(b[9:], seq)
}

func putHeaderV2(b []byte, proposer, seq, stamp uint64) {
	b[0] = headerVersionV2
	binary.BigEndian.PutUint64(b[1:], proposer)
	binary.BigEndian.PutUint64(b[9:], seq)
	binary.BigEndian.PutUint64(b[17:], stamp)
}

// decodeProposal splits an entry's data. ok is false for data this package
// did not write. stamp is 0 for a v1 header (no stamp).
func decodeProposal(b []byte) (proposer, seq, stamp uint64, payload []byte, ok bool) {
	switch {
	case len(b) >= headerLen && b[0] == headerVersion:
		return binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:]), 0, b[headerLen:], true
	case len(b) >= headerLenV2 && b[0] == headerVersionV2:
		return binary.BigEndian.Uint64(b[1:]), binary.BigEndian.Uint64(b[9:]), binary.BigEndian.Uint64(b[17:]), b[headerLenV2:], true
	}
	return 0, 0, 0, nil, false
}

// entryStamp is the stamp of a normal entry's data, or 0 for one without.
func entryStamp(b []byte) uint64 {
	if len(b) >= headerLenV2 && b[0] == headerVersionV2 {
		return binary.BigEndian.Uint64(b[17:])
	}
	return 0
}

// newProposalBuf lays out a proposal so that either header version can be
// written in front of the payload without copying it: the payload starts
// at headerLenV2, a v1 header occupies the 17 bytes before it and a v2
// header the 25. The v1 entry is then buf[8:], byte for byte what
// encodeProposal returns.
func newProposalBuf(proposer, seq uint64, payload []byte) []byte {
	b := make([]byte, headerLenV2+len(payload))
	copy(b[headerLenV2:], payload)
	putHeaderV1(b[headerLenV2-headerLen:], proposer, seq)
	return b
}

// proposal is one caller waiting for its entry to be applied.
type proposal struct {
	seq uint64
	// buf is the entry with room for either header (newProposalBuf); the
	// event loop writes the header it proposes (entryData) and never
	// touches buf again.
	buf  []byte
	done chan proposalResult
}

// entryData returns the entry to propose: v1 bytes, or v2 stamped at stamp
// when stamped is true. Loop only, once per proposal.
func (p *proposal) entryData(stamped bool, stamp uint64) []byte {
	if !stamped {
		return p.buf[headerLenV2-headerLen:]
	}
	proposer := binary.BigEndian.Uint64(p.buf[headerLenV2-headerLen+1:])
	putHeaderV2(p.buf, proposer, p.seq, stamp)
	return p.buf
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
