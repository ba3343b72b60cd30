package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Outcome is what a client knows about an operation once it returned.
type Outcome string

// Outcomes. Only OutcomeOK and OutcomeUnknown operations enter the
// linearizability check: a failed operation provably had no effect (a
// -TRYAGAIN reply, a connection that was never made) or is a read, whose
// failure tells nothing.
const (
	OutcomeOK      Outcome = "ok"
	OutcomeFail    Outcome = "fail"
	OutcomeUnknown Outcome = "unknown"
)

// Op is one recorded client operation. Times are nanoseconds since the
// start of the run on the harness's monotonic clock.
type Op struct {
	// Process identifies the client incarnation for the visualisation: a
	// client whose operation ended unknown continues as a new process,
	// because that operation stays open until the end of the history.
	Process int     `json:"process"`
	Node    string  `json:"node"`
	Input   Input   `json:"input"`
	Output  Output  `json:"output"`
	Outcome Outcome `json:"outcome"`
	Call    int64   `json:"call"`
	Return  int64   `json:"return"`
	// Err is the client-side error text, kept for post-mortems.
	Err string `json:"err,omitempty"`
}

// History collects operations from concurrent clients.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts a history whose clock reads zero now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records a finished operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far, ordered by call
// time.
func (h *History) Ops() []Op {
	h.mu.Lock()
	out := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Call < out[j].Call })
	return out
}

// Counts summarises a history.
type Counts struct {
	Total   int `json:"total"`
	OK      int `json:"ok"`
	Failed  int `json:"failed"`
	Unknown int `json:"unknown"`
	Reads   int `json:"reads"`
	Writes  int `json:"writes"`
}

// CountOps tallies ops by outcome and kind.
func CountOps(ops []Op) Counts {
	var c Counts
	for _, op := range ops {
		c.Total++
		switch op.Outcome {
		case OutcomeOK:
			c.OK++
		case OutcomeFail:
			c.Failed++
		case OutcomeUnknown:
			c.Unknown++
		}
		if op.Input.Op.isWrite() {
			c.Writes++
		} else {
			c.Reads++
		}
	}
	return c
}

// porcupineOps converts a history for the checker. Failed operations are
// dropped; an unknown one returns after every other operation, which is
// how porcupine expresses "took effect at any later time, or never".
func porcupineOps(ops []Op) []porcupine.Operation {
	var end int64
	for _, op := range ops {
		end = max(end, op.Return, op.Call)
	}
	end++
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		switch op.Outcome {
		case OutcomeFail:
			continue
		case OutcomeUnknown:
			out = append(out, porcupine.Operation{ClientId: op.Process, Input: op.Input, Call: op.Call,
				Output: Output{Kind: OutUnknown}, Return: end, Metadata: op.meta()})
		default:
			out = append(out, porcupine.Operation{ClientId: op.Process, Input: op.Input, Call: op.Call,
				Output: op.Output, Return: op.Return, Metadata: op.meta()})
		}
	}
	return out
}

func (op Op) meta() string {
	if op.Err != "" {
		return fmt.Sprintf("via %s: %s", op.Node, op.Err)
	}
	return "via " + op.Node
}

// WriteHistoryJSON writes ops as indented JSON.
func WriteHistoryJSON(path string, ops []Op) error { return writeJSON(path, "history", ops) }

// ReadHistoryJSON reads a history written by WriteHistoryJSON, so a saved
// failure can be checked again offline.
func ReadHistoryJSON(path string) ([]Op, error) { return readJSON[Op](path, "history") }

// writeJSON writes ops, a history of kind what, as indented JSON.
func writeJSON[T any](path, what string, ops []T) error {
	b, err := json.MarshalIndent(ops, "", " ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// readJSON reads what writeJSON wrote.
func readJSON[T any](path, what string) ([]T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	var ops []T
	if err := json.Unmarshal(b, &ops); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", what, path, err)
	}
	return ops, nil
}
