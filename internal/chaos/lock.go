package chaos

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The workload "lock" is the single-instance Redis lock with a Lua
// compare-and-delete release: a client acquires with SET lock token NX PX
// ttl (a token unique in the run), and while it holds the lock it takes a
// fencing number with INCR fence, keeps the lock a few milliseconds, and
// releases it with lockReleaseScript, which deletes the lock only if it
// still holds the client's token. The TTL is long against the hold (a few
// milliseconds, plus the operations' own latency, each bounded by
// Config.OpTimeout), so under a correct store no lock expires while held.
//
// Half the releases run the script by its SHA1 (EVALSHA), loaded once with
// SCRIPT LOAD through one node before the run: the script cache is
// replicated, so EVALSHA must find it on every node, through every fault,
// on members that joined later and on nodes restored from a snapshot. A
// NOSCRIPT reply is a violation.
//
// What CheckLock can catch, and what it cannot: see its comment.

// The lock workload's keys: the lock and the fencing counter.
const (
	lockKey  = "chaos:mutex"
	fenceKey = "chaos:fence"
)

// lockReleaseScript deletes KEYS[1] if it holds ARGV[1]: the release of
// the Redis documentation's lock pattern.
const lockReleaseScript = "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end"

// lockReleaseSHA is lockReleaseScript's SHA1, the name EVALSHA gives it.
var lockReleaseSHA = func() string {
	sum := sha1.Sum([]byte(lockReleaseScript))
	return hex.EncodeToString(sum[:])
}()

// loadLockScript loads the release script through one node with SCRIPT
// LOAD, retrying (the load is idempotent) until the node acknowledges it
// or limit passes.
func loadLockScript(ctx context.Context, c *cluster, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	n := c.nodes[0]
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		sha, err := n.admin.ScriptLoad(cctx, lockReleaseScript).Result()
		ccancel()
		switch {
		case err == nil && sha == lockReleaseSHA:
			return nil
		case err == nil:
			return fmt.Errorf("SCRIPT LOAD via %s answered %q, not the script's SHA1 %s", n.name, sha, lockReleaseSHA)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("SCRIPT LOAD via %s: %w", n.name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// The lock workload's shape. lockTTL is long against a hold (a few
// operations) so holds end by release, not expiry; lockReleaseTries
// bounds the attempts to release a lock whose release outcome is not
// known, after which it is left to expire.
const (
	lockClients      = 3
	lockTTL          = 8 * time.Second
	lockReleaseTries = 3
)

// lockWorker runs one lock client until the workload stops.
func (w *workload) lockWorker(id, proc int) {
	w.runClient(0x6c6f636b+uint64(id), func(rng *rand.Rand, conns []*goredis.Client, seq int) bool {
		send := func(kind TxnKind, token string) TxnOp {
			node := rng.IntN(len(conns))
			op := w.sendLock(conns[node], kind, token, kind == LockRelease && rng.IntN(2) == 0)
			op.Process, op.Node = proc, w.names[node]
			w.tx.h.Add(op)
			return op
		}
		token := "L" + strconv.Itoa(id) + "-" + strconv.Itoa(seq)
		acq := send(LockAcquire, token)
		switch {
		case acq.Outcome == OutcomeOK && !acq.Nil:
			send(LockFence, token)
			// Hold the lock a little; the release follows even when the
			// workload is stopping, so no lock is left to expire.
			time.Sleep(time.Duration(2+rng.IntN(10)) * time.Millisecond)
			w.releaseLock(send, rng, token)
		case acq.Outcome == OutcomeUnknown:
			// The lock may be ours: release it, so the others need not
			// wait for the TTL.
			w.releaseLock(send, rng, token)
		case acq.Outcome == OutcomeOK:
			// Held by another client: try again shortly.
			return w.sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
		default:
			return w.pause(rng)
		}
		return true
	})
}

// releaseLock sends the release until its outcome is known (replied 1 or
// 0), at most lockReleaseTries times. Retrying is safe: the token is
// unique, so a second compare-and-delete can only delete this client's
// own lock.
func (w *workload) releaseLock(send func(TxnKind, string) TxnOp, rng *rand.Rand, token string) {
	for range lockReleaseTries {
		if rel := send(LockRelease, token); rel.Outcome == OutcomeOK {
			return
		}
		time.Sleep(time.Duration(20+rng.IntN(50)) * time.Millisecond)
	}
}

// sendLock sends one operation of the lock workload; a release runs the
// script by its SHA1 when byHash is set.
func (w *workload) sendLock(cl *goredis.Client, kind TxnKind, token string, byHash bool) TxnOp {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	op := TxnOp{Kind: kind, Key: lockKey, Token: token, Call: w.h.Now(), ByHash: byHash}
	var (
		n   int64
		err error
	)
	switch kind {
	case LockAcquire:
		var s string
		s, err = cl.Do(ctx, "set", lockKey, token, "nx", "px", w.tx.lockTTL.Milliseconds()).Text()
		if err == nil && s != "OK" {
			err = fmt.Errorf("%w: SET NX replied %q", errBadReply, s)
		}
	case LockFence:
		op.Key = fenceKey
		n, err = cl.Incr(ctx, fenceKey).Result()
		op.Values = []int64{n}
	case LockRelease:
		if byHash {
			n, err = cl.EvalSha(ctx, lockReleaseSHA, []string{lockKey}, token).Int64()
		} else {
			n, err = cl.Eval(ctx, lockReleaseScript, []string{lockKey}, token).Int64()
		}
		op.Values = []int64{n}
	case TxnIncrPair, TxnEvalPair, TxnMGet, TxnMultiGet, CASGet, CASExec, CounterGet:
		err = fmt.Errorf("chaos: %s is not a lock workload operation", kind)
	}
	op.Return = w.h.Now()
	op.Outcome, op.Nil = classifyTxn(kind, err)
	if noScript(err) {
		// The script did not run: nothing applied. CheckLock reports it.
		op.Outcome = OutcomeFail
	}
	if err != nil {
		op.Values = nil
		if op.Outcome != OutcomeOK || !op.Nil {
			op.Err = err.Error()
		}
	}
	return op
}

// noScript reports whether err is EVALSHA's NOSCRIPT reply.
func noScript(err error) bool {
	var rerr goredis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// LockResult is CheckLock's account of the lock workload. Violations empty
// means every check held.
type LockResult struct {
	// Acquired counts acknowledged acquisitions, Refused the SET NXs that
	// found the lock held, AcquireUnknown those of unknown outcome.
	Acquired       int `json:"acquired"`
	Refused        int `json:"refused"`
	AcquireUnknown int `json:"acquire_unknown"`
	// Held counts the acquisitions with a nonempty interval in which the
	// lock was certainly theirs, the ones the mutual exclusion check
	// compares; Fenced those of them whose fencing INCR answered inside
	// it, the ones the fencing order check compares.
	Held   int `json:"held"`
	Fenced int `json:"fenced"`
	// Released counts releases that answered 1, NotHeld those that
	// answered 0, ReleaseUnknown those of unknown outcome; ByHash the
	// releases by EVALSHA that answered 0 or 1.
	Released       int      `json:"released"`
	NotHeld        int      `json:"not_held"`
	ReleaseUnknown int      `json:"release_unknown"`
	ByHash         int      `json:"by_hash"`
	Violations     []string `json:"violations,omitempty"`
}

// lockHold is one acquisition and what followed it.
type lockHold struct {
	acq      TxnOp
	fence    *TxnOp
	releases []TxnOp
	// start and end bound the interval in which the lock certainly held
	// this acquisition's token (see CheckLock); empty when end <= start.
	start, end int64
}

// CheckLock checks the lock workload's history, with the lock's TTL and
// the clock skew bound of the expiry time model (expiry.go: an operation
// invoked at t sees time at most t + skew, and a SET's TTL counts from a
// stamp no earlier than its invocation).
//
// For each acquisition H whose SET NX answered OK, the lock certainly held
// H's token throughout [start, end], where start is the SET's return (it
// applied by then) and end is
//
//   - the invocation of a release of H that answered 1 (it found the token
//     still there when it applied, and the token is unique, so the lock
//     held it continuously from the SET until then); otherwise
//   - the earliest invocation of a release of H that may have applied
//     (acknowledged or unknown), and no later than the SET's invocation
//     plus the TTL minus the skew, before which no node can see the lock
//     expired.
//
// The checks, each sound under that model (a violation means the store
// broke the lock's guarantee, not that the harness guessed):
//
//   - mutual exclusion: no two acquisitions' certain intervals overlap;
//   - fencing order: if H1's SET returned before H2's was invoked (H1
//     certainly acquired first), and both fencing INCRs answered within
//     their certain intervals, H1's fencing value is below H2's;
//   - no lock stolen: a release that answered 0 (not our token) before
//     the TTL minus the skew had passed since the SET's invocation, with no
//     earlier release of the same token that may have applied, shows the
//     lock was deleted or replaced while held;
//   - the fencing counter's own history (checkCounter and the final reads
//     through every node) is that of a counter that only increments;
//   - EVALSHA never answers NOSCRIPT: the script was loaded before the
//     run, and the script cache is replicated.
//
// What it cannot catch: anything about acquisitions of unknown outcome
// (their start is unknown); overlaps within the skew of a TTL's end, or
// in the gap between an operation's invocation and its effect; the order
// of two acquisitions whose SETs ran concurrently. It also relies on the
// clocks being those of one machine, as the whole expiry model does.
func CheckLock(ops []TxnOp, ttl, skew time.Duration) LockResult {
	var res LockResult
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, fmt.Sprintf(format, args...))
	}
	holds := map[string]*lockHold{}
	var tokens []string
	var fenceObs []counterObs
	var fenceIncs []int64
	var finals []TxnOp
	for _, op := range ops {
		switch op.Kind {
		case LockAcquire:
			switch {
			case op.Outcome == OutcomeUnknown:
				res.AcquireUnknown++
			case op.Outcome != OutcomeOK:
			case op.Nil:
				res.Refused++
			default:
				res.Acquired++
				holds[op.Token] = &lockHold{acq: op}
				tokens = append(tokens, op.Token)
			}
		case LockFence:
			if op.Outcome == OutcomeFail {
				continue
			}
			fenceIncs = append(fenceIncs, op.Call)
			if op.Outcome != OutcomeOK {
				continue
			}
			if len(op.Values) != 1 {
				violate("fencing INCR's reply is not an integer: %s", op)
				continue
			}
			fenceObs = append(fenceObs, counterObs{op.Values[0], op.Call, op.Return, op})
		case CounterGet:
			if op.Key == fenceKey && op.Final && len(op.Values) == 1 {
				finals = append(finals, op)
				fenceObs = append(fenceObs, counterObs{op.Values[0], op.Call, op.Return, op})
			}
		case LockRelease:
			if strings.HasPrefix(op.Err, "NOSCRIPT") {
				violate("EVALSHA of the release script, loaded with SCRIPT LOAD before the run, answered NOSCRIPT: %s", op)
				continue
			}
			if op.ByHash && op.Outcome == OutcomeOK {
				res.ByHash++
			}
			switch {
			case op.Outcome == OutcomeUnknown:
				res.ReleaseUnknown++
			case op.Outcome != OutcomeOK:
			case len(op.Values) != 1 || (op.Values[0] != 0 && op.Values[0] != 1):
				violate("release's reply is not 0 or 1: %s", op)
			case op.Values[0] == 1:
				res.Released++
			default:
				res.NotHeld++
			}
		case TxnIncrPair, TxnEvalPair, TxnMGet, TxnMultiGet, CASGet, CASExec:
			// Other workloads'.
		}
	}
	// Attach fences and releases to their acquisitions (ops are in call
	// order, so a hold's releases are too).
	for _, op := range ops {
		h, ok := holds[op.Token]
		if !ok || op.Outcome == OutcomeFail {
			continue
		}
		switch op.Kind {
		case LockFence:
			if op.Outcome == OutcomeOK && len(op.Values) == 1 {
				f := op
				h.fence = &f
			}
		case LockRelease:
			h.releases = append(h.releases, op)
		case LockAcquire, TxnIncrPair, TxnEvalPair, TxnMGet, TxnMultiGet, CASGet, CASExec, CounterGet:
		}
	}
	var held []*lockHold
	for _, t := range tokens {
		h := holds[t]
		deadline := h.acq.Call + int64(ttl) - int64(skew)
		h.start, h.end = h.acq.Return, deadline
		mayHaveApplied := false
		for _, r := range h.releases {
			if r.Outcome == OutcomeOK && len(r.Values) == 1 && r.Values[0] == 1 {
				h.end = r.Call
				break
			}
			if r.Outcome == OutcomeOK && len(r.Values) == 1 && r.Values[0] == 0 && !mayHaveApplied && r.Return < deadline {
				violate("lock stolen: the release answered 0 (the token was gone) %v after the SET was invoked, before its TTL of %v (minus the skew) had passed: %s, acquired by %s",
					time.Duration(r.Return-h.acq.Call).Round(time.Millisecond), ttl, r, h.acq)
			}
			mayHaveApplied = true
			h.end = min(h.end, r.Call)
		}
		if h.end > h.start {
			held = append(held, h)
		}
	}
	res.Held = len(held)

	// Mutual exclusion: sweep the certain intervals by start, keeping the
	// one that reaches furthest.
	const shown = 5
	sort.SliceStable(held, func(i, j int) bool { return held[i].start < held[j].start })
	overlaps := 0
	var reach *lockHold
	for _, h := range held {
		if reach != nil && h.start < reach.end {
			if overlaps < shown {
				violate("mutual exclusion broken: %s held the lock from %v to at least %v, and %s acquired it at %v (before %v)",
					reach.acq.Token, time.Duration(reach.start).Round(time.Millisecond), time.Duration(reach.end).Round(time.Millisecond),
					h.acq, time.Duration(h.start).Round(time.Millisecond), time.Duration(reach.end).Round(time.Millisecond))
			}
			overlaps++
		}
		if reach == nil || h.end > reach.end {
			reach = h
		}
	}
	if overlaps > shown {
		violate("%d more overlapping holds", overlaps-shown)
	}

	// Fencing order, over the holds whose INCR answered while the lock was
	// certainly theirs. Sorted by the SET's return; for each hold, every
	// hold whose SET returned before this one's was invoked must have a
	// smaller fencing value, so it suffices to compare with the largest
	// of them.
	var fenced []*lockHold
	for _, h := range held {
		if h.fence != nil && h.fence.Return <= h.end {
			fenced = append(fenced, h)
		}
	}
	res.Fenced = len(fenced)
	byReturn := append([]*lockHold(nil), fenced...)
	sort.SliceStable(byReturn, func(i, j int) bool { return byReturn[i].acq.Return < byReturn[j].acq.Return })
	best := make([]int, len(byReturn))
	for i := range byReturn {
		best[i] = i
		if i > 0 && byReturn[best[i-1]].fence.Values[0] > byReturn[i].fence.Values[0] {
			best[i] = best[i-1]
		}
	}
	misordered := 0
	for _, h := range fenced {
		n := sort.Search(len(byReturn), func(i int) bool { return byReturn[i].acq.Return >= h.acq.Call })
		if n == 0 {
			continue
		}
		if b := byReturn[best[n-1]]; b.fence.Values[0] >= h.fence.Values[0] {
			if misordered < shown {
				violate("fencing order broken: %s acquired before %s was invoked, but took fencing value %d, not below %d (%s, %s)",
					b.acq.Token, h.acq.Token, b.fence.Values[0], h.fence.Values[0], *b.fence, *h.fence)
			}
			misordered++
		}
	}
	if misordered > shown {
		violate("%d more holds out of fencing order", misordered-shown)
	}

	if len(finals) == 0 {
		violate("no final read of %s", fenceKey)
	}
	for _, f := range finals[min(1, len(finals)):] {
		if f.Values[0] != finals[0].Values[0] {
			violate("final reads of %s disagree: %s and %s", fenceKey, finals[0], f)
		}
	}
	for _, v := range checkCounter(fenceObs, fenceIncs) {
		violate("%s: %s", fenceKey, v)
	}
	return res
}
