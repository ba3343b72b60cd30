package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The queue workload (issue #16, "Chaos workload") is the job-queue use of
// Redis lists under faults: producers RPUSH elements that are unique in
// the whole run onto one queue list, and consumers on every node take them
// with BLPOP (the element leaves the store with the reply) or BLMOVE
// queue done LEFT RIGHT (the reliable pattern: the element moves to a done
// list that the run reads at the end). CheckQueue then accounts for every
// element: popped exactly once, still in the queue, in the done list, or,
// when nothing shows it, taken by a pop whose outcome the client never
// learned. Porcupine is not needed: uniqueness makes the check a linear
// count, so the queue can carry thousands of elements.

// The queue operations.
const (
	// OpQPush is RPUSH queue Input.Arg onto the queue list.
	OpQPush OpKind = "rpush"
	// OpBLPop is BLPOP queue <queueBlock>: the element, or nil when the
	// block timed out.
	OpBLPop OpKind = "blpop"
	// OpBLMove is BLMOVE queue Input.Arg LEFT RIGHT <queueBlock>: the
	// element moved to the done list Input.Arg, or nil.
	OpBLMove OpKind = "blmove"
)

// queueKeyPrefix starts the queue's two keys. They share a hash tag, so a
// BLMOVE between them stays within one slot, as Redis Cluster requires.
const queueKeyPrefix = "chaos:q"

// The queue's keys: the list producers push to and consumers pop from,
// and the list BLMOVE moves elements to.
const (
	queueKey = queueKeyPrefix + "{0}"
	doneKey  = queueKeyPrefix + "{0}:done"
)

// The queue workload's shape: its own goroutines, beside the register and
// collection clients. A consumer's block is shorter than the operation
// timeout, so a live node answers nil before the client gives up.
const (
	queueProducers = 2
	queueConsumers = 3
	queueBlock     = time.Second
	// queueHighWater is the queue length above which a producer pauses:
	// consumers then empty the queue and block, so the runs exercise
	// blocked clients woken by pushes through other nodes, not only pops
	// that find an element waiting.
	queueHighWater = 8
)

// IsQueueKey reports whether key is one of the queue workload's lists,
// which CheckQueue checks and the linearizability check leaves out.
func IsQueueKey(key string) bool { return strings.HasPrefix(key, queueKeyPrefix) }

// queueElem names producer p's seq-th element: unique in the run, and
// parseQueueElem recovers the producer and the order of its pushes.
func queueElem(p, seq int) string { return "q" + strconv.Itoa(p) + "-" + strconv.Itoa(seq) }

func parseQueueElem(e string) (p, seq int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(e, "q"), "-")
	if !found || !strings.HasPrefix(e, "q") {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(a)
	seq, err2 := strconv.Atoi(b)
	return p, seq, err1 == nil && err2 == nil
}

// queueWorker runs one producer (consumer=false) or consumer until the
// workload stops, recording every operation. Each operation goes to a
// random node; a consumer picks BLPOP or BLMOVE at random each time, and
// a producer pauses while the queue is longer than queueHighWater.
func (w *workload) queueWorker(id, proc int, consumer bool) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(w.seed, 0x7175657565+uint64(id)))
	conns := make([]*goredis.Client, len(w.addrs))
	for i, a := range w.addrs {
		conns[i] = newClient(a, w.opTimeout, 1)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		node := rng.IntN(len(conns))
		in := Input{Op: OpQPush, Key: queueKey, Arg: queueElem(id, seq)}
		if consumer {
			in = Input{Op: OpBLPop, Key: queueKey}
			if rng.IntN(2) == 0 {
				in = Input{Op: OpBLMove, Key: queueKey, Arg: doneKey}
			}
		}
		op := w.do(conns[node], in)
		op.Process, op.Node = proc, w.names[node]
		w.h.Add(op)
		var pause time.Duration
		switch op.Outcome {
		case OutcomeOK:
			if !consumer && op.Output.Int > queueHighWater {
				pause = time.Duration(50+rng.IntN(250)) * time.Millisecond
			}
		case OutcomeUnknown:
			proc = int(w.nextProc.Add(1) - 1)
		case OutcomeFail:
			// A dead or leaderless node answers instantly; do not spin.
			pause = time.Duration(10+rng.IntN(40)) * time.Millisecond
		}
		if pause > 0 {
			select {
			case <-w.stop:
				return
			case <-time.After(pause):
			}
		}
	}
}

// sendQueue sends one queue command. A BLPOP reply names the key it
// popped from; one naming another key is recorded as an error reply,
// which CheckQueue reports.
func sendQueue(ctx context.Context, cl *goredis.Client, in Input) (Output, error) {
	switch in.Op {
	case OpQPush:
		n, err := cl.RPush(ctx, in.Key, in.Arg).Result()
		return Output{Kind: OutInt, Int: n}, err
	case OpBLPop:
		v, err := cl.BLPop(ctx, queueBlock, in.Key).Result()
		if err != nil {
			return Output{}, err
		}
		if len(v) != 2 || v[0] != in.Key {
			return Output{Kind: OutErr, Str: fmt.Sprintf("BLPOP replied %q", v)}, nil
		}
		return Output{Kind: OutStr, Str: v[1]}, nil
	case OpBLMove:
		v, err := cl.BLMove(ctx, in.Key, in.Arg, "LEFT", "RIGHT", queueBlock).Result()
		return Output{Kind: OutStr, Str: v}, err
	case OpLRange:
		v, err := cl.LRange(ctx, in.Key, 0, -1).Result()
		return arrOut(v), err
	case OpGet, OpSet, OpSetNX, OpIncr, OpAppend, OpPExpire, OpPersist, OpPTTL,
		OpHSet, OpHGet, OpHDel, OpHGetAll, OpSAdd, OpSRem, OpSMembers, OpSPop, OpLPush, OpRPop, OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin, OpDel:
		// Not sent to a queue key.
	}
	return Output{}, fmt.Errorf("chaos: no client for queue op %q", in.Op)
}

// finalQueueReads read both lists whole.
func finalQueueReads() []Input {
	return []Input{{Op: OpLRange, Key: queueKey, Start: 0, Stop: -1}, {Op: OpLRange, Key: doneKey, Start: 0, Stop: -1}}
}

// QueueResult is CheckQueue's account of the queue workload. Violations
// empty means every element is accounted for.
type QueueResult struct {
	// Pushed counts acknowledged pushes; PushUnknown pushes whose outcome
	// the client never learned (their element may or may not exist).
	Pushed      int `json:"pushed"`
	PushUnknown int `json:"push_unknown"`
	// Popped and Moved count BLPOP and BLMOVE replies with an element;
	// Empty those that timed out with nil.
	Popped int `json:"popped"`
	Moved  int `json:"moved"`
	Empty  int `json:"empty"`
	// UnknownPops and UnknownMoves count BLPOPs and BLMOVEs whose outcome
	// the client never learned.
	UnknownPops  int `json:"unknown_pops"`
	UnknownMoves int `json:"unknown_moves"`
	// Remaining and Done are the lengths of the queue and the done list
	// read at the end.
	Remaining int `json:"remaining"`
	Done      int `json:"done"`
	// MaybePopped counts acknowledged elements found nowhere, each
	// explained by one unknown BLPOP (there must be at least as many).
	MaybePopped int `json:"maybe_popped"`
	// Violations describe each element popped twice, lost, out of order,
	// or never pushed: the safety of the queue.
	Violations []string `json:"violations,omitempty"`
	// MissedWakeups describe each pop that timed out with nil while the
	// queue held an element throughout its block: Redis would have served
	// it. Kept apart from Violations because no element is lost or
	// duplicated by one; Config.FailMissedWakeups decides whether they
	// fail a run.
	MissedWakeups []string `json:"missed_wakeups,omitempty"`
}

// CheckQueue checks a history of the queue workload: its pushes, pops and
// moves, and the final reads of the queue and done lists (the LRANGEs of
// those keys, one pair per node, which must agree). The rules, for each
// element e (unique in the run):
//
//   - e is held at most once: the BLPOP replies that returned it, plus its
//     occurrences in the final queue and done lists, number at most one
//     (a BLMOVE that returned e put it in the done list, so it counts
//     there, and at most one BLMOVE may return e);
//   - a BLMOVE that returned e left it in the done list;
//   - e in the done list without a BLMOVE that returned it needs an
//     unknown BLMOVE to explain it, one per such element;
//   - an acknowledged push of e held nowhere needs an unknown BLPOP to
//     explain it (a BLMOVE cannot: it leaves e in the done list), one per
//     such element; beyond that, e was lost;
//   - e was pushed: it is no phantom, and no pop returned before its push
//     was sent;
//   - FIFO: the done list followed by the queue is the order the elements
//     left the queue head and the order they remain in, so a producer's
//     acknowledged element comes before every element it pushed later;
//   - no BLPOP or BLMOVE times out with nil while the queue certainly held
//     an element for its whole duration: from the return of the element's
//     acknowledged push to the invocation of the known pop that took it
//     (or the end, if it is still queued). A node that cannot tell must
//     answer an error, not nil. These are reported as MissedWakeups, not
//     Violations.
func CheckQueue(ops []Op) QueueResult {
	var res QueueResult
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}
	type elem struct {
		push     *Op
		pops     []Op // BLPOP replies naming it
		moves    []Op // BLMOVE replies naming it
		inQueue  int
		inDone   int
		position int // index in done++queue, -1 when absent
	}
	elems := map[string]*elem{}
	get := func(e string) *elem {
		x, ok := elems[e]
		if !ok {
			x = &elem{position: -1}
			elems[e] = x
		}
		return x
	}
	// The final reads, per node: the last LRANGE of each list.
	type finals struct{ queue, done *Op }
	perNode := map[string]*finals{}
	var nodes []string
	for i := range ops {
		op := &ops[i]
		if !IsQueueKey(op.Input.Key) || op.Outcome == OutcomeFail {
			continue
		}
		switch op.Input.Op {
		case OpQPush:
			x := get(op.Input.Arg)
			if x.push != nil {
				violate("element %s pushed twice by the workload (harness bug)", op.Input.Arg)
			}
			x.push = op
			if op.Outcome == OutcomeOK {
				res.Pushed++
			} else {
				res.PushUnknown++
			}
		case OpBLPop, OpBLMove:
			isPop := op.Input.Op == OpBLPop
			switch {
			case op.Outcome == OutcomeUnknown && isPop:
				res.UnknownPops++
			case op.Outcome == OutcomeUnknown:
				res.UnknownMoves++
			case op.Output.Kind == OutNil:
				res.Empty++
			case op.Output.Kind == OutStr && isPop:
				res.Popped++
				x := get(op.Output.Str)
				x.pops = append(x.pops, *op)
			case op.Output.Kind == OutStr:
				res.Moved++
				x := get(op.Output.Str)
				x.moves = append(x.moves, *op)
			default:
				violate("%s via %s replied %s", op.Input.Op, op.Node, op.Output)
			}
		case OpLRange:
			if op.Outcome != OutcomeOK {
				continue
			}
			f, ok := perNode[op.Node]
			if !ok {
				f = &finals{}
				perNode[op.Node] = f
				nodes = append(nodes, op.Node)
			}
			if op.Input.Key == queueKey {
				f.queue = op
			} else {
				f.done = op
			}
		case OpGet, OpSet, OpSetNX, OpIncr, OpAppend, OpPExpire, OpPersist, OpPTTL,
			OpHSet, OpHGet, OpHDel, OpHGetAll, OpSAdd, OpSRem, OpSMembers, OpSPop, OpLPush, OpRPop, OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin, OpDel:
			// The queue workload sends none of these.
		}
	}
	var queue, done []string
	for i, n := range nodes {
		f := perNode[n]
		if f.queue == nil || f.done == nil {
			violate("node %s: no final read of both queue lists", n)
			continue
		}
		q, d := decodeElems(f.queue.Output.Str), decodeElems(f.done.Output.Str)
		if i == 0 {
			queue, done = q, d
			continue
		}
		if f.queue.Output.Str != perNode[nodes[0]].queue.Output.Str || f.done.Output.Str != perNode[nodes[0]].done.Output.Str {
			violate("final reads disagree: via %s the queue has %d and the done list %d elements, via %s %d and %d",
				nodes[0], len(queue), len(done), n, len(q), len(d))
		}
	}
	if len(nodes) == 0 {
		violate("no final read of the queue lists")
	}
	res.Remaining, res.Done = len(queue), len(done)
	order := append(append([]string(nil), done...), queue...)
	for i, e := range order {
		x := get(e)
		if i < len(done) {
			x.inDone++
		} else {
			x.inQueue++
		}
		if x.position < 0 {
			x.position = i
		}
	}

	// Go through the elements in a fixed order, so the violations read the
	// same on every check of a saved history.
	names := make([]string, 0, len(elems))
	for e := range elems {
		names = append(names, e)
	}
	sort.Strings(names)
	var missing, unexplainedDone []string
	for _, e := range names {
		x := elems[e]
		held := len(x.pops) + x.inQueue + x.inDone
		if x.push == nil {
			violate("phantom: element %q was never pushed but was popped %d, moved %d times, and is %d times in the lists", e, len(x.pops), len(x.moves), x.inQueue+x.inDone)
			continue
		}
		for _, p := range append(append([]Op(nil), x.pops...), x.moves...) {
			if p.Return < x.push.Call {
				violate("%s via %s returned %s at %v, before its push was sent at %v", p.Input.Op, p.Node, e, time.Duration(p.Return), time.Duration(x.push.Call))
			}
		}
		switch {
		case held > 1 || len(x.moves) > 1:
			violate("element %s held more than once: BLPOP returned it %d times, BLMOVE %d times, and the queue has it %d times, the done list %d times",
				e, len(x.pops), len(x.moves), x.inQueue, x.inDone)
		case len(x.moves) == 1 && x.inDone == 0:
			violate("element %s: BLMOVE via %s returned it (at %v), but the done list does not have it", e, x.moves[0].Node, time.Duration(x.moves[0].Return))
		case x.inDone == 1 && len(x.moves) == 0:
			unexplainedDone = append(unexplainedDone, e)
		case held == 0 && x.push.Outcome == OutcomeOK:
			missing = append(missing, e)
		}
	}
	if len(unexplainedDone) > res.UnknownMoves {
		violate("%d elements are in the done list without a BLMOVE that returned them, but only %d BLMOVEs had an unknown outcome: %s",
			len(unexplainedDone), res.UnknownMoves, sample(unexplainedDone))
	}
	res.MaybePopped = len(missing)
	if len(missing) > res.UnknownPops {
		violate("lost: %d acknowledged elements were never popped and are in neither list, but only %d BLPOPs had an unknown outcome: %s",
			len(missing), res.UnknownPops, sample(missing))
	}

	// A pop that timed out while the queue certainly held an element for
	// its whole duration: element e is in the queue from its acknowledged
	// push's return until the invocation of the known pop that took it
	// (nothing pushes e again), or for ever when it is still queued. An
	// element taken by a pop of unknown outcome, or moved by one, has no
	// known end and bounds nothing.
	type presence struct {
		from, to int64
		elem     string
	}
	var present []presence
	const forever = int64(1<<63 - 1)
	for _, e := range names {
		x := elems[e]
		if x.push == nil || x.push.Outcome != OutcomeOK || len(x.pops)+x.inQueue+x.inDone != 1 || len(x.moves) > 1 {
			continue // absent, or held more than once (reported above)
		}
		switch {
		case len(x.pops) == 1:
			present = append(present, presence{x.push.Return, x.pops[0].Call, e})
		case len(x.moves) == 1 && x.inDone == 1:
			present = append(present, presence{x.push.Return, x.moves[0].Call, e})
		case x.inQueue == 1:
			present = append(present, presence{x.push.Return, forever, e})
		}
	}
	for _, op := range ops {
		if !IsQueueKey(op.Input.Key) || (op.Input.Op != OpBLPop && op.Input.Op != OpBLMove) ||
			op.Outcome != OutcomeOK || op.Output.Kind != OutNil {
			continue
		}
		for _, p := range present {
			if p.from < op.Call && op.Return < p.to {
				res.MissedWakeups = append(res.MissedWakeups, fmt.Sprintf("%s via %s timed out with nil (%v to %v), but %s was in the queue all that time (pushed by %v, taken at %v or later)",
					op.Input.Op, op.Node, time.Duration(op.Call), time.Duration(op.Return), p.elem, time.Duration(p.from), time.Duration(p.to)))
				break
			}
		}
	}

	// FIFO per producer, over done++queue.
	maxSeq := map[int]int{}
	for _, e := range order {
		p, seq, ok := parseQueueElem(e)
		x := elems[e]
		if !ok || x.push == nil {
			continue // a phantom, reported above
		}
		if m, seen := maxSeq[p]; seen && m > seq && x.push.Outcome == OutcomeOK {
			violate("out of order: %s, acknowledged before %s was pushed, comes after it in the done list and queue", e, queueElem(p, m))
		}
		if m, seen := maxSeq[p]; !seen || seq > m {
			maxSeq[p] = seq
		}
	}
	return res
}

// sample shows the first few of a list of elements.
func sample(es []string) string {
	const shown = 10
	if len(es) > shown {
		return strings.Join(es[:shown], ", ") + fmt.Sprintf(" and %d more", len(es)-shown)
	}
	return strings.Join(es, ", ")
}
