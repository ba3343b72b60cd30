package raft

import (
	"encoding/binary"
	"strconv"

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
// a member's match index above zero and does not find its record proposes
// one, and every node applies it as a MetaRecord of its own name
// (MetaAckedPrefix + the id in hex), so it survives restarts, snapshots
// and leader changes. The record is a function of the entry alone, so
// replicas that apply the same log store the same records; a replica that
// applied some as a binary predating them (as empty entries) lacks those,
// and a leader lacking one proposes it again. A removed member's record
// stays (a removed node is replaced under a new id, and a node joining with
// --join does not ask).

// MetaAckedPrefix starts the name of the MetaRecord stating that a member
// acknowledged entries.
const MetaAckedPrefix = "raft.acked."

func ackedName(id uint64) string { return MetaAckedPrefix + strconv.FormatUint(id, 16) }

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
	b, err := g.cfg.StateMachine.Meta(ackedName(id))
	return err == nil && b != nil
}

// proposeAcks, on the leader, proposes a record for each member whose match
// index is above zero and that has none (checked once per member and
// leadership); loop only.
func (g *Group) proposeAcks() {
	if g.rn.BasicStatus().RaftState != raft.StateLeader {
		return
	}
	var ids []uint64
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pr.Match > 0 && !g.ackChecked[id] {
			ids = append(ids, id)
		}
	})
	for _, id := range ids {
		if !g.Acknowledged(id) {
			err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(g.id),
				Entries: []*raftpb.Entry{{Data: encodeAckedRecord(id)}}})
			if err != nil {
				return // dropped (e.g. a transfer is under way): next tick
			}
		}
		g.ackChecked[id] = true
	}
}
