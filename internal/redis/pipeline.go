package redis

import (
	"context"
	"time"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/kv"
)

// Pipelining.
//
// redcon hands us one command at a time, but a client that pipelines sends
// many in one read, and redcon exposes the rest of that read as the
// connection's pipeline. Executing them one by one would cost a Raft round
// (and an fsync) per write and a ReadIndex round per read. Instead, runs of
// pipelined commands are executed together, preserving the connection's
// order and each command's reply:
//
//   - a run of consecutive batchable writes (commands whose handler does
//     exactly one Backend.Write and nothing else) becomes one OpBatch entry:
//     one proposal, applied in order as one log entry. Every command's effect
//     lies between its send and its reply, so this is linearizable.
//   - a run of consecutive batchable reads shares one read barrier
//     (ReadIndex), taken after all of them arrived, then reads the local
//     state machine; needs the Backend's LocalReader capability.
//
// Both use a two-pass trick so command handlers stay unchanged: pass one
// runs every handler muted, recording the writes it would make; the batch is
// executed; pass two runs the handlers again, and their Backend.Write calls
// return the batch's results in order (handlers are deterministic given
// their arguments, so both passes make the same calls in the same order).

// LocalReader is an optional Backend capability for pipelined reads.
type LocalReader interface {
	// Barrier returns once the local state reflects every write
	// acknowledged before the call (a ReadIndex round), with the time at
	// which reads covered by it evaluate key expiry (Unix ms; the leader
	// hands it out with the read index, so no node reads a key as live
	// after another reported it expired).
	Barrier(ctx context.Context) (uint64, error)
	// ReadLocal runs fn against the local state without a barrier, with
	// expiry evaluated at now (a Barrier's time).
	ReadLocal(now uint64, fn func(v kv.View) error) error
}

// ImmediateReader is an optional Backend capability: a read that is
// linearizable without waiting (e.g. a leader within its lease) runs at once,
// sparing the request context and its timer.
type ImmediateReader interface {
	// ReadNow runs fn and returns true with fn's error if the local state
	// may be read linearizably right now; otherwise it returns false without
	// calling fn.
	ReadNow(fn func(v kv.View) error) (bool, error)
}

// maxBatchBytes bounds the encoded size of one write batch so it always fits
// the transport's message limit (which the node sets above MaxValueBytes).
func (s *Server) maxBatchBytes() int { return s.cfg.MaxValueBytes }

// batchMode says how s.write and s.read behave for a client.
type batchMode uint8

const (
	modeDirect  batchMode = iota // normal: every call goes to the Backend
	modeCollect                  // pass one: record writes, reply nothing
	modeReplay                   // pass two: writes return batch results
	modeLocal                    // reads skip the barrier (already taken)
)

// batchState is the per-client state of one batched run.
type batchState struct {
	mode      batchMode
	collected []*kv.Command
	results   []kv.Result
	err       error // the batch's Backend error, replied by every write
	next      int
	readTime  uint64 // modeLocal: the Barrier's read time
}

// runPipeline executes the current command and everything pipelined behind
// it. It returns false if there was nothing pipelined (the caller then runs
// the command the ordinary way).
func (s *Server) runPipeline(conn redcon.Conn, c *client, first [][]byte) bool {
	if len(conn.PeekPipeline()) == 0 {
		return false
	}
	cmds := [][][]byte{first}
	for _, rc := range conn.ReadPipeline() {
		cmds = append(cmds, rc.Args)
	}
	for i := 0; i < len(cmds) && !c.quit; {
		if c.tx.multi {
			// Inside MULTI every command is queued, one at a time: a
			// batched run would execute it at once (a client pipelines
			// MULTI ... EXEC in one write).
			s.handleArgs(c, cmds[i])
			i++
			continue
		}
		n := s.writeRun(cmds[i:])
		if n > 1 {
			s.execWrites(c, cmds[i:i+n])
			i += n
			continue
		}
		if n = s.readRun(cmds[i:]); n > 1 {
			s.execReads(c, cmds[i:i+n])
			i += n
			continue
		}
		s.handleArgs(c, cmds[i])
		i++
	}
	return true
}

// eligible returns the command entry if args can join a batched run of the
// given kind, having passed the dispatcher's checks.
func (s *Server) eligible(args [][]byte, write bool) *command {
	if len(args) == 0 {
		return nil
	}
	cmd := lookupCommand(args[0])
	if cmd == nil || cmd.subs != nil || !arityOK(cmd.arity, len(args)) || tooLarge(args, s.cfg.MaxValueBytes) {
		return nil
	}
	if (write && cmd.batchWrite) || (!write && cmd.batchRead) {
		return cmd
	}
	return nil
}

// writeRun counts the leading commands that can share one write batch.
func (s *Server) writeRun(cmds [][][]byte) int {
	n, size := 0, 0
	for _, args := range cmds {
		if s.eligible(args, true) == nil || n >= kv.MaxBatch {
			break
		}
		for _, a := range args {
			size += len(a) + 16
		}
		if n > 0 && size > s.maxBatchBytes() {
			break
		}
		n++
	}
	return n
}

// readRun counts the leading commands that can share one read barrier.
func (s *Server) readRun(cmds [][][]byte) int {
	if _, ok := s.cfg.Backend.(LocalReader); !ok {
		return 0
	}
	n := 0
	for _, args := range cmds {
		if s.eligible(args, false) == nil {
			break
		}
		n++
	}
	return n
}

func (s *Server) execWrites(c *client, cmds [][][]byte) {
	start := time.Now()
	// Pass one: collect the writes, muted.
	c.batch = batchState{mode: modeCollect}
	c.mute = true
	for _, args := range cmds {
		lookupCommand(args[0]).run(s, c, args)
	}
	c.mute = false
	collected := c.batch.collected
	c.batch = batchState{mode: modeReplay}
	if len(collected) > 0 {
		bc, err := kv.NewBatch(collected)
		var r kv.Result
		if err == nil {
			ctx, cancel := s.requestContext()
			r, err = s.cfg.Backend.Write(ctx, bc)
			cancel()
		}
		switch {
		case err != nil:
			c.batch.err = err
		case r.Kind != kv.ResultBatch || len(r.Batch) != len(collected):
			c.batch.err = errBadBatchResult
		default:
			c.batch.results = r.Batch
		}
	}
	// Pass two: the handlers reply, with the batch's results.
	for _, args := range cmds {
		cmd := lookupCommand(args[0])
		s.observeSince(c, cmd, start, func() { cmd.run(s, c, args) })
	}
	c.batch = batchState{}
}

func (s *Server) execReads(c *client, cmds [][][]byte) {
	start := time.Now()
	lr := s.cfg.Backend.(LocalReader)
	ctx, cancel := s.requestContext()
	now, err := lr.Barrier(ctx)
	cancel()
	for _, args := range cmds {
		if c.cut {
			break // closed by an output limit: read nothing more for it
		}
		cmd := lookupCommand(args[0])
		if err != nil {
			s.observeSince(c, cmd, start, func() { s.backendError(c, "read", err) })
			continue
		}
		c.batch = batchState{mode: modeLocal, readTime: now}
		s.observeSince(c, cmd, start, func() { cmd.run(s, c, args) })
	}
	c.batch = batchState{}
}

// batchedWrite implements s.write for the collect and replay passes.
func (s *Server) batchedWrite(c *client, cmd *kv.Command) (kv.Result, bool) {
	b := &c.batch
	if b.mode == modeCollect {
		b.collected = append(b.collected, cmd)
		return kv.Result{}, false
	}
	if b.err != nil {
		s.backendError(c, "write", b.err)
		return kv.Result{}, false
	}
	if b.next >= len(b.results) {
		// Cannot happen while handlers are deterministic; refuse rather
		// than reply with another command's result.
		c.err("ERR internal error: pipelined write out of step")
		return kv.Result{}, false
	}
	r := b.results[b.next]
	b.next++
	return r, true
}

type batchError string

func (e batchError) Error() string { return string(e) }

const errBadBatchResult = batchError("unexpected result for a pipelined batch")
