package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The transaction workloads (issue #17, "Chaos") check MULTI/EXEC, WATCH
// and scripts under faults. Their operations do not fit the porcupine
// model's one-key, one-reply Op: an EXEC carries two replies, a CAS
// attempt a read and a write, a lock a whole acquire-use-release cycle.
// They are recorded as TxnOps in a TxnHistory of their own and checked by
// CheckTxn (txn.go), CheckCAS (cas.go) and CheckLock (lock.go), each a
// linear pass over its operations: the checks use counters that only grow
// and values unique in the run, so no search over interleavings is needed.
//
// The workload "txn": writers send MULTI; INCR a; INCR b; EXEC on a pair
// of keys (chaos:txn{i}:a and :b, a few pairs), readers send MGET a b or
// MULTI; GET a; GET b; EXEC. Both keys of a pair start absent and are only
// ever incremented together, so every state the store may expose has
// a == b, and each counter only grows. When the binary has scripting, a
// third of the writers' increments are a Lua script instead
// (pairIncrScript), which must be exactly as atomic as an EXEC.

// TxnKind names one recorded operation of the transaction workloads.
type TxnKind string

// The transaction workloads' operations.
const (
	// TxnIncrPair is MULTI; INCR a; INCR b; EXEC. Values are the two INCR
	// replies.
	TxnIncrPair TxnKind = "multi-incr"
	// TxnEvalPair is EVAL of pairIncrScript, which increments both keys
	// in one script. Values are the two INCR replies it returns.
	TxnEvalPair TxnKind = "eval-incr"
	// TxnMGet is MGET a b; TxnMultiGet is MULTI; GET a; GET b; EXEC.
	// Values are the two values, an absent key read as 0.
	TxnMGet     TxnKind = "mget"
	TxnMultiGet TxnKind = "multi-get"
	// CASGet is the GET of the CAS counter after WATCH; Values[0] is the
	// value (absent: 0).
	CASGet TxnKind = "cas-get"
	// CASExec is MULTI; SET c v+1; EXEC after WATCH c and the GET that
	// read v. Values are v and v+1; Nil marks the null reply of an EXEC
	// whose watched key had changed.
	CASExec TxnKind = "cas-exec"
	// LockAcquire is SET lock token NX PX ttl; Nil marks the refusal (the
	// lock was held).
	LockAcquire TxnKind = "lock-acquire"
	// LockFence is INCR fence by a holder; Values[0] is the reply.
	LockFence TxnKind = "lock-fence"
	// LockRelease is the compare-and-delete script; Values[0] is its
	// reply, 1 (deleted) or 0 (the lock was not ours).
	LockRelease TxnKind = "lock-release"
	// CounterGet is a GET of a counter key (the CAS counter or the fence)
	// made by the final reads; Values[0] is the value (absent: 0).
	CounterGet TxnKind = "get"
)

// TxnOp is one recorded operation of the transaction workloads. Times are
// those of History's clock (nanoseconds since the start of the run).
type TxnOp struct {
	Process int     `json:"process"`
	Node    string  `json:"node"`
	Kind    TxnKind `json:"kind"`
	// Key is the pair's first key (TxnIncrPair, TxnMGet, TxnMultiGet),
	// the counter (CAS*), the lock (LockAcquire, LockRelease) or the fence
	// key (LockFence, and a final read of it).
	Key string `json:"key"`
	// Token ties operations together: a CAS attempt's GET and EXEC, a lock
	// acquisition's fence and releases. Unique in the run.
	Token  string  `json:"token,omitempty"`
	Values []int64 `json:"values,omitempty"`
	// Nil is a null reply: an EXEC aborted by WATCH, a SET NX refused.
	Nil     bool    `json:"nil,omitempty"`
	Outcome Outcome `json:"outcome"`
	Call    int64   `json:"call"`
	Return  int64   `json:"return"`
	// Final marks the reads made through every node after the heal.
	Final bool `json:"final,omitempty"`
	// ByHash marks a LockRelease sent as EVALSHA rather than EVAL.
	ByHash bool `json:"by_hash,omitempty"`
	// Err is the client-side error text, kept for post-mortems.
	Err string `json:"err,omitempty"`
}

func (op TxnOp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", op.Kind, op.Key)
	if op.Token != "" {
		fmt.Fprintf(&b, " [%s]", op.Token)
	}
	fmt.Fprintf(&b, " via %s at %v-%v: ", op.Node, time.Duration(op.Call).Round(time.Millisecond), time.Duration(op.Return).Round(time.Millisecond))
	switch {
	case op.Outcome != OutcomeOK:
		b.WriteString(string(op.Outcome))
		if op.Err != "" {
			fmt.Fprintf(&b, " (%s)", op.Err)
		}
	case op.Nil:
		b.WriteString("nil")
	default:
		fmt.Fprintf(&b, "%v", op.Values)
	}
	return b.String()
}

// TxnHistory collects the transaction workloads' operations from
// concurrent clients.
type TxnHistory struct {
	mu  sync.Mutex
	ops []TxnOp
}

// Add records a finished operation.
func (h *TxnHistory) Add(op TxnOp) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations, ordered by call time.
func (h *TxnHistory) Ops() []TxnOp {
	h.mu.Lock()
	out := slices.Clone(h.ops)
	h.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// WriteTxnHistoryJSON writes ops as indented JSON.
func WriteTxnHistoryJSON(path string, ops []TxnOp) error {
	return writeJSON(path, "transaction history", ops)
}

// ReadTxnHistoryJSON reads a history written by WriteTxnHistoryJSON, so a
// saved failure can be checked again offline.
func ReadTxnHistoryJSON(path string) ([]TxnOp, error) {
	return readJSON[TxnOp](path, "transaction history")
}

// The txn workload's shape: its own goroutines, beside the other
// workloads' clients.
const (
	txnPairs   = 3
	txnWriters = 3
	txnReaders = 2
)

// pairIncrScript increments both keys of a pair in one script and returns
// the two new values.
const pairIncrScript = "return {redis.call('incr',KEYS[1]), redis.call('incr',KEYS[2])}"

// txnKeyPrefix starts every key of the txn workload. A pair's two keys
// share a hash tag, so the transaction stays within one slot, as Redis
// Cluster would require.
const txnKeyPrefix = "chaos:txn"

// txnPair names pair i's two keys.
func txnPair(i int) (a, b string) {
	base := txnKeyPrefix + "{" + strconv.Itoa(i) + "}"
	return base + ":a", base + ":b"
}

// txnClients owns the transaction workloads' state inside a workload.
type txnClients struct {
	h   *TxnHistory
	txn bool
	// scripts makes a third of the txn writers' increments EVALs of
	// pairIncrScript; on when the binary has EVAL.
	scripts bool
	cas     bool
	lock    bool
	lockTTL time.Duration
}

// txnWorker runs one writer (reader=false) or reader of the txn workload
// until the workload stops.
func (w *workload) txnWorker(id, proc int, reader bool) {
	w.runClient(0x74786e+uint64(id), func(rng *rand.Rand, conns []*goredis.Client, _ int) bool {
		node := rng.IntN(len(conns))
		a, _ := txnPair(rng.IntN(txnPairs))
		kind := TxnIncrPair
		if w.tx.scripts && rng.IntN(3) == 0 {
			kind = TxnEvalPair
		}
		if reader {
			kind = TxnMGet
			if rng.IntN(2) == 0 {
				kind = TxnMultiGet
			}
		}
		op := w.sendTxn(conns[node], kind, a)
		op.Process, op.Node = proc, w.names[node]
		w.tx.h.Add(op)
		return op.Outcome != OutcomeFail || w.pause(rng)
	})
}

// runClient runs one client of the transaction workloads: a source seeded
// by the run's seed and salt, one connection to every node (dialAll), and
// round after round (seq counts them) until the workload stops or a round
// returns false.
func (w *workload) runClient(salt uint64, round func(rng *rand.Rand, conns []*goredis.Client, seq int) bool) {
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(w.seed, salt))
	conns := w.dialAll()
	defer closeAll(conns)
	for seq := 0; !w.stopped(); seq++ {
		if !round(rng, conns, seq) {
			return
		}
	}
}

// dialAll makes one client per node, each with one connection, so a
// MULTI or WATCH stays on the connection that started it.
func (w *workload) dialAll() []*goredis.Client {
	conns := make([]*goredis.Client, len(w.addrs))
	for i, a := range w.addrs {
		conns[i] = newClient(a, w.opTimeout, 1)
	}
	return conns
}

func closeAll(conns []*goredis.Client) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func (w *workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// pause waits 10-50 ms after a failed operation (a dead or leaderless
// node answers at once; do not spin), and reports false when the
// workload stopped meanwhile.
func (w *workload) pause(rng *rand.Rand) bool {
	return w.sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
}

func (w *workload) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-t.C:
		return true
	}
}

// sendTxn sends one operation of the txn workload on the pair whose first
// key is a. Like do, it does not use the run's context: stopping lets an
// operation in flight finish.
func (w *workload) sendTxn(cl *goredis.Client, kind TxnKind, a string) TxnOp {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	b := strings.TrimSuffix(a, ":a") + ":b"
	op := TxnOp{Kind: kind, Key: a, Call: w.h.Now()}
	var err error
	switch kind {
	case TxnIncrPair:
		var cmds []goredis.Cmder
		cmds, err = cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Incr(ctx, a)
			p.Incr(ctx, b)
			return nil
		})
		if err == nil {
			op.Values, err = intReplies(cmds)
		}
	case TxnEvalPair:
		op.Values, err = cl.Eval(ctx, pairIncrScript, []string{a, b}).Int64Slice()
		if err == nil && len(op.Values) != 2 {
			err = fmt.Errorf("%w: the script returned %d values", errBadReply, len(op.Values))
		}
	case TxnMGet:
		var vs []any
		vs, err = cl.MGet(ctx, a, b).Result()
		if err == nil {
			op.Values, err = counterValues(vs)
		}
	case TxnMultiGet:
		var cmds []goredis.Cmder
		cmds, err = cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			p.Get(ctx, a)
			p.Get(ctx, b)
			return nil
		})
		if err == nil || errors.Is(err, goredis.Nil) {
			op.Values, err = getReplies(cmds)
		}
	case CASGet, CASExec, LockAcquire, LockFence, LockRelease, CounterGet:
		err = fmt.Errorf("chaos: %s is not a txn workload operation", kind)
	}
	op.Return = w.h.Now()
	op.Outcome, op.Nil = classifyTxn(kind, err)
	if err != nil && !errors.Is(err, goredis.Nil) {
		op.Err = err.Error()
		if op.Outcome == OutcomeOK {
			op.Values = nil
		}
	}
	return op
}

// errBadReply marks a reply of the wrong shape: the server answered, so
// the outcome is known, and the checker reports the reply.
var errBadReply = errors.New("reply of the wrong shape")

// intReplies collects the integer replies of an EXEC's commands.
func intReplies(cmds []goredis.Cmder) ([]int64, error) {
	out := make([]int64, 0, len(cmds))
	for _, c := range cmds {
		ic, ok := c.(*goredis.IntCmd)
		if !ok {
			return nil, fmt.Errorf("%w: %T in EXEC", errBadReply, c)
		}
		n, err := ic.Result()
		if err != nil {
			return nil, fmt.Errorf("%w: %s inside EXEC: %v", errBadReply, ic.Name(), err)
		}
		out = append(out, n)
	}
	return out, nil
}

// getReplies collects GET replies inside an EXEC as counter values.
func getReplies(cmds []goredis.Cmder) ([]int64, error) {
	out := make([]int64, 0, len(cmds))
	for _, c := range cmds {
		sc, ok := c.(*goredis.StringCmd)
		if !ok {
			return nil, fmt.Errorf("%w: %T in EXEC", errBadReply, c)
		}
		s, err := sc.Result()
		if errors.Is(err, goredis.Nil) {
			out = append(out, 0)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: GET inside EXEC: %v", errBadReply, err)
		}
		n, err := parseCounter(s)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// counterValues turns MGET's reply into counter values.
func counterValues(vs []any) ([]int64, error) {
	out := make([]int64, 0, len(vs))
	for _, v := range vs {
		switch v := v.(type) {
		case nil:
			out = append(out, 0)
		case string:
			n, err := parseCounter(v)
			if err != nil {
				return nil, err
			}
			out = append(out, n)
		default:
			return nil, fmt.Errorf("%w: %T in MGET", errBadReply, v)
		}
	}
	return out, nil
}

func parseCounter(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: counter value %q", errBadReply, s)
	}
	return n, nil
}

// classifyTxn turns an error into what the checkers may assume, and tells
// a null reply apart (EXEC aborted by WATCH, SET NX refused, GET of an
// absent key).
//
//   - A reply of the wrong shape is a definite, observed outcome: the
//     operation is OK with no values, which the checkers report.
//   - EXECABORT means the server discarded the transaction before
//     proposing it, -TRYAGAIN that it did not apply it, and a failed dial
//     that it never left the client: none applied.
//   - Any other error of a write (a timeout, "may or may not have been
//     applied", a connection dropped) leaves its outcome unknown.
//   - A failed read had no effect and tells nothing.
func classifyTxn(kind TxnKind, err error) (Outcome, bool) {
	switch {
	case err == nil:
		return OutcomeOK, false
	case errors.Is(err, goredis.Nil), errors.Is(err, goredis.TxFailedErr):
		return OutcomeOK, true
	case errors.Is(err, errBadReply):
		return OutcomeOK, false
	}
	write := kind == TxnIncrPair || kind == TxnEvalPair || kind == CASExec || kind == LockAcquire || kind == LockFence || kind == LockRelease
	var rerr goredis.Error
	execAbort := errors.As(err, &rerr) && strings.HasPrefix(err.Error(), "EXECABORT")
	if !write || execAbort || goredis.IsTryAgainError(err) || neverSent(err) || formatRefused(err) {
		return OutcomeFail, false
	}
	return OutcomeUnknown, false
}

// finalTxnReads reads every key of the transaction workloads through
// every node once the cluster is healed and quiet: the pairs, the CAS
// counter and the fence. They are recorded with Final set, and the
// checkers require the nodes to agree and the values to account for the
// acknowledged writes.
func (w *workload) finalTxnReads(ctx context.Context) error {
	for i, addr := range w.addrs {
		cl := newClient(addr, 5*time.Second, 1)
		err := func() error {
			defer func() { _ = cl.Close() }()
			if w.tx.txn {
				for p := range txnPairs {
					a, b := txnPair(p)
					op := TxnOp{Kind: TxnMGet, Key: a, Call: w.h.Now(), Final: true, Process: -1, Node: w.names[i]}
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					vs, err := cl.MGet(cctx, a, b).Result()
					cancel()
					if err == nil {
						op.Values, err = counterValues(vs)
					}
					if err != nil {
						return fmt.Errorf("final MGET %s %s via %s: %w", a, b, w.names[i], err)
					}
					op.Return, op.Outcome = w.h.Now(), OutcomeOK
					w.tx.h.Add(op)
				}
			}
			var counters []string
			if w.tx.cas {
				counters = append(counters, casKey)
			}
			if w.tx.lock {
				counters = append(counters, fenceKey)
			}
			for _, k := range counters {
				op := TxnOp{Kind: CounterGet, Key: k, Call: w.h.Now(), Final: true, Process: -1, Node: w.names[i]}
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				s, err := cl.Get(cctx, k).Result()
				cancel()
				var n int64
				switch {
				case errors.Is(err, goredis.Nil):
				case err == nil:
					n, err = parseCounter(s)
				}
				if err != nil {
					return fmt.Errorf("final GET %s via %s: %w", k, w.names[i], err)
				}
				op.Return, op.Outcome, op.Values = w.h.Now(), OutcomeOK, []int64{n}
				w.tx.h.Add(op)
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// TxnResult is CheckTxn's account of the txn workload. Violations empty
// means every check held.
type TxnResult struct {
	// Execs counts acknowledged MULTI/INCR/INCR/EXECs and scripts (of
	// which Scripts are scripts), ExecUnknown those whose outcome the
	// client never learned, Reads the reads that returned (MGET and
	// MULTI/GET/GET/EXEC), final reads included.
	Execs       int `json:"execs"`
	Scripts     int `json:"scripts"`
	ExecUnknown int `json:"exec_unknown"`
	Reads       int `json:"reads"`
	// Final is each pair's final value, in pair order.
	Final      []int64  `json:"final"`
	Violations []string `json:"violations,omitempty"`
}

// CheckTxn checks the txn workload's history. For each pair (a, b):
//
//   - every acknowledged EXEC's two INCR replies are equal (the two
//     increments were applied together, with nothing between them);
//   - every read shows a == b (all-or-nothing, and isolation: no read sees
//     one increment of a transaction without the other);
//   - no two acknowledged EXECs got the same reply (each increment is
//     applied once);
//   - the final reads through every node agree, and the final value is at
//     least the number of acknowledged EXECs and at most that plus the
//     EXECs of unknown outcome (each may or may not have applied);
//   - the counter only grows in real time: a value seen (by a read, or as
//     an acknowledged EXEC's reply) is at least every value seen by an
//     operation that returned before this one was invoked, and at most the
//     number of EXECs (acknowledged or unknown) invoked before this one
//     returned. This is linearizability of a counter that only
//     increments; it catches stale reads as well as lost increments.
func CheckTxn(ops []TxnOp) TxnResult {
	var res TxnResult
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}
	type pairOps struct {
		obs    []counterObs
		incs   []int64 // the calls of EXECs that may have applied
		acked  map[int64]TxnOp
		ackedN int64
		finals []TxnOp
	}
	pairs := map[string]*pairOps{}
	var keys []string
	get := func(k string) *pairOps {
		p, ok := pairs[k]
		if !ok {
			p = &pairOps{acked: map[int64]TxnOp{}}
			pairs[k] = p
			keys = append(keys, k)
		}
		return p
	}
	for p := range txnPairs {
		a, _ := txnPair(p)
		get(a)
	}
	for _, op := range ops {
		if op.Outcome == OutcomeFail {
			continue
		}
		switch op.Kind {
		case TxnIncrPair, TxnEvalPair:
			p := get(op.Key)
			p.incs = append(p.incs, op.Call)
			if op.Outcome == OutcomeUnknown {
				res.ExecUnknown++
				continue
			}
			res.Execs++
			if op.Kind == TxnEvalPair {
				res.Scripts++
			}
			p.ackedN++
			switch {
			case op.Nil:
				violate("torn or refused transaction: EXEC without WATCH replied nil: %s", op)
				continue
			case len(op.Values) != 2:
				violate("the reply is not two integers: %s", op)
				continue
			case op.Values[0] != op.Values[1]:
				violate("torn transaction: the two INCRs of one EXEC or script replied %d and %d: %s", op.Values[0], op.Values[1], op)
			}
			if prev, dup := p.acked[op.Values[0]]; dup {
				violate("increment applied twice or lost: two acknowledged EXECs or scripts replied %d: %s and %s", op.Values[0], prev, op)
			}
			p.acked[op.Values[0]] = op
			p.obs = append(p.obs, counterObs{op.Values[0], op.Call, op.Return, op})
		case TxnMGet, TxnMultiGet:
			if op.Outcome != OutcomeOK {
				continue
			}
			res.Reads++
			p := get(op.Key)
			if op.Nil || len(op.Values) != 2 {
				violate("read's reply is not two values: %s", op)
				continue
			}
			if op.Values[0] != op.Values[1] {
				violate("torn read: a=%d b=%d: %s", op.Values[0], op.Values[1], op)
			}
			p.obs = append(p.obs, counterObs{op.Values[0], op.Call, op.Return, op})
			if op.Final {
				p.finals = append(p.finals, op)
			}
		case CASGet, CASExec, LockAcquire, LockFence, LockRelease, CounterGet:
			// Other workloads'.
		}
	}
	for _, k := range keys {
		p := pairs[k]
		if len(p.finals) == 0 {
			violate("pair %s: no final read", k)
			continue
		}
		final := p.finals[0].Values[0]
		for _, f := range p.finals[1:] {
			if f.Values[0] != final || f.Values[1] != p.finals[0].Values[1] {
				violate("pair %s: final reads disagree: %s and %s", k, p.finals[0], f)
			}
		}
		res.Final = append(res.Final, final)
		acked, unknown := p.ackedN, int64(len(p.incs))-p.ackedN
		if final < acked {
			violate("pair %s: lost increments: %d EXECs were acknowledged, but the final value is %d", k, acked, final)
		}
		if final > acked+unknown {
			violate("pair %s: phantom increments: the final value is %d, but only %d EXECs were acknowledged and %d had an unknown outcome", k, final, acked, unknown)
		}
		for _, v := range checkCounter(p.obs, p.incs) {
			violate("pair %s: %s", k, v)
		}
	}
	return res
}

// counterObs is one observation of a counter that only grows by one at a
// time: it held value at some instant within [call, ret].
type counterObs struct {
	value     int64
	call, ret int64
	op        TxnOp
}

// checkCounter checks observations of a counter that starts at 0 and only
// increments, given the invocation times of every increment that may
// have applied (acknowledged or of unknown outcome):
//
//   - monotonic in real time: an observation is at least every value
//     observed by one that returned before it was invoked (a smaller value
//     is a stale read, or an increment undone);
//   - bounded: an observation is at most the number of increments invoked
//     before it returned (a larger value counts an increment twice, or one
//     nobody sent).
//
// It reports at most a few violations of each kind, the first found.
func checkCounter(obs []counterObs, incCalls []int64) []string {
	const shown = 5
	var out []string
	byRet := slices.Clone(obs)
	sort.SliceStable(byRet, func(i, j int) bool { return byRet[i].ret < byRet[j].ret })
	// best[i] is the observation with the largest value among byRet[:i+1].
	best := make([]int, len(byRet))
	for i := range byRet {
		best[i] = i
		if i > 0 && byRet[best[i-1]].value >= byRet[i].value {
			best[i] = best[i-1]
		}
	}
	stale := 0
	for _, o := range obs {
		n := sort.Search(len(byRet), func(i int) bool { return byRet[i].ret >= o.call })
		if n == 0 {
			continue
		}
		if b := byRet[best[n-1]]; b.value > o.value {
			if stale < shown {
				out = append(out, fmt.Sprintf("stale or undone: %s saw %d, but %s had seen %d before it was invoked", o.op, o.value, b.op, b.value))
			}
			stale++
		}
	}
	if stale > shown {
		out = append(out, fmt.Sprintf("%d more stale observations", stale-shown))
	}
	calls := slices.Clone(incCalls)
	slices.Sort(calls)
	over := 0
	for _, o := range obs {
		sent := sort.Search(len(calls), func(i int) bool { return calls[i] > o.ret })
		if o.value > int64(sent) {
			if over < shown {
				out = append(out, fmt.Sprintf("too large: %s saw %d, but only %d increments had been sent by its return", o.op, o.value, sent))
			}
			over++
		}
	}
	if over > shown {
		out = append(out, fmt.Sprintf("%d more observations too large", over-shown))
	}
	return out
}

// setUpTxn gives the workload the transaction workloads cfg asks for
// whose commands the binary has (probed with supported), and records them
// in rep.Workloads in the order of Workloads.
func (w *workload) setUpTxn(ctx context.Context, c *cluster, cfg *Config, rep *Report, supported func(what string, args ...any) (bool, error)) error {
	w.tx.h = &TxnHistory{}
	w.tx.lockTTL = lockTTL
	txn, cas, lock := slices.Contains(cfg.Workloads, WorkloadTxn), slices.Contains(cfg.Workloads, WorkloadCAS), slices.Contains(cfg.Workloads, WorkloadLock)
	if txn || cas {
		// UNWATCH exists with the transaction commands and changes
		// nothing; a MULTI would leave the probe connection inside one.
		ok, err := supported("transactions", "unwatch")
		if err != nil {
			return err
		}
		w.tx.txn, w.tx.cas = ok && txn, ok && cas
	}
	if w.tx.txn || lock {
		// Probed directly, not through supported: scripts are part of
		// txn only when the binary has them, and their absence is
		// reported only for the lock, which needs them.
		reply, err := commandSupported(ctx, c, 30*time.Second, "eval", "return 0", "0")
		if err != nil {
			return fmt.Errorf("cluster did not accept scripts: %w", err)
		}
		scripts := reply == ""
		w.tx.scripts = scripts && w.tx.txn
		if lock && !scripts {
			rep.Unsupported = append(rep.Unsupported, "scripts: "+reply)
		}
		if lock && scripts {
			if err := loadLockScript(ctx, c, 30*time.Second); err != nil {
				return err
			}
		}
		w.tx.lock = lock && scripts
	}
	for _, on := range []struct {
		name string
		on   bool
	}{{WorkloadTxn, w.tx.txn}, {WorkloadCAS, w.tx.cas}, {WorkloadLock, w.tx.lock}} {
		if on.on {
			rep.Workloads = append(rep.Workloads, on.name)
		}
	}
	return nil
}

// startTxn launches the transaction workloads' clients, numbering their
// processes from proc, and returns the next free process number.
func (w *workload) startTxn(proc int) int {
	add := func(n int, run func(id, proc int)) {
		for i := range n {
			w.wg.Add(1)
			go run(i, proc)
			proc++
		}
	}
	if w.tx.txn {
		add(txnWriters, func(id, proc int) { w.txnWorker(id, proc, false) })
		add(txnReaders, func(id, proc int) { w.txnWorker(txnWriters+id, proc, true) })
	}
	if w.tx.cas {
		add(casClients, w.casWorker)
	}
	if w.tx.lock {
		add(lockClients, w.lockWorker)
	}
	return proc
}

// txnEnabled reports whether any transaction workload runs.
func (w *workload) txnEnabled() bool { return w.tx.txn || w.tx.cas || w.tx.lock }

// reportTxn reads the transaction workloads' keys through every node,
// saves their history, runs their checkers, and adds their results and
// failures to rep. It is called once the cluster has converged.
func (w *workload) reportTxn(ctx context.Context, cfg *Config, rep *Report) {
	if !w.txnEnabled() {
		return
	}
	if err := w.finalTxnReads(ctx); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	ops := w.tx.h.Ops()
	if err := WriteTxnHistoryJSON(filepath.Join(cfg.OutDir, "txn-history.json"), ops); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	fail := func(prefix string, vs []string) {
		const shown = 20
		for i, v := range vs {
			if i == shown {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %d more violations in summary.json", prefix, len(vs)-shown))
				return
			}
			rep.Failures = append(rep.Failures, prefix+": "+v)
		}
	}
	if w.tx.txn {
		r := CheckTxn(ops)
		rep.Txn = &r
		fail("txn", r.Violations)
	}
	if w.tx.cas {
		r := CheckCAS(ops)
		rep.CAS = &r
		fail("cas", r.Violations)
	}
	if w.tx.lock {
		r := CheckLock(ops, w.tx.lockTTL, cfg.ExpirySkew)
		rep.Lock = &r
		fail("lock", r.Violations)
	}
}

// countTxn adds the transaction workloads' operations to rep's counts and
// to its faults' operation counts; called after Run has counted the
// other workloads'.
func (w *workload) countTxn(rep *Report) {
	if !w.txnEnabled() {
		return
	}
	ops := w.tx.h.Ops()
	c := txnCounts(ops)
	rep.Counts.Total += c.Total
	rep.Counts.OK += c.OK
	rep.Counts.Failed += c.Failed
	rep.Counts.Unknown += c.Unknown
	rep.Counts.Reads += c.Reads
	rep.Counts.Writes += c.Writes
	for i := range rep.Events {
		end := int64(1<<63 - 1)
		if i+1 < len(rep.Events) {
			end = rep.Events[i+1].Start
		}
		for _, op := range ops {
			if op.Call >= rep.Events[i].Start && op.Call < end {
				rep.Events[i].Ops++
			}
		}
	}
}

// txnCounts tallies the transaction workloads' operations like CountOps.
func txnCounts(ops []TxnOp) Counts {
	var c Counts
	for _, op := range ops {
		c.Total++
		switch op.Outcome {
		case OutcomeOK:
			c.OK++
		case OutcomeFail:
			c.Failed++
		case OutcomeUnknown:
			c.Unknown++
		}
		switch op.Kind {
		case TxnMGet, TxnMultiGet, CASGet, CounterGet:
			c.Reads++
		case TxnIncrPair, TxnEvalPair, CASExec, LockAcquire, LockFence, LockRelease:
			c.Writes++
		}
	}
	return c
}

// summaryTxn renders the transaction workloads' results for
// Report.Summary.
func (r *Report) summaryTxn(b *strings.Builder) {
	if t := r.Txn; t != nil {
		fmt.Fprintf(b, "txn: %d EXECs and scripts acknowledged (%d scripts, +%d unknown), %d reads, final values %v; %d violations\n",
			t.Execs, t.Scripts, t.ExecUnknown, t.Reads, t.Final, len(t.Violations))
	}
	if c := r.CAS; c != nil {
		fmt.Fprintf(b, "cas: %d commits, %d aborts, %d unknown, %d reads, final value %d; %d violations\n",
			c.Commits, c.Aborts, c.Unknown, c.Reads, c.Final, len(c.Violations))
	}
	if l := r.Lock; l != nil {
		fmt.Fprintf(b, "lock: %d acquired (%d held surely, %d fenced), %d refused, %d unknown; releases %d ok, %d not held, %d unknown, %d by EVALSHA; %d violations\n",
			l.Acquired, l.Held, l.Fenced, l.Refused, l.AcquireUnknown, l.Released, l.NotHeld, l.ReleaseUnknown, l.ByHash, len(l.Violations))
	}
}
