package chaos

import (
	"fmt"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

// CheckLinearizable runs porcupine over the register and collection keys'
// operations in ops with a time limit and returns its verdict and the data
// for a visualisation. The expiry keys' operations (IsExpiryKey) are left
// out: their state depends on time, which the register model does not
// have; CheckExpiry checks them. So are the queue's (IsQueueKey), which
// CheckQueue accounts for element by element.
func CheckLinearizable(ops []Op, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(Model(), porcupineOps(modelOps(ops)), timeout)
}

// modelOps returns the operations the porcupine model checks, in order.
func modelOps(ops []Op) []Op {
	out := make([]Op, 0, len(ops))
	for _, op := range ops {
		if !IsExpiryKey(op.Input.Key) && !IsQueueKey(op.Input.Key) {
			out = append(out, op)
		}
	}
	return out
}

// linearizabilityFailure turns a verdict into a failure message, or "" for
// a pass. A checker that ran out of time has proven nothing, so Unknown is
// a failure too: a run is only green when the history was fully checked.
func linearizabilityFailure(res porcupine.CheckResult, timeout time.Duration) string {
	switch res {
	case porcupine.Ok:
		return ""
	case porcupine.Illegal:
		return "history is not linearizable"
	case porcupine.Unknown:
		return fmt.Sprintf("linearizability check did not finish within %v (result unknown); shorten the run or use fewer clients", timeout)
	}
	return fmt.Sprintf("linearizability check returned %q", res)
}

// WriteVisualization writes porcupine's HTML view of a checked history,
// with the nemesis windows drawn as annotations.
func WriteVisualization(path string, info porcupine.LinearizationInfo, events []NemesisEvent) error {
	var anns []porcupine.Annotation
	for _, e := range events {
		anns = append(anns, porcupine.Annotation{Tag: "nemesis", Start: e.Start, End: e.Healed,
			Description: e.Name, Details: e.Detail, BackgroundColor: "#fde2e2"})
		if e.RecoveredAll > 0 {
			anns = append(anns, porcupine.Annotation{Tag: "recovered", Start: e.Healed, End: e.RecoveredAll,
				Description: e.Name + " recovery", BackgroundColor: "#e2f0fd"})
		}
	}
	info.AddAnnotations(anns)
	if err := porcupine.VisualizePath(Model(), info, path); err != nil {
		return fmt.Errorf("write visualisation %s: %w", path, err)
	}
	return nil
}

// isRegisterKey reports whether key is one of the register keys, the
// string keys of the porcupine model.
func isRegisterKey(key string) bool {
	return !IsExpiryKey(key) && !IsQueueKey(key) && !IsCollectionKey(key)
}

// lostWrites looks, key by key, for the write that must be the final state
// — an acknowledged write that every other possibly-applied write on the
// key finished before — and reports each final read that does not show
// it. Porcupine would reject such a history as well; this check names the
// lost write outright, so the failure is readable without the HTML.
func lostWrites(ops []Op, finals []Op) []string {
	byKey := map[string][]Op{}
	for _, op := range ops {
		if op.Input.Op.isWrite() && op.Outcome != OutcomeFail && isRegisterKey(op.Input.Key) {
			byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
		}
	}
	var out []string
	for _, r := range finals {
		if r.Outcome != OutcomeOK || r.Input.Op != OpGet || !isRegisterKey(r.Input.Key) {
			continue
		}
		w, ok := lastWriter(byKey[r.Input.Key])
		if !ok {
			continue
		}
		if msg := contradicts(w, r.Output); msg != "" {
			out = append(out, fmt.Sprintf("key %s: acknowledged %s via %s (returned at %v) was the last write, but the final read via %s returned %s (%s)",
				r.Input.Key, describeOp(w.Input, w.Output), w.Node, time.Duration(w.Return), r.Node, r.Output, msg))
		}
	}
	return out
}

// lastWriter finds the acknowledged write that strictly follows every
// other write on its key; unknown writes never finish, so any unknown
// write rules the check out for that key.
func lastWriter(ws []Op) (Op, bool) {
	for _, w := range ws {
		if w.Outcome != OutcomeOK {
			continue
		}
		last := true
		for _, o := range ws {
			if o.Call == w.Call && o.Process == w.Process {
				continue
			}
			if o.Outcome != OutcomeOK || o.Return >= w.Call {
				last = false
				break
			}
		}
		if last {
			return w, true
		}
	}
	return Op{}, false
}

// contradicts says how a final read disagrees with the last write w, or
// returns "" when it agrees or w alone does not determine the value.
func contradicts(w Op, read Output) string {
	got := func() (string, bool) {
		if read.Kind == OutStr {
			return read.Str, true
		}
		return "", false
	}
	v, exists := got()
	switch w.Input.Op {
	case OpSet:
		if !exists || v != w.Input.Arg {
			return "value of the SET missing"
		}
	case OpSetNX:
		if w.Output.Kind == OutOK && (!exists || v != w.Input.Arg) {
			return "value of the SET NX missing"
		}
	case OpIncr:
		if w.Output.Kind == OutInt && (!exists || v != strconv.FormatInt(w.Output.Int, 10)) {
			return "counter value missing"
		}
	case OpAppend:
		if w.Output.Kind == OutInt && (!exists || int64(len(v)) != w.Output.Int) {
			return "length after APPEND differs"
		}
	case OpDel:
		if exists {
			return "deleted key is back"
		}
	case OpPExpire, OpPersist:
		// They keep the value, which they do not name; with the register
		// keys' long TTLs they never remove it either.
		if w.Output.Kind == OutInt && w.Output.Int == 1 && !exists {
			return "key gone after " + string(w.Input.Op)
		}
	case OpGet, OpPTTL:
		// A read writes nothing: it cannot be the last write.
	case OpHSet, OpHGet, OpHDel, OpHGetAll, OpSAdd, OpSRem, OpSMembers, OpSPop, OpLPush, OpRPop, OpLRange, OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin,
		OpQPush, OpBLPop, OpBLMove:
		// Not on a register key: lostWrites looks at register keys only.
	}
	return ""
}
