package raft

import (
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func confEntry(t *testing.T, index uint64, m Member, req uint64) *raftpb.Entry {
	t.Helper()
	ctx, err := json.Marshal(confContext{Member: m, Req: req})
	require.NoError(t, err)
	cc := &raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(m.ID()), Context: ctx}
	data, err := proto.Marshal(cc)
	require.NoError(t, err)
	return &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Index: proto.Uint64(index), Data: data}
}

func normalEntry(index uint64) *raftpb.Entry {
	return &raftpb.Entry{Type: raftpb.EntryNormal.Enum(), Index: proto.Uint64(index)}
}

func pendingGroup(req uint64) (*Group, chan confResult) {
	done := make(chan confResult, 1)
	g := &Group{log: slog.New(slog.DiscardHandler)}
	g.conf = &pendingConf{req: req, desc: "add learner n9", done: done}
	return g, done
}

func TestConfContextIsReadAsMember(t *testing.T) {
	// Every replica decodes the context as a plain Member (applyConfChange):
	// the request id must not get in the way.
	m := Member{Name: "n9", Addr: "127.0.0.1:7009", AutoPromote: true}
	b, err := json.Marshal(confContext{Member: m, Req: 77})
	require.NoError(t, err)
	var got Member
	require.NoError(t, json.Unmarshal(b, &got))
	require.Equal(t, m, got)
	require.Equal(t, uint64(77), confReq(confEntry(t, 5, m, 77)))
	require.Zero(t, confReq(normalEntry(5)))
}

func TestConfChangePlacedThenApplied(t *testing.T) {
	m := Member{Name: "n9", Addr: "127.0.0.1:7009"}
	g, done := pendingGroup(42)
	g.noteConfPlacement([]*raftpb.Entry{normalEntry(10), confEntry(t, 11, m, 42)})
	require.Equal(t, uint64(11), g.conf.index)
	g.noteConfApplied(normalEntry(10))
	require.NotNil(t, g.conf, "not resolved by another index")
	g.noteConfApplied(confEntry(t, 11, m, 42))
	require.Nil(t, g.conf)
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, uint64(11), r.index)
	require.Equal(t, uint64(11), g.confSnapAt.Load(), "a snapshot follows the change")
}

func TestConfChangeDroppedByRaft(t *testing.T) {
	// Raft turns a conf change it refuses into an empty normal entry: the
	// first Ready after the proposal does not hold it.
	g, done := pendingGroup(42)
	g.noteConfPlacement([]*raftpb.Entry{normalEntry(11)})
	require.Nil(t, g.conf)
	require.ErrorIs(t, (<-done).err, errConfDropped)
}

func TestConfChangeOverwrittenIsLost(t *testing.T) {
	m := Member{Name: "n9", Addr: "127.0.0.1:7009"}
	g, done := pendingGroup(42)
	g.noteConfPlacement([]*raftpb.Entry{confEntry(t, 11, m, 42)})
	// A new leader's entry took index 11.
	g.noteConfApplied(normalEntry(11))
	r := <-done
	require.ErrorIs(t, r.err, ErrProposalLost)
	require.False(t, errors.Is(r.err, errConfDropped), "a lost change is not silently retried")

	// Another proposer's change at that index is not ours either.
	g, done = pendingGroup(42)
	g.noteConfPlacement([]*raftpb.Entry{confEntry(t, 11, m, 42)})
	g.noteConfApplied(confEntry(t, 11, m, 43))
	require.ErrorIs(t, (<-done).err, ErrProposalLost)
}

func TestAutoPromoteChangeHasNoWaiter(t *testing.T) {
	m := Member{Name: "n9", Addr: "127.0.0.1:7009"}
	g := &Group{log: slog.New(slog.DiscardHandler)}
	g.conf = &pendingConf{req: 5, desc: "auto-promote n9"}
	g.noteConfPlacement([]*raftpb.Entry{confEntry(t, 3, m, 5)})
	g.noteConfApplied(confEntry(t, 3, m, 5))
	require.Nil(t, g.conf)
}
