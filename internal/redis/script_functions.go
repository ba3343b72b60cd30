package redis

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis/lua"
)

// FUNCTION LOAD, DELETE, FLUSH, LIST, KILL, STATS, HELP and FCALL,
// FCALL_RO.
//
// Libraries are replicated state (kv/script_functions.go), and everything
// that decides what a library holds runs on apply, for the same reasons
// as EVAL (script.go): FUNCTION LOAD and DELETE are proposed as one bare
// OpExec each, and their handlers, run on apply, load the library's code
// in a VM to learn the functions it registers, check the names against
// the stored libraries, and store it. FCALL runs on apply too: it loads
// the function's library into a fresh VM (the same code in the same
// environment registers the same functions on every replica) and calls
// the function. FCALL_RO, like EVAL_RO, runs on the node asked inside one
// linearizable read.
//
// A library's code runs with Redis's load-time restrictions: no math, and
// a redis table holding only register_function, log and the constants.

// Error replies of functions, in Redis 7.2's words.
const (
	errTextFuncNotFound = "ERR Function not found"
	errTextLibNotFound  = "ERR Library not found"
	errTextBadKeys      = "ERR Bad number of keys provided"
	errTextNoFunctions  = "ERR No functions registered"
	errTextMissingMeta  = "ERR Missing library metadata"
	errTextNoLibName    = "ERR Library name was not given"
	errTextLibNameTwice = "ERR Invalid metadata value, name argument was given multiple times"
	errTextBadLibName   = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
	// errTextBadFuncName is what Redis 7.2 answers to a bad function name:
	// the library names' message, word for word.
	errTextBadFuncName    = "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
	errTextWriteFlagRO    = "ERR Can not execute a script with write flag using *_ro command."
	errTextRegisterOnLoad = "redis.register_function can only be called on FUNCTION LOAD command"
)

// loadInstructions is the budget of a library's code while it loads
// (Redis gives FUNCTION LOAD 500 ms): the same at FUNCTION LOAD and at
// every FCALL, which loads the library again.
const loadInstructions = 1_000_000

// registeredFunction is a function a library registers.
type registeredFunction struct {
	name, description string
	callback          *glua.LFunction
	flags             []string
	noWrites          bool
}

// functionFlags are the flags register_function accepts.
var functionFlags = []string{"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}

// validName reports whether a library or function name is made of
// letters, digits and underscores, and is not empty.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, ch := range []byte(s) {
		if !(ch == '_' || ('0' <= ch && ch <= '9') || ('a' <= ch && ch <= 'z') || ('A' <= ch && ch <= 'Z')) {
			return false
		}
	}
	return true
}

// parseLibraryCode splits a library's code into its name and its Lua body
// (the code after the "#!lua name=..." line).
func parseLibraryCode(code []byte) (name string, body []byte, msg string) {
	if !bytes.HasPrefix(code, []byte("#!")) {
		return "", nil, errTextMissingMeta
	}
	line, rest, _ := bytes.Cut(code[2:], []byte("\n"))
	// The engine is what follows "#!" up to the first space (maybe
	// nothing), then space-separated name=value pairs.
	engine, params, _ := strings.Cut(string(line), " ")
	parts := strings.Fields(params)
	if !strings.EqualFold(engine, "lua") {
		return "", nil, "ERR Engine '" + engine + "' not found"
	}
	seen := false
	for _, p := range parts {
		v, ok := strings.CutPrefix(p, "name=")
		if !ok {
			return "", nil, "ERR Invalid metadata value given: " + p
		}
		if seen {
			return "", nil, errTextLibNameTwice
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1] // Redis splits the line as arguments, quotes and all
		}
		seen, name = true, v
	}
	if !seen {
		return "", nil, errTextNoLibName
	}
	if !validName(name) {
		return "", nil, errTextBadLibName
	}
	return name, rest, ""
}

// loadLibrary runs a library's body in vm with the load-time
// restrictions and returns what it registers. On failure it returns the
// error reply.
func (sc *scriptCall) loadLibrary(body []byte) ([]registeredFunction, string) {
	proto, err := lua.CompileNamed(body, lua.FunctionChunkName)
	if err != nil {
		return nil, "ERR Error compiling function: " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	vm := sc.vm
	L := vm.L
	load := L.NewTable()
	load.RawSetString("register_function", L.NewFunction(sc.registerFunction))
	load.RawSetString("log", L.NewFunction(sc.log))
	for _, c := range []struct {
		name string
		v    int
	}{{"LOG_DEBUG", logDebug}, {"LOG_VERBOSE", logVerbose}, {"LOG_NOTICE", logNotice}, {"LOG_WARNING", logWarning}} {
		load.RawSetString(c.name, glua.LNumber(c.v))
	}
	load.RawSetString("REDIS_VERSION", glua.LString(redisVersion))
	load.RawSetString("REDIS_VERSION_NUM", glua.LNumber(redisVersionNum))
	vm.SetStrictLibrary("redis", load)
	vm.SetStrictLibrary("server", load)
	vm.Hide("math", "getmetatable")
	sc.loading, sc.registered = true, nil
	restore := vm.Budget.Limit(loadInstructions)
	_, err = vm.Run(proto)
	timedOut := vm.Budget.Exhausted()
	restore()
	sc.loading = false
	vm.Hide()
	sc.install(vm) // the full redis table, for the functions' calls
	if timedOut {
		return nil, "ERR FUNCTION LOAD timeout: the library's code ran past its budget of " + strconv.Itoa(loadInstructions) + " Lua instructions"
	}
	if err != nil {
		var le *lua.Error
		if errors.As(err, &le) {
			return nil, "ERR Error registering functions: " + strings.TrimPrefix(lua.ErrorText(le.Msg), "ERR ")
		}
		return nil, "ERR Error registering functions: " + err.Error()
	}
	if len(sc.registered) == 0 {
		return nil, errTextNoFunctions
	}
	return sc.registered, ""
}

// registerFunction is redis.register_function, at load time only.
func (sc *scriptCall) registerFunction(L *glua.LState) int {
	if !sc.loading {
		L.RaiseError(errTextRegisterOnLoad)
	}
	var f registeredFunction
	switch L.GetTop() {
	case 1:
		t, ok := L.Get(1).(*glua.LTable)
		if !ok {
			L.RaiseError("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
		}
		sc.namedRegistration(L, t, &f)
	case 2:
		name, ok := L.Get(1).(glua.LString)
		if !ok {
			L.RaiseError("first argument to redis.register_function must be a string")
		}
		cb, ok := L.Get(2).(*glua.LFunction)
		if !ok {
			L.RaiseError("second argument to redis.register_function must be a function")
		}
		f.name, f.callback = string(name), cb
	default:
		L.RaiseError("wrong number of arguments to redis.register_function")
	}
	if !validName(f.name) {
		L.RaiseError(errTextBadFuncName)
	}
	for _, r := range sc.registered {
		if strings.EqualFold(r.name, f.name) {
			L.RaiseError("Function already exists in the library")
		}
	}
	sc.registered = append(sc.registered, f)
	return 0
}

func (sc *scriptCall) namedRegistration(L *glua.LState, t *glua.LTable, f *registeredFunction) {
	for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
		key, _ := k.(glua.LString)
		switch string(key) {
		case "function_name":
			s, ok := v.(glua.LString)
			if !ok {
				L.RaiseError("function_name argument given to redis.register_function must be a string")
			}
			f.name = string(s)
		case "description":
			s, ok := v.(glua.LString)
			if !ok {
				L.RaiseError("description argument given to redis.register_function must be a string")
			}
			f.description = string(s)
		case "callback":
			cb, ok := v.(*glua.LFunction)
			if !ok {
				L.RaiseError("callback argument given to redis.register_function must be a function")
			}
			f.callback = cb
		case "flags":
			ft, ok := v.(*glua.LTable)
			if !ok {
				L.RaiseError("flags argument to redis.register_function must be a table representing function flags")
			}
			for i := 1; ft.RawGetInt(i) != glua.LNil; i++ {
				s, ok := ft.RawGetInt(i).(glua.LString)
				if !ok || !containsFold(functionFlags, string(s)) {
					L.RaiseError("unknown flag given")
				}
				f.flags = append(f.flags, strings.ToLower(string(s)))
				if strings.EqualFold(string(s), "no-writes") {
					f.noWrites = true
				}
			}
		default:
			L.RaiseError("unknown argument given to redis.register_function")
		}
	}
	if f.name == "" {
		L.RaiseError("redis.register_function must get a function name argument")
	}
	if f.callback == nil {
		L.RaiseError("redis.register_function must get a callback argument")
	}
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// newScriptCall builds a VM and its redis table for one run inside x.
func (s *Server) newScriptCall(x *execCtx, readOnly bool) *scriptCall {
	vm := lua.New(x.rnd.Uint64(), instructionBudget)
	if rt, ok := x.tx.(*readTxn); ok {
		vm.Budget.Kill = rt.kill
	}
	sc := &scriptCall{s: s, x: x, readOnly: readOnly, vm: vm}
	sc.install(vm)
	return sc
}

// cmdFunction answers the FUNCTION subcommands.
func cmdFunction(s *Server, c *client, args [][]byte) {
	switch strings.ToLower(string(args[1])) {
	case "load", "delete":
		if c.exec != nil {
			s.functionOnApply(c, args)
			return
		}
		if msg := checkFunctionLoadArgs(args); msg != "" {
			c.err(msg)
			return
		}
		r, ok := s.write(c, kv.NewBareExec(copyArgs(args)))
		if !ok {
			return
		}
		c.result(r)
	case "flush":
		if len(args) > 3 {
			c.err("ERR unknown subcommand or wrong number of arguments for '" + string(args[1]) + "'. Try FUNCTION HELP.")
			return
		}
		if len(args) == 3 && !equalFold(args[2], "async") && !equalFold(args[2], "sync") {
			c.err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
			return
		}
		r, ok := s.write(c, kv.NewFunctionFlush())
		if !ok {
			return
		}
		c.result(r)
	case "kill":
		s.killScripts(c)
	case "list":
		s.functionList(c, args)
	case "stats":
		s.functionStats(c)
	case "help":
		lines := []string{
			"FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
			"LOAD [REPLACE] <FUNCTION CODE>",
			"    Create a new library (on every node: libraries are replicated).",
			"DELETE <LIBRARY NAME>",
			"    Delete the given library.",
			"LIST [LIBRARYNAME PATTERN] [WITHCODE]",
			"    Return general information on all the libraries.",
			"FLUSH [ASYNC|SYNC]",
			"    Delete all the libraries.",
			"KILL",
			"    Stop the read-only functions (FCALL_RO) running on this node; one run on apply is UNKILLABLE: it stops at its instruction budget.",
			"STATS",
			"    Return information about the libraries.",
			"HELP",
			"    Print this help.",
		}
		c.array(len(lines))
		for _, l := range lines {
			c.simple(l)
		}
	}
}

// checkFunctionLoadArgs checks FUNCTION LOAD's options before proposing.
func checkFunctionLoadArgs(args [][]byte) string {
	if !equalFold(args[1], "load") {
		return ""
	}
	for _, a := range args[2 : len(args)-1] {
		if !equalFold(a, "replace") {
			return "ERR Unknown option given: " + string(a)
		}
	}
	return ""
}

// functionOnApply runs FUNCTION LOAD or DELETE inside the entry.
func (s *Server) functionOnApply(c *client, args [][]byte) {
	x := c.exec
	if equalFold(args[1], "delete") {
		if len(args) != 3 {
			c.err(wrongArity("function|delete"))
			return
		}
		r, ok := x.write(c, kv.NewFunctionDelete(string(args[2])))
		if !ok {
			return
		}
		if r.Kind == kv.ResultInt && r.Int == 0 {
			c.err(errTextLibNotFound)
			return
		}
		c.ok()
		return
	}
	if msg := checkFunctionLoadArgs(args); msg != "" {
		c.err(msg)
		return
	}
	replace := len(args) > 3
	code := args[len(args)-1]
	sc, name, fns, msg := s.compileLibrary(x, false, code)
	if msg != "" {
		c.err(msg)
		return
	}
	defer sc.vm.Close()
	names := make([]string, len(fns))
	for i, f := range fns {
		names[i] = strings.ToLower(f.name)
	}
	err := x.tx.Read(func(v kv.View) error {
		_, exists, err := kv.ReadFunctionLibrary(v, name)
		if err != nil {
			return err
		}
		if exists && !replace {
			return replyError("ERR Library '" + name + "' already exists")
		}
		for _, f := range names {
			owner, found, err := kv.FunctionOwner(v, f)
			if err != nil {
				return err
			}
			if found && owner != name {
				return replyError("ERR Function " + f + " already exists")
			}
		}
		return nil
	})
	var re replyError
	switch {
	case errors.As(err, &re):
		c.err(string(re))
		return
	case err != nil:
		c.err("ERR internal error")
		return
	}
	if _, ok := x.write(c, kv.NewFunctionPut(name, code, names)); !ok {
		return
	}
	c.bulkString(name)
}

// fcallArgs splits FCALL's arguments, with its own words for a bad count.
func fcallArgs(args [][]byte) (keys, argv [][]byte, msg string) {
	n, err := parseInt(args[2])
	if err != nil {
		return nil, nil, errTextBadKeys
	}
	if n < 0 {
		return nil, nil, errTextNegKeys
	}
	if n > int64(len(args)-3) {
		return nil, nil, errTextTooManyKeys
	}
	return args[3 : 3+n], args[3+n:], ""
}

func cmdFCall(s *Server, c *client, args [][]byte)   { s.fcallCommand(c, args, false) }
func cmdFCallRO(s *Server, c *client, args [][]byte) { s.fcallCommand(c, args, true) }

func (s *Server) fcallCommand(c *client, args [][]byte, readOnly bool) {
	keys, argv, msg := fcallArgs(args)
	if msg != "" {
		c.err(msg)
		return
	}
	switch {
	case c.exec != nil:
		s.runFunction(c, c.exec, string(args[1]), readOnly, keys, argv)
	case readOnly:
		var reply []byte
		ok := s.read(c, func(v kv.View) error {
			reply = s.runReadOnly(c, v, func(inner *client) {
				s.runFunction(inner, inner.exec, string(args[1]), true, keys, argv)
			})
			return nil
		})
		if ok {
			c.result(kv.Result{Kind: kv.ResultRaw, Bytes: reply})
		}
	default:
		r, ok := s.write(c, kv.NewBareExec(copyArgs(args)))
		if ok {
			c.result(r)
		}
	}
}

// compileLibrary parses a library's code and runs its registrations on a
// new VM of x (FUNCTION LOAD checks a library this way; FCALL loads the
// stored one again, since no VM outlives a run). On success the caller
// closes sc.vm; otherwise msg is the error reply and no VM is left open.
func (s *Server) compileLibrary(x *execCtx, readOnly bool, code []byte) (sc *scriptCall, name string, fns []registeredFunction, msg string) {
	name, body, msg := parseLibraryCode(code)
	if msg != "" {
		return nil, "", nil, msg
	}
	sc = s.newScriptCall(x, readOnly)
	if fns, msg = sc.loadLibrary(body); msg != "" {
		sc.vm.Close()
		return nil, "", nil, msg
	}
	return sc, name, fns, ""
}

// runFunction runs function name inside x and writes its reply to c.
func (s *Server) runFunction(c *client, x *execCtx, name string, readOnly bool, keys, argv [][]byte) {
	fname := strings.ToLower(name)
	var lib kv.FunctionLibrary
	var found bool
	err := x.tx.Read(func(v kv.View) error {
		owner, ok, err := kv.FunctionOwner(v, fname)
		if err != nil || !ok {
			return err
		}
		lib, found, err = kv.ReadFunctionLibrary(v, owner)
		return err
	})
	if err != nil {
		c.err("ERR internal error")
		return
	}
	if !found {
		c.err(errTextFuncNotFound)
		return
	}
	sc, _, fns, msg := s.compileLibrary(x, readOnly, lib.Code)
	if msg != "" {
		c.err(msg)
		return
	}
	defer sc.vm.Close()
	var fn *registeredFunction
	for i := range fns {
		if strings.ToLower(fns[i].name) == fname {
			fn = &fns[i]
		}
	}
	if fn == nil {
		c.err(errTextFuncNotFound)
		return
	}
	if readOnly && !fn.noWrites {
		c.err(errTextWriteFlagRO)
		return
	}
	sc.readOnly = readOnly || fn.noWrites
	L := sc.vm.L
	s.scriptReply(c, x, func() (glua.LValue, error) {
		return sc.vm.Call(fn.callback, stringTable(L, keys), stringTable(L, argv))
	}, fn.name, lua.FunctionChunkName)
}

// functionList answers FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE].
func (s *Server) functionList(c *client, args [][]byte) {
	var pattern []byte
	withCode, havePattern := false, false
	for i := 2; i < len(args); i++ {
		switch {
		case equalFold(args[i], "withcode") && !withCode:
			withCode = true
		case equalFold(args[i], "libraryname") && !havePattern:
			if i+1 >= len(args) {
				c.err("ERR library name argument was not given")
				return
			}
			havePattern, pattern = true, args[i+1]
			i++
		default:
			c.err("ERR Unknown argument " + string(args[i]))
			return
		}
	}
	var libs []kv.FunctionLibrary
	ok := s.read(c, func(v kv.View) error {
		var err error
		libs, err = kv.FunctionLibraries(v)
		return err
	})
	if !ok {
		return
	}
	type listed struct {
		lib kv.FunctionLibrary
		fns []registeredFunction
	}
	var out []listed
	for _, lib := range libs {
		if havePattern && !compileGlob(pattern).match([]byte(lib.Name)) {
			continue
		}
		// The flags and descriptions are in the code: load it, in a VM
		// that runs no command.
		_, body, msg := parseLibraryCode(lib.Code)
		var fns []registeredFunction
		if msg == "" {
			x := &execCtx{tx: &readTxn{}, rnd: c.rng()}
			sc := s.newScriptCall(x, true)
			fns, _ = sc.loadLibrary(body)
			sc.vm.Close()
		}
		out = append(out, listed{lib, fns})
	}
	c.array(len(out))
	for _, l := range out {
		if withCode {
			c.array(8)
		} else {
			c.array(6)
		}
		c.bulkString("library_name")
		c.bulkString(l.lib.Name)
		c.bulkString("engine")
		c.bulkString("LUA")
		c.bulkString("functions")
		c.array(len(l.fns))
		for _, f := range l.fns {
			c.array(6)
			c.bulkString("name")
			c.bulkString(f.name)
			c.bulkString("description")
			if f.description == "" {
				c.null()
			} else {
				c.bulkString(f.description)
			}
			c.bulkString("flags")
			c.array(len(f.flags))
			for _, fl := range f.flags {
				c.simple(fl)
			}
		}
		if withCode {
			c.bulkString("library_code")
			c.bulk(l.lib.Code)
		}
	}
}

// functionStats answers FUNCTION STATS: no running script is reported
// (the applier's script belongs to no client of this node).
func (s *Server) functionStats(c *client) {
	var libs []kv.FunctionLibrary
	ok := s.read(c, func(v kv.View) error {
		var err error
		libs, err = kv.FunctionLibraries(v)
		return err
	})
	if !ok {
		return
	}
	n := 0
	for _, l := range libs {
		n += len(l.Functions)
	}
	c.array(4)
	c.bulkString("running_script")
	c.null()
	c.bulkString("engines")
	c.array(2)
	c.bulkString("LUA")
	c.array(4)
	c.bulkString("libraries_count")
	c.int(int64(len(libs)))
	c.bulkString("functions_count")
	c.int(int64(n))
}
