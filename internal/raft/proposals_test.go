package raft

import (
	"context"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
)

func TestProposalHeaderRoundTrip(t *testing.T) {
	b := encodeProposal(7, 42, []byte("payload"))
	p, s, st, payload, ok := decodeProposal(b)
	require.True(t, ok)
	require.Equal(t, uint64(7), p)
	require.Equal(t, uint64(42), s)
	require.Zero(t, st, "a v1 header carries no stamp")
	require.Equal(t, []byte("payload"), payload)
	b2 := encodeProposalV2(7, 42, 1_700_000_000_123, []byte("payload"))
	p, s, st, payload, ok = decodeProposal(b2)
	require.True(t, ok)
	require.Equal(t, []uint64{7, 42, 1_700_000_000_123}, []uint64{p, s, st})
	require.Equal(t, []byte("payload"), payload)
	for _, bad := range [][]byte{nil, {headerVersion}, append([]byte{9}, b[1:]...),
		b2[:headerLenV2-1], {headerVersionV2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} {
		_, _, _, _, ok := decodeProposal(bad)
		require.False(t, ok, "%x", bad)
	}
}

// TestProposalHeaderGoldenBytes pins both header versions byte for byte:
// v1 is what every binary before stamps wrote and still reads, and what
// this one writes while stamping is off; a change to either breaks mixed
// clusters and replay of old logs.
func TestProposalHeaderGoldenBytes(t *testing.T) {
	const (
		v1 = "01" + "0000000000000007" + "000000000000002a" + "7061796c6f6164"
		v2 = "02" + "0000000000000007" + "000000000000002a" + "0000018bcfe56b7b" + "7061796c6f6164"
	)
	require.Equal(t, v1, hex.EncodeToString(encodeProposal(7, 42, []byte("payload"))))
	require.Equal(t, v2, hex.EncodeToString(encodeProposalV2(7, 42, 1_700_000_000_891, []byte("payload"))))
	// What the loop proposes from a proposal buffer, stamping off and on.
	off := &proposal{seq: 42, buf: newProposalBuf(7, 42, []byte("payload"))}
	require.Equal(t, v1, hex.EncodeToString(off.entryData(false, 0)))
	on := &proposal{seq: 42, buf: newProposalBuf(7, 42, []byte("payload"))}
	require.Equal(t, v2, hex.EncodeToString(on.entryData(true, 1_700_000_000_891)))
	// An idle stamp: proposer 0, sequence 0, no payload.
	require.Equal(t, "02"+"0000000000000000"+"0000000000000000"+"0000018bcfe56b7b",
		hex.EncodeToString(encodeProposalV2(0, 0, 1_700_000_000_891, nil)))
}

func newProposal(seq uint64) *proposal {
	return &proposal{seq: seq, done: make(chan proposalResult, 1)}
}

func TestPendingProposalCompletesExactlyOnce(t *testing.T) {
	pp := newPendingProposals()
	p := newProposal(1)
	pp.add(p)
	pp.placed(1, 10, 2)
	pp.complete(1, proposalResult{value: "first"})
	pp.complete(1, proposalResult{value: "second"}) // ignored
	pp.failOverwritten(100)                         // already completed: ignored
	require.Equal(t, "first", (<-p.done).value)
	select {
	case r := <-p.done:
		t.Fatalf("completed twice: %v", r)
	default:
	}
}

func TestOverwrittenProposalFailsAsLostOnlyOnceItsIndexIsApplied(t *testing.T) {
	pp := newPendingProposals()
	placedEarly, placedLate, unplaced := newProposal(1), newProposal(2), newProposal(3)
	for _, p := range []*proposal{placedEarly, placedLate, unplaced} {
		pp.add(p)
	}
	pp.placed(1, 5, 2)
	pp.placed(2, 9, 2)
	pp.failOverwritten(6)
	require.ErrorIs(t, (<-placedEarly.done).err, ErrProposalLost)
	require.Empty(t, placedLate.done, "index 9 not applied yet")
	require.Empty(t, unplaced.done, "never placed: only its caller's deadline ends it")
	pp.failPlacedUpTo(9, ErrProposalUnknown)
	require.ErrorIs(t, (<-placedLate.done).err, ErrProposalUnknown)
	pp.failAll(ErrStopped)
	require.ErrorIs(t, (<-unplaced.done).err, ErrStopped)
}

func TestReportBoxNeverBlocksAndKeepsEverySnapshotReport(t *testing.T) {
	b := newReportBox()
	// Posting far more than any buffer must not block.
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10000; i++ {
			b.postUnreachable(uint64(i % 3))
		}
		b.postSnapshot(2, raft.SnapshotFailure)
		b.postSnapshot(3, raft.SnapshotFinish)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("posting reports blocked")
	}
	require.Len(t, b.unreachable, 3, "unreachable reports coalesce per peer")
	require.Equal(t, []snapReport{{2, raft.SnapshotFailure}, {3, raft.SnapshotFinish}}, b.snapshots)
	require.Len(t, b.notify, 1)
}

func TestAppliedWaiter(t *testing.T) {
	w := newAppliedWaiter(3)
	stop := make(chan struct{})
	require.NoError(t, w.wait(context.Background(), 3, stop))
	got := make(chan error, 1)
	go func() { got <- w.wait(context.Background(), 5, stop) }()
	w.advance(4)
	select {
	case err := <-got:
		t.Fatalf("woke at 4: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	w.advance(5)
	require.NoError(t, <-got)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.True(t, errors.Is(w.wait(ctx, 9, stop), context.Canceled))
	close(stop)
	require.ErrorIs(t, w.wait(context.Background(), 9, stop), ErrStopped)
}

func TestSnapshotDescriptorRejectsPathsOutsideTheSnapshotDir(t *testing.T) {
	for _, f := range []string{"../x.snap", "a/b.snap", "x.txt", ""} {
		b, err := encodeDescriptor(snapDescriptor{File: f})
		require.NoError(t, err)
		_, err = decodeDescriptor(b)
		require.Error(t, err, "file %q", f)
	}
}
