package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// Synthetic histories for the expiry checker. Times are in milliseconds of
// the history clock; the skew is DefaultExpirySkew (1 s) throughout. Each
// failing history is the proof that one rule can fail a run.

const xk = "chaos:x0"

func ms(n int64) int64 { return n * int64(time.Millisecond) }

// xop is an operation on the expiry key xk, invoked at call ms and
// returning at ret ms (ignored for an unknown outcome).
func xop(in Input, out Output, outcome Outcome, call, ret int64) Op {
	in.Key = xk
	if outcome == OutcomeUnknown {
		out, ret = Output{}, call+1
	}
	return Op{Process: int(call), Node: "n1", Input: in, Output: out, Outcome: outcome, Call: ms(call), Return: ms(ret)}
}

func setPX(v string, ttl int64) Input { return Input{Op: OpSet, Arg: v, TTL: ttl} }
func setNoTTL(v string) Input         { return Input{Op: OpSet, Arg: v} }
func getX() Input                     { return Input{Op: OpGet} }
func pttlX() Input                    { return Input{Op: OpPTTL} }
func pexpire(ttl int64) Input         { return Input{Op: OpPExpire, TTL: ttl} }
func persistX() Input                 { return Input{Op: OpPersist} }
func delX() Input                     { return Input{Op: OpDel} }

func kinds(res ExpiryResult) []ExpiryViolationKind {
	var out []ExpiryViolationKind
	for _, v := range res.Violations {
		if !slices.Contains(out, v.Kind) {
			out = append(out, v.Kind)
		}
	}
	slices.Sort(out)
	return out
}

func checkX(ops []Op) ExpiryResult { return CheckExpiry(ops, DefaultExpirySkew) }

// TestExpiryCheckerAcceptsCorrectHistories: histories a correct cluster can
// produce, including the ones that sit right at the skew bound and the
// ones an unknown outcome explains, must pass.
func TestExpiryCheckerAcceptsCorrectHistories(t *testing.T) {
	ok := OutcomeOK
	for name, ops := range map[string][]Op{
		"expires and stays expired": {
			xop(setPX("a", 1000), okOut, ok, 0, 10),
			xop(getX(), str("a"), ok, 20, 30),
			xop(pttlX(), intOut(950), ok, 40, 50),
			xop(getX(), nilOut, ok, 3000, 3010),
			xop(pttlX(), intOut(-2), ok, 3020, 3030),
			xop(getX(), nilOut, ok, 9000, 9010),
		},
		"early by less than the skew": {
			xop(setPX("a", 3000), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 2001, 2010),
		},
		"late by less than twice the skew": {
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), str("a"), ok, 2300, 2305), // bound: 10 + 300 + 2 s
		},
		"written again after expiry": {
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 3000, 3010),
			xop(setNoTTL("b"), okOut, ok, 3020, 3030),
			xop(getX(), str("b"), ok, 3040, 3050),
			xop(pttlX(), intOut(-1), ok, 3060, 3070),
		},
		"a write concurrent with the gone read explains the value": {
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 2000, 2010),
			xop(setPX("b", 300), okOut, ok, 1990, 2050), // may apply after the nil
			xop(getX(), str("b"), ok, 2100, 2110),
		},
		"an unknown SET may apply at any later time": {
			xop(setPX("a", 300), Output{}, OutcomeUnknown, 0, 0),
			xop(getX(), nilOut, ok, 100, 110),
			xop(getX(), str("a"), ok, 5000, 5010),
		},
		"an unknown DEL may have removed the key": {
			xop(setPX("a", 5000), okOut, ok, 0, 10),
			xop(delX(), Output{}, OutcomeUnknown, 20, 20),
			xop(getX(), nilOut, ok, 30, 40),
		},
		"PERSIST keeps the key": {
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(persistX(), intOut(1), ok, 20, 30),
			xop(getX(), str("a"), ok, 5000, 5010),
			xop(pttlX(), intOut(-1), ok, 5020, 5030),
		},
		"PEXPIRE extends the key": {
			xop(setPX("a", 200), okOut, ok, 0, 10),
			xop(pexpire(5000), intOut(1), ok, 20, 30),
			xop(getX(), str("a"), ok, 3000, 3010),
			xop(pttlX(), intOut(1900), ok, 3020, 3030),
		},
		"an unknown PEXPIRE may extend the key": {
			xop(setPX("a", 200), okOut, ok, 0, 10),
			xop(pexpire(5000), Output{}, OutcomeUnknown, 20, 20),
			xop(getX(), str("a"), ok, 3000, 3010),
		},
		"a PEXPIRE that replied 0 changed nothing, and a PERSIST that may come between allows -1": {
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 2400, 2410),
			xop(pexpire(9000), intOut(0), ok, 2500, 2510),
			xop(setPX("b", 3000), okOut, ok, 2600, 2610),
			xop(persistX(), intOut(1), ok, 2605, 2620),
			xop(pttlX(), intOut(-1), ok, 2615, 2630),
		},
		"an unknown PEXPIRE may shorten the TTL": {
			xop(setPX("a", 5000), okOut, ok, 0, 10),
			xop(pexpire(100), Output{}, OutcomeUnknown, 20, 20),
			xop(getX(), nilOut, ok, 500, 510),
		},
		"a SET concurrent with the anchor may win": {
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(setPX("b", 5000), Output{}, OutcomeUnknown, 5, 5),
			xop(getX(), str("b"), ok, 20, 30),
			xop(pttlX(), intOut(4900), ok, 40, 50),
		},
	} {
		t.Run(name, func(t *testing.T) {
			res := checkX(ops)
			require.Empty(t, res.Violations, "%v", res.Violations)
			require.Equal(t, 1, res.Keys)
		})
	}
}

// TestExpiryCheckerRejectsViolations: each history breaks one rule, and the
// checker must name it.
func TestExpiryCheckerRejectsViolations(t *testing.T) {
	ok := OutcomeOK
	for _, tc := range []struct {
		name string
		ops  []Op
		want []ExpiryViolationKind
	}{
		{"a read after a read that saw the key expired returns it", []Op{
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 2000, 2010),
			xop(getX(), str("a"), ok, 2100, 2110),
		}, []ExpiryViolationKind{ViolationRevival}},
		{"PTTL finds the key again after PTTL -2", []Op{
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(pttlX(), intOut(-2), ok, 2000, 2010),
			xop(pttlX(), intOut(100), ok, 2100, 2110),
		}, []ExpiryViolationKind{ViolationRevival}},
		{"a deleted value comes back", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(delX(), intOut(1), ok, 20, 30),
			xop(getX(), str("a"), ok, 40, 50),
		}, []ExpiryViolationKind{ViolationRevival}},
		{"an expired value comes back after its key was replaced", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(setPX("b", 100), okOut, ok, 20, 30),
			xop(getX(), nilOut, ok, 2000, 2010),
			xop(getX(), str("a"), ok, 2040, 2050), // and b's SET left no room for "a"
		}, []ExpiryViolationKind{ViolationLost, ViolationRevival}},
		{"a replaced value comes back", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(setPX("b", 100), okOut, ok, 20, 30),
			xop(getX(), str("a"), ok, 40, 50), // b's SET also obliged it to see b
		}, []ExpiryViolationKind{ViolationLost, ViolationStale}},
		{"a value nobody wrote", []Op{
			xop(setNoTTL("a"), Output{}, OutcomeFail, 0, 10), // refused: never applied
			xop(getX(), str("a"), ok, 20, 30),
		}, []ExpiryViolationKind{ViolationPhantom}},
		{"expired long before its TTL", []Op{
			xop(setPX("a", 3000), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 500, 510),
		}, []ExpiryViolationKind{ViolationEarlyExpiry}},
		{"PEXPIRE's TTL cut short", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(pexpire(3000), intOut(1), ok, 20, 30),
			xop(pttlX(), intOut(-2), ok, 500, 510),
		}, []ExpiryViolationKind{ViolationEarlyExpiry}},
		{"an acknowledged SET without TTL lost", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(getX(), nilOut, ok, 60000, 60010), // the final read
		}, []ExpiryViolationKind{ViolationLost}},
		{"PERSIST undone", []Op{
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(persistX(), intOut(1), ok, 20, 30),
			xop(getX(), nilOut, ok, 5000, 5010),
		}, []ExpiryViolationKind{ViolationPersist}},
		{"a TTL back after PERSIST", []Op{
			xop(setPX("a", 3000), okOut, ok, 0, 10),
			xop(persistX(), intOut(1), ok, 20, 30),
			xop(pttlX(), intOut(2900), ok, 100, 110),
		}, []ExpiryViolationKind{ViolationPersist}},
		{"more time left than was set", []Op{
			xop(setPX("a", 1000), okOut, ok, 0, 10),
			xop(pttlX(), intOut(5000), ok, 20, 30),
		}, []ExpiryViolationKind{ViolationPTTL}},
		{"a TTL on a key SET without one", []Op{
			xop(setPX("a", 1000), okOut, ok, 0, 10),
			xop(setNoTTL("b"), okOut, ok, 20, 30),
			xop(pttlX(), intOut(900), ok, 40, 50),
		}, []ExpiryViolationKind{ViolationPTTL}},
		{"an unknown SET whose value was seen cannot explain a later loss", []Op{
			xop(setNoTTL("b"), Output{}, OutcomeUnknown, 0, 0),
			xop(getX(), str("b"), ok, 20, 30), // so b applied before 30
			xop(setNoTTL("a"), okOut, ok, 40, 50),
			xop(getX(), nilOut, ok, 60, 70),
		}, []ExpiryViolationKind{ViolationLost}},
		{"an unknown PEXPIRE cannot explain an expiry before its own TTL", []Op{
			xop(setPX("a", 60000), okOut, ok, 0, 10),
			xop(pexpire(3000), Output{}, OutcomeUnknown, 20, 20),
			xop(getX(), nilOut, ok, 500, 510),
		}, []ExpiryViolationKind{ViolationEarlyExpiry}},
		{"more time left than any write that may have come between set", []Op{
			xop(setPX("a", 1000), okOut, ok, 0, 10),
			xop(pexpire(2000), Output{}, OutcomeUnknown, 20, 20),
			xop(pttlX(), intOut(5000), ok, 40, 50),
		}, []ExpiryViolationKind{ViolationPTTL}},
		{"a key returned long after its TTL", []Op{
			xop(setPX("a", 300), okOut, ok, 0, 10),
			xop(getX(), str("a"), ok, 2400, 2410),
		}, []ExpiryViolationKind{ViolationLateExpiry}},
		{"a PEXPIRE certainly replaced by a shorter one does not excuse a late read", []Op{
			xop(setNoTTL("a"), okOut, ok, 0, 10),
			xop(pexpire(60000), intOut(1), ok, 20, 30),
			xop(pexpire(100), intOut(1), ok, 40, 50),
			xop(getX(), str("a"), ok, 2200, 2210),
		}, []ExpiryViolationKind{ViolationLateExpiry}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := checkX(tc.ops)
			require.Equal(t, tc.want, kinds(res), "%v", res.Violations)
			for _, v := range res.Violations {
				require.Contains(t, v.String(), string(v.Kind))
				require.Contains(t, v.String(), xk)
			}
		})
	}
}

// TestExpiryCheckerCountsItsWork: the counts the run reports show that the
// rules were applied, not merely that nothing was flagged.
func TestExpiryCheckerCountsItsWork(t *testing.T) {
	ok := OutcomeOK
	res := checkX([]Op{
		xop(setPX("a", 3000), okOut, ok, 0, 10),
		xop(getX(), str("a"), ok, 20, 30),          // anchored, bounded, revivable
		xop(getX(), Output{}, OutcomeFail, 40, 50), // dropped
		xop(pttlX(), intOut(2900), ok, 60, 70),     // anchored, revivable
	})
	require.Empty(t, res.Violations)
	require.Equal(t, ExpiryResult{Keys: 1, Ops: 3, Anchored: 2, Bounded: 1, Revivable: 2}, res)
}

// TestExpiryAndRegisterKeysAreCheckedApart: porcupine never sees an expiry
// key (its state depends on time), and the expiry checker never sees a
// register key.
func TestExpiryAndRegisterKeysAreCheckedApart(t *testing.T) {
	require.True(t, IsExpiryKey(expiryKeyName(3)))
	require.False(t, IsExpiryKey(keyName(3)))
	expired := []Op{
		xop(setPX("a", 100), okOut, OutcomeOK, 0, 10),
		xop(getX(), nilOut, OutcomeOK, 5000, 5010),
	}
	// As a register, a SET then a nil GET is not linearizable; as an
	// expiry key it is correct.
	res, _ := CheckLinearizable(expired, time.Second)
	require.Equal(t, porcupine.Ok, res)
	require.Empty(t, checkX(expired).Violations)

	lost := []Op{
		op(0, set("chaos:k0", "1"), okOut, OutcomeOK, 0, 10),
		op(1, get("chaos:k0"), nilOut, OutcomeOK, 20, 30),
	}
	require.Equal(t, ExpiryResult{}, checkX(lost))
	res, _ = CheckLinearizable(lost, time.Second)
	require.Equal(t, porcupine.Illegal, res)
}

// TestExpiryWorkloadEndsWithReads: the expiry keys' writes stop early
// enough that every TTL has certainly passed at the end of the run, and
// after that point the workload only reads them.
func TestExpiryWorkloadEndsWithReads(t *testing.T) {
	skew := DefaultExpirySkew
	require.Equal(t, 13*time.Second, expiryWritesFor(18*time.Second, skew))
	require.Equal(t, 4500*time.Millisecond, expiryWritesFor(9*time.Second, skew)) // at least half
	require.GreaterOrEqual(t, 60*time.Second-expiryWritesFor(60*time.Second, skew), expiryMaxTTL*time.Millisecond+2*skew)

	w := &workload{ttl: true, keys: []string{keyName(0)}, expiryKeys: []string{expiryKeyName(0)}, expiryWritesUntil: 1000, longTTL: 600_000}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[OpKind]bool{}
	for seq := range 2000 {
		in := w.randomExpiryInput(rng, 0, seq, 1000)
		require.False(t, in.Op.isWrite(), "a write after the cutoff: %v", in)
		in = w.randomExpiryInput(rng, 0, seq, 999)
		seen[in.Op] = true
		if in.Op == OpSet && in.TTL > 0 || in.Op == OpPExpire {
			require.True(t, in.TTL >= expiryMinTTL && in.TTL <= expiryShortTTL || in.TTL >= expirySkewTTL && in.TTL <= expiryMaxTTL, "TTL %d", in.TTL)
		}
	}
	for _, k := range []OpKind{OpGet, OpPTTL, OpSet, OpPExpire, OpPersist, OpDel} {
		require.True(t, seen[k], "the expiry workload never sends %s", k)
	}
	// The register keys get the long TTL, and only it.
	for seq := range 2000 {
		in := w.randomInput(rng, 0, seq, 0)
		if IsExpiryKey(in.Key) {
			continue
		}
		if in.TTL != 0 {
			require.Equal(t, int64(600_000), in.TTL, "%v", in)
		}
	}
}

// TestClassifyTTLReplies: a format refusal never reached the log, so it is
// dropped like -TRYAGAIN; the replies of binaries without expiry are
// recognised so the run falls back to the register workload.
func TestClassifyTTLReplies(t *testing.T) {
	refused := goredisError("ERR this command needs log format 2 and the cluster is at 1: it rises once every member runs a binary that supports it")
	_, outcome := classify(OpPExpire, Output{}, refused)
	require.Equal(t, OutcomeFail, outcome)
	_, outcome = classify(OpSet, Output{}, goredisError("ERR may or may not have been applied"))
	require.Equal(t, OutcomeUnknown, outcome)
	require.True(t, noTTLReply("ERR key expiry (EX, PX, EXAT, PXAT) is not supported by elastickv yet"))
	require.True(t, noTTLReply("ERR syntax error"))
	require.False(t, noTTLReply(refused.Error()))
}

// goredisError is a server error reply, as go-redis returns it.
type goredisError string

func (e goredisError) Error() string { return string(e) }
func (goredisError) RedisError()     {}

// TestExpiryCheckerSoundOnSimulatedHistories runs the checker over
// histories of a simulated correct store whose times stray as far as the
// time model allows: each operation takes effect at a point L within its
// interval, in a single order; its apply or read time is max(previous, L +
// jitter), with writes never below L and reads up to 300 ms behind it,
// and all up to 500 ms ahead; some writes end unknown (applied or not) and
// some fail (not applied). Not one violation may be reported: a checker
// that flags a correct history would fail chaos runs at random.
func TestExpiryCheckerSoundOnSimulatedHistories(t *testing.T) {
	var total ExpiryResult
	for seed := range uint64(100) {
		ops := simulateExpiryHistory(t, rand.New(rand.NewPCG(seed, 7)), 400, false)
		res := checkX(ops)
		require.Empty(t, res.Violations, "seed %d: %v", seed, res.Violations)
		total.Ops += res.Ops
		total.Anchored += res.Anchored
		total.Bounded += res.Bounded
		total.Revivable += res.Revivable
	}
	t.Logf("%d ops: %d anchored, %d bounded, %d revivable", total.Ops, total.Anchored, total.Bounded, total.Revivable)
	require.Positive(t, total.Anchored)
	require.Positive(t, total.Bounded)
	require.Positive(t, total.Revivable)
}

// TestExpiryCheckerCatchesTimeGoingBack: the same simulated store, but one
// read in ten evaluates expiry 3 s in the past, as a leader whose clock is
// behind would if its stamps ignored the floor: keys come back to life,
// and the checker must say so.
func TestExpiryCheckerCatchesTimeGoingBack(t *testing.T) {
	caught := 0
	for seed := range uint64(20) {
		res := checkX(simulateExpiryHistory(t, rand.New(rand.NewPCG(seed, 7)), 400, true))
		if len(res.Violations) > 0 {
			caught++
		}
	}
	t.Logf("%d of 20 histories caught", caught)
	// Not every history gives the rules a hold: an unknown write may apply
	// at any later time, and so may explain a revival (15 of 20 at the time
	// of writing).
	require.GreaterOrEqual(t, caught, 12, "of 20 histories with time going back")
}

// simulateExpiryHistory produces n operations on xk of a simulated store
// (see TestExpiryCheckerSoundOnSimulatedHistories); with backstep, one
// read in ten is evaluated 3 s before the store's time.
func simulateExpiryHistory(t *testing.T, rng *rand.Rand, n int, backstep bool) []Op {
	t.Helper()
	const milli = int64(time.Millisecond)
	var (
		ops        []Op
		lin, stamp int64 = 0, 0
		exists     bool
		val        string
		expireAt   int64  // 0: no TTL
		lastVal    string // the value that expired last, and when
		lastExpire int64
		ttl        = func() int64 { return 100 + rng.Int64N(2901) }
		jitter     = func(lo, hi int64) int64 { return (lo + rng.Int64N(hi-lo+1)) * milli }
	)
	for i := range n {
		lin += rng.Int64N(400) * milli
		var in Input
		switch r := rng.IntN(100); {
		case r < 35:
			in = getX()
		case r < 50:
			in = pttlX()
		case r < 70:
			in = setPX(fmt.Sprintf("v%d", i), ttl())
		case r < 78:
			in = setNoTTL(fmt.Sprintf("v%d", i))
		case r < 88:
			in = pexpire(ttl())
		case r < 96:
			in = persistX()
		default:
			in = delX()
		}
		write := in.Op.isWrite()
		if write {
			stamp = max(stamp, lin+jitter(0, 500))
		} else {
			stamp = max(stamp, lin+jitter(-300, 500))
		}
		outcome := OutcomeOK
		if write {
			switch r := rng.IntN(100); {
			case r < 3:
				outcome = OutcomeFail
			case r < 8:
				outcome = OutcomeUnknown
			}
		}
		applied := outcome == OutcomeOK || (outcome == OutcomeUnknown && rng.IntN(2) == 0)
		if backstep && !write && rng.IntN(10) == 0 {
			// A read at a time 3 s back sees the state as of then: what
			// has expired since is still there. Nothing is changed.
			var out Output
			at := stamp - 3000*milli
			live := exists || (lastVal != "" && lastExpire > at)
			v := val
			if !exists {
				v = lastVal
			}
			switch {
			case in.Op == OpGet && live:
				out = str(v)
			case in.Op == OpGet:
				out = nilOut
			case live:
				out = intOut(1000)
			default:
				out = intOut(-2)
			}
			in.Key = xk
			ops = append(ops, Op{Process: i, Node: "n2", Input: in, Output: out, Outcome: OutcomeOK,
				Call: lin - rng.Int64N(200)*milli, Return: lin + rng.Int64N(200)*milli})
			continue
		}
		if exists && expireAt != 0 && expireAt <= stamp {
			exists, lastVal, lastExpire, expireAt = false, val, expireAt, 0
		}
		var out Output
		switch in.Op {
		case OpGet:
			out = nilOut
			if exists {
				out = str(val)
			}
		case OpPTTL:
			switch {
			case !exists:
				out = intOut(-2)
			case expireAt == 0:
				out = intOut(-1)
			default:
				out = intOut((expireAt - stamp) / milli)
			}
		case OpSet:
			out = okOut
			if applied {
				exists, val, expireAt = true, in.Arg, 0
				if in.TTL > 0 {
					expireAt = stamp + in.TTL*milli
				}
			}
		case OpPExpire:
			out = intOut(0)
			if exists {
				out = intOut(1)
				if applied {
					expireAt = stamp + in.TTL*milli
				}
			}
		case OpPersist:
			out = intOut(0)
			if exists && expireAt != 0 {
				out = intOut(1)
				if applied {
					expireAt = 0
				}
			}
		case OpDel:
			out = intOut(0)
			if exists {
				out = intOut(1)
				if applied {
					exists, expireAt = false, 0
				}
			}
		default:
			t.Fatalf("the simulation does not send %s", in.Op)
		}
		call := lin - rng.Int64N(200)*milli
		ret := lin + rng.Int64N(200)*milli
		if outcome != OutcomeOK {
			out = Output{}
		}
		in.Key = xk
		ops = append(ops, Op{Process: i, Node: "n1", Input: in, Output: out, Outcome: outcome, Call: call, Return: ret})
	}
	return ops
}
