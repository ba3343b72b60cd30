package raft

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// proposeRaw puts data into the log as a normal entry without the proposal
// header, as a newer binary with another entry format would.
func proposeRaw(t *testing.T, g *Group, data []byte) {
	t.Helper()
	// With stamping off the loop proposes buf from where a v1 header
	// would start: pad so that is data itself.
	buf := append(make([]byte, headerLenV2-headerLen), data...)
	p := &proposal{seq: g.seq.Add(1), buf: buf, done: make(chan proposalResult, 1)}
	g.pending.add(p)
	select {
	case g.propc <- p:
	case <-time.After(5 * time.Second):
		t.Fatal("proposal not taken")
	}
}

// A committed entry the binary cannot decode stops the group: Err reports
// it, the state machine never sees the entry (nor anything after it), and
// a restart replays up to it and stops again rather than skip it.
func TestUndecodableEntryStopsTheGroupAndIsNeverSkipped(t *testing.T) {
	defer goleak.VerifyNone(t)
	sm := newBenchMachine()
	var dir string
	g := openSoloLeader(t, sm, func(c *Config) { dir = c.Dir })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := g.Propose(ctx, []byte("before"))
	require.NoError(t, err)
	good := sm.AppliedIndex()

	proposeRaw(t, g, []byte{0x7f, 1, 2, 3}) // an unknown tag
	require.Eventually(t, func() bool { return g.Err() != nil }, 5*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, g.Err(), ErrUndecodable)
	require.Equal(t, good, sm.AppliedIndex(), "nothing at or after the bad entry is applied")
	_, err = g.Propose(ctx, []byte("after"))
	require.Error(t, err, "a stopped group takes no proposals")
	require.ErrorIs(t, g.Close(), ErrUndecodable)

	// The entry is durable in the WAL: a restart meets it again.
	sm2 := newBenchMachine()
	g2 := openSoloLeaderIn(t, sm2, dir)
	require.Eventually(t, func() bool { return g2.Err() != nil }, 10*time.Second, 5*time.Millisecond)
	require.ErrorIs(t, g2.Err(), ErrUndecodable)
	require.ErrorIs(t, g2.Close(), ErrUndecodable)
	// The entries before it may wait for the next start (they were in
	// the same Ready); none at or after it was applied.
	require.LessOrEqual(t, sm2.AppliedIndex(), good)
}

// openSoloLeaderIn opens a one-member group on an existing directory.
func openSoloLeaderIn(t *testing.T, sm StateMachine, dir string) *Group {
	t.Helper()
	self := Member{Name: "n1", Addr: "127.0.0.1:1"}
	cfg := DefaultConfig()
	cfg.Self, cfg.Dir, cfg.StateMachine, cfg.Transport = self, dir, sm, soloTransport{}
	cfg.HeartbeatInterval, cfg.ElectionTimeout, cfg.SnapshotCount = 20*time.Millisecond, 200*time.Millisecond, 0
	g, err := Open(cfg)
	require.NoError(t, err)
	return g
}

// A proposal above MaxEntryBytes is refused before it enters the log, and
// one at the limit goes through.
func TestProposalAboveTheEntryCapIsRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := openSoloLeader(t, newBenchMachine(), func(c *Config) { c.MaxEntryBytes = 64 << 10 })
	defer func() { require.NoError(t, g.Close()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := g.Propose(ctx, make([]byte, g.MaxPayloadBytes()+1))
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = g.Propose(ctx, make([]byte, g.MaxPayloadBytes()))
	require.NoError(t, err)
	require.NoError(t, g.Err())
}

// The applier coalesces queued tasks until MaxApplyBatchBytes of entry data,
// then leaves the rest for the next state machine call.
func TestApplyCoalescingStopsAtTheByteBudget(t *testing.T) {
	g := &Group{applyc: make(chan applyTask, 16), metrics: newMetrics(nil, 1)}
	g.cfg.MaxApplyBatchBytes = 1000
	task := func(first uint64, size int) applyTask {
		return applyTask{entries: []ApplyEntry{{Index: first, Data: make([]byte, size)}}, owners: make([]owner, 1)}
	}
	for i := range 5 {
		g.applyc <- task(uint64(i+2), 400)
	}
	t0 := task(1, 100)
	require.Nil(t, g.coalesceApply(&t0))
	require.Len(t, t0.entries, 4, "100+400+400 < 1000 takes one more, then stops at 1300")
	require.Len(t, g.applyc, 2)

	// A single task larger than the budget is applied whole, alone.
	big := task(10, 5000)
	g2 := &Group{applyc: make(chan applyTask, 1), metrics: g.metrics, cfg: g.cfg}
	g2.applyc <- task(11, 1)
	require.Nil(t, g2.coalesceApply(&big))
	require.Len(t, big.entries, 1)
}
