package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// failingMachine is a benchMachine whose storage operations start failing
// with errDisk once armed; which ones is chosen per test.
type failingMachine struct {
	*benchMachine
	armed                                       atomic.Bool
	failApply, failSync, failCapture, failImage bool
}

var errDisk = fmt.Errorf("write 000042.sst: %w", syscall.ENOSPC)

func (m *failingMachine) Apply(ents []ApplyEntry) ([]any, error) {
	if m.armed.Load() && m.failApply {
		return nil, fmt.Errorf("commit applied batch: %w", errDisk)
	}
	return m.benchMachine.Apply(ents)
}

func (m *failingMachine) Sync() error {
	if m.armed.Load() && m.failSync {
		return fmt.Errorf("sync pebble: %w", errDisk)
	}
	return nil
}

func (m *failingMachine) Snapshot() (StateSnapshot, error) {
	if m.armed.Load() && m.failCapture {
		return nil, errDisk
	}
	img, err := m.benchMachine.Snapshot()
	if err != nil || !m.armed.Load() || !m.failImage {
		return img, err
	}
	return failingImage{img}, nil
}

// failingImage fails while it is written out, as a snapshot file on a
// full disk does.
type failingImage struct{ StateSnapshot }

func (failingImage) WriteTo(io.Writer) (int64, error) { return 0, errDisk }

// TestStorageFailureStopsTheGroup: each storage write the group depends
// on, when it fails, stops the group for good instead of being logged: Err
// says why (and matches ErrFailed and the OS error), Failed is closed,
// Status reports StateFailed with no leader, proposals and reads (lease
// reads included) are refused, and elastickv_raft_group_failed is 1.
func TestStorageFailureStopsTheGroup(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct {
		name string
		arm  func(*failingMachine)
		want string
	}{
		{"apply commit", func(m *failingMachine) { m.failApply = true }, "commit applied batch"},
		{"state machine sync", func(m *failingMachine) { m.failSync = true }, "sync state machine"},
		{"snapshot capture", func(m *failingMachine) { m.failCapture = true }, "capture snapshot"},
		{"snapshot write", func(m *failingMachine) { m.failImage = true }, "write snapshot"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm := &failingMachine{benchMachine: newBenchMachine()}
			tc.arm(sm)
			reg := prometheus.NewRegistry()
			g := openSoloLeader(t, sm, func(cfg *Config) {
				cfg.StateMachineSync = true
				cfg.StateMachineSyncInterval = time.Millisecond
				cfg.SnapshotCount = 4
				cfg.Registerer = reg
			})
			require.Equal(t, 0.0, gaugeValue(t, g.failure.gauge))
			sm.armed.Store(true)
			// Writes until one meets the failure; those after are refused.
			require.Eventually(t, func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := g.Propose(ctx, []byte("x"))
				return err != nil && g.Err() != nil
			}, 10*time.Second, time.Millisecond, "the group never stopped")
			select {
			case <-g.Failed():
			default:
				t.Fatal("Failed not closed")
			}
			err := g.Err()
			require.ErrorIs(t, err, ErrFailed)
			require.ErrorIs(t, err, syscall.ENOSPC)
			require.Contains(t, err.Error(), tc.want)
			st := g.Status()
			require.Equal(t, StateFailed, st.State)
			require.Zero(t, st.LeaderID)
			_, perr := g.Propose(context.Background(), []byte("after"))
			require.ErrorIs(t, perr, ErrFailed)
			require.ErrorIs(t, g.ReadIndex(context.Background()), ErrFailed)
			require.False(t, g.LeaseReadNow(), "no lease read on a failed group")
			require.Equal(t, 1.0, gaugeValue(t, g.failure.gauge))
			require.Equal(t, "free space on the data directory's filesystem, then restart the node: it recovers from its WAL and catches up from the leader", failureAdvice(err))
			require.ErrorIs(t, g.Close(), ErrFailed, "Close reports why the group stopped")
		})
	}
}

// TestFailFromOutsideStopsTheGroup: a failure found by the group's owner
// (the state machine's background writes) stops it the same way, and the
// first failure is the one reported.
func TestFailFromOutsideStopsTheGroup(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := openSoloLeader(t, newBenchMachine(), nil)
	first := errors.New("flush: input/output error")
	g.Fail(first)
	g.Fail(errors.New("second"))
	<-g.Failed()
	require.ErrorIs(t, g.Err(), first)
	require.NotContains(t, g.Err().Error(), "second")
	require.Equal(t, StateFailed, g.Status().State)
	require.ErrorIs(t, g.Close(), first)
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, g.Write(&m))
	return m.GetGauge().GetValue()
}

// parkingMachine, once armed, reports a failure to its group and then
// parks in Apply until released, as kv does with the Pebble goroutine that
// met a failed write.
type parkingMachine struct {
	*benchMachine
	g       atomic.Pointer[Group]
	armed   atomic.Bool
	release chan struct{}
}

func (m *parkingMachine) Apply(ents []ApplyEntry) ([]any, error) {
	if m.armed.Load() {
		m.g.Load().Fail(errDisk)
		<-m.release
		return nil, errDisk
	}
	return m.benchMachine.Apply(ents)
}

// TestCloseOfAFailedGroupIsBounded: an applier parked on the failed disk
// does not keep Close (and so the process's shutdown) waiting for good.
func TestCloseOfAFailedGroupIsBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	sm := &parkingMachine{benchMachine: newBenchMachine(), release: make(chan struct{})}
	g := openSoloLeader(t, sm, nil)
	sm.g.Store(g)
	sm.armed.Store(true)
	proposed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := g.Propose(ctx, []byte("x"))
		proposed <- err
	}()
	<-g.Failed()
	start := time.Now()
	require.ErrorIs(t, g.Close(), ErrFailed)
	require.Less(t, time.Since(start), failedCloseWait+2*time.Second, "Close waited for the parked applier")
	require.GreaterOrEqual(t, time.Since(start), failedCloseWait, "Close gave the applier its time")
	close(sm.release) // the parked goroutine may go now, so nothing leaks
	require.Error(t, <-proposed)
}
