package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
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
// What CheckLock can catch, and what it cannot: see its comment.

// The lock workload's keys: the lock and the fencing counter.
const (
	lockKey  = "chaos:mutex"
	fenceKey = "chaos:fence"
)

// lockReleaseScript deletes KEYS[1] if it holds ARGV[1]: the release of
// the Redis documentation's lock pattern.
const lockReleaseScript = "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end"

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
	defer w.wg.Done()
	rng := rand.New(rand.NewPCG(w.seed, 0x6c6f636b+uint64(id)))
	conns := w.dialAll()
	defer closeAll(conns)
	send := func(kind TxnKind, token string) TxnOp {
		node := rng.IntN(len(conns))
		op := w.sendLock(conns[node], kind, token)
		op.Process, op.Node = proc, w.names[node]
		w.tx.h.Add(op)
		return op
	}
	for seq := 0; ; seq++ {
		if w.stopped() {
			return
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
			if !w.sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond) {
				return
			}
		default:
			if !w.pause(rng) {
				return
			}
		}
	}
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

// sendLock sends one operation of the lock workload.
func (w *workload) sendLock(cl *goredis.Client, kind TxnKind, token string) TxnOp {
	ctx, cancel := context.WithTimeout(context.Background(), w.opTimeout)
	defer cancel()
	op := TxnOp{Kind: kind, Key: lockKey, Token: token, Call: w.h.Now()}
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
		n, err = cl.Eval(ctx, lockReleaseScript, []string{lockKey}, token).Int64()
		op.Values = []int64{n}
	case TxnIncrPair, TxnMGet, TxnMultiGet, CASGet, CASExec, CounterGet:
		err = fmt.Errorf("chaos: %s is not a lock workload operation", kind)
	}
	op.Return = w.h.Now()
	op.Outcome, op.Nil = classifyTxn(kind, err)
	if err != nil {
		op.Values = nil
		if op.Outcome != OutcomeOK || !op.Nil {
			op.Err = err.Error()
		}
	}
	return op
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
	// answered 0, ReleaseUnknown those of unknown outcome.
	Released       int      `json:"released"`
	NotHeld        int      `json:"not_held"`
	ReleaseUnknown int      `json:"release_unknown"`
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
//     through every node) is that of a counter that only increments.
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
		case TxnIncrPair, TxnMGet, TxnMultiGet, CASGet, CASExec:
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
		case LockAcquire, TxnIncrPair, TxnMGet, TxnMultiGet, CASGet, CASExec, CounterGet:
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
