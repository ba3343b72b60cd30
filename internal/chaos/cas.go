package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The workload "cas" is the optimistic check-and-set counter of Redis's
// documentation: clients on random nodes loop WATCH c; GET c; MULTI;
// SET c v+1; EXEC, and start again when EXEC answers nil because another
// client changed c in between. Nothing else writes c, so if WATCH is
// sound every committed EXEC raises c by exactly one: the counter only
// grows, each committed value is written once, and the final value counts
// the commits. A lost increment shows as two commits of one value, a
// final value below the acknowledged commits, or a read going backwards.

// casKey is the CAS counter.
const casKey = "chaos:cas"

// casClients is the number of CAS clients.
const casClients = 3

// casWorker runs one CAS client until the workload stops.
func (w *workload) casWorker(id, proc int) {
	w.runClient(0x636173+uint64(id), func(rng *rand.Rand, conns []*goredis.Client, seq int) bool {
		node := rng.IntN(len(conns))
		get, exec, sent := w.casAttempt(conns[node], "c"+strconv.Itoa(id)+"-"+strconv.Itoa(seq))
		get.Process, get.Node = proc, w.names[node]
		w.tx.h.Add(get)
		if sent {
			exec.Process, exec.Node = proc, w.names[node]
			w.tx.h.Add(exec)
		}
		return !(get.Outcome == OutcomeFail || (sent && exec.Outcome == OutcomeFail)) || w.pause(rng)
	})
}

// casAttempt runs one WATCH/GET/MULTI/SET/EXEC round on one connection.
// get's interval starts before WATCH, so the value it read was current at
// some instant in it; exec is only sent (sent=true) after a GET that
// answered.
func (w *workload) casAttempt(cl *goredis.Client, token string) (get, exec TxnOp, sent bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*w.opTimeout)
	defer cancel()
	get = TxnOp{Kind: CASGet, Key: casKey, Token: token, Call: w.h.Now()}
	exec = TxnOp{Kind: CASExec, Key: casKey, Token: token}
	err := cl.Watch(ctx, func(tx *goredis.Tx) error {
		gctx, gcancel := context.WithTimeout(ctx, w.opTimeout)
		s, err := tx.Get(gctx, casKey).Result()
		gcancel()
		get.Return = w.h.Now()
		var v int64
		switch {
		case errors.Is(err, goredis.Nil):
			err = nil
		case err == nil:
			v, err = parseCounter(s)
		}
		get.Outcome, _ = classifyTxn(CASGet, err)
		if err != nil {
			get.Err = err.Error()
			return fmt.Errorf("cas get: %w", err)
		}
		get.Values = []int64{v}
		exec.Call, sent = w.h.Now(), true
		ectx, ecancel := context.WithTimeout(ctx, w.opTimeout)
		defer ecancel()
		cmds, err := tx.TxPipelined(ectx, func(p goredis.Pipeliner) error {
			p.Set(ectx, casKey, v+1, 0)
			return nil
		})
		exec.Return = w.h.Now()
		if err == nil {
			err = setOK(cmds)
		}
		exec.Outcome, exec.Nil = classifyTxn(CASExec, err)
		switch {
		case err == nil:
			exec.Values = []int64{v, v + 1}
		case exec.Outcome == OutcomeOK && exec.Nil:
			exec.Values = []int64{v, v + 1}
		default:
			exec.Err = err.Error()
		}
		return nil
	}, casKey)
	if err != nil && get.Return == 0 {
		// WATCH itself failed: nothing was read or sent.
		get.Return, get.Outcome, get.Err = w.h.Now(), OutcomeFail, err.Error()
	}
	return get, exec, sent
}

// setOK checks that an EXEC's one SET answered OK.
func setOK(cmds []goredis.Cmder) error {
	if len(cmds) != 1 {
		return fmt.Errorf("%w: EXEC replied %d results for one SET", errBadReply, len(cmds))
	}
	sc, ok := cmds[0].(*goredis.StatusCmd)
	if !ok {
		return fmt.Errorf("%w: %T in EXEC", errBadReply, cmds[0])
	}
	if s, err := sc.Result(); err != nil || s != "OK" {
		return fmt.Errorf("%w: SET inside EXEC replied %q, %v", errBadReply, s, err)
	}
	return nil
}

// CASResult is CheckCAS's account of the cas workload. Violations empty
// means every check held.
type CASResult struct {
	// Commits counts acknowledged EXECs that wrote, Aborts those that
	// answered nil (WATCH saw a change), Unknown those whose outcome the
	// client never learned. Reads counts the GETs that answered.
	Commits int `json:"commits"`
	Aborts  int `json:"aborts"`
	Unknown int `json:"unknown"`
	Reads   int `json:"reads"`
	// Final is the counter's final value.
	Final      int64    `json:"final"`
	Violations []string `json:"violations,omitempty"`
}

// CheckCAS checks the cas workload's history:
//
//   - no lost increment: no two acknowledged EXECs wrote the same value
//     (both read v under WATCH and both committed v+1, so one increment
//     vanished);
//   - every acknowledged EXEC wrote the value it claims, v+1 for the v its
//     GET read (a check of the harness's bookkeeping);
//   - the final reads through every node agree, and the final value is at
//     least the number of acknowledged commits and at most that plus the
//     EXECs of unknown outcome, each of which may or may not have applied;
//   - the counter only grows in real time and never exceeds the commits
//     sent (checkCounter), over the GETs, the acknowledged commits'
//     values and the final reads;
//   - no spurious abort: an EXEC that answered nil after its GET saw the
//     key present needs another commit (acknowledged or unknown) that may
//     have applied between its WATCH and its EXEC. Redis aborts only when
//     a watched key changed, and nothing but the CAS commits writes c. A
//     key absent at WATCH is left out: elastickv may abort those more
//     often than Redis (a deletion in the same slot counts), a documented
//     difference.
func CheckCAS(ops []TxnOp) CASResult {
	var res CASResult
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}
	gets := map[string]TxnOp{}
	var execs, finals []TxnOp
	var obs []counterObs
	var incs []int64
	committed := map[int64]TxnOp{}
	for _, op := range ops {
		if op.Key != casKey || op.Outcome == OutcomeFail {
			continue
		}
		switch op.Kind {
		case CASGet:
			if op.Outcome != OutcomeOK {
				continue
			}
			if len(op.Values) != 1 {
				violate("GET's reply is not a counter: %s", op)
				continue
			}
			res.Reads++
			gets[op.Token] = op
			obs = append(obs, counterObs{op.Values[0], op.Call, op.Return, op})
		case CounterGet:
			if op.Final && len(op.Values) == 1 {
				finals = append(finals, op)
				obs = append(obs, counterObs{op.Values[0], op.Call, op.Return, op})
			}
		case CASExec:
			execs = append(execs, op)
		case TxnIncrPair, TxnEvalPair, TxnMGet, TxnMultiGet, LockAcquire, LockFence, LockRelease:
			// Other workloads'.
		}
	}
	for _, op := range execs {
		switch {
		case op.Outcome == OutcomeUnknown:
			res.Unknown++
			incs = append(incs, op.Call)
			continue
		case op.Nil:
			res.Aborts++
			continue
		}
		res.Commits++
		incs = append(incs, op.Call)
		g, ok := gets[op.Token]
		if len(op.Values) != 2 || !ok || op.Values[0] != g.Values[0] || op.Values[1] != op.Values[0]+1 {
			violate("acknowledged EXEC does not write v+1 for the v its GET read (%v): %s", g.Values, op)
			continue
		}
		w := op.Values[1]
		if prev, dup := committed[w]; dup {
			violate("lost increment: two acknowledged EXECs both wrote %d: %s and %s (their GETs: %s and %s)", w, prev, op, gets[prev.Token], g)
		}
		committed[w] = op
		obs = append(obs, counterObs{w, op.Call, op.Return, op})
	}
	if len(finals) == 0 {
		violate("no final read of %s", casKey)
	} else {
		res.Final = finals[0].Values[0]
		for _, f := range finals[1:] {
			if f.Values[0] != res.Final {
				violate("final reads disagree: %s and %s", finals[0], f)
			}
		}
		if res.Final < int64(res.Commits) {
			violate("lost increments: %d EXECs committed, but the final value is %d", res.Commits, res.Final)
		}
		if res.Final > int64(res.Commits+res.Unknown) {
			violate("phantom increments: the final value is %d, but only %d EXECs committed and %d had an unknown outcome", res.Final, res.Commits, res.Unknown)
		}
	}
	violations := checkCounter(obs, incs)
	for _, v := range violations {
		violate("%s", v)
	}
	res.Violations = append(res.Violations, spuriousAborts(execs, gets)...)
	return res
}

// spuriousAborts finds EXECs that answered nil though no other commit can
// have applied between their WATCH (the GET's invocation) and their
// return, for attempts whose GET saw the key present.
func spuriousAborts(execs []TxnOp, gets map[string]TxnOp) []string {
	// Writers that may have applied: acknowledged commits and unknowns.
	var writers []TxnOp
	for _, op := range execs {
		if op.Outcome == OutcomeUnknown || (op.Outcome == OutcomeOK && !op.Nil) {
			writers = append(writers, op)
		}
	}
	sort.Slice(writers, func(i, j int) bool { return writers[i].Call < writers[j].Call })
	const shown = 5
	var out []string
	n := 0
	for _, op := range execs {
		if op.Outcome != OutcomeOK || !op.Nil {
			continue
		}
		g, ok := gets[op.Token]
		if !ok || g.Values[0] == 0 {
			continue
		}
		watchedAt := g.Call
		found := false
		for _, wr := range writers {
			if wr.Call >= op.Return {
				break
			}
			if wr.Token != op.Token && (wr.Outcome == OutcomeUnknown || wr.Return > watchedAt) {
				found = true
				break
			}
		}
		if !found {
			if n < shown {
				out = append(out, fmt.Sprintf("spurious abort: EXEC answered nil, but no other commit can have applied between its WATCH at %v and its return: %s (its GET: %s)",
					time.Duration(watchedAt).Round(time.Millisecond), op, g))
			}
			n++
		}
	}
	if n > shown {
		out = append(out, fmt.Sprintf("%d more spurious aborts", n-shown))
	}
	return out
}
