package redis

import (
	"strings"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis/commands"
)

// MULTI, EXEC, DISCARD, WATCH and UNWATCH.
//
// MULTI queues commands on the connection; EXEC sends them, with what
// WATCH saw, as one log entry (kv.OpExec), which every replica applies
// atomically by running the commands through the handlers (exec.go). A
// follower forwards the entry to the leader like any write, at most once.
// Nothing of a transaction touches the keyspace before EXEC.
//
// WATCH reads each key behind a read barrier and keeps its stamps; apply
// fails the EXEC with a null reply if any watched key changed since
// (kv.WatchRecord). UNWATCH, EXEC and DISCARD forget the watches.

// txState is a connection's transaction state.
type txState struct {
	multi bool
	// aborted: a command was refused while queueing; EXEC answers
	// EXECABORT.
	aborted bool
	queue   [][][]byte
	// queued sums the queue's argument bytes, bounded like one command.
	queued int
	// watchKeys[i] was watched as watchRecs[i]; a key is watched once.
	watchKeys [][]byte
	watchRecs []kv.WatchRecord
}

// Error replies, as Redis 7.2 words them.
const (
	errTextExecAbort     = "EXECABORT Transaction discarded because of previous errors."
	errTextNestedMulti   = "ERR MULTI calls can not be nested"
	errTextWatchInMulti  = "ERR WATCH inside MULTI is not allowed"
	errTextExecNoMulti   = "ERR EXEC without MULTI"
	errTextDiscardNoMuti = "ERR DISCARD without MULTI"
	errTextTxTooLarge    = "ERR the transaction is too large"
)

// unwatch forgets the watches.
func (t *txState) unwatch() {
	t.watchKeys, t.watchRecs = nil, nil
}

// reset leaves MULTI and forgets the watches.
func (t *txState) reset() {
	*t = txState{}
}

// notInMultiMessage is the reply to a command that cannot be queued.
func notInMultiMessage(cmd *command) string {
	if cmd.spec.Flags&commands.FlagNoMulti != 0 {
		return "ERR Command not allowed inside a transaction"
	}
	return "ERR '" + strings.ToUpper(cmd.name) + "' cannot run inside MULTI on elastickv: only keyspace commands, PING, ECHO and TIME can"
}

// txControl reports whether cmd runs at once even inside MULTI.
func txControl(cmd *command) bool {
	if cmd == nil {
		return false
	}
	switch cmd.name {
	case "exec", "discard", "multi", "watch", "quit":
		return true
	}
	return false
}

// queueCommand answers a command sent inside MULTI: QUEUED, or the error
// that will make EXEC answer EXECABORT. msg is the dispatcher's verdict.
func (s *Server) queueCommand(c *client, cmd *command, args [][]byte, msg string) {
	t := &c.tx
	switch {
	case msg != "":
	case !execRunnable(cmd):
		msg = notInMultiMessage(cmd)
	case tooLarge(args, s.cfg.MaxValueBytes):
		msg = errTextValueTooLarge
	case len(t.queue) >= kv.MaxExecCommands:
		msg = errTextTxTooLarge
	}
	size := 0
	for _, a := range args {
		size += len(a) + respOverhead
	}
	if msg == "" && t.queued+size > s.cfg.MaxCommandBytes {
		msg = errTextTxTooLarge
	}
	if msg != "" {
		t.aborted = true
		c.err(msg)
		return
	}
	// redcon reuses the argument buffers for the next command.
	argv := make([][]byte, len(args))
	for i, a := range args {
		argv[i] = append([]byte(nil), a...)
	}
	t.queue = append(t.queue, argv)
	t.queued += size
	c.simple("QUEUED")
}

func cmdMulti(_ *Server, c *client, _ [][]byte) {
	if c.tx.multi {
		c.err(errTextNestedMulti)
		return
	}
	c.tx.multi = true
	c.ok()
}

func cmdDiscard(_ *Server, c *client, _ [][]byte) {
	if !c.tx.multi {
		c.err(errTextDiscardNoMuti)
		return
	}
	c.tx.reset()
	c.ok()
}

func cmdUnwatch(_ *Server, c *client, _ [][]byte) {
	c.tx.unwatch()
	c.ok()
}

func cmdWatch(s *Server, c *client, args [][]byte) {
	if c.tx.multi {
		c.err(errTextWatchInMulti)
		return
	}
	var keys [][]byte
	for _, k := range args[1:] {
		if !c.tx.watching(k) && !containsKey(keys, k) {
			keys = append(keys, append([]byte(nil), k...))
		}
	}
	if len(c.tx.watchKeys)+len(keys) > kv.MaxWatchedKeys {
		c.err("ERR too many watched keys")
		return
	}
	recs := make([]kv.WatchRecord, len(keys))
	ok := s.read(c, func(v kv.View) error {
		for i, k := range keys {
			var err error
			if recs[i], err = kv.Watch(v, k); err != nil {
				return err
			}
		}
		return nil
	})
	if !ok {
		return
	}
	c.tx.watchKeys = append(c.tx.watchKeys, keys...)
	c.tx.watchRecs = append(c.tx.watchRecs, recs...)
	c.ok()
}

// watching reports whether key is watched already.
func (t *txState) watching(key []byte) bool { return containsKey(t.watchKeys, key) }

func containsKey(keys [][]byte, key []byte) bool {
	for _, k := range keys {
		if string(k) == string(key) {
			return true
		}
	}
	return false
}

func cmdExec(s *Server, c *client, _ [][]byte) {
	t := &c.tx
	if !t.multi {
		c.err(errTextExecNoMulti)
		return
	}
	if t.aborted {
		t.reset()
		c.err(errTextExecAbort)
		return
	}
	cmd := kv.NewExec(t.watchKeys, t.watchRecs, t.queue)
	t.reset()
	r, ok := s.write(c, cmd)
	if !ok {
		return
	}
	if r.Kind == kv.ResultNil {
		c.nullArray()
		return
	}
	c.result(r)
}
