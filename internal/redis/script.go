package redis

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis/commands"
	"github.com/elastickv/elastickv/internal/redis/lua"
)

// Lua scripting: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT.
//
// Where a script runs, and why that is safe.
//
// EVAL and EVALSHA run ON APPLY. Outside MULTI the handler proposes one
// log entry, kv.NewBareExec(argv), whose reply is the script's reply; a
// follower forwards it to the leader like any write. Inside MULTI the
// script is queued and runs inside the EXEC's entry. Either way every
// replica, when it applies the entry, runs the handler again with
// c.exec set, and that run executes the script: its redis.call commands
// go through s.runOnApply, reading the entry's state (kv.Txn.Read) and
// writing into the entry's batch (kv.Txn.Write). The entry applies alone
// in its chunk, so the script is atomic, as in Redis, and a script that
// fails after a write keeps that write, as in Redis.
//
// A script on apply is deterministic, so every replica computes the same
// writes and the same reply:
//   - The VM is built fresh for each run (package lua) with no state
//     carried from earlier runs; the global table is protected, as in
//     Redis 7, so a script cannot even try to keep state.
//   - Its inputs are the argv in the log entry, the cached bodies (a
//     replicated state-machine row, kv.ScriptBody) and the keyspace as
//     the entry sees it.
//   - math.random is seeded from the entry's RNG (seeded by the log
//     index); commands use the entry's RNG and time (client.rng,
//     client.nowMillis, TIME); table iteration (pairs) is insertion
//     order, and tostring names tables and functions by a number in order
//     of first use, not by address: functions of the script alone.
//   - The limits that can stop a script count, never time: Lua
//     instructions (lua.InstructionBudget, each redis.call counting
//     callInstructions) and bytes of large strings (lua.MaxStringBytes).
//     Every replica stops it at the same instruction with the same error.
//     The other limits (stack depth, reply size, the entry's kv bounds)
//     are constants too.
//   - Memory is bounded by those counts, so a hostile script cannot make
//     every replica run out of memory (which its replay would repeat),
//     and a Go panic inside the VM becomes an error reply (lua.VM.Run).
//
// What this costs, compared with Redis: a script holds up the apply of its
// group's log while it runs, as it holds up Redis's event loop. Redis stops
// a script that runs past lua-time-limit when a client sends SCRIPT KILL;
// elastickv cannot, because a replica that stopped it by its own clock
// would diverge from one that did not. SCRIPT KILL therefore answers
// UNKILLABLE, with the reason, while the applier runs a script: it will
// stop at its instruction budget. While a script has run longer than
// busy-reply-threshold, other commands on that node get Redis's BUSY
// error, so clients see why the node does not answer.
//
// EVAL_RO and EVALSHA_RO write nothing, so they need no log entry: they
// run on the node that receives them, on any node, inside one
// linearizable read (s.read), with a read-only Txn over the view. As no
// replica replays them, SCRIPT KILL can and does stop them (OK); they
// hold up nobody else, so they never make a node answer BUSY. With no
// script running, SCRIPT KILL answers NOTBUSY.

// Error replies of scripting, in Redis 7.2's words.
const (
	errTextNoScript     = "NOSCRIPT No matching script. Please use EVAL."
	errTextNegKeys      = "ERR Number of keys can't be negative"
	errTextTooManyKeys  = "ERR Number of keys can't be greater than number of args"
	errTextROWrite      = "ERR Write commands are not allowed from read-only scripts."
	errTextNotBusy      = "NOTBUSY No scripts in execution right now."
	errTextBusy         = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
	errTextCallNoArgs   = "ERR Please specify at least one argument for this redis lib call"
	errTextCallArgType  = "ERR Lua redis lib command arguments must be strings or integers"
	errTextCallUnknown  = "ERR Unknown Redis command called from script"
	errTextCallArity    = "ERR Wrong number of args calling Redis command from script"
	errTextCallNoScript = "ERR This Redis command is not allowed from script"
	errTextUnkillable   = "UNKILLABLE elastickv cannot stop a running script: every replica runs it on apply and stops it only at its budget of Lua instructions, so that they all stop it at the same point. Wait for it to end."
)

// instructionBudget is lua.InstructionBudget; a variable only so that
// this package's tests can run budget-bound scripts quickly (under -race
// the full budget takes seconds). Nothing else sets it.
var instructionBudget uint64 = lua.InstructionBudget

// roScripts are the read-only scripts running on a node outside the log
// (EVAL_RO, EVALSHA_RO, FCALL_RO): each has a kill flag its VM checks
// before every instruction.
type roScripts struct {
	mu      sync.Mutex
	running map[*atomic.Bool]struct{}
}

func (r *roScripts) add(kill *atomic.Bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running == nil {
		r.running = make(map[*atomic.Bool]struct{})
	}
	r.running[kill] = struct{}{}
}

func (r *roScripts) remove(kill *atomic.Bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, kill)
}

// killAll stops every running read-only script and reports how many.
func (r *roScripts) killAll() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.running {
		k.Store(true)
	}
	return len(r.running)
}

// killScripts answers SCRIPT KILL and FUNCTION KILL: the read-only
// scripts running on this node outside the log stop (nothing replays
// them); a script the applier runs cannot be stopped (UNKILLABLE); with
// neither, NOTBUSY.
func (s *Server) killScripts(c *client) {
	if s.roScripts.killAll() > 0 {
		c.ok()
		return
	}
	if s.cfg.ScriptRunning != nil && s.cfg.ScriptRunning() > 0 {
		c.err(errTextUnkillable)
		return
	}
	c.err(errTextNotBusy)
}

// scriptBusy tracks the script the applier is running, for BUSY and
// SCRIPT KILL; the executor owns one and the node's Server reads it.
type scriptBusy struct {
	since atomic.Int64 // Unix nanoseconds; 0 when no script runs
}

// running returns for how long the current script has run (0: none).
func (b *scriptBusy) running() time.Duration {
	if b == nil {
		return 0
	}
	since := b.since.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// ScriptRunning returns for how long the script being applied has run, 0
// when none runs. The node hands it to its Server (Config.ScriptRunning)
// for BUSY and SCRIPT KILL. It reads the wall clock, which is fine: it
// only decides what this node answers to other clients, never apply.
func (e *ApplyExecutor) ScriptRunning() time.Duration { return e.busy.running() }

// scriptRunning reports whether the applier runs a script now; the
// dispatcher then runs commands one by one, so each meets the BUSY check.
func (s *Server) scriptRunning() bool {
	return s.cfg.ScriptRunning != nil && s.cfg.ScriptRunning() > 0
}

// busyReply is the BUSY check of the dispatcher: a command that Redis
// refuses while a script runs gets BUSY once the applier's script has run
// past busy-reply-threshold.
func (s *Server) busyReply(cmd *command, args [][]byte) bool {
	if s.cfg.ScriptRunning == nil || cmd == nil || cmd.spec.Flags&commands.FlagAllowBusy != 0 {
		return false
	}
	if cmd.subs != nil && len(args) >= 2 {
		if sub := cmd.subs[strings.ToLower(string(args[1]))]; sub != nil && sub.spec.Flags&commands.FlagAllowBusy != 0 {
			return false
		}
	}
	d := s.cfg.ScriptRunning()
	if d == 0 || s.params == nil {
		return false
	}
	limit := time.Duration(s.params.Snapshot().Int(paramBusyThreshold)) * time.Millisecond
	return d > limit
}

// paramBusyThreshold is Redis's busy-reply-threshold (alias lua-time-limit).
const paramBusyThreshold = "busy-reply-threshold"

// scriptArgs splits EVAL's arguments: numkeys, keys, args.
func scriptArgs(args [][]byte) (keys, argv [][]byte, msg string) {
	n, err := parseInt(args[2])
	if err != nil {
		return nil, nil, kv.ErrTextNotInteger
	}
	if n < 0 {
		return nil, nil, errTextNegKeys
	}
	if n > int64(len(args)-3) {
		return nil, nil, errTextTooManyKeys
	}
	return args[3 : 3+n], args[3+n:], ""
}

func cmdEval(s *Server, c *client, args [][]byte)      { s.evalCommand(c, args, false, false) }
func cmdEvalSHA(s *Server, c *client, args [][]byte)   { s.evalCommand(c, args, true, false) }
func cmdEvalRO(s *Server, c *client, args [][]byte)    { s.evalCommand(c, args, false, true) }
func cmdEvalSHARO(s *Server, c *client, args [][]byte) { s.evalCommand(c, args, true, true) }

// evalCommand answers the four EVAL commands. byHash: args[1] is a SHA1;
// readOnly: the _RO forms.
func (s *Server) evalCommand(c *client, args [][]byte, byHash, readOnly bool) {
	keys, argv, msg := scriptArgs(args)
	if msg != "" {
		c.err(msg)
		return
	}
	if c.exec != nil {
		// On apply: run it here, in the entry.
		s.runScript(c, c.exec, args[1], byHash, readOnly, keys, argv)
		return
	}
	if !byHash {
		// A script that does not compile needs no log entry.
		code, _, msg := scriptShebang(args[1])
		if msg != "" {
			c.err(msg)
			return
		}
		if _, err := compileScript(code); err != nil {
			c.err(compileError(err))
			return
		}
	}
	if readOnly {
		s.evalReadOnly(c, args[1], byHash, keys, argv)
		return
	}
	cmd := kv.NewBareExec(copyArgs(args))
	r, ok := s.write(c, cmd)
	if !ok {
		return
	}
	c.result(r)
}

// evalReadOnly runs an EVAL_RO or EVALSHA_RO on this node, inside one
// linearizable read: it writes nothing, so it needs no log entry.
func (s *Server) evalReadOnly(c *client, script []byte, byHash bool, keys, argv [][]byte) {
	var reply []byte
	ok := s.read(c, func(v kv.View) error {
		// A retry starts afresh: runReadOnly builds a new reply each time.
		reply = s.runReadOnly(c, v, func(inner *client) {
			s.runScript(inner, inner.exec, script, byHash, true, keys, argv)
		})
		return nil
	})
	if !ok {
		return
	}
	c.result(kv.Result{Kind: kv.ResultRaw, Bytes: reply})
}

// copyArgs copies argv: redcon reuses its buffers for the next command.
func copyArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = append([]byte(nil), a...)
	}
	return out
}

// readTxn is the kv.Txn of a read-only script outside the log: reads see
// the view, writes are refused. Abort (the script's commands passed
// kv.MaxExecWork) makes the script's reply that error.
type readTxn struct {
	v     kv.View
	now   uint64
	abort string
	// kill stops the script (SCRIPT KILL); nil for none.
	kill *atomic.Bool
}

func (t *readTxn) Read(fn func(v kv.View) error) error { return fn(t.v) }
func (t *readTxn) Write(*kv.Command) (kv.Result, error) {
	return kv.Result{Kind: kv.ResultError, Err: errTextROWrite}, nil
}
func (t *readTxn) Index() uint64 { return 0 }
func (t *readTxn) Now() uint64   { return t.now }
func (t *readTxn) Format() uint8 { return t.v.Format() }
func (t *readTxn) Err() error    { return nil }

func (t *readTxn) Abort(reply string) {
	if t.abort == "" {
		t.abort = reply
	}
}

func (t *readTxn) Aborted() bool { return t.abort != "" }

// runReadOnly runs fn (which runs a script into inner) on a read-only
// Txn over v, and returns the reply: the script's, or the abort's error.
// SCRIPT KILL may stop the script meanwhile: it runs on this node alone.
func (s *Server) runReadOnly(c *client, v kv.View, fn func(inner *client)) []byte {
	out := &captureConn{}
	t := &readTxn{v: v, now: uint64(nowMillis()), kill: new(atomic.Bool)}
	s.roScripts.add(t.kill)
	defer s.roScripts.remove(t.kill)
	inner := &client{conn: out, exec: &execCtx{tx: t, rnd: c.rng()}}
	fn(inner)
	if t.abort != "" {
		return redcon.AppendError(nil, t.abort)
	}
	return out.buf
}

// compileScript compiles a body (pure: the same on every replica).
func compileScript(body []byte) (*glua.FunctionProto, error) {
	return lua.Compile(body)
}

// scriptShebang parses an EVAL body's "#!lua [flags=a,b]" first line, as
// Redis 7 does. It returns the body to compile (the shebang line left
// empty, so that line numbers stay those of the script), whether the
// script declared no-writes, and an error reply.
func scriptShebang(body []byte) (code []byte, noWrites bool, msg string) {
	if !bytes.HasPrefix(body, []byte("#!")) {
		return body, false, ""
	}
	line, rest, found := bytes.Cut(body[2:], []byte("\n"))
	parts := strings.Fields(string(line))
	if len(parts) == 0 || parts[0] != "lua" {
		engine := ""
		if len(parts) > 0 {
			engine = parts[0]
		}
		return nil, false, "ERR Unexpected engine in script shebang: " + engine
	}
	for _, p := range parts[1:] {
		flags, ok := strings.CutPrefix(p, "flags=")
		if !ok {
			return nil, false, "ERR Unknown lua shebang option: " + p
		}
		for _, f := range strings.Split(flags, ",") {
			if f == "" {
				continue
			}
			if !slices.Contains(functionFlags, f) {
				return nil, false, "ERR Unexpected flag in script shebang: " + f
			}
			noWrites = noWrites || f == "no-writes"
		}
	}
	if !found {
		return nil, noWrites, ""
	}
	return append([]byte("\n"), rest...), noWrites, ""
}

func compileError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	return "ERR Error compiling script (new function): " + msg
}

// runScript runs a script inside x (an entry on apply, or a read view for
// the _RO forms) and writes its reply to c.
func (s *Server) runScript(c *client, x *execCtx, script []byte, byHash, readOnly bool, keys, argv [][]byte) {
	var body []byte
	var sha string
	if byHash {
		sha = strings.ToLower(string(script))
		if len(sha) != 40 {
			c.err(errTextNoScript)
			return
		}
		var found bool
		err := x.tx.Read(func(v kv.View) error {
			var err error
			body, found, err = kv.ScriptBody(v, sha)
			return err
		})
		if err != nil {
			c.err("ERR internal error")
			return
		}
		if !found {
			c.err(errTextNoScript)
			return
		}
	} else {
		body = script
		sha = kv.ScriptSHA(body)
	}
	code, noWrites, msg := scriptShebang(body)
	if msg != "" {
		c.err(msg)
		return
	}
	proto, err := compileScript(code)
	if err != nil {
		c.err(compileError(err))
		return
	}
	if !byHash && !readOnly {
		// Redis caches every script EVAL runs; so does the entry.
		if _, ok := x.write(c, kv.NewScriptLoad(body)); !ok {
			return
		}
	}
	vm := lua.New(x.rnd.Uint64(), instructionBudget)
	defer vm.Close()
	if rt, ok := x.tx.(*readTxn); ok {
		vm.Budget.Kill = rt.kill
	}
	sc := &scriptCall{s: s, x: x, readOnly: readOnly || noWrites, vm: vm}
	sc.install(vm)
	vm.SetGlobal("KEYS", stringTable(vm.L, keys))
	vm.SetGlobal("ARGV", stringTable(vm.L, argv))
	s.scriptReply(c, x, func() (glua.LValue, error) { return vm.Run(proto) }, sha, lua.ChunkName)
}

// scriptReply runs a script (run), marking the executor busy meanwhile,
// and writes its reply or its error to c. name is what the error says
// failed (a SHA1, a function name), chunk the chunk's name.
func (s *Server) scriptReply(c *client, x *execCtx, run func() (glua.LValue, error), name, chunk string) {
	if x.busy != nil {
		x.busy.since.Store(time.Now().UnixNano())
		defer x.busy.since.Store(0)
	}
	ret, err := run()
	if x.tx.Err() != nil {
		return // the store failed; the entry stops with it
	}
	if err != nil {
		c.err(scriptErrorText(err, name, chunk))
		return
	}
	c.result(kv.Result{Kind: kv.ResultRaw, Bytes: lua.ToRESP(nil, ret)})
}

// scriptErrorText is the error reply of a failed script, with Redis's
// suffix naming the script and the line.
func scriptErrorText(err error, name, chunk string) string {
	var le *lua.Error
	if !errors.As(err, &le) {
		return "ERR " + err.Error()
	}
	msg := lua.ErrorText(le.Msg)
	if le.Line > 0 {
		msg += " script: " + name + ", on @" + chunk + ":" + strconv.Itoa(le.Line) + "."
	} else if !le.Budget {
		msg += " script: " + name
	}
	return msg
}

func stringTable(L *glua.LState, items [][]byte) *glua.LTable {
	t := L.CreateTable(len(items), 0)
	for i, it := range items {
		t.RawSetInt(i+1, glua.LString(it))
	}
	return t
}

// callInstructions is what one redis.call or redis.pcall costs from the
// instruction budget: about the time of a simple command, measured in
// instructions of a tight loop on the machine this was written on.
const callInstructions = 100

// scriptCall is the redis table of one script run.
type scriptCall struct {
	s        *Server
	x        *execCtx
	readOnly bool
	vm       *lua.VM
	// loading: the VM runs a library's code (FUNCTION LOAD), which may
	// register functions and call no command; registered collects them.
	loading    bool
	registered []registeredFunction
}

// Log levels of redis.log, as Redis numbers them.
const (
	logDebug = iota
	logVerbose
	logNotice
	logWarning
)

// install registers the redis table, and its alias server.
func (sc *scriptCall) install(vm *lua.VM) {
	L := vm.L
	t := L.NewTable()
	set := func(name string, fn glua.LGFunction) { t.RawSetString(name, L.NewFunction(fn)) }
	// In a fixed order: the table iterates in insertion order.
	set("call", func(L *glua.LState) int { return sc.call(L, true) })
	set("pcall", func(L *glua.LState) int { return sc.call(L, false) })
	set("error_reply", scriptErrorReply)
	set("status_reply", scriptStatusReply)
	set("sha1hex", scriptSHA1Hex)
	set("log", sc.log)
	set("setresp", scriptSetResp)
	set("set_repl", func(L *glua.LState) int { L.CheckInt(1); return 0 })
	set("replicate_commands", func(L *glua.LState) int { L.Push(glua.LTrue); return 1 })
	set("breakpoint", func(L *glua.LState) int { L.Push(glua.LFalse); return 1 })
	set("debug", func(L *glua.LState) int { return 0 })
	set("acl_check_cmd", sc.aclCheckCmd)
	for _, c := range []struct {
		name string
		v    int
	}{{"LOG_DEBUG", logDebug}, {"LOG_VERBOSE", logVerbose}, {"LOG_NOTICE", logNotice}, {"LOG_WARNING", logWarning},
		{"REPL_NONE", 0}, {"REPL_AOF", 1}, {"REPL_SLAVE", 2}, {"REPL_REPLICA", 2}, {"REPL_ALL", 3}} {
		t.RawSetString(c.name, glua.LNumber(c.v))
	}
	t.RawSetString("REDIS_VERSION", glua.LString(redisVersion))
	t.RawSetString("REDIS_VERSION_NUM", glua.LNumber(redisVersionNum))
	vm.SetLibrary("redis", t, true)
	vm.SetLibrary("server", t, true)
}

// The version scripts see (redis.REDIS_VERSION), that of Redis whose
// behaviour elastickv follows.
const (
	redisVersion    = "7.2.0"
	redisVersionNum = 0x070200
)

// callArgv converts redis.call's arguments to an argv.
func callArgv(L *glua.LState) ([][]byte, string) {
	n := L.GetTop()
	if n == 0 {
		return nil, errTextCallNoArgs
	}
	argv := make([][]byte, n)
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case glua.LString:
			argv[i-1] = []byte(v)
		case glua.LNumber:
			argv[i-1] = []byte(v.String())
		default:
			return nil, errTextCallArgType
		}
	}
	return argv, ""
}

// check returns the error redis.call answers before running argv.
func (sc *scriptCall) check(argv [][]byte) string {
	cmd := lookupCommand(argv[0])
	if cmd == nil {
		// A Redis command elastickv lacks gets the reply Redis gives
		// scripts for it if it is one scripts may never call.
		if spec := commands.LookupArgs(argv); spec != nil && spec.Flags&commands.FlagNoscript != 0 {
			return errTextCallNoScript
		}
		return errTextCallUnknown
	}
	if msg := checkArgs(cmd, argv); msg != "" {
		if strings.HasPrefix(msg, "ERR wrong number") {
			return errTextCallArity
		}
		return msg
	}
	flags := cmd.spec.Flags
	if cmd.subs != nil && len(argv) >= 2 {
		if sub := cmd.subs[strings.ToLower(string(argv[1]))]; sub != nil {
			flags |= sub.spec.Flags
		}
	}
	if flags&commands.FlagNoscript != 0 {
		return errTextCallNoScript
	}
	if !execRunnable(cmd) {
		return "ERR '" + strings.ToUpper(cmd.name) + "' cannot run inside a script on elastickv: only keyspace commands, PING, ECHO and TIME can"
	}
	if sc.readOnly && flags&commands.FlagWrite != 0 {
		return errTextROWrite
	}
	return ""
}

// call is redis.call (raise) and redis.pcall.
func (sc *scriptCall) call(L *glua.LState, raise bool) int {
	if sc.loading {
		L.RaiseError("redis.call and redis.pcall cannot be used while a library loads")
	}
	// A command costs far more than an instruction: count it as
	// callInstructions of them, so that the budget bounds time for
	// scripts that mostly call commands too.
	sc.vm.Budget.Spend(callInstructions)
	argv, msg := callArgv(L)
	if msg == "" {
		msg = sc.check(argv)
	}
	var reply glua.LValue
	if msg != "" {
		t := L.NewTable()
		t.RawSetString("err", glua.LString(msg))
		reply = t
	} else {
		out := &captureConn{}
		inner := &client{conn: out, exec: sc.x}
		sc.s.runOnApply(inner, argv)
		if err := sc.x.tx.Err(); err != nil {
			L.RaiseError("store failure")
		}
		if sc.x.tx.Aborted() {
			// The entry passed one of its bounds and is rolled back; kv
			// replies the abort's error. Stop the script here.
			L.RaiseError("the script's entry was aborted")
		}
		// The reply becomes Lua values of about its size.
		if !sc.vm.Budget.Charge(len(out.buf)) {
			L.RaiseError("ERR the script's replies passed its budget of %d bytes", lua.MaxStringBytes)
		}
		v, _, err := lua.FromRESP(L, out.buf)
		if err != nil {
			L.RaiseError("ERR the reply of %s could not be read", strings.ToUpper(string(argv[0])))
		}
		reply = v
	}
	if t, ok := reply.(*glua.LTable); ok && raise {
		if _, isErr := t.RawGetString("err").(glua.LString); isErr {
			t.RawSetString("source", glua.LString("@"+lua.ChunkName))
			t.RawSetString("line", glua.LNumber(lua.CurrentLine(L)))
			L.Error(t, 0)
			return 0
		}
	}
	L.Push(reply)
	return 1
}

// errorTable builds Redis's error table from an error_reply argument: a
// leading '-' is dropped, an empty or code-less text gets ERR.
func scriptErrorReply(L *glua.LState) int {
	if L.GetTop() != 1 || L.Get(1).Type() != glua.LTString {
		L.RaiseError("wrong number or type of arguments")
	}
	msg := string(L.Get(1).(glua.LString))
	msg = strings.TrimPrefix(msg, "-")
	if msg == "" {
		msg = "ERR"
	}
	t := L.NewTable()
	t.RawSetString("err", glua.LString(msg))
	L.Push(t)
	return 1
}

func scriptStatusReply(L *glua.LState) int {
	if L.GetTop() != 1 || L.Get(1).Type() != glua.LTString {
		L.RaiseError("wrong number or type of arguments")
	}
	t := L.NewTable()
	t.RawSetString("ok", L.Get(1))
	L.Push(t)
	return 1
}

func scriptSHA1Hex(L *glua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("wrong number of arguments")
	}
	L.Push(glua.LString(kv.ScriptSHA([]byte(glua.LVAsString(L.Get(1))))))
	return 1
}

// scriptSetResp accepts protocol 2 only: RESP3 is not served yet.
func scriptSetResp(L *glua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("redis.setresp() requires one argument.")
	}
	switch L.CheckInt(1) {
	case 2:
		return 0
	case 3:
		L.RaiseError("RESP3 is not supported by elastickv yet")
	}
	L.RaiseError("RESP version must be 2 or 3.")
	return 0
}

func (sc *scriptCall) log(L *glua.LState) int {
	if L.GetTop() < 2 {
		L.RaiseError("redis.log() requires two arguments or more.")
	}
	level := L.CheckInt(1)
	if level < logDebug || level > logWarning {
		L.RaiseError("Invalid debug level.")
	}
	parts := make([]string, 0, L.GetTop()-1)
	for i := 2; i <= L.GetTop(); i++ {
		parts = append(parts, glua.LVAsString(L.Get(i)))
	}
	// Debug level: every replica logs it, and scripts may log a lot.
	sc.s.log.Debug("script log", slog.Int("level", level), slog.String("msg", strings.Join(parts, " ")))
	return 0
}

func (sc *scriptCall) aclCheckCmd(L *glua.LState) int {
	argv, msg := callArgv(L)
	if msg != "" {
		L.RaiseError("%s", msg)
	}
	if lookupCommand(argv[0]) == nil {
		L.RaiseError("Invalid command passed to redis.acl_check_cmd()")
	}
	L.Push(glua.LTrue) // no ACLs: every command is allowed
	return 1
}

// cmdScript answers SCRIPT LOAD, EXISTS, FLUSH, KILL and HELP.
func cmdScript(s *Server, c *client, args [][]byte) {
	switch strings.ToLower(string(args[1])) {
	case "load":
		code, _, msg := scriptShebang(args[2])
		if msg != "" {
			c.err(msg)
			return
		}
		if _, err := compileScript(code); err != nil {
			c.err(compileError(err))
			return
		}
		r, ok := s.write(c, kv.NewScriptLoad(append([]byte(nil), args[2]...)))
		if !ok {
			return
		}
		c.result(r)
	case "exists":
		found := make([]bool, len(args)-2)
		ok := s.read(c, func(v kv.View) error {
			for i, a := range args[2:] {
				found[i] = false
				sha := strings.ToLower(string(a))
				if len(sha) != 40 {
					continue
				}
				_, f, err := kv.ScriptBody(v, sha)
				if err != nil {
					return err
				}
				found[i] = f
			}
			return nil
		})
		if !ok {
			return
		}
		c.array(len(found))
		for _, f := range found {
			if f {
				c.int(1)
			} else {
				c.int(0)
			}
		}
	case "flush":
		if len(args) > 3 || (len(args) == 3 && !equalFold(args[2], "async") && !equalFold(args[2], "sync")) {
			c.err("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
			return
		}
		r, ok := s.write(c, kv.NewScriptFlush())
		if !ok {
			return
		}
		c.result(r)
	case "kill":
		s.killScripts(c)
	case "help":
		lines := []string{
			"SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"EXISTS <sha1> [<sha1> ...]",
			"    Return information about the existence of the scripts in the script cache.",
			"FLUSH [ASYNC|SYNC]",
			"    Flush the Lua scripts cache (on every node: the cache is replicated).",
			"KILL",
			"    Stop the read-only scripts (EVAL_RO) running on this node; a script run on apply is UNKILLABLE: it stops at its instruction budget.",
			"LOAD <script>",
			"    Load a script into the scripts cache without executing it.",
			"HELP",
			"    Print this help.",
		}
		c.array(len(lines))
		for _, l := range lines {
			c.simple(l)
		}
	}
}
