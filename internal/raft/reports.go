package raft

import (
	"sync"

	"go.etcd.io/raft/v3"
)

// reportBox collects transport outcomes for the event loop. Posting never
// blocks and never loses a report: unreachable peers coalesce into a set
// (reporting a peer twice before the loop looks adds nothing), and snapshot
// outcomes queue in order (each MsgSnap needs exactly one answer, or Raft
// keeps the follower paused in snapshot state).
type reportBox struct {
	mu          sync.Mutex
	unreachable map[uint64]struct{}
	snapshots   []snapReport
	notify      chan struct{} // capacity 1: "there is something to drain"
}

type snapReport struct {
	peer   uint64
	status raft.SnapshotStatus
}

func newReportBox() *reportBox {
	return &reportBox{unreachable: make(map[uint64]struct{}), notify: make(chan struct{}, 1)}
}

func (b *reportBox) wake() {
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

func (b *reportBox) postUnreachable(peer uint64) {
	b.mu.Lock()
	b.unreachable[peer] = struct{}{}
	b.mu.Unlock()
	b.wake()
}

func (b *reportBox) postSnapshot(peer uint64, st raft.SnapshotStatus) {
	b.mu.Lock()
	b.snapshots = append(b.snapshots, snapReport{peer, st})
	b.mu.Unlock()
	b.wake()
}

// drain hands every pending report to the RawNode; event loop only.
func (b *reportBox) drain(rn *raft.RawNode) {
	b.mu.Lock()
	un, sn := b.unreachable, b.snapshots
	if len(un) > 0 {
		b.unreachable = make(map[uint64]struct{})
	} else {
		// Not swapped out: the map is still postUnreachable's, and even
		// ranging over it empty outside mu is a data race.
		un = nil
	}
	b.snapshots = nil
	b.mu.Unlock()
	for p := range un {
		rn.ReportUnreachable(p)
	}
	for _, s := range sn {
		rn.ReportSnapshot(s.peer, s.status)
	}
}
