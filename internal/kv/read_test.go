package kv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fill applies n SETs of keys prefix+index, 1000 per entry, from index
// first on, and returns the next free index.
func fill(t *testing.T, s *Store, first uint64, prefix string, n int) uint64 {
	t.Helper()
	idx := first
	for start := 0; start < n; start += 1000 {
		cmd := Command{Op: OpMSet}
		for i := start; i < min(start+1000, n); i++ {
			cmd.Keys = append(cmd.Keys, []byte(fmt.Sprintf("%s%07d", prefix, i)))
			cmd.Values = append(cmd.Values, []byte("v"))
		}
		_, err := s.Apply([]Entry{{Index: idx, Data: enc(cmd)}})
		require.NoError(t, err)
		idx++
	}
	return idx
}

// TestCloseStopsALongScan: a scan that would take minutes (a callback that
// dawdles on each of 20k keys) does not keep Close waiting: it stops with
// ErrClosed within readCheckEvery keys of Close beginning, and releases
// its iterator, which Pebble would otherwise report as leaked on close.
func TestCloseStopsALongScan(t *testing.T) {
	s := openTest(t, t.TempDir())
	fill(t, s, 1, "k", 20_000)

	started := make(chan struct{})
	visited := 0
	readDone := make(chan error, 1)
	go func() {
		readDone <- s.Read(func(v View) error {
			visited = 0
			return v.ScanKeys(nil, func([]byte) bool {
				if visited++; visited == 1 {
					close(started)
				}
				time.Sleep(time.Millisecond) // a slow consumer: 20k keys take 20s+
				return true
			})
		})
	}()
	<-started
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close still waiting on a scan after 10s")
	}
	err := <-readDone
	require.ErrorIs(t, err, ErrClosed)
	require.Less(t, visited, 20_000)
	// Once closed, reads are refused at once.
	require.ErrorIs(t, s.Read(func(View) error { return nil }), ErrClosed)
}

// TestHashContextStopsWhenDone: a hash whose context is done stops, and
// the same store hashes fine under a live context.
func TestHashContextStopsWhenDone(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer func() { require.NoError(t, s.Close()) }()
	fill(t, s, 1, "k", 5000)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.HashContext(ctx)
	require.ErrorIs(t, err, context.Canceled)
	applied, h1, err := s.HashContext(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(5), applied)
	_, h2, err := s.Hash()
	require.NoError(t, err)
	require.Equal(t, h1, h2)
}

// TestFlushAllCostIsIndependentOfKeyCount: FLUSHALL is applied as one
// range deletion, so the bytes it writes to Pebble's WAL are the same with
// 1000 keys as with 50 000, and tiny.
func TestFlushAllCostIsIndependentOfKeyCount(t *testing.T) {
	walBytes := func(keys int) uint64 {
		s := openTest(t, t.TempDir())
		defer func() { require.NoError(t, s.Close()) }()
		next := fill(t, s, 1, "k", keys)
		before := s.db.Metrics().WAL.BytesIn
		_, err := s.Apply([]Entry{{Index: next, Data: enc(Command{Op: OpFlushAll})}})
		require.NoError(t, err)
		written := s.db.Metrics().WAL.BytesIn - before
		require.NoError(t, s.Read(func(v View) error {
			n, err := v.DBSize()
			require.Zero(t, n)
			return err
		}))
		return written
	}
	small, large := walBytes(1000), walBytes(50_000)
	require.Equal(t, small, large, "FLUSHALL's write grows with the keyspace")
	require.Less(t, large, uint64(256))
}
