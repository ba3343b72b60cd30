package redis

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/config"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis/commands"
)

// Commands on apply: the kv.Executor of EXEC (and scripts).
//
// An EXEC's queued commands run on every replica when its log entry
// applies (kv/exec.go). They run through the same handlers as on a
// connection, with a client whose exec field is set: its reads see the
// entry's state (kv.Txn.Read) and its writes apply inside the entry
// (kv.Txn.Write), and its replies are captured as RESP bytes.
//
// Invariants, which make the handlers deterministic on apply:
//   - The executor's Server has the default configuration, never the
//     node's: a limit that changes a command's outcome (the reply bound
//     SPOP and SRANDMEMBER observe) is the same on every replica.
//   - Randomness comes from client.rng, seeded by the entry's index; the
//     time a handler uses is client.nowMillis, the entry's apply time.
//   - Only commands execRunnable accepts run on apply: the keyspace's own
//     (Redis's write and read-only flags) and a few that touch no state.
//     A blocking command runs once, as its non-blocking form.
//   - Each handler writes exactly one reply, so the EXEC's array has one
//     element per command.

// execCtx is the apply-time state of a client running inside an entry.
type execCtx struct {
	tx  kv.Txn
	rnd *rand.Rand
	// busy tracks a running script for BUSY (script.go); nil outside the
	// executor.
	busy *scriptBusy
	// n counts the commands run so far: each gets its own source, seeded
	// by the entry's index and n, so that one command's draws (however
	// many a replica-independent input makes it take) never shift
	// another's.
	n uint64
	// work counts the entry's work units (kv.MaxExecWork): one per
	// command plus what its budgeted reads examined.
	work int64
}

// begin prepares the context for the next command of the entry.
func (x *execCtx) begin() {
	x.n++
	x.rnd = rand.New(rand.NewPCG(x.tx.Index(), x.n))
	x.work++
}

// charge adds work units, aborting the entry past kv.MaxExecWork.
func (x *execCtx) charge(units int64) {
	if x.work += units; x.work > kv.MaxExecWork && !x.tx.Aborted() {
		x.tx.Abort("ERR the transaction examined more than " + strconv.Itoa(kv.MaxExecWork) +
			" keys or elements on apply; nothing of it was applied")
	}
}

// rng returns the client's source of randomness: the entry's seeded one
// on apply, else a fresh one.
func (c *client) rng() *rand.Rand {
	if c.exec != nil {
		return c.exec.rnd
	}
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// nowMillis is the time a handler checks its arguments against: the
// entry's apply time on apply, else this node's clock.
func (c *client) nowMillis() int64 {
	if c.exec != nil {
		return int64(c.exec.tx.Now())
	}
	return nowMillis()
}

// write applies cmd inside the entry.
func (x *execCtx) write(c *client, cmd *kv.Command) (kv.Result, bool) {
	r, err := x.tx.Write(cmd)
	if err != nil {
		// The store failed; the entry's apply stops with it (Txn.Err).
		c.err("ERR internal error")
		return kv.Result{}, false
	}
	return r, true
}

// execRead runs fn against the entry's state.
func (s *Server) execRead(c *client, fn func(v kv.View) error) bool {
	err := c.exec.tx.Read(fn)
	if err == nil {
		return true
	}
	var re replyError
	if errors.As(err, &re) {
		c.err(string(re))
	} else {
		c.err("ERR internal error")
	}
	return false
}

// execRunnable reports whether cmd may run on apply, inside an EXEC.
func execRunnable(cmd *command) bool {
	switch cmd.name {
	case "ping", "echo", "time":
		return true
	case "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro", "script", "function": // scripting (script*.go)
		return true
	case "object", "memory":
		// Containers without flags of their own: every implemented
		// subcommand reads the keyspace (Redis flags them read-only) or
		// answers its HELP text.
		return true
	case "client", "config", "debug", "info", "command", "hello", "auth", "select", "quit", "multi", "exec", "discard", "watch", "unwatch":
		return false
	}
	return cmd.spec.Flags&(commands.FlagWrite|commands.FlagReadonly) != 0
}

// ApplyExecutor runs the commands of EXEC entries on apply; it implements
// kv.Executor. Install one per store with Store.SetExecutor.
type ApplyExecutor struct {
	s    *Server
	busy scriptBusy // the script running now (script.go)
}

// NewApplyExecutor returns an executor with Redis's default limits. Its
// Server never listens and starts no goroutine; it only runs handlers.
// log receives what goes wrong on apply; nil discards it.
func NewApplyExecutor(log *slog.Logger) (*ApplyExecutor, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := Config{Addr: "apply", Backend: refusingBackend{}, Params: config.New(),
		Logger: log.With("component", "apply-executor"), RequestTimeout: execNoDeadline}.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(nil)
	if err != nil {
		return nil, err
	}
	cm, err := newClientMetrics(nil)
	if err != nil {
		return nil, err
	}
	bm, err := newBlockMetrics(nil)
	if err != nil {
		return nil, err
	}
	// Never cancelled: nothing on apply waits on it.
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:           cfg,
		log:           cfg.Logger,
		metrics:       m,
		cursors:       newCursorTable(maxScanCursors, maxScanCursorBytes),
		started:       time.Now(),
		baseCtx:       ctx,
		cancel:        cancel,
		clientMetrics: cm,
		blockMetrics:  bm,
	}
	s.ln = &limitListener{Listener: noListener{}, live: &s.live}
	if err := s.bindParams(cfg); err != nil {
		cancel()
		return nil, err
	}
	return &ApplyExecutor{s: s}, nil
}

// execNoDeadline is the executor Server's request timeout: budgets that a
// deadline would cut (KEYS, SRANDMEMBER, SPOP's read) must not be cut on
// apply, where the clock differs between replicas and a cut SPOP would
// write on one and not on another. A command on apply is bounded by the
// entry's size and by reply limits, which are constants.
const execNoDeadline = 100 * 365 * 24 * time.Hour

// noListener is the executor Server's listener: it accepts nothing.
type noListener struct{}

func (noListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (noListener) Close() error              { return nil }
func (noListener) Addr() net.Addr            { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// Exec runs cmds in order and replies their replies as one RESP array,
// or with bare the one command's reply alone.
func (e *ApplyExecutor) Exec(tx kv.Txn, cmds [][][]byte, bare bool) (kv.Result, error) {
	out := &captureConn{}
	c := &client{conn: out, exec: &execCtx{tx: tx, busy: &e.busy}}
	if !bare {
		out.buf = redcon.AppendArray(out.buf, len(cmds))
	}
	for _, argv := range cmds {
		e.s.runOnApply(c, argv)
		if err := tx.Err(); err != nil {
			return kv.Result{}, err
		}
		if len(out.buf) > kv.MaxExecReplyBytes {
			tx.Abort("ERR the transaction's reply passed " + strconv.Itoa(kv.MaxExecReplyBytes) + " bytes; nothing of it was applied")
		}
		if tx.Aborted() {
			// kv rolls the entry back and replies the abort's error.
			return kv.Result{Kind: kv.ResultNil}, nil
		}
	}
	return kv.Result{Kind: kv.ResultRaw, Bytes: out.buf}, nil
}

// runOnApply runs one command of an entry, checking it again as the
// dispatcher would: the entry may come from a peer that checked nothing.
func (s *Server) runOnApply(c *client, args [][]byte) {
	c.exec.begin()
	cmd := lookupCommand(args[0])
	if msg := checkArgs(cmd, args); msg != "" {
		c.err(msg)
		return
	}
	if !execRunnable(cmd) {
		c.err(notInMultiMessage(cmd))
		return
	}
	if tooLarge(args, s.cfg.MaxValueBytes) {
		c.err(errTextValueTooLarge)
		return
	}
	defer func() {
		// A handler that panics on some input would crash every replica
		// on the same entry, and again at each restart's replay: the
		// whole cluster, for good. The panic is as deterministic as the
		// handler, so every replica answers this error instead and keeps
		// what the command wrote before it.
		if r := recover(); r != nil {
			s.log.Error("command panicked on apply", "cmd", cmd.name, "panic", r)
			c.err("ERR internal error running '" + cmd.name + "' on apply")
		}
	}()
	cmd.run(s, c, args)
}

// refusingBackend is the executor Server's Backend: every keyspace access
// on apply goes through the client's Txn, so reaching it is a bug.
type refusingBackend struct{}

var errNotOnApply = errors.New("redis: the Backend is not reachable on apply")

func (refusingBackend) Write(_ context.Context, _ *kv.Command) (kv.Result, error) {
	return kv.Result{}, errNotOnApply
}

func (refusingBackend) Read(_ context.Context, _ func(v kv.View) error) error { return errNotOnApply }

func (refusingBackend) Status() Status { return Status{RaftState: "apply"} }

// captureConn is a redcon.Conn that appends every reply to buf.
type captureConn struct {
	buf []byte
	ctx any
}

func (w *captureConn) RemoteAddr() string          { return "apply" }
func (w *captureConn) Close() error                { return nil }
func (w *captureConn) WriteError(msg string)       { w.buf = redcon.AppendError(w.buf, msg) }
func (w *captureConn) WriteString(str string)      { w.buf = redcon.AppendString(w.buf, str) }
func (w *captureConn) WriteBulk(bulk []byte)       { w.buf = redcon.AppendBulk(w.buf, bulk) }
func (w *captureConn) WriteBulkString(bulk string) { w.buf = redcon.AppendBulkString(w.buf, bulk) }
func (w *captureConn) WriteInt(num int)            { w.buf = redcon.AppendInt(w.buf, int64(num)) }
func (w *captureConn) WriteInt64(num int64)        { w.buf = redcon.AppendInt(w.buf, num) }
func (w *captureConn) WriteUint64(num uint64)      { w.buf = redcon.AppendUint(w.buf, num) }
func (w *captureConn) WriteArray(count int)        { w.buf = redcon.AppendArray(w.buf, count) }
func (w *captureConn) WriteNull()                  { w.buf = redcon.AppendNull(w.buf) }
func (w *captureConn) WriteBulkFrom(n int64, r io.Reader) {
	w.buf = append(w.buf, '$')
	w.buf = strconv.AppendInt(w.buf, n, 10)
	w.buf = append(w.buf, '\r', '\n')
	start := len(w.buf)
	w.buf = append(w.buf, make([]byte, n)...)
	_, _ = io.ReadFull(r, w.buf[start:])
	w.buf = append(w.buf, '\r', '\n')
}
func (w *captureConn) WriteRaw(data []byte)           { w.buf = append(w.buf, data...) }
func (w *captureConn) WriteAny(v any)                 { w.buf = redcon.AppendAny(w.buf, v) }
func (w *captureConn) Context() any                   { return w.ctx }
func (w *captureConn) SetContext(v any)               { w.ctx = v }
func (w *captureConn) SetReadBuffer(int)              {}
func (w *captureConn) Detach() redcon.DetachedConn    { return nil }
func (w *captureConn) ReadPipeline() []redcon.Command { return nil }
func (w *captureConn) PeekPipeline() []redcon.Command { return nil }
func (w *captureConn) NetConn() net.Conn              { return nil }
