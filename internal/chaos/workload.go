package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// workload runs concurrent clients, each with one request in flight at a
// time, against random nodes, and records every operation.
type workload struct {
	h         *History
	addrs     []string // Redis address of each node
	names     []string
	keys      []string
	clients   int
	opTimeout time.Duration
	seed      uint64

	nextProc atomic.Int64 // fresh process ids for clients after an unknown op
	stop     chan struct{}
	wg       sync.WaitGroup
}

// keyName is the name of workload key i; a prefix keeps the harness's own
// probe keys out of the checked keyspace.
func keyName(i int) string { return "chaos:k" + strconv.Itoa(i) }

// start launches the clients; stopAndWait ends them.
func (w *workload) start() {
	w.stop = make(chan struct{})
	w.nextProc.Store(int64(w.clients))
	for id := range w.clients {
		w.wg.Add(1)
		go w.client(id)
	}
}

// stopAndWait asks the clients to stop and waits for their last requests,
// each bounded by opTimeout, so no operation is left half-recorded.
func (w *workload) stopAndWait() {
	close(w.stop)
	w.wg.Wait()
}

func (w *workload) client(id int) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(w.seed, uint64(id)+1))
	conns := make([]*goredis.Client, len(w.addrs))
	for i, a := range w.addrs {
		conns[i] = newClient(a, w.opTimeout, 1)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	proc := id
	for seq := 0; ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		node := rng.IntN(len(conns))
		in := w.randomInput(rng, id, seq)
		op := w.do(conns[node], in)
		op.Process, op.Node = proc, w.names[node]
		w.h.Add(op)
		switch op.Outcome {
		case OutcomeOK:
			// Next operation at once, as the same process.
		case OutcomeUnknown:
			// The unknown operation stays open to the end of the history;
			// the client continues as a new process so the visualisation
			// does not draw overlapping operations on one line.
			proc = int(w.nextProc.Add(1) - 1)
		case OutcomeFail:
			// A dead or leaderless node answers instantly; do not spin.
			select {
			case <-w.stop:
				return
			case <-time.After(time.Duration(10+rng.IntN(40)) * time.Millisecond):
			}
		}
	}
}

// randomInput picks the next operation. SET values are integers unique to
// the client and sequence number, so INCR applies to them and porcupine
// can tell writes apart; APPEND adds one digit, keeping values integers
// until they grow past int64 and INCR starts refusing them.
func (w *workload) randomInput(rng *rand.Rand, id, seq int) Input {
	key := w.keys[rng.IntN(len(w.keys))]
	unique := strconv.Itoa(id+1) + fmt.Sprintf("%06d", seq%1_000_000)
	switch r := rng.IntN(100); {
	case r < 35:
		return Input{Op: OpGet, Key: key}
	case r < 55:
		return Input{Op: OpSet, Key: key, Arg: unique}
	case r < 70:
		return Input{Op: OpIncr, Key: key}
	case r < 80:
		return Input{Op: OpAppend, Key: key, Arg: strconv.Itoa(1 + rng.IntN(9))}
	case r < 92:
		return Input{Op: OpSetNX, Key: key, Arg: unique}
	default:
		return Input{Op: OpDel, Key: key}
	}
}

// do sends one operation and classifies its reply. The context is not the
// run's: stopping the workload lets an operation in flight finish (within
// opTimeout) instead of turning it into an unknown outcome.
func (w *workload) do(cl *goredis.Client, in Input) Op {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	op := Op{Input: in, Call: w.h.Now()}
	var (
		out Output
		err error
	)
	switch in.Op {
	case OpGet:
		var v string
		v, err = cl.Get(ctx, in.Key).Result()
		out = Output{Kind: OutStr, Str: v}
	case OpSet:
		err = cl.Set(ctx, in.Key, in.Arg, 0).Err()
		out = Output{Kind: OutOK}
	case OpSetNX:
		err = cl.SetArgs(ctx, in.Key, in.Arg, goredis.SetArgs{Mode: "NX"}).Err()
		out = Output{Kind: OutOK}
	case OpIncr:
		var n int64
		n, err = cl.Incr(ctx, in.Key).Result()
		out = Output{Kind: OutInt, Int: n}
	case OpAppend:
		var n int64
		n, err = cl.Append(ctx, in.Key, in.Arg).Result()
		out = Output{Kind: OutInt, Int: n}
	case OpDel:
		var n int64
		n, err = cl.Del(ctx, in.Key).Result()
		out = Output{Kind: OutInt, Int: n}
	}
	op.Return = w.h.Now()
	op.Output, op.Outcome = classify(in.Op, out, err)
	if err != nil && !errors.Is(err, goredis.Nil) {
		op.Err = err.Error()
	}
	return op
}

// classify turns a reply or error into what the checker may assume.
//
//   - redis.Nil is a real answer: GET of a missing key, SET NX refused.
//   - INCR's "not an integer" and "overflow" errors come from the state
//     machine after the command was ordered: definite outcomes.
//   - -TRYAGAIN means the server did not apply the command, and a dial that
//     failed means it never left the client: both are dropped.
//   - Any other write error (timeout, "may or may not have been applied",
//     a connection dropped mid-request) leaves the outcome unknown.
//   - A read that failed had no effect, so it is dropped as well.
func classify(kind OpKind, out Output, err error) (Output, Outcome) {
	switch {
	case err == nil:
		return out, OutcomeOK
	case errors.Is(err, goredis.Nil):
		return Output{Kind: OutNil}, OutcomeOK
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) && kind == OpIncr && (err.Error() == errNotInteger || err.Error() == errOverflow) {
		return Output{Kind: OutErr, Str: err.Error()}, OutcomeOK
	}
	if !kind.isWrite() || goredis.IsTryAgainError(err) || neverSent(err) {
		return Output{}, OutcomeFail
	}
	return Output{}, OutcomeUnknown
}

// neverSent reports whether err proves the request never reached a
// server: the connection could not be made.
func neverSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, goredis.ErrPoolTimeout)
}

// finalReads reads every key through every node once the cluster is
// healed and quiet, recorded into the history so porcupine checks them
// against everything before. They are the "no acknowledged write lost"
// evidence.
func (w *workload) finalReads(ctx context.Context, proc int) ([]Op, error) {
	var out []Op
	for i, a := range w.addrs {
		cl := newClient(a, 5*time.Second, 1)
		for _, k := range w.keys {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			op := Op{Process: proc + i, Node: w.names[i], Input: Input{Op: OpGet, Key: k}, Call: w.h.Now()}
			v, err := cl.Get(cctx, k).Result()
			cancel()
			op.Return = w.h.Now()
			op.Output, op.Outcome = classify(OpGet, Output{Kind: OutStr, Str: v}, err)
			if err != nil && !errors.Is(err, goredis.Nil) {
				_ = cl.Close()
				return out, fmt.Errorf("final read of %s via %s: %w", k, w.names[i], err)
			}
			w.h.Add(op)
			out = append(out, op)
		}
		_ = cl.Close()
	}
	return out, nil
}
