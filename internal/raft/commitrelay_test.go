package raft

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/elastickv/elastickv/internal/transport"
)

// relayMsg builds a message for the relay tests: an append to `to` with n
// entries and commit index c, or another type.
func relayMsg(typ raftpb.MessageType, to uint64, n int, c uint64) *raftpb.Message {
	m := &raftpb.Message{Type: typ.Enum(), To: new(to), Commit: new(c)}
	for i := range n {
		m.Entries = append(m.Entries, &raftpb.Entry{Index: new(uint64(i + 1))})
	}
	return m
}

// describe renders messages as "type>to/entries/commit" for comparison.
func describe(msgs []*raftpb.Message) string {
	var parts []string
	for _, m := range msgs {
		parts = append(parts, fmt.Sprintf("%s>%d/%d/%d", m.GetType(), m.GetTo(), len(m.GetEntries()), m.GetCommit()))
	}
	return strings.Join(parts, " ")
}

func TestHoldCommitsHoldsOnlyCommitOnlyAppendsToReplicatingFollowers(t *testing.T) {
	app, resp, timeout := raftpb.MsgApp, raftpb.MsgReadIndexResp, raftpb.MsgTimeoutNow
	// Peer 2 replicates in order; peer 3 is probed (or snapshotting).
	replicating := func(id uint64) bool { return id == 2 }
	steps := []struct {
		name     string
		msgs     []*raftpb.Message
		noHold   bool // the Ready commits a membership change
		wantSent string
		wantHeld string // held append per peer 2, 3, as "to/commit"
	}{{
		name:     "commit-only append to a replicating follower is held",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 0, 5)},
		wantSent: "",
		wantHeld: "2/5",
	}, {
		name:     "a newer one replaces it",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 0, 6)},
		wantSent: "",
		wantHeld: "2/6",
	}, {
		name:     "a probe's empty append is sent: it paces the probe",
		msgs:     []*raftpb.Message{relayMsg(app, 3, 0, 6)},
		wantSent: "MsgApp>3/0/6",
		wantHeld: "2/6",
	}, {
		name:     "an append with entries replaces the held one",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 3, 7)},
		wantSent: "MsgApp>2/3/7",
		wantHeld: "",
	}, {
		name:     "entries then a commit in one Ready: the commit is held",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 2, 7), relayMsg(app, 2, 0, 9)},
		wantSent: "MsgApp>2/2/7",
		wantHeld: "2/9",
	}, {
		name:     "a read-index answer takes the held commit with it, first",
		msgs:     []*raftpb.Message{relayMsg(resp, 2, 0, 0)},
		wantSent: "MsgApp>2/0/9 MsgReadIndexResp>2/0/0",
		wantHeld: "",
	}, {
		name:     "a read-index answer to another peer leaves it held",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 0, 10), relayMsg(resp, 3, 0, 0)},
		wantSent: "MsgReadIndexResp>3/0/0",
		wantHeld: "2/10",
	}, {
		name:     "a MsgTimeoutNow takes the held commit with it, first",
		msgs:     []*raftpb.Message{relayMsg(timeout, 2, 0, 0)},
		wantSent: "MsgApp>2/0/10 MsgTimeoutNow>2/0/0",
		wantHeld: "",
	}, {
		name:     "a Ready committing a membership change holds nothing",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 0, 11)},
		noHold:   true,
		wantSent: "MsgApp>2/0/11",
		wantHeld: "",
	}, {
		name:     "and sends what was held before it, first",
		msgs:     []*raftpb.Message{relayMsg(app, 2, 0, 12), relayMsg(resp, 3, 0, 0)},
		wantSent: "MsgReadIndexResp>3/0/0",
		wantHeld: "2/12",
	}, {
		name:     "(the membership Ready)",
		msgs:     []*raftpb.Message{relayMsg(app, 3, 0, 13)},
		noHold:   true,
		wantSent: "MsgApp>2/0/12 MsgApp>3/0/13",
		wantHeld: "",
	}}
	held := make(map[uint64]*raftpb.Message)
	for _, s := range steps {
		sent := holdCommits(held, s.msgs, nil, replicating, !s.noHold)
		if got := describe(sent); got != s.wantSent {
			t.Fatalf("%s: sent %q, want %q", s.name, got, s.wantSent)
		}
		var h []string
		for _, id := range []uint64{2, 3} {
			if m, ok := held[id]; ok {
				h = append(h, fmt.Sprintf("%d/%d", id, m.GetCommit()))
			}
		}
		if got := strings.Join(h, " "); got != s.wantHeld {
			t.Fatalf("%s: held %q, want %q", s.name, got, s.wantHeld)
		}
	}
}

// emptyAppendCounter counts the appends without entries a group sends.
type emptyAppendCounter struct {
	transport.Transport
	n *atomic.Int64
}

func (c emptyAppendCounter) Send(group uint64, msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgApp && len(m.GetEntries()) == 0 {
			c.n.Add(1)
		}
	}
	c.Transport.Send(group, msgs)
}

func TestCommitIndexRidesWithTheNextAppendAndStillReachesFollowers(t *testing.T) {
	var empty atomic.Int64
	groups := openTrioWith(t, ReadModeReadIndex, func(c *Config) {
		// Long enough that the ticks releasing held commits are few
		// beside the writes; short enough for a quick election.
		c.HeartbeatInterval = 300 * time.Millisecond
		c.ElectionTimeout = time.Second
		c.Transport = emptyAppendCounter{Transport: c.Transport, n: &empty}
	})
	l := benchLeader(groups)
	require.GreaterOrEqual(t, l, 0)
	leader := groups[l]

	// Sequential writes: each commit is told to the followers by the next
	// write's append, not by an append of its own.
	const writes = 200
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	empty.Store(0)
	start := time.Now()
	for i := range writes {
		_, err := leader.Propose(ctx, []byte(fmt.Sprintf("w%d", i)))
		require.NoError(t, err, "write %d", i)
	}
	sent := empty.Load()
	// Without holding, every commit sends one empty append per follower:
	// 2*writes. With it, each tick releases at most one per follower (and
	// a heartbeat answer may prompt one more), however slow the machine.
	ticks := int64(time.Since(start)/(300*time.Millisecond)) + 2
	require.Less(t, sent, min(int64(writes), 4*ticks), "commit-only appends sent for %d sequential writes over %d ticks", writes, ticks)

	// Writes have stopped: the last commit still reaches every follower,
	// released by a tick, and each applies everything.
	last := leader.applied.get()
	for i, g := range groups {
		require.Eventually(t, func() bool { return g.applied.get() >= last }, 10*time.Second, 10*time.Millisecond,
			"node %d applied %d, leader %d", i, g.applied.get(), last)
	}

	// A follower's read waits for it to apply up to the leader's commit;
	// it completes (the held commit leaves with the read-index answer).
	follower := groups[(l+1)%len(groups)]
	for i := range 5 {
		_, err := leader.Propose(ctx, []byte(fmt.Sprintf("r%d", i)))
		require.NoError(t, err)
		want := leader.applied.get()
		require.NoError(t, follower.ReadIndex(ctx))
		require.GreaterOrEqual(t, follower.applied.get(), want, "read %d", i)
	}
}
