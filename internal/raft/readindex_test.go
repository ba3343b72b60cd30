package raft

import (
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// readTestGroup is just enough of a Group to drive the read bookkeeping: a
// single-voter RawNode that has not campaigned (it knows no leader).
func readTestGroup(t *testing.T) *Group {
	t.Helper()
	st := raft.NewMemoryStorage()
	if err := st.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}); err != nil {
		t.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: raftLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	return &Group{rn: rn, reads: newReadState(), clock: newLeaseClock(nil), stamps: newStampState(&Config{}), metrics: newMetrics(nil, 1), cfg: Config{HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond}}
}

func roundCtx(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// TestReadsArrivingDuringResendDoNotJoinTheBatch: a read that queues while a
// batch is in flight must not be answered by a round sent before it
// arrived, even when the batch is resent and the old round answers late
// (the stale read the chaos checker found).
func TestReadsArrivingDuringResendDoNotJoinTheBatch(t *testing.T) {
	g := readTestGroup(t)
	// Make the node believe in a leader so the batch is resent, not failed.
	if err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1))}); err != nil {
		t.Fatal(err)
	}

	early := &readRequest{done: make(chan readResult, 1)}
	g.reads.waiting = []*readRequest{early}
	g.flushReads()
	first := g.reads.seq // the newest round
	if first == 0 || g.reads.current == nil {
		t.Fatal("no round started for the waiting read")
	}

	late := &readRequest{done: make(chan readResult, 1)}
	g.reads.waiting = append(g.reads.waiting, late)
	g.leadershipChanged() // e.g. a new leader: the batch goes out again
	g.flushReads()
	if g.reads.seq == first {
		t.Fatal("the batch was not resent")
	}
	if len(g.reads.waiting) != 1 {
		t.Fatalf("the late read joined the batch in flight (%d still waiting)", len(g.reads.waiting))
	}

	// The first round answers late, with an index computed before the late
	// read began: only the early read may take it.
	g.readIndexReady(roundCtx(first), 7)
	select {
	case r := <-early.done:
		if r.err != nil || r.index != 7 {
			t.Fatalf("early read got %+v", r)
		}
	default:
		t.Fatal("the early read was not answered by its own batch's round")
	}
	select {
	case r := <-late.done:
		t.Fatalf("the late read was answered by a round older than it: %+v", r)
	default:
	}
	// The late read starts its own batch once the slot is free.
	g.flushReads()
	if g.reads.current == nil || len(g.reads.current.reqs) != 1 || g.reads.current.reqs[0] != late {
		t.Fatal("the late read did not get a batch of its own")
	}
}
