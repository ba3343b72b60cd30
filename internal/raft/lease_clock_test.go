package raft

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// fakeClock is a Clock that moves only when told: paused by default, and
// able to jump either way.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// advance moves the clock by d; a negative d is a backward jump.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// leaseTestGroup is a Group without its goroutines, driven the way its
// event loop drives it, that leads a two-voter group (ids 1 and 2) whose
// follower has acknowledged everything, in lease mode, on clock c. The
// tests step Raft messages and call the loop's functions themselves, so
// nothing but c decides when the lease ends.
func leaseTestGroup(t *testing.T, c Clock) *Group {
	t.Helper()
	st := raft.NewMemoryStorage()
	if err := st.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}); err != nil {
		t.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, Logger: raftLogger{slog.New(slog.DiscardHandler)}})
	if err != nil {
		t.Fatal(err)
	}
	g := &Group{
		rn: rn, storage: st, reads: newReadState(), clock: newLeaseClock(c), stamps: newStampState(&Config{}),
		cfg:         Config{HeartbeatInterval: 10 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, ReadMode: ReadModeLease},
		log:         slog.New(slog.DiscardHandler),
		metrics:     newMetrics(nil, 1),
		heldCommits: make(map[uint64]*raftpb.Message),
		ackChecked:  make(map[uint64]bool),
		applied:     newAppliedWaiter(0),
	}
	// Campaign, win node 2's vote, and have node 2 acknowledge the new
	// term's first entry.
	if err := rn.Campaign(); err != nil {
		t.Fatal(err)
	}
	g.drainReady(t)
	term := rn.BasicStatus().GetTerm()
	g.stepFrom2(t, raftpb.MsgVoteResp, term, 0)
	g.drainReady(t)
	if rn.BasicStatus().RaftState != raft.StateLeader {
		t.Fatalf("test group did not become leader: %v", rn.BasicStatus().RaftState)
	}
	last, _ := st.LastIndex()
	g.stepFrom2(t, raftpb.MsgAppResp, term, last)
	g.drainReady(t)
	return g
}

func (g *Group) stepFrom2(t *testing.T, typ raftpb.MessageType, term, index uint64) {
	t.Helper()
	if err := g.rn.Step(&raftpb.Message{Type: typ.Enum(), From: new(uint64(2)), To: new(uint64(1)),
		Term: new(term), Index: new(index)}); err != nil {
		t.Fatalf("step %v: %v", typ, err)
	}
}

// drainReady persists and acknowledges Readies as the loop does (without
// sending anything), handing soft-state changes and outgoing messages to
// the lease code exactly where loop.go does. It returns the messages.
func (g *Group) drainReady(t *testing.T) []*raftpb.Message {
	t.Helper()
	var msgs []*raftpb.Message
	for g.rn.HasReady() {
		rd := g.rn.Ready()
		if rd.SoftState != nil {
			g.onSoftState(rd.SoftState)
		}
		g.fenceLeaseForTransfer(rd.Messages)
		if rd.HardState != nil {
			if err := g.storage.SetHardState(rd.HardState); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.storage.Append(rd.Entries); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rd.Messages...)
		g.rn.Advance(rd)
	}
	return msgs
}

// grantByRound runs one lease round as the loop would: a read queues, the
// round starts at the clock's current reading, and Raft answers it (here,
// at once) with index.
func (g *Group) grantByRound(t *testing.T, index uint64) {
	t.Helper()
	seq := g.startRound(t)
	g.readIndexReady(roundCtx(seq), index)
}

// startRound queues a read and starts its round; the caller answers it.
func (g *Group) startRound(t *testing.T) uint64 {
	t.Helper()
	g.reads.waiting = append(g.reads.waiting, &readRequest{done: make(chan readResult, 1)})
	before := g.reads.seq
	g.flushReads()
	if g.reads.seq == before {
		t.Fatal("no read round started")
	}
	return g.reads.seq
}

func (g *Group) leaseHolds() bool {
	_, ok := g.leaseIndex(g.clock.now())
	return ok
}

// TestLeaseHoldsExactlyItsDurationOnItsClock: the lease runs from the
// clock reading its round started at, for leaseDuration, and nothing else
// moves it: on a paused clock it holds however often it is used (no
// round has extended it), and it ends at the first reading at or past its
// end, as it would for a leader that was stopped (SIGSTOP) while its
// clock ran on and that wakes without having run a single round.
func TestLeaseHoldsExactlyItsDurationOnItsClock(t *testing.T) {
	fc := newFakeClock()
	g := leaseTestGroup(t, fc)
	d := g.cfg.leaseDuration()
	if g.leaseHolds() {
		t.Fatal("a lease held before any round")
	}
	g.grantByRound(t, 5)
	for range 100 {
		if idx, ok := g.leaseIndex(g.clock.now()); !ok || idx < 5 {
			t.Fatalf("lease on a paused clock: index %d, holds %v", idx, ok)
		}
	}
	if got := g.LeaseRemaining(); got != d {
		t.Fatalf("LeaseRemaining %v on a paused clock, want exactly %v", got, d)
	}
	fc.advance(d - time.Nanosecond)
	if !g.leaseHolds() || g.LeaseRemaining() != time.Nanosecond {
		t.Fatalf("lease gone 1ns before its end (remaining %v)", g.LeaseRemaining())
	}
	fc.advance(time.Nanosecond)
	if g.leaseHolds() || g.LeaseRemaining() != 0 {
		t.Fatalf("lease still held at its end (remaining %v)", g.LeaseRemaining())
	}
	// Used and lapsed: the loop now wants a renewal round, which grants a
	// new lease measured from its own start.
	if !g.wantLeaseRenewal(g.clock.now().at) {
		t.Fatal("a lapsed lease in use is not renewed")
	}
	g.grantByRound(t, 6)
	if !g.leaseHolds() || g.LeaseRemaining() != d {
		t.Fatalf("renewed lease: remaining %v, want %v", g.LeaseRemaining(), d)
	}
}

// TestLeaseForwardClockJumpExpiresIt: a clock that jumps forward (a
// stopped process, a suspended VM whose monotonic clock still counted)
// ends the lease, and a round that was in flight across the jump grants
// nothing beyond its own start plus the duration.
func TestLeaseForwardClockJumpExpiresIt(t *testing.T) {
	fc := newFakeClock()
	g := leaseTestGroup(t, fc)
	g.grantByRound(t, 5)
	inFlight := g.startRound(t)
	fc.advance(time.Hour)
	if g.leaseHolds() || g.LeaseRemaining() != 0 {
		t.Fatal("lease held after the clock jumped an hour forward")
	}
	g.readIndexReady(roundCtx(inFlight), 6) // answered after the jump
	if g.leaseHolds() {
		t.Fatal("a round started before a forward jump granted a lease after it")
	}
	g.grantByRound(t, 7)
	if !g.leaseHolds() || g.LeaseRemaining() != g.cfg.leaseDuration() {
		t.Fatalf("a round after the jump: remaining %v", g.LeaseRemaining())
	}
}

// TestLeaseBackwardClockJumpNeverExtendsIt: a clock that jumps backwards
// (never the monotonic clock; an injected or broken one) ends the lease at
// once, whether the jump lands before the round's start or inside the
// lease's window, and the old grant never holds again at any later
// reading. A round in flight across the jump grants nothing; a round
// started after it grants an ordinary lease from its own start.
func TestLeaseBackwardClockJumpNeverExtendsIt(t *testing.T) {
	for _, tc := range []struct {
		name       string
		jumpBackBy func(d time.Duration) time.Duration
	}{
		// From mid-lease back to a quarter of it: still after the round's
		// start, so a check of "now before until" alone would stretch the
		// lease by the jump.
		{"within the window", func(d time.Duration) time.Duration { return d / 4 }},
		{"before the round", func(time.Duration) time.Duration { return time.Hour }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeClock()
			g := leaseTestGroup(t, fc)
			d := g.cfg.leaseDuration()
			g.grantByRound(t, 5)
			inFlight := g.startRound(t)
			fc.advance(d / 2)
			if !g.leaseHolds() {
				t.Fatal("lease lapsed mid-way")
			}
			fc.advance(-tc.jumpBackBy(d))
			if g.leaseHolds() || g.LeaseRemaining() != 0 {
				t.Fatalf("lease held after a backward jump (remaining %v)", g.LeaseRemaining())
			}
			if !g.wantLeaseRenewal(g.clock.now().at) {
				t.Fatal("no renewal due after a backward jump ended a lease in use")
			}
			g.readIndexReady(roundCtx(inFlight), 6)
			for step := time.Duration(0); step < 2*d+tc.jumpBackBy(d); step += d / 16 {
				if g.leaseHolds() || g.LeaseRemaining() != 0 {
					t.Fatalf("the old lease held again %v after a backward jump", step)
				}
				fc.advance(d / 16)
			}
			g.grantByRound(t, 7)
			if !g.leaseHolds() || g.LeaseRemaining() != d {
				t.Fatalf("a round after the jump: remaining %v, want %v", g.LeaseRemaining(), d)
			}
		})
	}
}

// TestLeaseRevokedOnStepDown: a leader that learns of a higher term loses
// its lease at once, on a paused clock with most of the lease left, and a
// round it started as leader grants nothing when answered afterwards.
func TestLeaseRevokedOnStepDown(t *testing.T) {
	fc := newFakeClock()
	g := leaseTestGroup(t, fc)
	g.grantByRound(t, 5)
	inFlight := g.startRound(t)
	if !g.leaseHolds() {
		t.Fatal("no lease before the step-down")
	}
	term := g.rn.BasicStatus().GetTerm()
	g.stepFrom2(t, raftpb.MsgHeartbeat, term+1, 0)
	g.drainReady(t)
	if s := g.rn.BasicStatus().RaftState; s != raft.StateFollower {
		t.Fatalf("not stepped down: %v", s)
	}
	if g.leaseHolds() || g.LeaseRemaining() != 0 {
		t.Fatal("a deposed leader kept its lease")
	}
	g.readIndexReady(roundCtx(inFlight), 6)
	if g.leaseHolds() || g.wantLeaseRenewal(fc.Now().Add(time.Hour)) {
		t.Fatal("a follower was granted or renews a lease")
	}
}

// TestLeaseFencedByMsgTimeoutNow: handing leadership over (MsgTimeoutNow,
// which makes the target campaign at once, bypassing the followers' vote
// rule) ends the lease before the message leaves, and no round grants one
// again in that term, even once the transfer is abandoned.
func TestLeaseFencedByMsgTimeoutNow(t *testing.T) {
	fc := newFakeClock()
	g := leaseTestGroup(t, fc)
	g.grantByRound(t, 5)
	inFlight := g.startRound(t)
	g.rn.TransferLeader(2)
	sawTimeoutNow := false
	for _, m := range g.drainReady(t) {
		sawTimeoutNow = sawTimeoutNow || m.GetType() == raftpb.MsgTimeoutNow
	}
	if !sawTimeoutNow {
		t.Fatal("Raft sent no MsgTimeoutNow to the caught-up follower")
	}
	if g.leaseHolds() || g.LeaseRemaining() != 0 {
		t.Fatal("lease held after MsgTimeoutNow was sent")
	}
	g.readIndexReady(roundCtx(inFlight), 6)
	if g.leaseHolds() {
		t.Fatal("a round answered during the transfer granted a lease")
	}
	// The transfer times out (an election timeout of ticks) and this node
	// is still leader of the same term: a delayed MsgTimeoutNow could
	// still start an election, so still no lease.
	for range 2 * g.cfg.electionTicks() {
		g.rn.Tick()
	}
	g.drainReady(t)
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		t.Fatalf("transfer not abandoned: %v, transferee %d", st.RaftState, st.LeadTransferee)
	}
	g.grantByRound(t, 7)
	if g.leaseHolds() || g.wantLeaseRenewal(fc.Now().Add(time.Hour)) {
		t.Fatal("a lease was granted in the term of an abandoned transfer")
	}
}

// TestLeaseClockOnTheMonotonicClock: the production clock never reports a
// backward jump, however many goroutines read it at once (a false jump
// would end leases for nothing).
func TestLeaseClockOnTheMonotonicClock(t *testing.T) {
	c := newLeaseClock(nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20000 {
				c.now()
			}
		})
	}
	wg.Wait()
	if e := c.currentEpoch(); e != 0 {
		t.Fatalf("%d backward jumps seen on the monotonic clock", e)
	}
}
