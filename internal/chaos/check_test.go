package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// op builds a history entry; times are in abstract units.
func op(proc int, in Input, out Output, outcome Outcome, call, ret int64) Op {
	return Op{Process: proc, Node: "n1", Input: in, Output: out, Outcome: outcome, Call: call, Return: ret}
}

func set(k, v string) Input      { return Input{Op: OpSet, Key: k, Arg: v} }
func get(k string) Input         { return Input{Op: OpGet, Key: k} }
func str(v string) Output        { return Output{Kind: OutStr, Str: v} }
func intOut(n int64) Output      { return Output{Kind: OutInt, Int: n} }
func incr(k string) Input        { return Input{Op: OpIncr, Key: k} }
func appendIn(k, v string) Input { return Input{Op: OpAppend, Key: k, Arg: v} }

var (
	okOut  = Output{Kind: OutOK}
	nilOut = Output{Kind: OutNil}
)

func check(t *testing.T, ops []Op) porcupine.CheckResult {
	t.Helper()
	res, _ := CheckLinearizable(ops, 10*time.Second)
	return res
}

func TestModelSemantics(t *testing.T) {
	s := register{}
	steps := []struct {
		in   Input
		want Output
	}{
		{get("k"), nilOut},
		{incr("k"), intOut(1)},
		{appendIn("k", "5"), intOut(2)}, // "15"
		{incr("k"), intOut(16)},
		{Input{Op: OpSetNX, Key: "k", Arg: "x"}, nilOut},
		{Input{Op: OpDel, Key: "k"}, intOut(1)},
		{Input{Op: OpDel, Key: "k"}, intOut(0)},
		{Input{Op: OpSetNX, Key: "k", Arg: "0"}, okOut},
		{appendIn("k", "7"), intOut(2)}, // "07": leading zero, not an integer
		{incr("k"), Output{Kind: OutErr, Str: errNotInteger}},
		{set("k", "9223372036854775807"), okOut},
		{incr("k"), Output{Kind: OutErr, Str: errOverflow}},
		{set("k", "-1"), okOut},
		{incr("k"), intOut(0)},
		{get("k"), str("0")},
	}
	for i, st := range steps {
		var got Output
		s, got = apply(s, st.in)
		require.Equal(t, st.want, got, "step %d: %s", i, describeOp(st.in, st.want))
	}
	for _, bad := range []string{"", "-", "-0", "00", "+1", "1a", "99999999999999999999", "-01"} {
		_, ok := parseRedisInt(bad)
		require.False(t, ok, "%q must not parse", bad)
	}
	for _, good := range []string{"0", "-1", "10", "-9223372036854775808"} {
		_, ok := parseRedisInt(good)
		require.True(t, ok, "%q must parse", good)
	}
}

// TestCheckerRejectsStaleRead is the proof that the chaos tests can fail:
// a read that misses an acknowledged write that finished before it began
// is not linearizable, and the checker must say so.
func TestCheckerRejectsStaleRead(t *testing.T) {
	ops := []Op{
		op(0, set("k", "1"), okOut, OutcomeOK, 0, 10),
		op(0, set("k", "2"), okOut, OutcomeOK, 20, 30),
		op(1, get("k"), str("1"), OutcomeOK, 40, 50), // stale: 2 was acknowledged at 30
	}
	require.Equal(t, porcupine.Illegal, check(t, ops))

	// The same read concurrent with the second write is fine.
	ops[2].Call = 25
	require.Equal(t, porcupine.Ok, check(t, ops))
}

func TestCheckerRejectsLostAndDoubledWrites(t *testing.T) {
	lost := []Op{
		op(0, set("k", "1"), okOut, OutcomeOK, 0, 10),
		op(1, get("k"), nilOut, OutcomeOK, 20, 30),
	}
	require.Equal(t, porcupine.Illegal, check(t, lost))

	// An INCR applied twice (e.g. a blind retry of a forwarded write).
	doubled := []Op{
		op(0, incr("c"), intOut(1), OutcomeOK, 0, 10),
		op(1, get("c"), str("2"), OutcomeOK, 20, 30),
	}
	require.Equal(t, porcupine.Illegal, check(t, doubled))

	// Two INCRs that both claim to have produced 1.
	dup := []Op{
		op(0, incr("c"), intOut(1), OutcomeOK, 0, 10),
		op(1, incr("c"), intOut(1), OutcomeOK, 5, 15),
	}
	require.Equal(t, porcupine.Illegal, check(t, dup))
}

func TestCheckerUnknownAndFailedOutcomes(t *testing.T) {
	// An unknown write may take effect later...
	ops := []Op{
		op(0, set("k", "5"), Output{}, OutcomeUnknown, 0, 10),
		op(1, get("k"), nilOut, OutcomeOK, 20, 30),
		op(1, get("k"), str("5"), OutcomeOK, 40, 50),
	}
	require.Equal(t, porcupine.Ok, check(t, ops))
	// ...but only once: it cannot be undone afterwards.
	ops = append(ops, op(1, get("k"), nilOut, OutcomeOK, 60, 70))
	require.Equal(t, porcupine.Illegal, check(t, ops))

	// A failed (TRYAGAIN) write is dropped: its value may never appear.
	failed := []Op{
		op(0, set("k", "7"), Output{}, OutcomeFail, 0, 10),
		op(1, get("k"), str("7"), OutcomeOK, 20, 30),
	}
	require.Equal(t, porcupine.Illegal, check(t, failed))

	// Keys are independent partitions.
	multi := []Op{
		op(0, set("a", "1"), okOut, OutcomeOK, 0, 10),
		op(1, set("b", "2"), okOut, OutcomeOK, 0, 10),
		op(2, get("a"), str("1"), OutcomeOK, 20, 30),
		op(2, get("b"), str("2"), OutcomeOK, 40, 50),
	}
	require.Equal(t, porcupine.Ok, check(t, multi))
}

func TestLinearizabilityFailureMessages(t *testing.T) {
	require.Empty(t, linearizabilityFailure(porcupine.Ok, time.Second))
	require.Contains(t, linearizabilityFailure(porcupine.Illegal, time.Second), "not linearizable")
	// A checker that gave up proves nothing: that is a failure, not a pass.
	require.Contains(t, linearizabilityFailure(porcupine.Unknown, time.Second), "did not finish")
}

func TestLostWritesNamesTheWrite(t *testing.T) {
	ops := []Op{
		op(0, set("k", "1"), okOut, OutcomeOK, 0, 10),
		op(0, set("k", "2"), okOut, OutcomeOK, 20, 30),
	}
	final := op(9, get("k"), str("1"), OutcomeOK, 100, 110)
	final.Node = "n3"
	msgs := lostWrites(append(ops, final), []Op{final})
	require.Len(t, msgs, 1)
	require.Contains(t, msgs[0], `set(k, "2")`)
	require.Contains(t, msgs[0], "n3")

	// An unknown write on the key makes the last value undetermined.
	ops = append(ops, op(1, incr("k"), Output{}, OutcomeUnknown, 40, 50))
	require.Empty(t, lostWrites(append(ops, final), []Op{final}))
}

func TestVisualizationAndHistoryRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ops := []Op{
		op(0, set("k", "1"), okOut, OutcomeOK, 0, 10),
		op(1, get("k"), nilOut, OutcomeOK, 20, 30),
	}
	res, info := CheckLinearizable(ops, time.Second)
	require.Equal(t, porcupine.Illegal, res)
	html := filepath.Join(dir, "v.html")
	require.NoError(t, WriteVisualization(html, info, []NemesisEvent{{Name: "kill", Start: 5, Healed: 15, RecoveredAll: 18}}))
	b, err := os.ReadFile(html)
	require.NoError(t, err)
	require.True(t, strings.Contains(string(b), "<html"), "visualisation is HTML")

	js := filepath.Join(dir, "h.json")
	require.NoError(t, WriteHistoryJSON(js, ops))
	back, err := ReadHistoryJSON(js)
	require.NoError(t, err)
	require.Equal(t, ops, back)
}

// TestModelTTLFlag: on the register keys a TTL never fires during the run,
// so the model only tracks whether the key has one; PERSIST's and
// PEXPIRE's 1/0 and PTTL's -2/-1/positive follow from that.
func TestModelTTLFlag(t *testing.T) {
	const long = 600_000
	setpx := Input{Op: OpSet, Key: "k", Arg: "1", TTL: long}
	pexp := Input{Op: OpPExpire, Key: "k", TTL: long}
	pers := Input{Op: OpPersist, Key: "k"}
	pttl := Input{Op: OpPTTL, Key: "k", TTL: long}
	ttlLeft := Output{Kind: OutInt, Int: pttlPositive}
	s := register{}
	steps := []struct {
		in   Input
		want Output
	}{
		{pttl, intOut(-2)},
		{pexp, intOut(0)},
		{pers, intOut(0)},
		{setpx, okOut},
		{pttl, ttlLeft},
		{incr("k"), intOut(2)}, // INCR keeps the TTL
		{appendIn("k", "5"), intOut(2)},
		{pttl, ttlLeft},
		{pers, intOut(1)},
		{pers, intOut(0)},
		{pttl, intOut(-1)},
		{pexp, intOut(1)},
		{pttl, ttlLeft},
		{set("k", "3"), okOut}, // a plain SET clears it
		{pttl, intOut(-1)},
		{pexp, intOut(1)},
		{Input{Op: OpDel, Key: "k"}, intOut(1)},
		{Input{Op: OpSetNX, Key: "k", Arg: "4"}, okOut},
		{pttl, intOut(-1)},
	}
	for i, st := range steps {
		var got Output
		s, got = apply(s, st.in)
		require.Equal(t, st.want, got, "step %d: %s", i, describeOp(st.in, st.want))
	}
	// A recorded PTTL reply counts as "time left" only within (0, TTL].
	require.Equal(t, ttlLeft, normalize(pttl, intOut(long)))
	require.Equal(t, intOut(long+1), normalize(pttl, intOut(long+1)))
	require.Equal(t, intOut(0), normalize(pttl, intOut(0)))
}

// TestCheckerRejectsTTLAnomalies: the TTL replies on register keys are
// checked linearizably, and these histories are not linearizable.
func TestCheckerRejectsTTLAnomalies(t *testing.T) {
	const long = 600_000
	setpx := Input{Op: OpSet, Key: "k", Arg: "1", TTL: long}
	pers := Input{Op: OpPersist, Key: "k"}
	pttl := Input{Op: OpPTTL, Key: "k", TTL: long}

	// PERSIST cannot remove one TTL twice.
	twice := []Op{
		op(0, setpx, okOut, OutcomeOK, 0, 10),
		op(1, pers, intOut(1), OutcomeOK, 20, 30),
		op(2, pers, intOut(1), OutcomeOK, 40, 50),
	}
	require.Equal(t, porcupine.Illegal, check(t, twice))
	twice[2].Output = intOut(0)
	require.Equal(t, porcupine.Ok, check(t, twice))

	// A SET PX acknowledged before a PTTL began leaves a TTL to report.
	noTTL := []Op{
		op(0, setpx, okOut, OutcomeOK, 0, 10),
		op(1, pttl, intOut(-1), OutcomeOK, 20, 30),
	}
	require.Equal(t, porcupine.Illegal, check(t, noTTL))
	noTTL[1].Output = intOut(long - 5)
	require.Equal(t, porcupine.Ok, check(t, noTTL))
	// More time left than any TTL the workload sets.
	noTTL[1].Output = intOut(long + 5)
	require.Equal(t, porcupine.Illegal, check(t, noTTL))

	// An unknown PERSIST may explain a -1.
	unknown := []Op{
		op(0, setpx, okOut, OutcomeOK, 0, 10),
		op(1, pers, Output{}, OutcomeUnknown, 20, 30),
		op(2, pttl, intOut(-1), OutcomeOK, 40, 50),
	}
	require.Equal(t, porcupine.Ok, check(t, unknown))
}

func TestSameDigestsComparesHashesOnly(t *testing.T) {
	require.True(t, SameDigests([]string{"316:6cc0", "317:6cc0", "318:6cc0"}))
	require.False(t, SameDigests([]string{"316:6cc0", "316:6cc1", "316:6cc0"}))
	require.False(t, SameDigests([]string{"error: dial", "error: dial", "error: dial"}))
	require.False(t, SameDigests([]string{"316:6cc0", "error: x"}))
	require.False(t, SameDigests(nil))
}
