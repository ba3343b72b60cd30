package chaos

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The expiry keys exercise real expiry: short TTLs that fire during the
// run. Their state depends on time, which porcupine's register model does
// not have, so they are checked by CheckExpiry instead, against the
// invariant of issue #14 section 2: once any node has reported a key as
// expired, no node returns it later; expiry may come late (or early) by at
// most the skew bound, never undone; nothing acknowledged is lost.
//
// The time model the rules rely on. Every history time is the harness's
// monotonic clock; the servers run on the same machine and stamp with its
// wall clock, so the two differ only by clock adjustments during the run
// (NTP slews at most 0.05%, a few ms a minute), which the skew absorbs.
//
//   - A write applies at its entry's stamp, and a stamp is never below the
//     wall clock of the leader that assigned it (T = max(clock, ...)), which
//     it read after the client sent the write: apply time >= the write's
//     invocation. Stamps may run ahead of the clock, by Δ (500 ms) when a
//     leader takes office and by a little more after two elections in
//     quick succession, so apply time <= the write's return + skew.
//   - A read evaluates expiry at a read time R within [invoke - skew,
//     return + skew]: ahead of the clock for the same reason as stamps,
//     behind it by at most the age of the newest committed stamp plus Δ
//     (an idle leader stamps an empty entry every Δ/2).
//   - Apply and read times never go backwards in the order the operations
//     take effect, so once a key is expired at some read it stays expired
//     until a later write creates it again.
//
// The skew bound is Config.ExpirySkew (DefaultExpirySkew, 1 s): twice the
// default Δ, which covers a leader change right after another and any
// drift between the clocks of one machine.

// expiryKeyPrefix names the expiry keys ("chaos:x0", "chaos:x1", ...); a
// register key is "chaos:k<i>", so the two families never share a key.
const expiryKeyPrefix = "chaos:x"

// DefaultExpirySkew is the default Config.ExpirySkew (see the time model
// above).
const DefaultExpirySkew = time.Second

// expiryKeyName is the name of expiry key i.
func expiryKeyName(i int) string { return expiryKeyPrefix + strconv.Itoa(i) }

// IsExpiryKey reports whether key belongs to the expiry family, which
// CheckExpiry checks and CheckLinearizable leaves out.
func IsExpiryKey(key string) bool { return strings.HasPrefix(key, expiryKeyPrefix) }

// ExpiryViolationKind names the rule an expiry-key read broke.
type ExpiryViolationKind string

// The kinds of violation CheckExpiry reports.
const (
	// ViolationRevival: a read returned a key (or a value) that an earlier
	// read, or a DEL, had already seen gone, and no write that could have
	// created it again could have applied in between. Expiry was undone.
	ViolationRevival ExpiryViolationKind = "revival"
	// ViolationStale: a read returned a value that a later write had
	// certainly replaced before the read began (or that an earlier read
	// had already seen replaced).
	ViolationStale ExpiryViolationKind = "stale"
	// ViolationPhantom: a read returned a value no write ever set, or a
	// key that no write ever created.
	ViolationPhantom ExpiryViolationKind = "phantom"
	// ViolationEarlyExpiry: a read that certainly came after a SET ... PX
	// or PEXPIRE, and certainly before its TTL minus the skew, with no
	// other write that could have come between, found the key missing.
	ViolationEarlyExpiry ExpiryViolationKind = "early-expiry"
	// ViolationLost: as ViolationEarlyExpiry, for a SET without a TTL, or
	// a read that returned another value than the SET it must see.
	ViolationLost ExpiryViolationKind = "lost"
	// ViolationPersist: after a PERSIST that replied 1, with no write that
	// could have come after it, a read found the key missing or with a
	// TTL.
	ViolationPersist ExpiryViolationKind = "persist"
	// ViolationPTTL: a PTTL reply that the last write rules out: -1 where
	// a TTL is set, a TTL where none is, or more time left than was set.
	ViolationPTTL ExpiryViolationKind = "pttl"
	// ViolationLateExpiry: a read returned a value after every TTL that
	// could have applied to it had certainly passed, skew included.
	ViolationLateExpiry ExpiryViolationKind = "late-expiry"
)

// ExpiryViolation is one expiry-key read that broke a rule.
type ExpiryViolation struct {
	Kind ExpiryViolationKind `json:"kind"`
	Key  string              `json:"key"`
	// Read is the offending read.
	Read Op `json:"read"`
	// Cause is the operation that rules the read's reply out: the write it
	// had to see, or the earlier read or write that saw the key gone.
	// Zero for a phantom.
	Cause Op `json:"cause"`
	// Detail says what was expected.
	Detail string `json:"detail"`
}

func (v ExpiryViolation) String() string {
	s := fmt.Sprintf("%s on %s: %s", v.Kind, v.Key, describeTimed(v.Read))
	if v.Cause.Input.Op != "" {
		s += "; because of " + describeTimed(v.Cause)
	}
	return s + ": " + v.Detail
}

// describeTimed renders an operation with its node and real-time interval
// (from the start of the run).
func describeTimed(op Op) string {
	out := op.Output
	if op.Outcome == OutcomeUnknown {
		out = Output{Kind: OutUnknown}
	}
	ret := time.Duration(op.Return).String()
	if op.Outcome == OutcomeUnknown {
		ret = "?"
	}
	return fmt.Sprintf("%s via %s [%v, %s]", describeOp(op.Input, out), op.Node, time.Duration(op.Call), ret)
}

// ExpiryResult is what CheckExpiry found, with counts that show the rules
// had something to bite on.
type ExpiryResult struct {
	// Keys and Ops count the expiry keys and their operations that entered
	// the check (failed operations are dropped, as for porcupine).
	Keys int `json:"keys"`
	Ops  int `json:"ops"`
	// Anchored counts reads that a preceding write obliged to see the key
	// (early-expiry, lost, persist and pttl rules).
	Anchored int `json:"anchored"`
	// Bounded counts GETs of a value whose latest possible expiry was
	// known (late-expiry rule).
	Bounded int `json:"bounded"`
	// Revivable counts reads that found the key present, each checked
	// against every earlier read and write (revival, stale, phantom).
	Revivable  int               `json:"revivable"`
	Violations []ExpiryViolation `json:"violations,omitempty"`
}

// never is the return time of an operation whose outcome is unknown: it
// may take effect at any time after its invocation, or not at all.
const never = int64(math.MaxInt64)

// CheckExpiry checks the operations on expiry keys in ops (others are
// ignored) against the rules of the time model above, with skew as the
// bound on how far apply and read times may stray from the real-time
// interval of their operation. Every rule is sound: it reports a read only
// when no order of the operations consistent with their real-time
// intervals, their replies and the skew could produce it; an operation of
// unknown outcome counts as possibly applied at any time after its
// invocation, or never.
func CheckExpiry(ops []Op, skew time.Duration) ExpiryResult {
	var res ExpiryResult
	byKey := map[string]*expiryKey{}
	var order []string
	for _, op := range ops {
		if !IsExpiryKey(op.Input.Key) || op.Outcome == OutcomeFail {
			continue
		}
		if op.Outcome == OutcomeUnknown && !op.Input.Op.isWrite() {
			continue // a read that failed tells nothing
		}
		k := byKey[op.Input.Key]
		if k == nil {
			k = &expiryKey{key: op.Input.Key, creators: map[string][]Op{}}
			byKey[op.Input.Key] = k
			order = append(order, op.Input.Key)
		}
		res.Ops++
		if op.Input.Op.isWrite() {
			k.writes = append(k.writes, op)
			if op.Input.Op == OpSet {
				k.creators[op.Input.Arg] = append(k.creators[op.Input.Arg], op)
			}
		} else {
			k.reads = append(k.reads, op)
		}
	}
	slices.Sort(order) // deterministic report order
	res.Keys = len(order)
	for _, key := range order {
		k := byKey[key]
		k.skew = int64(skew)
		k.prepare()
		k.checkAnchors(&res)
		k.checkRevivals(&res)
		k.checkLate(&res)
	}
	return res
}

// expiryKey is one key's history, split into writes and reads, each
// sorted by invocation time.
type expiryKey struct {
	key      string
	skew     int64
	writes   []Op
	reads    []Op
	creators map[string][]Op // SET value -> the SETs that wrote it
	// seen maps a value to the earliest return of a GET that returned it.
	seen map[string]int64
	// setRetMax[i] is the latest ret of the SETs among writes[:i+1] (-1
	// when none): by then every one of them had certainly applied.
	setRetMax []int64
}

func (k *expiryKey) prepare() {
	byCall := func(a, b Op) int {
		if a.Call != b.Call {
			if a.Call < b.Call {
				return -1
			}
			return 1
		}
		return 0
	}
	slices.SortStableFunc(k.writes, byCall)
	slices.SortStableFunc(k.reads, byCall)
	k.seen = map[string]int64{}
	for _, r := range k.reads {
		if r.Input.Op == OpGet && r.Output.Kind == OutStr {
			if t, ok := k.seen[r.Output.Str]; !ok || r.Return < t {
				k.seen[r.Output.Str] = r.Return
			}
		}
	}
	k.setRetMax = make([]int64, len(k.writes))
	m := int64(-1)
	for i, w := range k.writes {
		if w.Input.Op == OpSet {
			m = max(m, k.ret(w))
		}
		k.setRetMax[i] = m
	}
}

// ret is when write w had certainly taken effect: retOf, except for a
// SET of unknown outcome whose value a GET returned, which had certainly
// applied (once: values are unique) when the first such GET returned.
func (k *expiryKey) ret(w Op) int64 {
	if w.Outcome == OutcomeUnknown && w.Input.Op == OpSet && len(k.creators[w.Input.Arg]) == 1 {
		if t, ok := k.seen[w.Input.Arg]; ok {
			return t
		}
	}
	return retOf(w)
}

// retOf is when an operation had certainly taken effect: its return, or
// never for an unknown outcome.
func retOf(op Op) int64 {
	if op.Outcome == OutcomeUnknown {
		return never
	}
	return op.Return
}

// effectful reports whether a write may have changed the key: every SET,
// a DEL, PEXPIRE or PERSIST that replied 1, and any write of unknown
// outcome. A DEL, PEXPIRE or PERSIST that replied 0 found nothing to
// change (a missing key, or for PERSIST a key without a TTL).
func effectful(w Op) bool {
	if w.Outcome == OutcomeUnknown || w.Input.Op == OpSet {
		return true
	}
	return w.Output.Kind == OutInt && w.Output.Int == 1
}

// definite reports whether a write certainly changed the key.
func definite(w Op) bool { return w.Outcome == OutcomeOK && effectful(w) }

// missing reports whether a read found the key absent.
func missing(r Op) bool {
	return (r.Input.Op == OpGet && r.Output.Kind == OutNil) ||
		(r.Input.Op == OpPTTL && r.Output.Kind == OutInt && r.Output.Int == -2)
}

// ttlNanos is a millisecond TTL as history time.
func ttlNanos(ms int64) int64 { return ms * int64(time.Millisecond) }

// firstAfter is the index of the first of ops (sorted by invocation)
// invoked after t.
func firstAfter(ops []Op, t int64) int {
	i, _ := slices.BinarySearchFunc(ops, t, func(o Op, t int64) int {
		if o.Call <= t {
			return -1
		}
		return 1
	})
	return i
}

// checkAnchors applies the rules that oblige a read to see the key. An
// anchor is a write that certainly took effect and leaves the key present:
// a SET (its value, its TTL or none), a PEXPIRE that replied 1 (its TTL)
// or a PERSIST that replied 1 (no TTL). For a read r that began after the
// anchor a returned, let P be the effectful writes other than a that may
// have applied between them (ret(x) >= a.Call and x.Call <= r.Return). If
// P holds no DEL, the key is present at r unless a TTL fired, and the TTL
// in force was set by a or by a SET or PEXPIRE in P (a PERSIST only
// removes it). Each of those applied no earlier than its invocation, so
// the key expires no earlier than E = the least of their invocation + TTL,
// and r's read time is no later than r.Return + skew. Hence:
//   - if r.Return + skew < E, r sees the key (early-expiry, or lost when
//     no TTL could be in force, or persist for a PERSIST anchor);
//   - a GET sees a's value or a value of a SET in P (lost);
//   - a PTTL is -1 only if a left no TTL or P holds a PERSIST or a SET
//     without TTL, and otherwise at most the largest TTL of a and P (read
//     times are never below the apply time of what they see).
//
// The window is measured from the anchor's invocation to the read's
// return, not from the anchor's acknowledgement to the read's invocation:
// a write may apply right after it was sent and be acknowledged much
// later (a slow commit, a forwarded write), and a read may evaluate at
// its very end, so only these two ends bound the times that matter.
//
// Writes of unknown outcome stay in P for every later read (they may apply
// at any time), except a SET whose value a read has returned: it applied
// once, before that read returned (ret). The scan of reads for an anchor
// ends at a DEL in P, and at the first SET that certainly followed the
// anchor, whose own anchor judges the reads after it.
func (k *expiryKey) checkAnchors(res *ExpiryResult) {
	for ai, a := range k.writes {
		if !definite(a) || a.Input.Op == OpDel {
			continue
		}
		var cands []Op // P's candidates, by invocation
		stop := never
		for xi, x := range k.writes {
			if xi == ai || !effectful(x) || k.ret(x) < a.Call {
				continue
			}
			cands = append(cands, x)
			if x.Input.Op == OpDel || (x.Input.Op == OpSet && definite(x) && x.Call > a.Return) {
				stop = min(stop, x.Call)
			}
		}
		for _, r := range k.reads[firstAfter(k.reads, a.Return):] {
			if r.Call >= stop {
				break
			}
			if r.Return >= stop {
				continue
			}
			res.Anchored++
			pset := cands[:firstAfter(cands, r.Return)]
			if v, bad := k.anchorVerdict(a, pset, r); bad {
				res.Violations = append(res.Violations, v)
			}
		}
	}
}

// ttlOf is the TTL (ms) a write leaves in force when it is the last to
// set one: SET's PX or none, PEXPIRE's argument, none for PERSIST.
func ttlOf(w Op) int64 {
	switch w.Input.Op {
	case OpSet, OpPExpire:
		return w.Input.TTL
	default:
		return 0
	}
}

// anchorVerdict judges read r against anchor a and the writes pset that
// may have applied between them (see checkAnchors).
func (k *expiryKey) anchorVerdict(a Op, pset []Op, r Op) (ExpiryViolation, bool) {
	earliest := never // E: the earliest the key can expire
	var ttlMax int64  // the largest TTL that may be in force; 0: none
	noTTLMay := ttlOf(a) == 0
	values := map[string]bool{}
	if a.Input.Op == OpSet {
		values[a.Input.Arg] = true
	}
	for _, w := range append([]Op{a}, pset...) {
		if t := ttlOf(w); t > 0 {
			earliest = min(earliest, w.Call+ttlNanos(t))
			ttlMax = max(ttlMax, t)
		}
		switch w.Input.Op {
		case OpPersist:
			noTTLMay = true
		case OpSet:
			values[w.Input.Arg] = true
			noTTLMay = noTTLMay || w.Input.TTL == 0
		default:
			// PEXPIRE sets a TTL (above); no other write reaches here.
		}
	}
	bad := func(kind ExpiryViolationKind, detail string) (ExpiryViolation, bool) {
		if a.Input.Op == OpPersist && kind != ViolationEarlyExpiry {
			kind = ViolationPersist
		}
		if len(pset) > 0 {
			detail += fmt.Sprintf(" (%d writes may have come between)", len(pset))
		}
		return ExpiryViolation{Kind: kind, Key: k.key, Read: r, Cause: a, Detail: detail}, true
	}
	if missing(r) {
		switch {
		case earliest == never:
			return bad(ViolationLost, "the key must be present: no write that may come between could remove it")
		case r.Return+k.skew < earliest:
			return bad(ViolationEarlyExpiry, fmt.Sprintf("the key must live until %v - skew", time.Duration(earliest)))
		}
		return ExpiryViolation{}, false
	}
	switch r.Input.Op {
	case OpGet:
		if a.Input.Op == OpSet && r.Output.Kind == OutStr && !values[r.Output.Str] {
			return bad(ViolationLost, fmt.Sprintf("the value must be %q or one written since", a.Input.Arg))
		}
	case OpPTTL:
		n := r.Output.Int
		switch {
		case n == -1 && !noTTLMay:
			return bad(ViolationPTTL, "a TTL is in force: PTTL must not be -1")
		case n >= 0 && ttlMax == 0:
			return bad(ViolationPTTL, "no TTL can be in force: PTTL must be -1")
		case n > ttlMax:
			return bad(ViolationPTTL, fmt.Sprintf("PTTL must be at most %d", ttlMax))
		}
	default:
		// Only GET and PTTL are reads.
	}
	return ExpiryViolation{}, false
}

// checkRevivals applies the rules that keep a key gone once it was seen
// gone. For a GET of value u, the only writes that can make u current are
// the SETs of u (values are unique per write); for each such SET c, u is
// certainly gone by the end of any read that began after c returned and
// saw the key missing or holding another value, and by the end of any SET
// or deleting DEL that began after c returned. If every c is followed by
// such evidence that ended before the GET began, u came back. For a PTTL
// that found the key present, any SET can create it: the latest moment one
// of them (invoked before the PTTL returned) had certainly applied is M,
// and a read that saw the key missing, or a deleting DEL, invoked after M
// and finished before the PTTL began means the key came back from nothing.
func (k *expiryKey) checkRevivals(res *ExpiryResult) {
	for _, r := range k.reads {
		switch {
		case r.Input.Op == OpGet && r.Output.Kind == OutStr:
			res.Revivable++
			cs := k.creators[r.Output.Str]
			if len(cs) == 0 {
				res.Violations = append(res.Violations, ExpiryViolation{Kind: ViolationPhantom, Key: k.key, Read: r,
					Detail: "no SET of this key wrote this value"})
				continue
			}
			var first ExpiryViolation
			revived := true
			for i, c := range cs {
				v, gone := k.goneAfter(c, r)
				if !gone {
					revived = false
					break
				}
				if i == 0 {
					first = v
				}
			}
			if revived {
				res.Violations = append(res.Violations, first)
			}
		case r.Input.Op == OpPTTL && r.Output.Kind == OutInt && r.Output.Int >= -1:
			res.Revivable++
			// The SETs invoked before r returned are writes[:n].
			n := firstAfter(k.writes, r.Return)
			if n == 0 || k.setRetMax[n-1] < 0 {
				res.Violations = append(res.Violations, ExpiryViolation{Kind: ViolationPhantom, Key: k.key, Read: r,
					Detail: "no SET of this key was invoked before this read returned"})
				continue
			}
			if ev, ok := k.absentBetween(k.setRetMax[n-1], r.Call, ""); ok {
				res.Violations = append(res.Violations, ExpiryViolation{Kind: ViolationRevival, Key: k.key, Read: r, Cause: ev,
					Detail: "the key was gone after every SET had applied, and none could create it again"})
			}
		}
	}
}

// goneAfter looks for evidence that the value written by c was gone
// before read r began (see checkRevivals).
func (k *expiryKey) goneAfter(c Op, r Op) (ExpiryViolation, bool) {
	from := k.ret(c)
	if from == never {
		return ExpiryViolation{}, false
	}
	if ev, ok := k.absentBetween(from, r.Call, c.Input.Arg); ok {
		kind, detail := ViolationRevival, "the value was gone, and only this SET writes it"
		if !missing(ev) && ev.Input.Op != OpDel {
			kind, detail = ViolationStale, "the value was replaced, and only this SET writes it"
		}
		return ExpiryViolation{Kind: kind, Key: k.key, Read: r, Cause: ev, Detail: detail}, true
	}
	return ExpiryViolation{}, false
}

// absentBetween finds an operation invoked after from and finished before
// until that saw, or made, the key not hold value u: a read that found it
// missing (or, when u is not "", holding another value), a deleting DEL,
// or (when u is not "") a SET of another value.
func (k *expiryKey) absentBetween(from, until int64, u string) (Op, bool) {
	for _, o := range k.reads[firstAfter(k.reads, from):] {
		if o.Call >= until {
			break
		}
		if o.Return >= until {
			continue
		}
		if missing(o) || (u != "" && o.Input.Op == OpGet && o.Output.Kind == OutStr && o.Output.Str != u) {
			return o, true
		}
	}
	for _, w := range k.writes[firstAfter(k.writes, from):] {
		if w.Call >= until {
			break
		}
		if !definite(w) || w.Return >= until {
			continue
		}
		if w.Input.Op == OpDel || (u != "" && w.Input.Op == OpSet && w.Input.Arg != u) {
			return w, true
		}
	}
	return Op{}, false
}

// checkLate applies the late-expiry rule to each GET of a value u written
// by a single SET c that certainly applied. The TTL u has at the read is
// the one set by the last of c and the PEXPIREs and PERSISTs that may have
// applied between c and the read; any of them may be that last one unless
// another, which certainly replied 1, certainly came after it, after c and
// before the read. Each possible last one bounds the expiry: c's or a
// PEXPIRE's return + skew + its TTL (none for a PERSIST or a SET without
// TTL). A read invoked a skew after the largest bound, when its read time
// is certainly past every possible expiry, must not see u.
func (k *expiryKey) checkLate(res *ExpiryResult) {
	for _, r := range k.reads {
		if r.Input.Op != OpGet || r.Output.Kind != OutStr {
			continue
		}
		cs := k.creators[r.Output.Str]
		if len(cs) != 1 || cs[0].Outcome != OutcomeOK {
			continue
		}
		c := cs[0]
		var mods []Op
		for _, w := range k.writes {
			if w.Call > r.Return {
				break
			}
			if (w.Input.Op == OpPExpire || w.Input.Op == OpPersist) && effectful(w) && k.ret(w) >= c.Call {
				mods = append(mods, w)
			}
		}
		bound := func(x Op) int64 {
			switch {
			case retOf(x) == never || x.Input.Op == OpPersist || x.Input.TTL == 0:
				return never
			}
			return x.Return + k.skew + ttlNanos(x.Input.TTL)
		}
		dominated := func(x Op) bool {
			for _, y := range mods {
				if definite(y) && y.Call > c.Return && y.Call > retOf(x) && y.Return < r.Call {
					return true
				}
			}
			return false
		}
		latest, cause := int64(-1), c
		for _, x := range append([]Op{c}, mods...) {
			if dominated(x) {
				continue
			}
			if b := bound(x); b > latest {
				latest, cause = b, x
			}
		}
		if latest == never || latest < 0 {
			continue
		}
		res.Bounded++
		if r.Call >= latest+k.skew {
			res.Violations = append(res.Violations, ExpiryViolation{Kind: ViolationLateExpiry, Key: k.key, Read: r, Cause: cause,
				Detail: fmt.Sprintf("the value expired by %v at the latest (skew included), and the read began at %v", time.Duration(latest+k.skew), time.Duration(r.Call))})
		}
	}
}
