package chaos

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// txnHist builds transaction histories by hand: each operation takes 5
// time units and the next starts 10 after the previous, unless at sets
// the times explicitly.
type txnHist struct {
	ops []TxnOp
	now int64
}

func (h *txnHist) add(op TxnOp) *txnHist {
	if op.Call == 0 && op.Return == 0 {
		op.Call, op.Return = h.now, h.now+5
		h.now += 10
	}
	if op.Outcome == "" {
		op.Outcome = OutcomeOK
	}
	if op.Node == "" {
		op.Node = "n1"
	}
	h.ops = append(h.ops, op)
	return h
}

// afterAll moves the clock past every operation so far, as the final
// reads come after the run.
func (h *txnHist) afterAll() {
	for _, op := range h.ops {
		h.now = max(h.now, op.Return+10)
	}
}

// at returns op with its interval set.
func at(op TxnOp, call, ret int64) TxnOp {
	op.Call, op.Return = call, ret
	return op
}

func pairKey(i int) string {
	a, _ := txnPair(i)
	return a
}

func incrPair(pair int, x, y int64) TxnOp {
	return TxnOp{Kind: TxnIncrPair, Key: pairKey(pair), Values: []int64{x, y}}
}

func unknownIncr(pair int) TxnOp {
	return TxnOp{Kind: TxnIncrPair, Key: pairKey(pair), Outcome: OutcomeUnknown, Err: "i/o timeout"}
}

func mget(pair int, a, b int64) TxnOp {
	return TxnOp{Kind: TxnMGet, Key: pairKey(pair), Values: []int64{a, b}}
}

// finalPairs adds final reads of every pair through three nodes, pair p
// showing vals[p] in both keys.
func (h *txnHist) finalPairs(vals ...int64) *txnHist {
	h.afterAll()
	for _, n := range []string{"n1", "n2", "n3"} {
		for p, v := range vals {
			op := mget(p, v, v)
			op.Final, op.Node = true, n
			h.add(op)
		}
	}
	return h
}

func requireViolation(t *testing.T, vs []string, want string) {
	t.Helper()
	for _, v := range vs {
		if strings.Contains(v, want) {
			return
		}
	}
	require.Failf(t, "missing violation", "want one containing %q, got %q", want, vs)
}

func TestCheckTxnAcceptsAtomicIncrementsAndUnknownOutcomes(t *testing.T) {
	var h txnHist
	h.add(mget(0, 0, 0)).
		add(incrPair(0, 1, 1)).
		add(TxnOp{Kind: TxnMultiGet, Key: pairKey(0), Values: []int64{1, 1}}).
		add(unknownIncr(0)). // applied: the final value counts it
		add(incrPair(0, 3, 3)).
		add(unknownIncr(1)). // never applied
		add(incrPair(1, 1, 1)).
		add(TxnOp{Kind: TxnIncrPair, Key: pairKey(1), Outcome: OutcomeFail, Err: "TRYAGAIN"}).
		add(TxnOp{Kind: TxnMGet, Key: pairKey(2), Outcome: OutcomeFail, Err: "TRYAGAIN"}).
		// Concurrent increments may return in any order.
		add(at(incrPair(2, 2, 2), 1000, 1010)).add(at(incrPair(2, 1, 1), 1001, 1011))
	h.now = 2000
	h.finalPairs(3, 1, 2)
	res := CheckTxn(h.ops)
	require.Empty(t, res.Violations)
	require.Equal(t, 5, res.Execs)
	require.Equal(t, 2, res.ExecUnknown)
	require.Equal(t, []int64{3, 1, 2}, res.Final)
}

func TestCheckTxnFindsTornTransactions(t *testing.T) {
	t.Run("exec", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 2)).finalPairs(1, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "torn transaction")
	})
	t.Run("read", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1)).add(mget(0, 2, 1)).add(incrPair(0, 2, 2)).finalPairs(2, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "torn read: a=2 b=1")
	})
	t.Run("half applied", func(t *testing.T) {
		var h txnHist
		h.add(unknownIncr(0)).add(TxnOp{Kind: TxnMultiGet, Key: pairKey(0), Values: []int64{1, 0}}).finalPairs(1, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "torn read: a=1 b=0")
	})
	t.Run("nil without watch", func(t *testing.T) {
		var h txnHist
		h.add(TxnOp{Kind: TxnIncrPair, Key: pairKey(0), Nil: true}).finalPairs(0, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "EXEC without WATCH replied nil")
	})
}

func TestCheckTxnFindsLostAndPhantomIncrements(t *testing.T) {
	t.Run("final below acknowledged", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1)).add(incrPair(0, 2, 2)).finalPairs(1, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "lost increments: 2 EXECs were acknowledged, but the final value is 1")
	})
	t.Run("same reply twice", func(t *testing.T) {
		var h txnHist
		h.add(at(incrPair(0, 1, 1), 0, 10)).add(at(incrPair(0, 1, 1), 2, 12)).add(unknownIncr(0)).finalPairs(2, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "two acknowledged EXECs replied 1")
	})
	t.Run("final above acknowledged plus unknown", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1)).add(unknownIncr(0)).finalPairs(3, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "phantom increments")
	})
	t.Run("stale read", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1)).add(incrPair(0, 2, 2)).add(mget(0, 1, 1)).finalPairs(2, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "stale or undone")
	})
	t.Run("value before its increment was sent", func(t *testing.T) {
		var h txnHist
		h.add(mget(0, 1, 1)).add(incrPair(0, 1, 1)).finalPairs(1, 0, 0)
		requireViolation(t, CheckTxn(h.ops).Violations, "only 0 increments had been sent")
	})
	t.Run("nodes disagree", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1)).finalPairs(1, 0, 0)
		h.ops[len(h.ops)-1].Values = []int64{1, 1}
		requireViolation(t, CheckTxn(h.ops).Violations, "final reads disagree")
	})
	t.Run("no final read", func(t *testing.T) {
		var h txnHist
		h.add(incrPair(0, 1, 1))
		requireViolation(t, CheckTxn(h.ops).Violations, "no final read")
	})
}

func TestCheckCounterBounds(t *testing.T) {
	o := func(v, call, ret int64) counterObs { return counterObs{value: v, call: call, ret: ret} }
	// Overlapping observations may see values in any order.
	require.Empty(t, checkCounter([]counterObs{o(2, 10, 30), o(1, 20, 40), o(3, 50, 60)}, []int64{0, 5, 15}))
	// A later observation below an earlier one.
	require.Len(t, checkCounter([]counterObs{o(2, 10, 20), o(1, 30, 40)}, []int64{0, 5}), 1)
	// More than the increments sent by the return.
	require.Len(t, checkCounter([]counterObs{o(2, 10, 20)}, []int64{0, 25}), 1)
	// Reporting is bounded.
	var many []counterObs
	for i := range 20 {
		many = append(many, o(0, int64(100+10*i), int64(105+10*i)))
	}
	many = append(many, o(5, 0, 50))
	vs := checkCounter(many, []int64{0, 1, 2, 3, 4})
	require.Len(t, vs, 6)
	require.Contains(t, vs[5], "15 more stale observations")
}

func TestTxnHistoryJSONRoundTrip(t *testing.T) {
	var h txnHist
	h.add(incrPair(0, 1, 1)).add(unknownIncr(0)).finalPairs(1, 0, 0)
	path := t.TempDir() + "/txn-history.json"
	require.NoError(t, WriteTxnHistoryJSON(path, h.ops))
	back, err := ReadTxnHistoryJSON(path)
	require.NoError(t, err)
	require.Equal(t, h.ops, back)
}
