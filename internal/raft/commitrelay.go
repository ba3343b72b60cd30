package raft

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Holding back commit-only appends (leader only).
//
// When the leader's commit index advances, Raft at once sends each follower
// an append with no entries, only to tell it the new commit index. Under a
// steady write load that costs, for every batch and every follower, one more
// message each way and one more Ready on the follower (a WAL write, a reply,
// a separate apply), although the leader's next append, carrying the next
// batch, tells the follower the same commit index a moment later.
//
// So the leader holds back a commit-only append to a follower that is in
// StateReplicate, keeping the newest one per follower, and
//   - drops it when any later append to that follower goes out: an append
//     carries the commit index as of its sending, at least the held one, and
//     the follower commits up to it once it has the entries, which it has
//     (held appends go only to followers the leader replicates to in order);
//   - sends it ahead of a read-index answer to that follower, since that
//     read waits for the follower to apply up to the leader's commit, and
//     ahead of a MsgTimeoutNow, since the new leader must have applied
//     every membership change it may need to campaign;
//   - holds nothing, and sends everything held, in a Ready that commits a
//     membership change: a learner just promoted must learn so at once, or
//     a leadership transfer to it right after fails (it refuses to campaign
//     while its own configuration says learner);
//   - sends every held append at the next tick, so that when writes stop a
//     follower still learns the last commit index within a heartbeat
//     interval (the heartbeat itself carries it too);
//   - forgets them all when it stops leading, and a follower's when that
//     follower is removed.
//
// Why this is safe: delaying or dropping a message is something Raft must
// tolerate from any network, and an append without entries to a follower in
// StateReplicate changes nothing the leader tracks (it puts nothing in
// flight). Acknowledgements do not depend on it: the leader answers a write
// once it applies it, not once followers learn it committed. What changes is
// only how soon a follower applies, and every read a follower serves waits
// through read-index for exactly that, which the read-index rule keeps
// prompt.

// sendAsLeader sends the leader's msgs, holding back commit-only appends
// unless hold is false (see above); loop only.
func (g *Group) sendAsLeader(msgs []*raftpb.Message, hold bool) {
	out := holdCommits(g.heldCommits, msgs, g.sendBuf[:0], g.replicatingTo, hold)
	g.cfg.Transport.Send(g.cfg.GroupID, out)
	// The transport marshalled its own copies; keep no large appends alive.
	clear(out)
	g.sendBuf = out[:0]
}

// holdCommits appends to out the messages of msgs to send now, keeping in
// held (per follower) the commit-only appends to followers replicating
// reports in order, and returns out. With hold false it keeps nothing and
// sends what held had first.
func holdCommits(held map[uint64]*raftpb.Message, msgs, out []*raftpb.Message, replicating func(id uint64) bool, hold bool) []*raftpb.Message {
	if !hold {
		for to, h := range held {
			out = append(out, h)
			delete(held, to)
		}
	}
	for _, m := range msgs {
		to := m.GetTo()
		switch m.GetType() {
		case raftpb.MsgApp:
			if hold && len(m.GetEntries()) == 0 && replicating(to) {
				held[to] = m
				continue
			}
			delete(held, to)
		case raftpb.MsgReadIndexResp, raftpb.MsgTimeoutNow:
			if h, ok := held[to]; ok {
				out = append(out, h)
				delete(held, to)
			}
		default:
			// Other types neither carry a commit index nor need one sent first.
		}
		out = append(out, m)
	}
	return out
}

// releaseCommits sends every held commit-only append; loop only.
func (g *Group) releaseCommits() {
	if len(g.heldCommits) > 0 {
		g.sendAsLeader(nil, false)
	}
}

// forgetCommits drops every held append: once this node no longer leads,
// their term is over; loop only.
func (g *Group) forgetCommits() {
	clear(g.heldCommits)
}

// commitsConfChange reports whether ents hold a membership change.
func commitsConfChange(ents []*raftpb.Entry) bool {
	for _, e := range ents {
		if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
			return true
		}
	}
	return false
}

// replicatingTo reports whether the leader replicates to peer id in order
// (StateReplicate), where an empty append puts nothing in flight.
func (g *Group) replicatingTo(id uint64) bool {
	ok := false
	g.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
		if pid == id && pr.State == tracker.StateReplicate {
			ok = true
		}
	})
	return ok
}
