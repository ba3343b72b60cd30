package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
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

	// ttl enables the TTL commands: SET PX, PEXPIRE, PERSIST and PTTL on
	// the register keys, and the expiry keys. Off for a binary without
	// them (Report.ExpiryUnsupported).
	ttl bool
	// longTTL (ms) is the TTL the register keys get: far longer than the
	// run, so it never fires while the history is recorded (Run checks).
	longTTL int64
	// expiryKeys are the keys with short TTLs (chaos:x<i>).
	expiryKeys []string
	// expiryWritesUntil (history time) ends the writes to the expiry keys:
	// after it their clients only read, so the last writes' TTLs have
	// certainly passed by the end of the run and the reads of the last
	// seconds and the final reads test late expiry and revival without
	// lengthening the run.
	expiryWritesUntil int64

	// collKeys are the hash, set and list keys (collections.go); empty
	// when the collection workload is off or the binary lacks the
	// commands.
	collKeys []string
	// queue runs the queue workload's producers and consumers (queue.go).
	queue bool
	// tx runs the transaction workloads (txn.go, cas.go, lock.go).
	tx txnClients

	nextProc atomic.Int64 // fresh process ids for clients after an unknown op
	stop     chan struct{}
	wg       sync.WaitGroup
}

// keyName is the name of workload key i; a prefix keeps the harness's own
// probe keys out of the checked keyspace.
func keyName(i int) string { return "chaos:k" + strconv.Itoa(i) }

// The expiry keys' TTLs, in ms. Half are short (up to expiryShortTTL), so
// that keys expire between two writes even when the clients are fast; half
// are long (from expirySkewTTL), outliving the skew, so the early-expiry
// rule has reads it can hold to seeing the key.
const (
	expiryMinTTL   = 100
	expiryShortTTL = 500
	expirySkewTTL  = 1000
	expiryMaxTTL   = 3000
	// expiryShare is the percentage of operations on expiry keys.
	expiryShare = 30
)

// start launches the clients; stopAndWait ends them.
func (w *workload) start() {
	w.stop = make(chan struct{})
	procs := 0
	if len(w.keys) > 0 || len(w.collKeys) > 0 {
		procs = w.clients
		for id := range w.clients {
			w.wg.Add(1)
			go w.client(id)
		}
	}
	if w.queue {
		for i := range queueProducers + queueConsumers {
			w.wg.Add(1)
			go w.queueWorker(i, procs+i, i >= queueProducers)
		}
		procs += queueProducers + queueConsumers
	}
	procs = w.startTxn(procs)
	w.nextProc.Store(int64(procs))
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
		in := w.randomInput(rng, id, seq, w.h.Now())
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
//
// With TTL commands on, a share of the operations goes to the expiry keys
// (randomExpiryInput), and the register keys also get SET PX, PEXPIRE,
// PERSIST and PTTL with the long TTL.
func (w *workload) randomInput(rng *rand.Rand, id, seq int, now int64) Input {
	if len(w.collKeys) > 0 && (len(w.keys) == 0 || rng.IntN(100) < collShare) {
		return randomCollInput(rng, w.collKeys, id, seq)
	}
	if !w.ttl {
		return w.randomRegisterInput(rng, id, seq)
	}
	if len(w.expiryKeys) > 0 && rng.IntN(100) < expiryShare {
		return w.randomExpiryInput(rng, id, seq, now)
	}
	key := w.keys[rng.IntN(len(w.keys))]
	unique := strconv.Itoa(id+1) + fmt.Sprintf("%06d", seq%1_000_000)
	switch r := rng.IntN(100); {
	case r < 30:
		return Input{Op: OpGet, Key: key}
	case r < 45:
		return Input{Op: OpSet, Key: key, Arg: unique}
	case r < 51:
		return Input{Op: OpSet, Key: key, Arg: unique, TTL: w.longTTL}
	case r < 64:
		return Input{Op: OpIncr, Key: key}
	case r < 72:
		return Input{Op: OpAppend, Key: key, Arg: strconv.Itoa(1 + rng.IntN(9))}
	case r < 82:
		return Input{Op: OpSetNX, Key: key, Arg: unique}
	case r < 88:
		return Input{Op: OpDel, Key: key}
	case r < 92:
		return Input{Op: OpPExpire, Key: key, TTL: w.longTTL}
	case r < 96:
		return Input{Op: OpPersist, Key: key}
	default:
		return Input{Op: OpPTTL, Key: key, TTL: w.longTTL}
	}
}

// randomExpiryInput picks an operation on an expiry key. Every SET writes
// a value no other write uses (client id and sequence number), which is
// what lets CheckExpiry tie a read to the one write it can come from.
func (w *workload) randomExpiryInput(rng *rand.Rand, id, seq int, now int64) Input {
	key := w.expiryKeys[rng.IntN(len(w.expiryKeys))]
	ttl := func() int64 {
		if rng.IntN(2) == 0 {
			return expiryMinTTL + rng.Int64N(expiryShortTTL-expiryMinTTL+1)
		}
		return expirySkewTTL + rng.Int64N(expiryMaxTTL-expirySkewTTL+1)
	}
	r := rng.IntN(100)
	if now >= w.expiryWritesUntil {
		r = r * 50 / 100 // reads only: GET and PTTL, in their usual ratio
	}
	switch {
	case r < 35:
		return Input{Op: OpGet, Key: key}
	case r < 50:
		return Input{Op: OpPTTL, Key: key}
	case r < 75:
		return Input{Op: OpSet, Key: key, Arg: fmt.Sprintf("v%d-%d", id+1, seq), TTL: ttl()}
	case r < 80:
		return Input{Op: OpSet, Key: key, Arg: fmt.Sprintf("v%d-%d", id+1, seq)}
	case r < 90:
		return Input{Op: OpPExpire, Key: key, TTL: ttl()}
	case r < 97:
		return Input{Op: OpPersist, Key: key}
	default:
		return Input{Op: OpDel, Key: key}
	}
}

// randomRegisterInput is the workload of a binary without TTL commands.
func (w *workload) randomRegisterInput(rng *rand.Rand, id, seq int) Input {
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
	return w.send(context.Background(), cl, in, w.opTimeout)
}

// send is do within ctx and timeout.
func (w *workload) send(ctx context.Context, cl *goredis.Client, in Input, timeout time.Duration) Op {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	op := Op{Input: in, Call: w.h.Now()}
	var (
		out Output
		err error
	)
	switch {
	case IsQueueKey(in.Key):
		out, err = sendQueue(ctx, cl, in)
	case IsCollectionKey(in.Key):
		out, err = sendColl(ctx, cl, in)
	default:
		out, err = sendRegister(ctx, cl, in)
	}
	op.Return = w.h.Now()
	op.Output, op.Outcome = classify(in.Op, out, err)
	if err != nil && !errors.Is(err, goredis.Nil) {
		op.Err = err.Error()
	}
	return op
}

// sendRegister sends one command on a register or expiry key.
func sendRegister(ctx context.Context, cl *goredis.Client, in Input) (out Output, err error) {
	switch in.Op {
	case OpGet:
		var v string
		v, err = cl.Get(ctx, in.Key).Result()
		out = Output{Kind: OutStr, Str: v}
	case OpSet:
		if in.TTL > 0 {
			// Spelled out: go-redis would send EX for whole seconds.
			err = cl.Do(ctx, "set", in.Key, in.Arg, "px", in.TTL).Err()
		} else {
			err = cl.Set(ctx, in.Key, in.Arg, 0).Err()
		}
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
	case OpPExpire, OpPersist, OpPTTL:
		// Raw integer replies: go-redis's PTTL turns -1 and -2 into
		// durations, and PEXPIRE's into a bool.
		args := []any{string(in.Op), in.Key}
		if in.Op == OpPExpire {
			args = append(args, in.TTL)
		}
		var n int64
		n, err = cl.Do(ctx, args...).Int64()
		out = Output{Kind: OutInt, Int: n}
	case OpHSet, OpHGet, OpHDel, OpHGetAll, OpSAdd, OpSRem, OpSMembers, OpSPop, OpLPush, OpRPop, OpLRange, OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin,
		OpQPush, OpBLPop, OpBLMove:
		err = fmt.Errorf("chaos: no client for op %q on a register key", in.Op)
	}
	return out, err
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
//   - A command refused because the cluster's log format cannot carry it
//     yet was refused before anything was proposed: dropped.
//   - A read that failed had no effect, so it is dropped as well.
//   - WRONGTYPE is the state machine's definite refusal, read or write;
//     the model never allows it on the collection keys, each of one type.
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
	if wrongType(err) {
		return Output{Kind: OutErr, Str: err.Error()}, OutcomeOK
	}
	if !kind.isWrite() || goredis.IsTryAgainError(err) || neverSent(err) || formatRefused(err) {
		return Output{}, OutcomeFail
	}
	return Output{}, OutcomeUnknown
}

// formatRefused reports whether err is the server's refusal of a command
// that needs a newer log format than the cluster's (node.awaitFormat),
// which it gives before proposing or forwarding anything.
func formatRefused(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.Contains(err.Error(), "needs log format")
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
// healed and quiet, recorded into the history so porcupine (register and
// collection keys), CheckQueue (the queue's lists) and CheckExpiry (expiry
// keys, read with GET and PTTL) check them
// against everything before. They are the "no acknowledged write lost"
// evidence, and for the expiry keys also "an expiry that certainly came
// is seen everywhere".
func (w *workload) finalReads(ctx context.Context, proc int) ([]Op, error) {
	var reads []Input
	for _, k := range w.keys {
		reads = append(reads, Input{Op: OpGet, Key: k})
	}
	if w.ttl {
		for _, k := range w.expiryKeys {
			reads = append(reads, Input{Op: OpGet, Key: k}, Input{Op: OpPTTL, Key: k})
		}
	}
	reads = append(reads, finalCollReads(w.collKeys)...)
	if w.queue {
		reads = append(reads, finalQueueReads()...)
	}
	var out []Op
	for i, a := range w.addrs {
		cl := newClient(a, 5*time.Second, 1)
		for _, in := range reads {
			op := w.send(ctx, cl, in, 5*time.Second)
			op.Process, op.Node = proc+i, w.names[i]
			if op.Outcome != OutcomeOK {
				_ = cl.Close()
				return out, fmt.Errorf("final %s of %s via %s: %s", in.Op, in.Key, w.names[i], op.Err)
			}
			w.h.Add(op)
			out = append(out, op)
		}
		_ = cl.Close()
	}
	return out, nil
}
