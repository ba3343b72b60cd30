package raft

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncRecorder is a benchMachine that records, for every Sync, when it
// began and the applied index it made durable.
type syncRecorder struct {
	*benchMachine
	mu     sync.Mutex
	starts []time.Time
	synced []uint64
}

func (m *syncRecorder) Sync() error {
	idx := m.AppliedIndex()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.starts = append(m.starts, time.Now())
	m.synced = append(m.synced, idx)
	return nil
}

func (m *syncRecorder) record() ([]time.Time, []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.starts...), append([]uint64(nil), m.synced...)
}

// openSoloLeader opens a single-node group over sm with fast election
// timing and no snapshots (they sync too), adjusted by tweak, and waits
// until it leads. The caller closes it.
func openSoloLeader(t *testing.T, sm StateMachine, tweak func(*Config)) *Group {
	t.Helper()
	self := Member{Name: "n1", Addr: "127.0.0.1:1"}
	cfg := DefaultConfig()
	cfg.Self = self
	cfg.Bootstrap = []Member{self}
	cfg.Dir = t.TempDir()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.ElectionTimeout = 200 * time.Millisecond
	cfg.StateMachine = sm
	cfg.SnapshotCount = 0
	cfg.Transport = soloTransport{}
	cfg.Logger = slog.New(slog.DiscardHandler)
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := Open(cfg)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return g.Status().State == "leader" }, 10*time.Second, 5*time.Millisecond)
	return g
}

// TestSyncModeSyncsAppliedBatchesAtMostOncePerInterval: in sync mode every
// applied batch is covered by a state machine sync, syncs start at least
// StateMachineSyncInterval apart however many batches a write flood
// applies, and closing the group syncs the last batches without waiting
// out the interval.
func TestSyncModeSyncsAppliedBatchesAtMostOncePerInterval(t *testing.T) {
	const interval = 40 * time.Millisecond
	sm := &syncRecorder{benchMachine: newBenchMachine()}
	g := openSoloLeader(t, sm, func(cfg *Config) {
		cfg.StateMachineSync = true
		cfg.StateMachineSyncInterval = interval
	})
	closed := false
	defer func() {
		if !closed {
			_ = g.Close()
		}
	}()

	// A flood: four writers, one small entry each at a time, for ten
	// intervals, each of which applies many batches.
	var wg sync.WaitGroup
	stop := time.Now().Add(10 * interval)
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := g.Propose(ctx, []byte(fmt.Sprintf("w%d-%d", w, i)))
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	applied := sm.AppliedIndex()
	require.Eventually(t, func() bool {
		_, synced := sm.record()
		return len(synced) > 0 && synced[len(synced)-1] >= applied
	}, 5*time.Second, 5*time.Millisecond, "the last batch of the flood was never synced")

	starts, _ := sm.record()
	require.GreaterOrEqual(t, len(starts), 2)
	for i := 1; i < len(starts); i++ {
		require.GreaterOrEqual(t, starts[i].Sub(starts[i-1]), interval, "syncs %d and %d", i-1, i)
	}

	// A last write right before Close is synced on the way out.
	_, err := g.Propose(context.Background(), []byte("last"))
	require.NoError(t, err)
	last := sm.AppliedIndex()
	require.NoError(t, g.Close())
	closed = true
	_, synced := sm.record()
	require.Equal(t, last, synced[len(synced)-1], "Close left the last batch unsynced")
}

// TestControlRequestsAreServedUnderAWriteFlood: a loop kept busy by
// proposals, so that it never finds a pass without a Ready, still answers
// the requests that only its control channels carry (here MatchIndexes,
// which the lost-disk check relies on).
func TestControlRequestsAreServedUnderAWriteFlood(t *testing.T) {
	g := openSoloLeader(t, newBenchMachine(), nil)
	defer func() { require.NoError(t, g.Close()) }()

	// Proposers that do not wait for their results keep the proposal
	// queue from ever running dry.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				p := &proposal{seq: g.seq.Add(1), done: make(chan proposalResult, 1)}
				p.buf = newProposalBuf(g.id, p.seq, []byte(fmt.Sprintf("w%d-%d", w, i)))
				g.pending.add(p)
				select {
				case g.propc <- p:
				case <-stop:
					g.pending.cancel(p.seq)
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(50 * time.Millisecond) // the flood is under way
	for i := 0; i < 20; i++ {
		// Unfixed, a request waits for as long as the flood lasts; the bound
		// is generous because a loaded machine (-race, other packages'
		// tests) makes each pass slow, not because a pass may take seconds.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := g.MatchIndexes(ctx)
		cancel()
		require.NoError(t, err, "request %d", i)
		require.Len(t, m, 1)
	}
}
