package kv

import "github.com/cockroachdb/pebble/v2"

// applyEntryCommand applies the command of one log entry: a single command,
// or an OpBatch whose commands apply in order, each seeing the previous
// ones' writes (they share the indexed batch). A batch is one log entry, so
// its commands take effect together: a pipelined run of writes from one
// client costs one proposal and one fsync instead of one each.
func applyEntryCommand(b *pebble.Batch, c *Command) (Result, error) {
	if c.Op != OpBatch {
		return applyCommand(b, c)
	}
	// Validate already checked every sub-command before proposing, and the
	// apply path re-validated the whole entry.
	out := Result{Kind: ResultBatch, Batch: make([]Result, len(c.Values))}
	for i, v := range c.Values {
		sub, err := DecodeCommand(v)
		if err != nil {
			out.Batch[i] = Result{Kind: ResultError, Err: "ERR malformed command in log"}
			continue
		}
		r, err := applyCommand(b, &sub)
		if err != nil {
			return Result{}, err
		}
		out.Batch[i] = r
	}
	return out, nil
}
