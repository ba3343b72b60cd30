package chaos

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// casRound adds one CAS attempt: its GET read v (over [call, call+5]) and
// its EXEC (over [call+10, call+15]) ended with outcome; aborted makes
// the EXEC answer nil.
func (h *txnHist) casRound(token string, v int64, outcome Outcome, aborted bool) *txnHist {
	h.add(TxnOp{Kind: CASGet, Key: casKey, Token: token, Values: []int64{v}})
	exec := TxnOp{Kind: CASExec, Key: casKey, Token: token, Outcome: outcome, Nil: aborted}
	if outcome == OutcomeOK {
		exec.Values = []int64{v, v + 1}
	}
	return h.add(exec)
}

func (h *txnHist) finalCounter(key string, v int64) *txnHist {
	h.afterAll()
	for _, n := range []string{"n1", "n2", "n3"} {
		h.add(TxnOp{Kind: CounterGet, Key: key, Values: []int64{v}, Final: true, Node: n})
	}
	return h
}

func TestCheckCASAcceptsSerialCommitsAbortsAndUnknowns(t *testing.T) {
	var h txnHist
	h.casRound("a0", 0, OutcomeOK, false).
		casRound("a1", 1, OutcomeUnknown, false). // applied: 2
		casRound("a2", 2, OutcomeOK, false).      // 3
		casRound("a3", 3, OutcomeUnknown, false). // never applied
		casRound("a4", 3, OutcomeFail, false).
		casRound("a5", 3, OutcomeOK, false) // 4
	// Two clients race from 4: one commits, the other is aborted.
	h.add(at(TxnOp{Kind: CASGet, Key: casKey, Token: "b0", Values: []int64{4}}, 1000, 1005)).
		add(at(TxnOp{Kind: CASGet, Key: casKey, Token: "b1", Values: []int64{4}}, 1001, 1006)).
		add(at(TxnOp{Kind: CASExec, Key: casKey, Token: "b0", Values: []int64{4, 5}}, 1010, 1020)).
		add(at(TxnOp{Kind: CASExec, Key: casKey, Token: "b1", Values: []int64{4, 5}, Nil: true}, 1011, 1021))
	h.now = 2000
	h.finalCounter(casKey, 5)
	res := CheckCAS(h.ops)
	require.Empty(t, res.Violations)
	require.Equal(t, 4, res.Commits)
	require.Equal(t, 1, res.Aborts)
	require.Equal(t, 2, res.Unknown)
	require.Equal(t, int64(5), res.Final)
}

func TestCheckCASFindsLostIncrements(t *testing.T) {
	t.Run("two commits of one value", func(t *testing.T) {
		// Both read 0 under WATCH and both committed 1: WATCH missed the
		// other client's write.
		var h txnHist
		h.add(at(TxnOp{Kind: CASGet, Key: casKey, Token: "a", Values: []int64{0}}, 0, 5)).
			add(at(TxnOp{Kind: CASGet, Key: casKey, Token: "b", Values: []int64{0}}, 1, 6)).
			add(at(TxnOp{Kind: CASExec, Key: casKey, Token: "a", Values: []int64{0, 1}}, 10, 20)).
			add(at(TxnOp{Kind: CASExec, Key: casKey, Token: "b", Values: []int64{0, 1}}, 11, 21))
		h.now = 100
		h.finalCounter(casKey, 1)
		vs := CheckCAS(h.ops).Violations
		requireViolation(t, vs, "lost increment: two acknowledged EXECs both wrote 1")
		requireViolation(t, vs, "lost increments: 2 EXECs committed, but the final value is 1")
	})
	t.Run("stale read under watch", func(t *testing.T) {
		var h txnHist
		h.casRound("a", 0, OutcomeOK, false).casRound("b", 1, OutcomeOK, false).
			casRound("c", 1, OutcomeOK, false).finalCounter(casKey, 2)
		vs := CheckCAS(h.ops).Violations
		requireViolation(t, vs, "stale or undone")
		requireViolation(t, vs, "both wrote 2")
	})
	t.Run("final beyond commits and unknowns", func(t *testing.T) {
		var h txnHist
		h.casRound("a", 0, OutcomeOK, false).finalCounter(casKey, 2)
		requireViolation(t, CheckCAS(h.ops).Violations, "phantom increments")
	})
	t.Run("wrong value written", func(t *testing.T) {
		var h txnHist
		h.add(TxnOp{Kind: CASGet, Key: casKey, Token: "a", Values: []int64{0}}).
			add(TxnOp{Kind: CASExec, Key: casKey, Token: "a", Values: []int64{0, 2}}).finalCounter(casKey, 2)
		requireViolation(t, CheckCAS(h.ops).Violations, "does not write v+1")
	})
	t.Run("nodes disagree", func(t *testing.T) {
		var h txnHist
		h.casRound("a", 0, OutcomeOK, false).finalCounter(casKey, 1)
		h.ops[len(h.ops)-1].Values = []int64{0}
		requireViolation(t, CheckCAS(h.ops).Violations, "final reads disagree")
	})
}

func TestCheckCASFindsSpuriousAborts(t *testing.T) {
	// The key exists (1) and nobody else writes: EXEC must not abort.
	var h txnHist
	h.casRound("a", 0, OutcomeOK, false).casRound("b", 1, OutcomeOK, true).finalCounter(casKey, 1)
	requireViolation(t, CheckCAS(h.ops).Violations, "spurious abort")

	// An unknown commit sent before the EXEC returned explains it, even
	// one invoked before the WATCH (it may apply late).
	h = txnHist{}
	h.casRound("a", 0, OutcomeOK, false).casRound("u", 1, OutcomeUnknown, false).
		casRound("b", 1, OutcomeOK, true).finalCounter(casKey, 2)
	require.Empty(t, CheckCAS(h.ops).Violations)

	// An acknowledged commit that finished before the WATCH does not.
	h = txnHist{}
	h.casRound("a", 0, OutcomeOK, false).casRound("c", 1, OutcomeOK, false).
		casRound("b", 2, OutcomeOK, true).finalCounter(casKey, 2)
	requireViolation(t, CheckCAS(h.ops).Violations, "spurious abort")

	// An absent key is left out: elastickv may abort those more often.
	h = txnHist{}
	h.casRound("b", 0, OutcomeOK, true).finalCounter(casKey, 0)
	require.Empty(t, CheckCAS(h.ops).Violations)
}
