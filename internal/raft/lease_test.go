package raft

import (
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

func TestLeaseDurationBound(t *testing.T) {
	for _, tc := range []struct {
		hb, election time.Duration
		want         time.Duration
	}{
		// (10-2) ticks of 100ms, shortened by the 10% drift allowance.
		{100 * time.Millisecond, time.Second, 727272727 * time.Nanosecond},
		{50 * time.Millisecond, 500 * time.Millisecond, 363636363 * time.Nanosecond},
		// Three ticks leave one safe interval.
		{100 * time.Millisecond, 300 * time.Millisecond, 90909090 * time.Nanosecond},
		// Two ticks leave none: every read takes a ReadIndex round.
		{100 * time.Millisecond, 200 * time.Millisecond, 0},
	} {
		c := Config{HeartbeatInterval: tc.hb, ElectionTimeout: tc.election}
		if got := c.leaseDuration(); got != tc.want {
			t.Errorf("hb %v election %v: lease %v, want %v", tc.hb, tc.election, got, tc.want)
		}
		// Whatever the settings, the lease never reaches the earliest
		// moment a follower may vote for someone else.
		if c.leaseDuration() >= tc.election-tc.hb {
			t.Errorf("hb %v election %v: lease %v not below %v", tc.hb, tc.election, c.leaseDuration(), tc.election-tc.hb)
		}
	}
}

func TestParseReadMode(t *testing.T) {
	for in, want := range map[string]ReadMode{"lease": ReadModeLease, " Lease ": ReadModeLease, "readindex": ReadModeReadIndex, "READ-INDEX": ReadModeReadIndex} {
		got, err := ParseReadMode(in)
		if err != nil || got != want {
			t.Errorf("ParseReadMode(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseReadMode(got.String()); back != got {
			t.Errorf("%v does not round-trip through String", got)
		}
	}
	if _, err := ParseReadMode("stale"); err == nil {
		t.Error("ParseReadMode accepted an unknown mode")
	}
}

func TestRestartedNodeRefusesVotesForAnElectionTimeout(t *testing.T) {
	vote := func(ctx string) *raftpb.Message {
		m := &raftpb.Message{Type: raftpb.MsgVote.Enum()}
		if ctx != "" {
			m.Context = []byte(ctx)
		}
		return m
	}
	fc := newFakeClock()
	fresh := &Group{clock: newLeaseClock(fc)}
	if fresh.voteGate(vote("")) {
		t.Error("a node that started empty owes no lease and must vote")
	}
	g := &Group{clock: newLeaseClock(fc), voteGateUntil: fc.Now().Add(time.Second)}
	if !g.voteGate(vote("")) {
		t.Error("a restarted node voted inside its gate")
	}
	if g.voteGate(vote(campaignTransfer)) {
		t.Error("a transfer campaign (the old leader fenced its lease) was refused")
	}
	fc.advance(time.Second - time.Nanosecond)
	if !g.voteGate(vote("")) {
		t.Error("the gate opened before its election timeout")
	}
	fc.advance(time.Nanosecond)
	if g.voteGate(vote("")) || !g.voteGateUntil.IsZero() {
		t.Error("the gate did not open after its election timeout")
	}
}
