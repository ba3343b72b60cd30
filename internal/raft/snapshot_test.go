package raft

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLargeEntriesTriggerASnapshotBeforeTheCount: the log behind the last
// snapshot lives in memory, so once the entries applied since then hold
// SnapshotLogBytes of data a snapshot is taken (and the log compacted),
// however far the entry count is from SnapshotCount; small entries adding
// up to less do not trigger one.
func TestLargeEntriesTriggerASnapshotBeforeTheCount(t *testing.T) {
	g := openSoloLeader(t, newBenchMachine(), func(c *Config) {
		c.SnapshotCount = 1 << 30
		c.SnapshotLogBytes = 64 << 10 // and the default catch-up tail of 5000 entries
	})
	defer func() { require.NoError(t, g.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The group may snapshot its bootstrap membership; nothing after it.
	start := g.AppliedIndex()
	small := []byte("v")
	for range 200 {
		_, err := g.Propose(ctx, small)
		require.NoError(t, err)
	}
	require.LessOrEqual(t, g.snapIndex.Load(), start, "200 entries of a few bytes stay under 64 KiB")

	large := bytes.Repeat([]byte("x"), 4<<10)
	var last uint64
	for range 20 { // 80 KiB
		_, err := g.Propose(ctx, large)
		require.NoError(t, err)
		last = g.AppliedIndex()
	}
	require.Eventually(t, func() bool { return g.snapIndex.Load() > start+200 }, 10*time.Second, 5*time.Millisecond,
		"a snapshot once 64 KiB of entries were applied")
	require.Less(t, g.snapIndex.Load(), last, "taken after about 16 of the 20 large entries")
	// The log was compacted behind it, keeping a catch-up tail of at most
	// half the byte bound (not 5000 entries of 4 KiB).
	first, err := g.FirstIndex()
	require.NoError(t, err)
	require.Greater(t, first, uint64(1), "the log was compacted behind it")
	snap := g.snapIndex.Load()
	ents, err := g.storage.Entries(first, snap+1, math.MaxUint64)
	require.NoError(t, err)
	var kept int
	for _, e := range ents {
		kept += len(e.GetData())
	}
	require.LessOrEqual(t, kept, 32<<10, "catch-up tail of %d entries before the snapshot at %d", len(ents), snap)
	require.NotEmpty(t, ents, "followers slightly behind still catch up from the log")
}
