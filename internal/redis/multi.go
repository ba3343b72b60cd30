package redis

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
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
//
// Node-local commands (CONFIG, INFO, CLIENT, COMMAND, DEBUG, SELECT,
// HELLO, AUTH, UNWATCH: localInMulti) touch no replicated state, so they
// cannot run on apply, where every replica would run them against its
// own configuration. They are queued as Redis queues them, left out of
// the entry, and run on this connection once the entry has applied, in
// queue order; their replies are spliced into the EXEC array at their
// positions. They therefore see the state after the whole transaction,
// and do not run at all when a watched key changed, as in Redis.

// txState is a connection's transaction state.
type txState struct {
	multi bool
	// aborted: a command was refused while queueing; EXEC answers
	// EXECABORT.
	aborted bool
	queue   [][][]byte
	// local[i]: queue[i] runs on this node after the entry applies
	// (localInMulti); nil when no queued command is local.
	local []bool
	// queued sums the queue's argument bytes, bounded like one command.
	queued int
	// watchKeys[i] was watched as watchRecs[i]; a key is watched once.
	watchKeys [][]byte
	watchRecs []kv.WatchRecord
	// watchSet holds watchKeys for lookups; watchBytes sums their bytes
	// (maxWatchBytes).
	watchSet   map[string]struct{}
	watchBytes int
}

// Error replies, as Redis 7.2 words them.
const (
	errTextExecAbort     = "EXECABORT Transaction discarded because of previous errors."
	errTextNestedMulti   = "ERR MULTI calls can not be nested"
	errTextWatchInMulti  = "ERR WATCH inside MULTI is not allowed"
	errTextExecNoMulti   = "ERR EXEC without MULTI"
	errTextDiscardNoMuti = "ERR DISCARD without MULTI"
	errTextTxTooLarge    = "ERR the transaction is too large"
	errTextNoMulti       = "ERR Command not allowed inside a transaction"
)

// unwatch forgets the watches.
func (t *txState) unwatch() {
	t.watchKeys, t.watchRecs, t.watchSet, t.watchBytes = nil, nil, nil, 0
}

// reset leaves MULTI and forgets the watches.
func (t *txState) reset() {
	*t = txState{}
}

// notInMultiMessage is the reply to a command that cannot be queued.
func notInMultiMessage(cmd *command) string {
	if cmd.spec.Flags&commands.FlagNoMulti != 0 {
		return errTextNoMulti
	}
	return "ERR '" + strings.ToUpper(cmd.name) + "' cannot run inside MULTI on elastickv: only keyspace, connection and server-information commands can"
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

// localInMulti reports whether cmd, inside MULTI, runs on the node that
// received EXEC after the entry applies rather than on apply: commands
// that read or change only this node's or this connection's state.
func localInMulti(cmd *command) bool {
	switch cmd.name {
	case "config", "info", "client", "command", "debug", "select", "hello", "auth", "unwatch":
		return true
	}
	return false
}

// queueCommand answers a command sent inside MULTI: QUEUED, or the error
// that will make EXEC answer EXECABORT. msg is the dispatcher's verdict.
func (s *Server) queueCommand(c *client, cmd *command, args [][]byte, msg string) {
	t := &c.tx
	local := false
	switch {
	case cmd == nil && noMultiInRedis(args):
		// Redis refuses SAVE, SHUTDOWN and the replication handshake inside
		// MULTI before running them; say so rather than "unknown command",
		// which is only true of this server.
		msg = errTextNoMulti
	case msg != "":
	case localInMulti(cmd):
		local = true
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
	if msg == "" && t.queued+size > min(s.cfg.MaxCommandBytes, maxQueueBytes) {
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
	if local && t.local == nil {
		t.local = make([]bool, len(t.queue), len(t.queue)+1)
	}
	if t.local != nil {
		t.local = append(t.local, local)
	}
	t.queue = append(t.queue, argv)
	t.queued += size
	c.simple("QUEUED")
}

// rejectInMulti answers a transaction command (EXEC, DISCARD, MULTI,
// WATCH, UNWATCH) that the dispatcher refused inside MULTI (msg: wrong
// arity), as Redis does: the transaction is flagged to abort, and an EXEC
// so refused aborts it at once, naming the error.
func rejectInMulti(c *client, cmd *command, msg string) {
	if cmd != nil && cmd.name == "exec" {
		c.tx.reset()
		c.err("EXECABORT Transaction discarded because of: " + strings.TrimPrefix(msg, "ERR "))
		return
	}
	c.tx.aborted = true
	c.err(msg)
}

// noMultiInRedis reports whether args names a command this server does
// not implement and Redis refuses inside MULTI (its no-multi flag).
func noMultiInRedis(args [][]byte) bool {
	spec := commands.Lookup(string(args[0]))
	return spec != nil && spec.Flags&commands.FlagNoMulti != 0
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
	size := c.tx.watchBytes
	seen := make(map[string]struct{}, len(args)-1) // lookups only
	for _, k := range args[1:] {
		if _, dup := seen[string(k)]; dup || c.tx.watching(k) {
			continue
		}
		seen[string(k)] = struct{}{}
		keys = append(keys, append([]byte(nil), k...))
		size += len(k) + watchRecordBytes
	}
	if len(c.tx.watchKeys)+len(keys) > kv.MaxWatchedKeys || size > maxWatchBytes {
		c.err("ERR too many watched keys")
		return
	}
	recs := make([]kv.WatchRecord, len(keys))
	ok := s.read(c, func(v kv.View) error {
		for i, k := range keys {
			var err error
			recs[i], err = kv.Watch(v, k)
			if errors.Is(err, kv.ErrWatchFormat) {
				return replyError("ERR WATCH needs log format 4: it works once every member runs a binary that supports it (INFO raft: cluster_format)")
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if !ok {
		return
	}
	if c.tx.watchSet == nil {
		c.tx.watchSet = make(map[string]struct{}, len(keys))
	}
	for _, k := range keys {
		c.tx.watchSet[string(k)] = struct{}{}
	}
	c.tx.watchKeys = append(c.tx.watchKeys, keys...)
	c.tx.watchRecs = append(c.tx.watchRecs, recs...)
	c.tx.watchBytes = size
	c.ok()
}

// maxQueueBytes bounds a MULTI queue's argument bytes: the EXEC entry
// must fit the log's entry limit (raft.DefaultMaxEntryBytes, 32 MiB) with
// its watches, so a queue past it is refused command by command rather
// than all at EXEC.
const maxQueueBytes = 24 << 20

// Bounds of a connection's watches: an EXEC entry carries them, and the
// entry must fit the log (with maxQueueBytes, under the entry limit).
const (
	maxWatchBytes    = 4 << 20
	watchRecordBytes = 40 // an encoded kv.WatchRecord, at most
)

// watching reports whether key is watched already.
func (t *txState) watching(key []byte) bool {
	_, ok := t.watchSet[string(key)]
	return ok
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
	queue, local := t.queue, t.local
	keys, recs := t.watchKeys, t.watchRecs
	t.reset()
	entry := queue
	if local != nil {
		entry = make([][][]byte, 0, len(queue))
		for i, argv := range queue {
			if !local[i] {
				entry = append(entry, argv)
			}
		}
	}
	var replies [][]byte
	if len(entry) > 0 || len(keys) > 0 {
		r, ok := s.write(c, kv.NewExec(keys, recs, entry))
		if !ok {
			return
		}
		if r.Kind == kv.ResultNil {
			c.nullArray()
			return
		}
		if local == nil || r.Kind != kv.ResultRaw {
			c.result(r)
			return
		}
		var err error
		if replies, err = splitRESPArray(r.Bytes, len(entry)); err != nil {
			s.log.Error("EXEC reply is not an array of one reply per command", "client", c.id, "err", err)
			c.err("ERR internal error: malformed EXEC reply")
			return
		}
	}
	// Every reply below is written whole: no limit cuts the array short,
	// so it has exactly len(queue) elements.
	c.array(len(queue))
	for i, argv := range queue {
		if local == nil || !local[i] {
			c.result(kv.Result{Kind: kv.ResultRaw, Bytes: replies[0]})
			replies = replies[1:]
			continue
		}
		// Checked when queued (queueCommand), as the dispatcher checks.
		lookupCommand(argv[0]).run(s, c, argv)
	}
}

// splitRESPArray splits b, a RESP2 array of n replies, into its replies.
func splitRESPArray(b []byte, n int) ([][]byte, error) {
	count, rest, err := respHeader(b, '*')
	if err != nil {
		return nil, err
	}
	if count != n {
		return nil, fmt.Errorf("array of %d replies, want %d", count, n)
	}
	out := make([][]byte, n)
	for i := range out {
		size, err := respValueLen(rest, 0)
		if err != nil {
			return nil, fmt.Errorf("reply %d: %w", i, err)
		}
		out[i], rest = rest[:size], rest[size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the array", len(rest))
	}
	return out, nil
}

// maxRESPDepth bounds the nesting respValueLen follows.
const maxRESPDepth = 64

var errRESPMalformed = errors.New("malformed RESP reply")

// respValueLen returns the length of the RESP2 value b starts with.
func respValueLen(b []byte, depth int) (int, error) {
	if len(b) == 0 || depth > maxRESPDepth {
		return 0, errRESPMalformed
	}
	line := bytes.Index(b, []byte("\r\n"))
	if line < 0 {
		return 0, errRESPMalformed
	}
	switch b[0] {
	case '+', '-', ':':
		return line + 2, nil
	case '$':
		n, rest, err := respHeader(b, '$')
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return line + 2, nil
		}
		if len(rest) < n+2 || rest[n] != '\r' || rest[n+1] != '\n' {
			return 0, errRESPMalformed
		}
		return line + 2 + n + 2, nil
	case '*':
		n, _, err := respHeader(b, '*')
		if err != nil {
			return 0, err
		}
		size := line + 2
		for range max(n, 0) {
			m, err := respValueLen(b[size:], depth+1)
			if err != nil {
				return 0, err
			}
			size += m
		}
		return size, nil
	}
	return 0, errRESPMalformed
}

// respHeader parses a "<kind><count>\r\n" header and returns the count and
// what follows it.
func respHeader(b []byte, kind byte) (int, []byte, error) {
	line := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || b[0] != kind || line < 0 {
		return 0, nil, errRESPMalformed
	}
	n, err := strconv.Atoi(string(b[1:line]))
	if err != nil || n < -1 {
		return 0, nil, errRESPMalformed
	}
	return n, b[line+2:], nil
}
