package raft

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Members known to have acknowledged entries.
//
// Raft's safety rests on every voter remembering the entries it
// acknowledged and its vote. A node whose disk was lost must therefore not
// come back under its old id with an empty log; the node package refuses
// to bootstrap when a peer knows the id acknowledged entries. A leader
// knows that from its progress (a match index above zero), but only about
// the nodes that answered it: a new leader's progress for a node that has
// been down is zero.
//
// So the group keeps the fact in the replicated state: a leader that sees
// a member's match index above zero and does not find it in the set
// proposes a record naming it, and every node applies the set as a
// MetaRecord (MetaAcked) with that entry, so it survives restarts,
// snapshots and leader changes. The set only grows: a removed member's id
// stays in it (a removed node is replaced under a new id, and a node
// joining with --join does not ask).
//
// Invariant: the published set (ackedView) only ever holds ids whose record
// was applied here, so a node that answers from it never names an id the
// replicated state does not.

// MetaAcked is the MetaRecord holding the JSON-encoded ids of the members
// known to have acknowledged entries.
const MetaAcked = "raft.acked"

// An acknowledgement record is a normal entry: ackedRecordTag, then the
// member id (8 bytes BE). The tag differs from headerVersion, so a binary
// that predates these records applies one as an entry without payload.
const (
	ackedRecordTag = 0xa5
	ackedRecordLen = 1 + 8
)

func encodeAckedRecord(id uint64) []byte {
	b := make([]byte, ackedRecordLen)
	b[0] = ackedRecordTag
	binary.BigEndian.PutUint64(b[1:], id)
	return b
}

func decodeAckedRecord(b []byte) (uint64, bool) {
	if len(b) != ackedRecordLen || b[0] != ackedRecordTag {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[1:]), true
}

// Acknowledged reports whether member id is known, from the replicated
// state this node has applied, to have acknowledged log entries.
func (g *Group) Acknowledged(id uint64) bool {
	_, ok := (*g.ackedView.Load())[id]
	return ok
}

// loadAcked reads the set from the state machine and publishes it; applier
// or Open only.
func (g *Group) loadAcked() error {
	b, err := g.cfg.StateMachine.Meta(MetaAcked)
	if err != nil {
		return fmt.Errorf("load acknowledged members: %w", err)
	}
	set := make(map[uint64]struct{})
	if b != nil {
		var ids []uint64
		if err := json.Unmarshal(b, &ids); err != nil {
			return fmt.Errorf("decode acknowledged members: %w", err)
		}
		for _, id := range ids {
			set[id] = struct{}{}
		}
	}
	g.ackedView.Store(&set)
	return nil
}

// recordAcks gives every acknowledgement record in ents the set as of that
// entry as its MetaRecord, and publishes the grown set; applier only,
// before the entries are applied. Publishing before the state machine has
// stored the set is harmless: a failed Apply is fatal for the group.
func (g *Group) recordAcks(ents []ApplyEntry) error {
	cur := *g.ackedView.Load()
	var next map[uint64]struct{}
	for i := range ents {
		id := ents[i].ackedID
		if id == 0 {
			continue
		}
		if next == nil {
			next = make(map[uint64]struct{}, len(cur)+1)
			for k := range cur {
				next[k] = struct{}{}
			}
		}
		next[id] = struct{}{}
		ids := make([]uint64, 0, len(next))
		for k := range next {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		b, err := json.Marshal(ids)
		if err != nil {
			return fmt.Errorf("encode acknowledged members: %w", err)
		}
		ents[i].Meta = append(ents[i].Meta, MetaRecord{Name: MetaAcked, Value: b})
	}
	if next != nil {
		g.ackedView.Store(&next)
	}
	return nil
}

// proposeAcks, on the leader, proposes a record for each member whose match
// index is above zero and that the set lacks (once per leadership until it
// is applied); loop only.
func (g *Group) proposeAcks() {
	if g.rn.BasicStatus().RaftState != raft.StateLeader {
		return
	}
	var ids []uint64
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pr.Match > 0 && !g.Acknowledged(id) && !g.ackProposed[id] {
			ids = append(ids, id)
		}
	})
	for _, id := range ids {
		err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(g.id),
			Entries: []*raftpb.Entry{{Data: encodeAckedRecord(id)}}})
		if err != nil {
			return // dropped (e.g. a transfer is under way): next tick
		}
		g.ackProposed[id] = true
	}
}
