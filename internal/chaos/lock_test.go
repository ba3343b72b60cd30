package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The lock checker's tests use a TTL of 1000 and a skew of 100 time units
// (nanoseconds of the history clock).
const (
	testLockTTL  = 1000 * time.Nanosecond
	testLockSkew = 100 * time.Nanosecond
)

// hold adds one acquisition by token over [call, call+5], its fence
// (value f, over [call+10, call+15]; f < 0: none) and one release that
// answered rel (-1: unknown, -2: failed, certainly not applied) over
// [call+20, call+25].
func (h *txnHist) hold(token string, call, f, rel int64) *txnHist {
	h.add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: token}, call, call+5))
	if f >= 0 {
		h.add(at(TxnOp{Kind: LockFence, Key: fenceKey, Token: token, Values: []int64{f}}, call+10, call+15))
	}
	r := TxnOp{Kind: LockRelease, Key: lockKey, Token: token, Values: []int64{rel}}
	switch rel {
	case -1:
		r = TxnOp{Kind: LockRelease, Key: lockKey, Token: token, Outcome: OutcomeUnknown}
	case -2:
		r = TxnOp{Kind: LockRelease, Key: lockKey, Token: token, Outcome: OutcomeFail, Err: "TRYAGAIN"}
	}
	return h.add(at(r, call+20, call+25))
}

func checkLock(h *txnHist) LockResult {
	return CheckLock(h.ops, testLockTTL, testLockSkew)
}

func TestCheckLockAcceptsSerialHolds(t *testing.T) {
	var h txnHist
	h.hold("a", 0, 1, 1).
		add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: "b", Nil: true}, 10, 14)). // refused
		hold("c", 30, 2, 1).
		add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: "d", Outcome: OutcomeUnknown}, 60, 70)).
		add(at(TxnOp{Kind: LockRelease, Key: lockKey, Token: "d", Values: []int64{0}}, 71, 75)).
		// A release of unknown outcome may have freed the lock when it
		// was invoked.
		hold("e", 100, 3, -1).
		hold("f", 130, 4, 1).
		// A release that certainly failed: the next holder waits for the
		// TTL minus the skew to pass.
		hold("g", 200, 5, -2).
		hold("h", 200+900, 6, 1)
	h.now = 3000
	h.finalCounter(fenceKey, 6)
	res := checkLock(&h)
	require.Empty(t, res.Violations)
	require.Equal(t, 6, res.Acquired)
	require.Equal(t, 1, res.Refused)
	require.Equal(t, 1, res.AcquireUnknown)
	require.Equal(t, 6, res.Held)
	require.Equal(t, 6, res.Fenced)
	require.Equal(t, 4, res.Released)
	require.Equal(t, 1, res.NotHeld)
	require.Equal(t, 1, res.ReleaseUnknown)
}

func TestCheckLockFindsOverlappingHolds(t *testing.T) {
	t.Run("both released", func(t *testing.T) {
		var h txnHist
		h.hold("a", 0, 1, 1).hold("b", 10, 2, 1).finalCounter(fenceKey, 2)
		requireViolation(t, checkLock(&h).Violations, "mutual exclusion broken: a held the lock")
	})
	t.Run("release unknown, invoked after the other's acquisition", func(t *testing.T) {
		var h txnHist
		h.hold("a", 0, 1, -1)
		h.ops[len(h.ops)-1].Call, h.ops[len(h.ops)-1].Return = 600, 700
		h.hold("b", 500, 2, 1).finalCounter(fenceKey, 2)
		requireViolation(t, checkLock(&h).Violations, "mutual exclusion broken")
	})
	t.Run("release failed, within the TTL", func(t *testing.T) {
		var h txnHist
		h.hold("a", 0, 1, -2).hold("b", 500, 2, 1).finalCounter(fenceKey, 2)
		requireViolation(t, checkLock(&h).Violations, "mutual exclusion broken")
	})
	t.Run("release failed, after the TTL", func(t *testing.T) {
		// b acquires after a's TTL minus the skew: a's lock may have
		// expired, which is allowed.
		var h txnHist
		h.hold("a", 0, 1, -2).hold("b", 900, 2, 1).finalCounter(fenceKey, 2)
		require.Empty(t, checkLock(&h).Violations)
	})
}

func TestCheckLockFindsFencingOutOfOrder(t *testing.T) {
	// a's acquisition returned before b's was invoked, yet a's fencing
	// value is the larger. The certain intervals do not overlap (a's
	// release was invoked early), so only the fencing order shows it.
	var h txnHist
	h.add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: "a"}, 0, 5)).
		add(at(TxnOp{Kind: LockFence, Key: fenceKey, Token: "a", Values: []int64{2}}, 6, 9)).
		add(at(TxnOp{Kind: LockRelease, Key: lockKey, Token: "a", Values: []int64{1}}, 10, 40)).
		add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: "b"}, 7, 20)).
		add(at(TxnOp{Kind: LockFence, Key: fenceKey, Token: "b", Values: []int64{1}}, 21, 25)).
		add(at(TxnOp{Kind: LockRelease, Key: lockKey, Token: "b", Values: []int64{1}}, 26, 30))
	h.now = 100
	h.finalCounter(fenceKey, 2)
	vs := checkLock(&h).Violations
	requireViolation(t, vs, "fencing order broken: a acquired before b was invoked, but took fencing value 2, not below 1")
}

func TestCheckLockFindsStolenLocks(t *testing.T) {
	var h txnHist
	h.hold("a", 0, 1, 0).finalCounter(fenceKey, 1)
	requireViolation(t, checkLock(&h).Violations, "lock stolen")

	// After an unknown release, a 0 proves nothing: the first may have
	// deleted the lock.
	h = txnHist{}
	h.hold("a", 0, 1, -1).add(at(TxnOp{Kind: LockRelease, Key: lockKey, Token: "a", Values: []int64{0}}, 40, 45)).finalCounter(fenceKey, 1)
	require.Empty(t, checkLock(&h).Violations)

	// Past the TTL, the lock may have expired.
	h = txnHist{}
	h.add(at(TxnOp{Kind: LockAcquire, Key: lockKey, Token: "a"}, 0, 5)).
		add(at(TxnOp{Kind: LockRelease, Key: lockKey, Token: "a", Values: []int64{0}}, 850, 950)).finalCounter(fenceKey, 0)
	require.Empty(t, checkLock(&h).Violations)
}

func TestCheckLockChecksTheFenceCounter(t *testing.T) {
	var h txnHist
	h.hold("a", 0, 1, 1).hold("b", 30, 2, 1).finalCounter(fenceKey, 1)
	vs := checkLock(&h).Violations
	requireViolation(t, vs, "stale or undone")
}
