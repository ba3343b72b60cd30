package kv

import "github.com/cockroachdb/pebble/v2"

// decodeEntry decodes and validates the command of one log entry, and for an
// OpBatch its sub-commands, each decoded once: the apply path used to decode
// a batch's commands twice, once to validate and once to apply.
func decodeEntry(data []byte) (Command, []Command, error) {
	cmd, err := DecodeCommand(data)
	if err != nil {
		return cmd, nil, err
	}
	if cmd.Op != OpBatch {
		return cmd, nil, cmd.Validate()
	}
	subs, err := cmd.batchCommands()
	return cmd, subs, err
}

// applyEntryCommand applies the command of one log entry, decoded by
// decodeEntry: a single command, or an OpBatch whose commands (subs) apply
// in order, each seeing the previous ones' writes (they share the chunk's
// write set). A batch is one log entry, so its commands take effect together: a
// pipelined run of writes from one client costs one proposal and one fsync
// instead of one each.
func applyEntryCommand(w *writeSet, b *pebble.Batch, c *Command, subs []Command) (Result, error) {
	if c.Op != OpBatch {
		return applyCommand(w, b, c)
	}
	out := Result{Kind: ResultBatch, Batch: make([]Result, len(subs))}
	for i := range subs {
		r, err := applyCommand(w, b, &subs[i])
		if err != nil {
			return Result{}, err
		}
		out.Batch[i] = r
	}
	return out, nil
}
