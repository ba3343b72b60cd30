package raft

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
)

// stampMachine is a benchMachine that records the stamp of every entry it
// applies, returns it as the entry's result (so a proposer learns its
// entry's stamp) and reports its newest applied stamp (AppliedStamper).
type stampMachine struct {
	*benchMachine
	mu     sync.Mutex
	stamps map[uint64]uint64 // index -> stamp, entries with a stamp only
	idle   int               // entries with a stamp and no data
	newest uint64
}

func newStampMachine() *stampMachine {
	return &stampMachine{benchMachine: newBenchMachine(), stamps: make(map[uint64]uint64)}
}

func (m *stampMachine) Apply(ents []ApplyEntry) ([]any, error) {
	before := m.AppliedIndex()
	if _, err := m.benchMachine.Apply(ents); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]any, len(ents))
	for i, e := range ents {
		out[i] = e.Stamp
		if e.Index <= before || e.Stamp == 0 {
			continue
		}
		m.stamps[e.Index] = e.Stamp
		m.newest = max(m.newest, e.Stamp)
		if e.Data == nil {
			m.idle++
		}
	}
	return out, nil
}

func (m *stampMachine) AppliedStamp() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.newest
}

// inOrder returns the recorded stamps in index order.
func (m *stampMachine) inOrder() (idx, stamps []uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.stamps {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	for _, i := range idx {
		stamps = append(stamps, m.stamps[i])
	}
	return idx, stamps
}

func (m *stampMachine) idleCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.idle
}

// offsetClock is the wall clock moved by d: a node whose clock is wrong.
type offsetClock struct{ d time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.d) }

// openStampTrio opens three groups over loopback gRPC with stamping on
// from the start, each on a stampMachine; wall gives a node's wall clock
// by name (nil: the real one).
func openStampTrio(t *testing.T, mode ReadMode, skew time.Duration, wall map[string]Clock) ([]*Group, map[string]*stampMachine) {
	t.Helper()
	sms := make(map[string]*stampMachine)
	groups := openTrioWith(t, mode, func(cfg *Config) {
		sm := newStampMachine()
		sms[cfg.Self.Name] = sm
		cfg.StateMachine = sm
		cfg.Stamps = true
		cfg.StampSkew = skew
		cfg.WallClock = wall[cfg.Self.Name]
	})
	return groups, sms
}

func leaderOf(t *testing.T, groups []*Group) *Group {
	t.Helper()
	var l int
	require.Eventually(t, func() bool { l = benchLeader(groups); return l >= 0 }, 15*time.Second, 5*time.Millisecond)
	return groups[l]
}

// proposeStamped proposes one payload on g and returns its entry's stamp.
func proposeStamped(t *testing.T, g *Group, payload string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := g.Propose(ctx, []byte(payload))
	require.NoError(t, err)
	st, ok := res.(uint64)
	require.True(t, ok)
	return st
}

// requireMonotone checks that every node's stamps never decrease in log
// order and that the nodes agree on every index they applied.
func requireMonotone(t *testing.T, sms map[string]*stampMachine) {
	t.Helper()
	byIndex := make(map[uint64]uint64)
	for name, sm := range sms {
		idx, stamps := sm.inOrder()
		require.NotEmpty(t, stamps, name)
		for i := 1; i < len(stamps); i++ {
			require.GreaterOrEqual(t, stamps[i], stamps[i-1], "%s: stamp of entry %d below entry %d's", name, idx[i], idx[i-1])
		}
		for i, ix := range idx {
			if s, ok := byIndex[ix]; ok {
				require.Equal(t, s, stamps[i], "%s disagrees on entry %d's stamp", name, ix)
			}
			byIndex[ix] = stamps[i]
		}
	}
}

// TestStampsNeverDecreaseAcrossLeaderChanges: under writes and repeated
// leadership transfers to random nodes, the stamps every node applies
// never decrease in log order, and every node applies the same stamps;
// each new leader's first stamp is at least the newest stamp before it
// plus the skew bound.
func TestStampsNeverDecreaseAcrossLeaderChanges(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the groups' cleanups (LIFO)
	const skew = 300 * time.Millisecond
	groups, sms := openStampTrio(t, ReadModeLease, skew, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	var newest uint64
	for round := range 5 {
		l := leaderOf(t, groups)
		first := proposeStamped(t, l, fmt.Sprintf("r%d-first", round))
		if round > 0 {
			require.GreaterOrEqual(t, first, newest+uint64(skew/time.Millisecond), "round %d: new leader %s stamped below the office floor", round, l.cfg.Self.Name)
		}
		for i := range 20 {
			newest = max(newest, proposeStamped(t, l, fmt.Sprintf("r%d-%d", round, i)))
		}
		var others []string
		for _, g := range groups {
			if g != l {
				others = append(others, g.cfg.Self.Name)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := l.TransferLeadership(ctx, others[rng.IntN(len(others))])
		cancel()
		require.NoError(t, err)
		// The idle stamps of the old leader may have committed after the
		// last proposal: the floor counts them too.
		newest = max(newest, sms[l.cfg.Self.Name].AppliedStamp())
	}
	last := leaderOf(t, groups)
	final := proposeStamped(t, last, "final")
	require.Eventually(t, func() bool {
		for _, g := range groups {
			if g.AppliedIndex() < last.AppliedIndex() {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond)
	require.GreaterOrEqual(t, final, newest)
	requireMonotone(t, sms)
}

// TestLeaderWithClockBehindStampsAboveItsPredecessor: a node whose wall
// clock is 5 s behind takes over; its stamps start at the newest stamp in
// its log plus the skew bound and never fall below anything stamped or
// read before, while the stamp lag gauge shows its clock behind.
func TestLeaderWithClockBehindStampsAboveItsPredecessor(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the groups' cleanups (LIFO)
	const skew = DefaultStampSkew
	groups, sms := openStampTrio(t, ReadModeLease, 0, map[string]Clock{"n3": offsetClock{-5 * time.Second}})
	var slow *Group
	for _, g := range groups {
		if g.cfg.Self.Name == "n3" {
			slow = g
		}
	}
	l := leaderOf(t, groups)
	if l == slow {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, l.TransferLeadership(ctx, ""))
		cancel()
		l = leaderOf(t, groups)
	}
	var old uint64
	for i := range 10 {
		old = max(old, proposeStamped(t, l, fmt.Sprintf("before-%d", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rOld, err := l.ReadAt(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, rOld, old, "an idle leader's read time is at least its newest committed stamp")
	require.NoError(t, l.TransferLeadership(ctx, "n3"))
	require.Equal(t, slow, leaderOf(t, groups))
	old = max(old, sms[l.cfg.Self.Name].AppliedStamp())

	first := proposeStamped(t, slow, "after")
	require.GreaterOrEqual(t, first, old+uint64(skew/time.Millisecond))
	require.Greater(t, first, uint64(time.Now().Add(-4*time.Second).UnixMilli()), "stamps do not follow the slow clock back")
	rNew, err := slow.ReadAt(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, rNew, rOld)
	for i := range 10 {
		require.GreaterOrEqual(t, proposeStamped(t, slow, fmt.Sprintf("after-%d", i)), rNew)
	}
	require.Eventually(t, func() bool {
		return metricValue(t, slow.metrics.stampLag) < -float64(skew/time.Second)-4
	}, 10*time.Second, 10*time.Millisecond, "the lag gauge shows the leader's clock behind the stamps")
	requireMonotone(t, sms)
}

// timedRead is one ReadAt call: when it ran (test process clock) and the
// read time it returned.
type timedRead struct {
	node       string
	start, end time.Time
	r          uint64
}

type timedWrite struct {
	start time.Time
	stamp uint64
}

// TestReadTimesNeverGoBackAcrossNodes is a linearizability-style check of
// read times: readers on every node and a writer on the leader run while
// leadership moves; for any two reads that do not overlap, the later one's
// R is at least the earlier one's, whichever nodes served them, and every
// write proposed after a read ended is stamped at or above that read's R.
func TestReadTimesNeverGoBackAcrossNodes(t *testing.T) {
	for _, mode := range []ReadMode{ReadModeLease, ReadModeReadIndex} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Cleanup(func() { goleak.VerifyNone(t) }) // after the groups' cleanups (LIFO)
			groups, sms := openStampTrio(t, mode, 100*time.Millisecond,
				map[string]Clock{"n2": offsetClock{-2 * time.Second}, "n3": offsetClock{time.Second}})
			var (
				mu     sync.Mutex
				reads  []timedRead
				writes []timedWrite
				wg     sync.WaitGroup
			)
			ctx, cancel := context.WithCancel(context.Background())
			for _, g := range groups {
				for range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for ctx.Err() == nil {
							start := time.Now()
							rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
							r, err := g.ReadAt(rctx)
							rcancel()
							end := time.Now()
							if err != nil {
								time.Sleep(time.Millisecond) // an election or the end of the test
								continue
							}
							mu.Lock()
							reads = append(reads, timedRead{g.cfg.Self.Name, start, end, r})
							mu.Unlock()
						}
					}()
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					l := benchLeader(groups)
					if l < 0 {
						time.Sleep(time.Millisecond) // an election: back off
						continue
					}
					start := time.Now()
					wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
					res, err := groups[l].Propose(wctx, []byte(fmt.Sprintf("w%d", i)))
					wcancel()
					if err != nil {
						time.Sleep(time.Millisecond)
						continue
					}
					mu.Lock()
					writes = append(writes, timedWrite{start, res.(uint64)})
					mu.Unlock()
				}
			}()
			for _, to := range []string{"n2", "n3", "n1", "n2"} {
				l := leaderOf(t, groups)
				// Let reads and writes run under this leader.
				n := func() int { mu.Lock(); defer mu.Unlock(); return len(reads) + len(writes) }
				target := n() + 200
				require.Eventually(t, func() bool { return n() >= target }, 10*time.Second, 5*time.Millisecond)
				if l.cfg.Self.Name == to {
					continue
				}
				tctx, tcancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := l.TransferLeadership(tctx, to)
				tcancel()
				require.NoError(t, err)
			}
			cancel()
			wg.Wait()

			require.NotEmpty(t, writes)
			nodes := map[string]bool{}
			for _, r := range reads {
				nodes[r.node] = true
			}
			require.Len(t, nodes, 3, "every node served reads")
			// Sweep the reads in start order, keeping the highest R of the
			// reads that ended before each start.
			byEnd := slices.Clone(reads)
			sort.Slice(byEnd, func(i, j int) bool { return byEnd[i].end.Before(byEnd[j].end) })
			byStart := slices.Clone(reads)
			sort.Slice(byStart, func(i, j int) bool { return byStart[i].start.Before(byStart[j].start) })
			var best timedRead
			j := 0
			for _, r := range byStart {
				for ; j < len(byEnd) && byEnd[j].end.Before(r.start); j++ {
					if byEnd[j].r > best.r {
						best = byEnd[j]
					}
				}
				require.GreaterOrEqual(t, r.r, best.r, "a read on %s at %v returned R=%d, below R=%d of a read on %s that ended before it began",
					r.node, r.start, r.r, best.r, best.node)
			}
			sort.Slice(writes, func(i, j int) bool { return writes[i].start.Before(writes[j].start) })
			best, j = timedRead{}, 0
			for _, w := range writes {
				for ; j < len(byEnd) && byEnd[j].end.Before(w.start); j++ {
					if byEnd[j].r > best.r {
						best = byEnd[j]
					}
				}
				require.GreaterOrEqual(t, w.stamp, best.r, "a write proposed at %v was stamped %d, below R=%d of a read on %s that ended before it", w.start, w.stamp, best.r, best.node)
			}
			requireMonotone(t, sms)
		})
	}
}

// TestIdleStampsOnlyWhileStamping: with stamping off the log holds v1
// entries only and no idle stamps appear; once EnableStamps is called an
// idle leader proposes empty stamped entries (applied with Data nil and a
// stamp) and proposals carry v2 headers.
func TestIdleStampsOnlyWhileStamping(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the groups' cleanups (LIFO)
	const skew = 100 * time.Millisecond
	sm := newStampMachine()
	g := openSoloLeader(t, sm, func(cfg *Config) { cfg.StampSkew = skew })
	defer func() { require.NoError(t, g.Close()) }()

	require.Zero(t, proposeStamped(t, g, "v1"))
	require.Never(t, func() bool { return metricValue(t, g.metrics.idleStamps) > 0 || sm.idleCount() > 0 },
		4*skew, skew/10, "idle stamps while stamping is off")
	requireHeaders(t, g, headerVersion)

	g.EnableStamps()
	require.True(t, g.StampsEnabled())
	require.Eventually(t, func() bool { return sm.idleCount() >= 3 }, 10*time.Second, 5*time.Millisecond)
	require.GreaterOrEqual(t, metricValue(t, g.metrics.idleStamps), 3.0)
	st := proposeStamped(t, g, "v2")
	require.Equal(t, sm.AppliedStamp(), st)
	require.InDelta(t, float64(time.Now().UnixMilli()), float64(st), float64(5*time.Second/time.Millisecond))
	requireHeaders(t, g, headerVersion, headerVersionV2)
	// An idle leader's read time keeps up with the clock.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := g.ReadAt(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, r, st)
}

// requireHeaders checks that the log's proposals use exactly the header
// versions given.
func requireHeaders(t *testing.T, g *Group, want ...byte) {
	t.Helper()
	var (
		seen []byte
		ents []*raftpb.Entry
		err  error
	)
	require.NoError(t, g.inLoop(context.Background(), func() {
		first, _ := g.storage.FirstIndex()
		last, _ := g.storage.LastIndex()
		ents, err = g.storage.Entries(first, last+1, 1<<40)
	}))
	require.NoError(t, err)
	for _, e := range ents {
		if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 && e.GetData()[0] != ackedRecordTag && !slices.Contains(seen, e.GetData()[0]) {
			seen = append(seen, e.GetData()[0])
		}
	}
	slices.Sort(seen)
	require.Equal(t, want, seen)
}

// TestRestartedLeaderStampsAboveItsLog: a single node restarted with its
// wall clock 5 s behind finds the newest stamp in its log (the scan at
// Open) and in its state machine, and stamps above it plus the skew bound.
func TestRestartedLeaderStampsAboveItsLog(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the groups' cleanups (LIFO)
	for _, withStamper := range []bool{true, false} {
		t.Run(fmt.Sprintf("stamper=%v", withStamper), func(t *testing.T) {
			dir := t.TempDir()
			sm := newStampMachine()
			g := openSoloLeader(t, sm, func(cfg *Config) { cfg.Dir = dir; cfg.Stamps = true })
			var old uint64
			for i := range 5 {
				old = max(old, proposeStamped(t, g, fmt.Sprintf("x%d", i)))
			}
			require.NoError(t, g.Close())
			old = max(old, sm.AppliedStamp())

			var next StateMachine = newStampMachine() // replays the whole log
			if withStamper {
				next = sm // holds everything; reports its newest stamp
			}
			g2 := openSoloLeader(t, next, func(cfg *Config) {
				cfg.Dir = dir
				cfg.WallClock = offsetClock{-5 * time.Second}
			})
			defer func() { require.NoError(t, g2.Close()) }()
			require.True(t, g2.StampsEnabled(), "stamps in the log turn stamping on")
			require.GreaterOrEqual(t, proposeStamped(t, g2, "after restart"), old+uint64(DefaultStampSkew/time.Millisecond))
		})
	}
}

// TestReadContextCarriesLeaderTime: the read context a leader sends back
// parses to the follower's sequence and the leader's time; a context of
// any other shape is not a round of this node's.
func TestReadContextCarriesLeaderTime(t *testing.T) {
	ctx := append(roundCtx(77), readTimeTag, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x6b, 0x7b)
	seq, r, has, ok := splitReadCtx(ctx)
	require.True(t, ok)
	require.True(t, has)
	require.Equal(t, []uint64{77, 1_700_000_000_891}, []uint64{seq, r})
	seq, _, has, ok = splitReadCtx(roundCtx(78))
	require.True(t, ok)
	require.False(t, has)
	require.Equal(t, uint64(78), seq)
	for _, bad := range [][]byte{nil, ctx[:9], ctx[:16], append(slices.Clone(ctx), 0), append(roundCtx(1), 'X', 0, 0, 0, 0, 0, 0, 0, 0)} {
		_, _, _, ok := splitReadCtx(bad)
		require.False(t, ok, "%x", bad)
	}
}

// metricValue reads a gauge's or counter's value.
func metricValue(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	require.NoError(t, m.Write(&out))
	if out.GetGauge() != nil {
		return out.GetGauge().GetValue()
	}
	return out.GetCounter().GetValue()
}

// manualWall is a wall clock that moves only when told.
type manualWall struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualWall) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualWall) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestStampsStayAboveServedReadsAcrossClockStepBack: a read served at R
// (here above every stamp, the clock having moved since the last one) and
// then a wall clock stepped back 10 s: the next stamp is still >= R, so a
// write after the read never applies at an earlier time than it saw.
func TestStampsStayAboveServedReadsAcrossClockStepBack(t *testing.T) {
	defer goleak.VerifyNone(t)
	w0 := time.UnixMilli(1_800_000_000_000)
	wall := &manualWall{t: w0}
	sm := newStampMachine()
	g := openSoloLeader(t, sm, func(cfg *Config) {
		cfg.Stamps = true
		cfg.WallClock = wall
		cfg.StampSkew = time.Hour // no idle stamp during the test
	})
	defer func() { require.NoError(t, g.Close()) }()
	s1 := proposeStamped(t, g, "a")
	require.GreaterOrEqual(t, s1, uint64(w0.UnixMilli()))
	wall.set(time.UnixMilli(int64(s1) + 100))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := g.ReadAt(ctx)
	require.NoError(t, err)
	require.Equal(t, s1+100, r, "R = the clock: below the newest committed stamp + skew, nothing pending")
	wall.set(w0.Add(-10 * time.Second))
	require.GreaterOrEqual(t, proposeStamped(t, g, "b"), r)
	r2, err := g.ReadAt(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, r2, r, "read times do not go back with the clock")
}

// TestLeaderReadTimeBounds: a leader's read time is the clock, capped at
// the newest committed stamp + skew and at the first uncommitted stamp,
// and never below a read time already served.
func TestLeaderReadTimeBounds(t *testing.T) {
	wall := &manualWall{}
	for _, tc := range []struct {
		name                  string
		wall, committed, prev uint64
		pending               []pendingStamp
		served                uint64
		want                  uint64
	}{
		{name: "clock", wall: 1000, committed: 990, prev: 990, want: 1000},
		{name: "capped by committed+skew", wall: 5000, committed: 990, prev: 990, want: 1090},
		{name: "capped by the first pending stamp", wall: 1000, committed: 900, prev: 995, pending: []pendingStamp{{11, 950}, {12, 995}}, want: 950},
		{name: "unplaced stamp counts", wall: 1000, committed: 900, prev: 960, pending: []pendingStamp{{0, 960}}, want: 960},
		{name: "never below served", wall: 500, committed: 400, prev: 400, served: 700, want: 700},
		{name: "clock behind the stamps", wall: 100, committed: 990, prev: 990, want: 990},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wall.set(time.UnixMilli(int64(tc.wall)))
			s := newStampState(&Config{StampSkew: 100 * time.Millisecond, WallClock: wall, Stamps: true})
			s.committed, s.prev, s.served, s.pending, s.commit = tc.committed, tc.prev, tc.served, tc.pending, 10
			require.Equal(t, tc.want, s.readTimeLocked())
			require.Equal(t, tc.want, s.served)
			require.GreaterOrEqual(t, s.nextLocked(), tc.want, "the next stamp is at least every R served")
		})
	}
}

// TestStampStateTracksTheLog: stamps entering the log count as pending
// until committed, a Ready's entries replace the tail from their first
// index (and the unplaced stamps of this pass), and a new term's floor
// is the newest stamp seen plus the skew.
func TestStampStateTracksTheLog(t *testing.T) {
	s := newStampState(&Config{StampSkew: 100 * time.Millisecond})
	ent := func(i, st uint64) *raftpb.Entry {
		return &raftpb.Entry{Index: new(i), Data: encodeProposalV2(1, i, st, []byte("x"))}
	}
	var pub atomicU64
	s.noteEntries([]*raftpb.Entry{ent(1, 10), ent(2, 20), {Index: new(uint64(3)), Data: encodeProposal(1, 3, []byte("v1"))}, ent(4, 40)})
	require.True(t, s.enabled.Load(), "a stamp in the log turns stamping on")
	require.Equal(t, []pendingStamp{{1, 10}, {2, 20}, {4, 40}}, s.pending)
	s.noteCommit(2, &pub.v)
	require.Equal(t, uint64(2), pub.v.Load())
	require.Equal(t, uint64(20), s.committed)
	require.Equal(t, []pendingStamp{{4, 40}}, s.pending)
	s.pending = append(s.pending, pendingStamp{stamp: 45}) // assigned, not yet in a Ready
	// A new leader's entries overwrite index 4 on.
	s.noteEntries([]*raftpb.Entry{ent(4, 30), ent(5, 31)})
	require.Equal(t, []pendingStamp{{4, 30}, {5, 31}}, s.pending)
	require.Equal(t, uint64(40), s.logMax, "an overwritten stamp still counts: a conservative floor")
	s.takeOfficeLocked(7)
	require.Equal(t, uint64(140), s.floor)
	s.noteCovered(9, 80) // a snapshot up to 9
	require.Empty(t, s.pending)
	require.Equal(t, uint64(80), s.committed)
}

type atomicU64 struct{ v atomic.Uint64 }

// TestSnapshotDescriptorCarriesNewestStamp: a snapshot's descriptor, which
// a follower installing it counts as part of its log, records the newest
// stamp the image covers.
func TestSnapshotDescriptorCarriesNewestStamp(t *testing.T) {
	defer goleak.VerifyNone(t)
	sm := newStampMachine()
	g := openSoloLeader(t, sm, func(cfg *Config) {
		cfg.Stamps = true
		cfg.SnapshotCount = 10
		cfg.SnapshotCatchUpEntries = 2
	})
	defer func() { require.NoError(t, g.Close()) }()
	for i := range 25 {
		proposeStamped(t, g, fmt.Sprintf("s%d", i))
	}
	var (
		data []byte
		idx  uint64
	)
	require.Eventually(t, func() bool {
		err := g.inLoop(context.Background(), func() {
			if snap, err := g.storage.Snapshot(); err == nil {
				data, idx = snap.GetData(), snap.GetMetadata().GetIndex()
			}
		})
		return err == nil && idx > 0
	}, 10*time.Second, 5*time.Millisecond)
	d, err := decodeDescriptor(data)
	require.NoError(t, err)
	sm.mu.Lock()
	var want uint64
	for i, s := range sm.stamps {
		if i <= idx {
			want = max(want, s)
		}
	}
	sm.mu.Unlock()
	require.NotZero(t, want)
	require.Equal(t, want, d.Stamp, "the descriptor of the snapshot at %d", idx)
}

// TestFollowerReadWithoutLeaderTimeIsRetried: with stamping on, a
// follower's round answered without the leader's read time (a leader that
// has not turned stamping on yet) answers nobody and goes out again; the
// answer that carries a time answers the read with it.
func TestFollowerReadWithoutLeaderTimeIsRetried(t *testing.T) {
	g := readTestGroup(t)
	g.stamps.enabled.Store(true)
	if err := g.rn.Step(&raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(1))}); err != nil {
		t.Fatal(err)
	}
	req := &readRequest{done: make(chan readResult, 1)}
	g.reads.waiting = []*readRequest{req}
	g.flushReads()
	first := g.reads.seq
	g.readIndexReady(roundCtx(first), 7)
	require.Empty(t, req.done, "answered without a read time")
	g.flushReads()
	second := g.reads.seq
	require.NotEqual(t, first, second, "the batch was not sent again")
	g.readIndexReady(append(roundCtx(second), readTimeTag, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x6b, 0x7b), 9)
	require.Equal(t, readResult{index: 9, time: 1_700_000_000_891}, <-req.done)
	require.Equal(t, uint64(1_700_000_000_891), g.stamps.served, "a leader's read time is remembered")
}
