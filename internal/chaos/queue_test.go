package chaos

import (
	"math/rand/v2"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// queueHistory builds queue histories by hand: times advance by 10 per
// operation unless set explicitly.
type queueHistory struct {
	ops []Op
	now int64
}

func (q *queueHistory) add(node string, in Input, out Output, outcome Outcome) *queueHistory {
	q.ops = append(q.ops, Op{Process: len(q.ops), Node: node, Input: in, Output: out, Outcome: outcome, Call: q.now, Return: q.now + 5})
	q.now += 10
	return q
}

func (q *queueHistory) push(e string, outcome Outcome) *queueHistory {
	out := Output{Kind: OutInt, Int: 1}
	if outcome != OutcomeOK {
		out = Output{}
	}
	return q.add("n1", Input{Op: OpQPush, Key: queueKey, Arg: e}, out, outcome)
}

func (q *queueHistory) blpop(e string, outcome Outcome) *queueHistory {
	out := Output{Kind: OutStr, Str: e}
	switch {
	case outcome != OutcomeOK:
		out = Output{}
	case e == "":
		out = nilOut
	}
	return q.add("n2", Input{Op: OpBLPop, Key: queueKey}, out, outcome)
}

func (q *queueHistory) blmove(e string, outcome Outcome) *queueHistory {
	out := Output{Kind: OutStr, Str: e}
	switch {
	case outcome != OutcomeOK:
		out = Output{}
	case e == "":
		out = nilOut
	}
	return q.add("n3", Input{Op: OpBLMove, Key: queueKey, Arg: doneKey}, out, outcome)
}

// finals adds the final reads of both lists through each node.
func (q *queueHistory) finals(queue, done []string, nodes ...string) *queueHistory {
	if len(nodes) == 0 {
		nodes = []string{"n1", "n2", "n3"}
	}
	for _, n := range nodes {
		q.add(n, Input{Op: OpLRange, Key: queueKey, Stop: -1}, arrOut(queue), OutcomeOK)
		q.add(n, Input{Op: OpLRange, Key: doneKey, Stop: -1}, arrOut(done), OutcomeOK)
	}
	return q
}

func TestCheckQueueAccountsForEveryElement(t *testing.T) {
	var q queueHistory
	q.blpop("", OutcomeOK) // timed out on the empty queue
	q.push("q0-0", OutcomeOK).push("q0-1", OutcomeOK).push("q1-0", OutcomeOK).push("q0-2", OutcomeOK).
		push("q1-1", OutcomeUnknown). // never applied: found nowhere, fine
		push("q1-2", OutcomeUnknown). // applied: in the queue, fine
		push("q0-3", OutcomeOK).
		push("q0-4", OutcomeOK).
		blpop("q0-0", OutcomeOK).
		blmove("q0-1", OutcomeOK).
		blpop("", OutcomeUnknown).  // took q1-0, which is found nowhere
		blmove("", OutcomeUnknown). // moved q0-2 to the done list
		finals([]string{"q0-3", "q1-2", "q0-4"}, []string{"q0-1", "q0-2"})
	res := CheckQueue(q.ops)
	require.Empty(t, res.Violations)
	require.Equal(t, QueueResult{Pushed: 6, PushUnknown: 2, Popped: 1, Moved: 1, Empty: 1, UnknownPops: 1, UnknownMoves: 1,
		Remaining: 3, Done: 2, MaybePopped: 1}, res)
}

// TestCheckQueueCatchesViolations: each history breaks one rule and must
// be reported, with words that name the rule.
func TestCheckQueueCatchesViolations(t *testing.T) {
	cases := []struct {
		name  string
		build func(q *queueHistory)
		want  string
	}{
		{"popped twice", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("q0-0", OutcomeOK).blpop("q0-0", OutcomeOK).finals(nil, nil)
		}, "held more than once"},
		{"popped and still queued", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("q0-0", OutcomeOK).finals([]string{"q0-0"}, nil)
		}, "held more than once"},
		{"popped and moved", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("q0-0", OutcomeOK).blmove("q0-0", OutcomeOK).finals(nil, []string{"q0-0"})
		}, "held more than once"},
		{"moved twice", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blmove("q0-0", OutcomeOK).blmove("q0-0", OutcomeOK).finals(nil, []string{"q0-0"})
		}, "held more than once"},
		{"twice in the queue", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).finals([]string{"q0-0", "q0-0"}, nil)
		}, "held more than once"},
		{"lost: no pop could explain it", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).push("q0-1", OutcomeOK).finals([]string{"q0-1"}, nil)
		}, "lost: 1 acknowledged elements"},
		{"lost: more missing than unknown pops", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).push("q0-1", OutcomeOK).blpop("", OutcomeUnknown).finals(nil, nil)
		}, "only 1 BLPOPs had an unknown outcome"},
		{"lost: an unknown BLMOVE cannot explain a missing element", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blmove("", OutcomeUnknown).finals(nil, nil)
		}, "lost"},
		{"moved but not in the done list", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blmove("q0-0", OutcomeOK).finals(nil, nil)
		}, "the done list does not have it"},
		{"in the done list with no move to explain it", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).finals(nil, []string{"q0-0"})
		}, "without a BLMOVE that returned them"},
		{"phantom element", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("q9-9", OutcomeOK).finals([]string{"q0-0"}, nil)
		}, "phantom"},
		{"a failed push shows up", func(q *queueHistory) {
			q.push("q0-0", OutcomeFail).finals([]string{"q0-0"}, nil)
		}, "phantom"},
		{"popped before it was pushed", func(q *queueHistory) {
			q.blpop("q0-0", OutcomeOK).push("q0-0", OutcomeOK).finals(nil, nil)
		}, "before its push was sent"},
		{"out of FIFO order", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).push("q0-1", OutcomeOK).finals([]string{"q0-1", "q0-0"}, nil)
		}, "out of order"},
		{"out of FIFO order across the done list", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).push("q0-1", OutcomeOK).blmove("q0-1", OutcomeOK).finals([]string{"q0-0"}, []string{"q0-1"})
		}, "out of order"},
		{"replicas disagree", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).finals([]string{"q0-0"}, nil, "n1").finals(nil, nil, "n2")
		}, "final reads disagree"},
		{"no final reads", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK)
		}, "no final read"},
		{"BLPOP reply from another key", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).add("n1", Input{Op: OpBLPop, Key: queueKey}, Output{Kind: OutErr, Str: `BLPOP replied ["x" "q0-0"]`}, OutcomeOK).
				finals([]string{"q0-0"}, nil)
		}, "BLPOP replied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var q queueHistory
			c.build(&q)
			res := CheckQueue(q.ops)
			require.NotEmpty(t, res.Violations)
			found := false
			for _, v := range res.Violations {
				found = found || strings.Contains(v, c.want)
			}
			require.True(t, found, "no violation mentions %q: %q", c.want, res.Violations)
		})
	}
}

// TestCheckQueueOrderAllowsUnknownPushes: an unknown push may apply after
// the producer's next push, so it may sit behind it; an acknowledged one
// may not.
func TestCheckQueueOrderAllowsUnknownPushes(t *testing.T) {
	var q queueHistory
	q.push("q0-0", OutcomeUnknown).push("q0-1", OutcomeOK).push("q1-0", OutcomeOK).
		finals([]string{"q0-1", "q1-0", "q0-0"}, nil)
	require.Empty(t, CheckQueue(q.ops).Violations)
}

func TestParseQueueElem(t *testing.T) {
	p, seq, ok := parseQueueElem(queueElem(3, 41))
	require.True(t, ok)
	require.Equal(t, 3, p)
	require.Equal(t, 41, seq)
	for _, bad := range []string{"", "q", "q1", "x1-2", "q1-", "q-1", "qa-1"} {
		_, _, ok := parseQueueElem(bad)
		require.False(t, ok, "%q", bad)
	}
}

// TestCheckQueueNilWhileNonEmpty: a pop may time out with nil only when
// the queue may have been empty at some point of its block.
func TestCheckQueueNilWhileNonEmpty(t *testing.T) {
	cases := []struct {
		name      string
		build     func(q *queueHistory)
		violation bool
	}{
		{"element still queued throughout", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("", OutcomeOK).finals([]string{"q0-0"}, nil)
		}, true},
		{"element taken later by a known pop", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blmove("", OutcomeOK).blpop("q0-0", OutcomeOK).finals(nil, nil)
		}, true},
		{"element moved later by a known BLMOVE", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("", OutcomeOK).blmove("q0-0", OutcomeOK).finals(nil, []string{"q0-0"})
		}, true},
		{"the pop began before the push returned", func(q *queueHistory) {
			q.blpop("", OutcomeOK).push("q0-0", OutcomeOK).finals([]string{"q0-0"}, nil)
			q.ops[0].Return = q.ops[1].Return + 1 // overlaps the push
		}, false},
		{"an unknown pop may have taken it first", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("", OutcomeUnknown).blpop("", OutcomeOK).finals(nil, nil)
		}, false},
		{"an unknown push bounds nothing", func(q *queueHistory) {
			q.push("q0-0", OutcomeUnknown).blpop("", OutcomeOK).finals([]string{"q0-0"}, nil)
		}, false},
		{"a known pop that was already under way", func(q *queueHistory) {
			q.push("q0-0", OutcomeOK).blpop("q0-0", OutcomeOK).blpop("", OutcomeOK).finals(nil, nil)
			q.ops[1].Return = q.ops[2].Return + 1 // the taker overlaps the nil pop
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var q queueHistory
			c.build(&q)
			res := CheckQueue(q.ops)
			require.Empty(t, res.Violations, "a missed wakeup is no safety violation")
			v := res.MissedWakeups
			if !c.violation {
				require.Empty(t, v)
				return
			}
			require.Len(t, v, 1)
			require.Contains(t, v[0], "timed out with nil")
		})
	}
}

// TestCheckQueueSoundOnSimulatedHistories runs CheckQueue over histories
// of a simulated correct queue: producers and consumers each run one
// operation at a time, every operation takes effect at one point of its
// interval in a single order (a pop on the empty queue at that point
// times out with nil), some end unknown (applied at any later time, or
// never) and some pushes fail (not applied). Not one violation may be
// reported: a checker that flags a correct history would fail chaos runs
// at random.
func TestCheckQueueSoundOnSimulatedHistories(t *testing.T) {
	type sim struct {
		op      *Op
		at      int64
		applied bool
	}
	var empty, maybe int
	for seed := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seed), 0x5157))
		var sims []*sim
		var ops []*Op
		for worker := range queueProducers + queueConsumers {
			consumer := worker >= queueProducers
			now := rng.Int64N(10)
			for seq := 0; now < 2000; seq++ {
				dur := 1 + rng.Int64N(30)
				op := &Op{Process: worker, Node: "n1", Call: now, Return: now + dur, Outcome: OutcomeOK}
				switch {
				case !consumer:
					op.Input = Input{Op: OpQPush, Key: queueKey, Arg: queueElem(worker, seq)}
				case rng.IntN(2) == 0:
					op.Input = Input{Op: OpBLPop, Key: queueKey}
				default:
					op.Input = Input{Op: OpBLMove, Key: queueKey, Arg: doneKey}
				}
				s := &sim{op: op, at: now + rng.Int64N(dur+1), applied: true}
				switch r := rng.IntN(100); {
				case r < 8:
					// Unknown: applied at any time after the call, up to
					// well after the workload, or never.
					op.Outcome = OutcomeUnknown
					s.at = now + rng.Int64N(3000)
					s.applied = rng.IntN(2) == 0
				case r < 12 && !consumer:
					op.Outcome, s.applied = OutcomeFail, false
				}
				sims, ops = append(sims, s), append(ops, op)
				now = op.Return + rng.Int64N(5)
			}
		}
		sort.SliceStable(sims, func(i, j int) bool { return sims[i].at < sims[j].at })
		var queue, done []string
		for _, s := range sims {
			var out Output
			switch s.op.Input.Op {
			case OpQPush:
				if s.applied {
					queue = append(queue, s.op.Input.Arg)
				}
				out = Output{Kind: OutInt, Int: int64(len(queue))}
			default:
				if !s.applied {
					break
				}
				if len(queue) == 0 {
					out = nilOut
					break
				}
				out = Output{Kind: OutStr, Str: queue[0]}
				if s.op.Input.Op == OpBLMove {
					done = append(done, queue[0])
				}
				queue = queue[1:]
			}
			if s.op.Outcome == OutcomeOK {
				s.op.Output = out
			}
		}
		q := queueHistory{now: 10_000}
		for _, op := range ops {
			q.ops = append(q.ops, *op)
		}
		q.finals(queue, done)
		res := CheckQueue(q.ops)
		require.Empty(t, res.Violations, "seed %d", seed)
		require.Empty(t, res.MissedWakeups, "seed %d", seed)
		require.Positive(t, res.Popped+res.Moved, "seed %d: nothing popped", seed)
		empty += res.Empty
		maybe += res.MaybePopped
	}
	// The rules that unknown outcomes and timeouts relax were exercised.
	require.Positive(t, empty, "no pop timed out")
	require.Positive(t, maybe, "no element was taken by an unknown pop")
}
