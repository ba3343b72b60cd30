package redis

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis/commands"
)

// command is one entry of the command table.
type command struct {
	// name is the lowercase name, as Redis reports it in errors and
	// COMMAND; "container|sub" for a subcommand.
	name string
	// spec is the command's Redis facts (flags, key specs, categories),
	// which COMMAND reports.
	spec *commands.Spec
	// arity is spec.Arity, kept here for the dispatcher's hot path: N > 0
	// means exactly N arguments including the name, -N means at least N.
	arity int
	// run executes the command once the dispatcher has checked arity and
	// argument sizes. It writes exactly one reply.
	run func(s *Server, c *client, args [][]byte)
	// subs are the implemented subcommands of a container, by lowercase
	// name; nil for a command without subcommands.
	subs map[string]*command
	// batchWrite: run makes exactly one s.write call and nothing else that
	// touches the Backend, so pipelined runs of it can share one batch
	// (pipeline.go). batchRead: run only makes s.read calls.
	batchWrite, batchRead bool
}

// commandTable maps lowercase command names to their entries (containers
// hold their subcommands). It is filled by init in commands.go and never
// changes afterwards.
var commandTable map[string]*command

// lookupCommand finds a command by name, case-insensitively, without
// allocating.
func lookupCommand(name []byte) *command {
	var buf [24]byte
	if len(name) > len(buf) {
		return nil // longer than any command name
	}
	lower := buf[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		lower[i] = ch
	}
	return commandTable[string(lower)]
}

// client is the per-connection state, stored as the redcon.Conn context. It
// is only touched by the connection's handler goroutine.
type client struct {
	id      uint64
	conn    redcon.Conn
	addr    string
	created time.Time
	name    string // CLIENT SETNAME
	libName string // CLIENT SETINFO LIB-NAME
	libVer  string // CLIENT SETINFO LIB-VER
	quit    bool   // QUIT was received; ignore what was pipelined after it
	failed  bool   // the current command was answered with an error
	mute    bool   // replies are discarded (first pass of a batched run)
	batch   batchState
	// acct accounts the client's buffers for the client limits
	// (clients.go); nil for a client built without a server (benchmarks).
	acct *clientAcct
	// cut: the client was closed by its output limit, or its output could
	// not be written; nothing more is replied or run.
	cut bool
	// exec is set on the client an Executor runs a command with, on apply
	// (exec.go); nil on a connection.
	exec *execCtx
	// tx is the connection's MULTI and WATCH state (multi.go).
	tx txState
}

// handle is redcon's handler: it runs every command of one connection, in
// order, on that connection's goroutine.
func (s *Server) handle(conn redcon.Conn, rc redcon.Command) {
	c, _ := conn.Context().(*client)
	if c == nil || c.quit || len(rc.Args) == 0 {
		return
	}
	if !c.tx.multi && !s.scriptRunning() && s.runPipeline(conn, c, rc.Args) {
		return
	}
	s.handleArgs(c, rc.Args)
}

// handleArgs runs one command the ordinary way.
func (s *Server) handleArgs(c *client, args [][]byte) {
	if c.quit || len(args) == 0 {
		return
	}
	cmd := lookupCommand(args[0])
	s.observe(c, cmd, func() {
		if s.busyReply(cmd, args) { // a script holds up apply (script.go)
			c.err(errTextBusy)
			return
		}
		msg := checkArgs(cmd, args)
		if c.tx.multi && !txControl(cmd) {
			s.queueCommand(c, cmd, args, msg)
			return
		}
		if msg != "" {
			if c.tx.multi {
				rejectInMulti(c, cmd, msg) // multi.go
				return
			}
			c.err(msg)
			return
		}
		if tooLarge(args, s.cfg.MaxValueBytes) {
			c.err(errTextValueTooLarge)
			return
		}
		cmd.run(s, c, args)
	})
}

// observe runs fn, which answers one command (cmd, nil if unknown), and
// records its metrics.
func (s *Server) observe(c *client, cmd *command, fn func()) {
	s.observeSince(c, cmd, time.Now(), fn)
}

// observeSince is observe for a command whose work began at start: a
// pipelined command waits for its run's batch before fn replies to it.
func (s *Server) observeSince(c *client, cmd *command, start time.Time, fn func()) {
	c.failed = false
	m := s.metrics.unknown
	if cmd != nil {
		m = s.metrics.forCommand(cmd.name)
	}
	fn()
	m.calls.Inc()
	if c.failed {
		m.errors.Inc()
	}
	m.duration.Observe(time.Since(start).Seconds())
	c.afterCommand()
}

func arityOK(arity, n int) bool {
	if arity >= 0 {
		return n == arity
	}
	return n >= -arity
}

// tooLarge reports whether any argument exceeds the value size bound.
// Checking every argument, keys included, keeps the check in one place: no
// command has a reason to accept an argument that SET would refuse.
func tooLarge(args [][]byte, max int) bool {
	for _, a := range args {
		if len(a) > max {
			return true
		}
	}
	return false
}

// Error texts of the dispatcher and of several commands.
const (
	errTextValueTooLarge = "ERR value too large"
	errTextSyntax        = "ERR syntax error"
	errTextStringTooLong = "ERR string exceeds maximum allowed size"
)

// maxErrorEcho bounds how much of a client's input an error message echoes.
const maxErrorEcho = 128

// unknownCommandMessage builds Redis's reply to an unknown command: the
// name, then as many quoted arguments as fit in maxErrorEcho bytes.
func unknownCommandMessage(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(args[0][:min(len(args[0]), maxErrorEcho)])
	b.WriteString("', with args beginning with: ")
	echoed := 0
	for _, a := range args[1:] {
		if echoed >= maxErrorEcho {
			break
		}
		a = a[:min(len(a), maxErrorEcho-echoed)]
		b.WriteByte('\'')
		b.Write(a)
		b.WriteString("' ")
		echoed += len(a) + 3
	}
	return b.String()
}

// wrongArity is Redis's reply to a wrong argument count; name is the
// lowercase command (or "command|subcommand") name.
func wrongArity(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

// Reply helpers. Each writes one RESP value to the connection's buffer;
// redcon flushes after the pipeline is handled, and client.afterCommand
// earlier once the output passes the soft limit. Each charges the value's
// size to the client's output (client.charge) before appending it; the
// sizes count the RESP framing, at most respOverhead bytes per value.

// respOverhead bounds the framing of one RESP value: type byte, a length of
// up to 20 digits, and two CRLFs.
const respOverhead = 25

func (c *client) ok() { c.simple("OK") }

func (c *client) simple(s string) {
	if !c.mute && c.charge(len(s)+respOverhead) {
		c.conn.WriteString(s)
	}
}

func (c *client) int(n int64) {
	if !c.mute && c.charge(respOverhead) {
		c.conn.WriteInt64(n)
	}
}

func (c *client) bulk(b []byte) {
	if !c.mute && c.charge(len(b)+respOverhead) {
		c.conn.WriteBulk(b)
	}
}

func (c *client) bulkString(s string) {
	if !c.mute && c.charge(len(s)+respOverhead) {
		c.conn.WriteBulkString(s)
	}
}

func (c *client) null() {
	if !c.mute && c.charge(respOverhead) {
		c.conn.WriteNull()
	}
}

func (c *client) array(n int) {
	if !c.mute && c.charge(respOverhead) {
		c.conn.WriteArray(n)
	}
}

// err writes an error reply; msg is the text after '-' and must start with
// an error code such as ERR or WRONGTYPE.
func (c *client) err(msg string) {
	c.failed = true
	if !c.mute && c.charge(len(msg)+respOverhead) {
		c.conn.WriteError(msg)
	}
}

// result writes a state-machine result.
func (c *client) result(r kv.Result) {
	switch r.Kind {
	case kv.ResultOK:
		c.ok()
	case kv.ResultNil:
		c.null()
	case kv.ResultInt:
		c.int(r.Int)
	case kv.ResultBytes:
		c.bulk(r.Bytes)
	case kv.ResultError:
		if r.Err == "" {
			c.err("ERR command failed")
			return
		}
		c.err(r.Err)
	case kv.ResultArray:
		c.array(len(r.Batch))
		for _, e := range r.Batch {
			c.result(e)
		}
	case kv.ResultRaw:
		if !c.mute && c.charge(len(r.Bytes)) {
			c.conn.WriteRaw(r.Bytes)
		}
	case kv.ResultBatch:
		c.err("ERR unexpected result from the state machine")
	default:
		c.err("ERR unexpected result from the state machine")
	}
}

// write proposes cmd and waits for its result. On a Backend failure it
// writes the error reply and returns false.
func (s *Server) write(c *client, cmd *kv.Command) (kv.Result, bool) {
	if c.exec != nil {
		return c.exec.write(c, cmd)
	}
	if c.batch.mode == modeCollect || c.batch.mode == modeReplay {
		return s.batchedWrite(c, cmd)
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	r, err := s.cfg.Backend.Write(ctx, cmd)
	if err != nil {
		s.backendError(c, "write", err)
		return kv.Result{}, false
	}
	return r, true
}

// read runs fn against a linearizable view. On a failure it writes the
// error reply and returns false. fn may return a replyError to refuse the
// command with that reply. fn must not write replies itself, and must
// reset what it gathers on entry, because a Backend may retry it.
func (s *Server) read(c *client, fn func(v kv.View) error) bool {
	if c.exec != nil {
		return s.execRead(c, fn)
	}
	switch c.batch.mode {
	case modeCollect:
		return false // never for batchable writes; stay silent if it happens
	case modeLocal:
		if err := s.cfg.Backend.(LocalReader).ReadLocal(c.batch.readTime, fn); err != nil {
			s.backendError(c, "read", err)
			return false
		}
		return true
	case modeDirect, modeReplay:
		// The read makes its own linearizable trip to the Backend, below.
	}
	if ir, ok := s.cfg.Backend.(ImmediateReader); ok {
		if done, err := ir.ReadNow(fn); done {
			if err != nil {
				s.backendError(c, "read", err)
				return false
			}
			return true
		}
	}
	ctx, cancel := s.requestContext()
	defer cancel()
	if err := s.cfg.Backend.Read(ctx, fn); err != nil {
		s.backendError(c, "read", err)
		return false
	}
	return true
}

// backendError maps a Backend failure to a reply: failures the Backend
// marks transient, and read timeouts, become TRYAGAIN so clients retry; a
// write timeout is reported as of unknown outcome; anything else is an
// internal error, logged because an operator may need to act on it.
func (s *Server) backendError(c *client, op string, err error) {
	var re replyError
	switch {
	case errors.As(err, &re):
		c.err(string(re)) // a read callback refusing the command
	case errors.Is(err, ErrTryAgain):
		c.err("TRYAGAIN " + err.Error())
	case errors.Is(err, ErrCommandTooLarge):
		c.err("ERR " + err.Error())
	case errors.Is(err, context.DeadlineExceeded) && op == "write":
		// The proposal may already be in the leader's log and commit later.
		// TRYAGAIN would make clients (go-redis does) resend it, applying
		// a non-idempotent write such as INCR twice; say the outcome is
		// unknown instead and leave the decision to the caller.
		c.err("ERR write timed out after " + s.cfg.RequestTimeout.String() + "; it may or may not have been applied")
	case errors.Is(err, context.DeadlineExceeded):
		c.err("TRYAGAIN request timed out after " + s.cfg.RequestTimeout.String())
	case errors.Is(err, context.Canceled) && s.baseCtx.Err() != nil:
		c.err("ERR server is shutting down")
	default:
		if ok, suppressed := s.errLog.allow(time.Second); ok {
			s.log.Warn("backend failed", "op", op, "client", c.id, "err", err, "suppressed", suppressed)
		}
		c.err("ERR " + err.Error())
	}
}

// isWrongType reports whether a View error says the key holds another type.
func isWrongType(err error) bool {
	return errors.Is(err, kv.ErrWrongType)
}

// equalFold compares an argument with a lowercase ASCII keyword, as Redis
// does (strcasecmp): no Unicode folding, so "ſet" is not "set".
func equalFold(arg []byte, lower string) bool {
	if len(arg) != len(lower) {
		return false
	}
	for i, ch := range arg {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}
