// Package lua is the Lua 5.1 virtual machine of EVAL and its kin: a
// gopher-lua state set up as Redis sets up its own (a protected global
// table, the string, table, math, bit and cjson libraries, no file or OS
// access), with a deterministic instruction budget, and the conversions
// between Lua values and RESP replies.
//
// Scripts run on apply, on every replica (internal/redis/script.go), so
// everything here is a pure function of the script, its arguments and the
// seed the caller passes:
//   - The budget counts VM instructions, never time: gopher-lua checks its
//     context's Done channel once before every instruction
//     (mainLoopWithContext), and Budget's Done counts those checks and
//     returns a closed channel once the count passes the limit. Every
//     replica stops a script at the same instruction with the same error.
//   - math.random is a PRNG of this package seeded by the caller (the log
//     index on apply), never the process's global source.
//   - Every limit is a constant of this package; nothing reads node
//     configuration.
//   - A VM is used for one script run and closed: no state survives from
//     one run to the next, so a replica that replays the log from a
//     snapshot runs each script in the same state as the node that ran it
//     first.
package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Limits of a script run. They are constants because a script runs on
// every replica: a limit that differed between nodes would make them
// diverge.
const (
	// InstructionBudget is how many Lua VM instructions a script may run
	// (each command it calls counts as 100, see redis.callInstructions).
	// It bounds both time and memory. Measured on the machine this was
	// written on (2 shared cores, 2026-12-06): the whole budget takes
	// 0.22 s for an empty loop, 0.39 s for a loop adding to a local and
	// 0.76 s for one filling a table; a loop that does nothing but
	// allocate tables reaches about 650 MB of heap by the end of it
	// (strings are bounded apart, by MaxStringBytes). Redis stops scripts
	// by time (5 s lua-time-limit, then SCRIPT KILL); a count is the same
	// on every replica.
	InstructionBudget = 20_000_000
	// CallStackDepth bounds nested Lua calls (recursion ends with "stack
	// overflow" long before the Go stack grows large).
	CallStackDepth = 200
	// RegistryMax bounds the VM's value stack, in slots.
	RegistryMax = 1 << 20
	// MaxStringBytes bounds the bytes of the large strings a script
	// builds, all together (Budget), and so any one of them.
	MaxStringBytes = 256 << 20
	// MaxReplyDepth bounds the nesting of a script's reply: a cyclic
	// table ends in an error there instead of recursing forever.
	MaxReplyDepth = 1000
	// MaxReplyBytes bounds the size of a script's reply.
	MaxReplyBytes = 512 << 20
)

// clockRate is os.clock's nominal speed, in instructions a second.
const clockRate = 10e6

// ChunkName is the name Redis gives an EVAL body in error positions;
// FunctionChunkName that of a function library's code.
const (
	ChunkName         = "user_script"
	FunctionChunkName = "user_function"
)

// errReadonly is the message of a write to a protected table, in Redis's
// words.
const errReadonly = "Attempt to modify a readonly table"

// Budget is a context.Context whose Done channel closes (as the VM sees
// it) after a fixed number of checks; the VM checks once per instruction.
//
// It also bounds the script's large strings, which the instruction count
// alone does not: s = s .. s doubles a string in a few instructions. On
// each check it looks at the registers of the running Lua function, where
// every string an instruction builds lands (CONCAT writes its register),
// and charges each string of at least largeString bytes it has not seen
// before (by the address of its bytes) to a byte budget. The check is a
// pure function of the script's execution, like the count.
type Budget struct {
	used, max uint64
	// L is the state whose registers are checked (nil: none).
	L *glua.LState
	// bytes are the large-string bytes charged; seen their addresses.
	bytes uint64
	seen  map[*byte]struct{}
	// memory: the script passed MaxStringBytes (sticky, like the count).
	memory bool
	// Kill, when set, stops the script at its next instruction once it
	// holds true: SCRIPT KILL of a read-only script outside the log,
	// which no replica replays. Nil on apply, where nothing but the
	// counts may stop a script.
	Kill *atomic.Bool
	// killed: Kill stopped the script (sticky).
	killed bool
}

// ErrBudget is the error of a script stopped at its instruction budget.
var ErrBudget = errors.New("script stopped at its budget of Lua instructions")

// ErrKilled is the error of a script SCRIPT KILL stopped.
var ErrKilled = errors.New("script killed by user with SCRIPT KILL")

// ErrMemory is the error of a script that built too many large strings.
var ErrMemory = errors.New("script built more than its budget of string bytes")

// largeString is the size from which a string is charged to the byte
// budget: smaller ones are bounded by the instruction count.
const largeString = 4096

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Deadline implements context.Context: a budget has no deadline.
func (b *Budget) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done counts one instruction and returns a closed channel once the budget
// is spent (nil, which never fires, before).
func (b *Budget) Done() <-chan struct{} {
	b.used++
	if b.used > b.max || b.memory || b.killed {
		return closedChan
	}
	if b.Kill != nil && b.Kill.Load() {
		b.killed = true
		return closedChan
	}
	if b.L != nil {
		L := b.L
		for i, top := 1, L.GetTop(); i <= top; i++ {
			s, ok := L.Get(i).(glua.LString)
			if !ok || len(s) < largeString {
				continue
			}
			p := unsafe.StringData(string(s))
			if _, seen := b.seen[p]; seen {
				continue
			}
			if b.seen == nil {
				b.seen = make(map[*byte]struct{})
			}
			b.seen[p] = struct{}{}
			b.bytes += uint64(len(s))
			if b.bytes > MaxStringBytes {
				b.memory = true
				return closedChan
			}
		}
	}
	return nil
}

// Err implements context.Context.
func (b *Budget) Err() error {
	switch {
	case b.killed:
		return ErrKilled
	case b.memory:
		return ErrMemory
	case b.used > b.max:
		return ErrBudget
	}
	return nil
}

// Limit lowers the budget to n instructions from now until restore is
// called (a function library's load, inside a script's VM).
func (b *Budget) Limit(n uint64) (restore func()) {
	full := b.max
	b.max = min(full, b.used+n)
	return func() { b.max = full }
}

// Spend counts n instructions of work done outside the VM (a command a
// script calls); the script stops at its next instruction past the
// budget.
func (b *Budget) Spend(n uint64) { b.used += n }

// Charge counts n bytes a library function is about to build; it reports
// false (and stops the script at its next instruction) past the budget.
func (b *Budget) Charge(n int) bool {
	if n < largeString {
		return true
	}
	b.bytes += uint64(n)
	if b.bytes > MaxStringBytes {
		b.memory = true
		return false
	}
	return true
}

// Value implements context.Context.
func (b *Budget) Value(any) any { return nil }

// Exhausted reports whether the script ran out of budget (instructions
// or string bytes).
func (b *Budget) Exhausted() bool { return b.used > b.max || b.memory || b.killed }

// Used returns the instructions counted so far.
func (b *Budget) Used() uint64 { return b.used }

// VM is one script run's Lua state.
type VM struct {
	// L is the gopher-lua state; callers register functions on it.
	L *glua.LState
	// Budget counts the run's instructions.
	Budget   *Budget
	globals  *glua.LTable // the real globals, behind the protected env
	readonly map[*glua.LTable]bool
	rnd      uint64
	hidden   []string // globals Hide made unreachable
	// lazy builds the protected libraries not built yet, by name.
	lazy map[string]func() *glua.LTable
	// ids numbers the tables, functions and userdata tostring has
	// described, in the order it met them (describe).
	ids map[glua.LValue]int
}

// New returns a VM with Redis's libraries, its math.random seeded by seed,
// and a budget of budget instructions.
func New(seed, budget uint64) *VM {
	L := glua.NewState(glua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       CallStackDepth,
		RegistrySize:        256,
		RegistryGrowStep:    256,
		MinimizeStackMemory: true,
		RegistryMaxSize:     RegistryMax,
	})
	vm := &VM{L: L, Budget: &Budget{max: budget, L: L}, readonly: make(map[*glua.LTable]bool)}
	vm.seed(seed)
	for _, lib := range []struct {
		name string
		fn   glua.LGFunction
	}{{"", glua.OpenBase}, {glua.TabLibName, glua.OpenTable}, {glua.StringLibName, glua.OpenString}, {glua.MathLibName, glua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(glua.LString(lib.name))
		L.Call(1, 0)
	}
	// gopher-lua fills its library tables from Go maps, so their
	// insertion order, which is their iteration order (pairs), differs
	// from one process to the next: rebuild them in name order so that
	// pairs walks them alike on every replica.
	g := sortedCopy(L, L.G.Global)
	for _, name := range []string{glua.StringLibName, glua.TabLibName, glua.MathLibName} {
		g.RawSetString(name, sortedCopy(L, g.RawGetString(name).(*glua.LTable)))
	}
	if mt, ok := L.GetMetatable(glua.LString("")).(*glua.LTable); ok {
		mt.RawSetString("__index", g.RawGetString(glua.StringLibName))
	}
	vm.globals = g
	// What Redis leaves out: file access, printing, module loading, and
	// gopher-lua extras.
	for _, name := range []string{"dofile", "loadfile", "print", "module", "require", "_printregs", "newproxy", "_GOPHER_LUA_VERSION", "collectgarbage"} {
		g.RawSetString(name, glua.LNil)
	}
	g.RawSetString("setmetatable", L.NewFunction(vm.setMetatable))
	g.RawSetString("tostring", L.NewFunction(vm.toString))
	g.RawSetString("rawset", L.NewFunction(vm.rawSet))
	g.RawSetString("_VERSION", glua.LString("Lua 5.1"))
	str := g.RawGetString(glua.StringLibName).(*glua.LTable)
	str.RawSetString("rep", L.NewFunction(vm.strRep))
	str.RawSetString("dump", glua.LNil)
	str.RawSetString("format", L.NewFunction(vm.wrapFormat(vm.describeArgs(str.RawGetString("format").(*glua.LFunction).GFunction))))
	str.RawSetString("gsub", L.NewFunction(vm.wrapGsub(str.RawGetString("gsub").(*glua.LFunction).GFunction)))
	str.RawSetString("gmatch", L.NewFunction(wrapGmatch(str.RawGetString("gmatch").(*glua.LFunction).GFunction)))
	tab := g.RawGetString(glua.TabLibName).(*glua.LTable)
	tab.RawSetString("concat", L.NewFunction(vm.tableConcat))
	m := g.RawGetString(glua.MathLibName).(*glua.LTable)
	m.RawSetString("random", L.NewFunction(vm.mathRandom))
	m.RawSetString("randomseed", L.NewFunction(vm.mathRandomseed))
	// Redis keeps os.clock only; it is the one clock a script may read,
	// and here it counts instructions, so it is the same on every replica.
	os := L.NewTable()
	os.RawSetString("clock", L.NewFunction(vm.osClock))
	vm.SetLibrary("os", os, false)
	// Built on first use (globalIndex): most scripts use none of them,
	// and building a VM is most of a small script's cost. Scripts cannot
	// tell when a library was built, so this changes nothing they see.
	vm.lazy = map[string]func() *glua.LTable{
		"cjson":    func() *glua.LTable { return newCJSON(L, vm.Budget) },
		"bit":      func() *glua.LTable { return newBit(L) },
		"cmsgpack": func() *glua.LTable { return newCMsgpack(L, vm.Budget) },
	}
	for _, name := range []string{glua.StringLibName, glua.TabLibName, glua.MathLibName} {
		vm.SetLibrary(name, g.RawGetString(name).(*glua.LTable), false)
	}

	// The protected global table: reads of a missing name and every
	// write fail with Redis's words.
	env := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(vm.globalIndex))
	mt.RawSetString("__newindex", L.NewFunction(readonlyNewIndex))
	mt.RawSetString("__metatable", vm.protect(L.NewTable()))
	env.Metatable = mt
	vm.readonly[env] = true
	g.RawSetString("_G", env)
	L.G.Global = env
	L.Env = env
	L.SetContext(vm.Budget)
	return vm
}

// Close releases the state.
func (vm *VM) Close() { vm.L.Close() }

// SetGlobal sets a global the script reads (KEYS, ARGV).
func (vm *VM) SetGlobal(name string, v glua.LValue) { vm.globals.RawSetString(name, v) }

// SetLibrary makes t visible to scripts as the global name. With
// protected, scripts see a read-only proxy of t (Redis protects its own
// tables: redis, cjson, bit, cmsgpack).
func (vm *VM) SetLibrary(name string, t *glua.LTable, protected bool) {
	var v glua.LValue = t
	if protected {
		v = vm.protect(t)
	}
	vm.globals.RawSetString(name, v)
}

// SetStrictLibrary is SetLibrary(name, t, true) for a table whose missing
// fields are errors, in Redis's words for a missing global (the redis
// table a function library sees while it loads).
func (vm *VM) SetStrictLibrary(name string, t *glua.LTable) {
	p := vm.protect(t)
	mt := p.Metatable.(*glua.LTable)
	mt.RawSetString("__index", vm.L.NewFunction(func(L *glua.LState) int {
		v := t.RawGet(L.Get(2))
		if v == glua.LNil {
			L.RaiseError("Script attempted to access nonexistent global variable '%s'", glua.LVAsString(L.Get(2)))
		}
		L.Push(v)
		return 1
	}))
	vm.globals.RawSetString(name, p)
}

// Hide makes the globals names unreachable (nil unhides them all): a
// function library loads without math, as in Redis.
func (vm *VM) Hide(names ...string) { vm.hidden = names }

// protect returns a read-only proxy of t.
func (vm *VM) protect(t *glua.LTable) *glua.LTable {
	p := vm.L.NewTable()
	mt := vm.L.NewTable()
	mt.RawSetString("__index", t)
	mt.RawSetString("__newindex", vm.L.NewFunction(readonlyNewIndex))
	mt.RawSetString("__metatable", glua.LFalse)
	p.Metatable = mt
	vm.readonly[p] = true
	return p
}

func readonlyNewIndex(L *glua.LState) int {
	L.RaiseError(errReadonly)
	return 0
}

func (vm *VM) globalIndex(L *glua.LState) int {
	key := L.Get(2)
	v := vm.globals.RawGet(key)
	if s, ok := key.(glua.LString); ok && v == glua.LNil {
		if build := vm.lazy[string(s)]; build != nil {
			delete(vm.lazy, string(s))
			vm.SetLibrary(string(s), build(), true)
			v = vm.globals.RawGet(key)
		}
	}
	if s, ok := key.(glua.LString); ok && slices.Contains(vm.hidden, string(s)) {
		v = glua.LNil
	}
	if v == glua.LNil {
		L.RaiseError("Script attempted to access nonexistent global variable '%s'", glua.LVAsString(key))
	}
	L.Push(v)
	return 1
}

func (vm *VM) setMetatable(L *glua.LState) int {
	if t, ok := L.Get(1).(*glua.LTable); ok && vm.readonly[t] {
		L.RaiseError(errReadonly)
	}
	L.CheckTypes(2, glua.LTNil, glua.LTTable)
	obj := L.Get(1)
	if obj == glua.LNil {
		L.RaiseError("cannot set metatable to a nil object.")
	}
	if mt, ok := L.GetMetatable(obj).(*glua.LTable); ok && mt.RawGetString("__metatable") != glua.LNil {
		L.RaiseError("cannot change a protected metatable")
	}
	L.SetMetatable(obj, L.Get(2))
	L.SetTop(1)
	return 1
}

func (vm *VM) rawSet(L *glua.LState) int {
	t := L.CheckTable(1)
	if vm.readonly[t] {
		L.RaiseError(errReadonly)
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.SetTop(1)
	return 1
}

// Compile compiles a script body as the chunk Redis calls user_script.
// Compilation is a pure function of body; the proto may be cached and
// shared by VMs.
func Compile(body []byte) (*glua.FunctionProto, error) {
	return CompileNamed(body, ChunkName)
}

// CompileNamed is Compile with another chunk name (FunctionChunkName).
func CompileNamed(body []byte, name string) (*glua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(body), name)
	if err != nil {
		return nil, err
	}
	return glua.Compile(chunk, name)
}

// Error is a script's failure, as Redis reports it.
type Error struct {
	// Msg is the error reply's text (code first, no leading '-').
	Msg string
	// Line is the script line the error was raised at, 0 when unknown.
	Line int
	// Budget says the script ran out of instructions.
	Budget bool
}

func (e *Error) Error() string { return e.Msg }

// Run runs proto and returns its first result. A Go panic inside the VM
// (gopher-lua recovers them into errors) ends the run like a Lua error.
func (vm *VM) Run(proto *glua.FunctionProto) (ret glua.LValue, err error) {
	return vm.Call(vm.L.NewFunctionFromProto(proto))
}

// Call calls fn with args inside the VM, as Run does.
func (vm *VM) Call(fn *glua.LFunction, args ...glua.LValue) (ret glua.LValue, err error) {
	defer func() {
		if r := recover(); r != nil {
			ret, err = nil, &Error{Msg: fmt.Sprintf("ERR script failed: %v", r)}
		}
	}()
	L := vm.L
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	if perr := L.PCall(len(args), 1, nil); perr != nil {
		return nil, vm.toError(perr)
	}
	ret = L.Get(-1)
	L.Pop(1)
	return ret, nil
}

// toError turns a PCall failure into the reply's error.
func (vm *VM) toError(perr error) *Error {
	if vm.Budget.killed {
		return &Error{Msg: "ERR Script killed by user with SCRIPT KILL...", Budget: true}
	}
	if vm.Budget.memory {
		return &Error{Msg: fmt.Sprintf("ERR Script stopped at its budget of %d bytes of large strings", MaxStringBytes), Budget: true}
	}
	if vm.Budget.Exhausted() {
		return &Error{Msg: fmt.Sprintf("ERR Script stopped at its budget of %d Lua instructions (elastickv stops scripts by instruction count, not time, so that every replica stops them alike)", vm.Budget.max), Budget: true}
	}
	var ae *glua.ApiError
	if !errors.As(perr, &ae) {
		return &Error{Msg: "ERR " + perr.Error()}
	}
	switch obj := ae.Object.(type) {
	case *glua.LTable:
		msg := "ERR unknown error"
		if s, ok := obj.RawGetString("err").(glua.LString); ok {
			msg = string(s)
		}
		line := 0
		if n, ok := obj.RawGetString("line").(glua.LNumber); ok {
			line = int(n)
		}
		return &Error{Msg: msg, Line: line}
	case glua.LString:
		return &Error{Msg: "ERR " + string(obj), Line: lineOf(string(obj))}
	case nil:
		return &Error{Msg: "ERR " + ae.Error()}
	default:
		return &Error{Msg: "ERR " + glua.LVAsString(obj)}
	}
}

// lineOf extracts N from a message that starts "user_script:N:" (or
// "user_function:N:").
func lineOf(msg string) int {
	rest, ok := strings.CutPrefix(msg, ChunkName+":")
	if !ok {
		if rest, ok = strings.CutPrefix(msg, FunctionChunkName+":"); !ok {
			return 0
		}
	}
	end := strings.IndexByte(rest, ':')
	if end < 0 {
		return 0
	}
	n, err := strconv.Atoi(rest[:end])
	if err != nil {
		return 0
	}
	return n
}

// CurrentLine returns the line of the Lua function that called the Go
// function running now (0 if none).
func CurrentLine(L *glua.LState) int { return lineOf(L.Where(1)) }

// seed sets the PRNG state (a SplitMix64 stream: small, and the same on
// every platform).
func (vm *VM) seed(s uint64) { vm.rnd = s }

func (vm *VM) next() uint64 {
	vm.rnd += 0x9e3779b97f4a7c15
	z := vm.rnd
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// mathRandom follows Lua 5.1's math.random: no argument, a float in
// [0,1); one, an integer in [1,m]; two, an integer in [m,n].
func (vm *VM) mathRandom(L *glua.LState) int {
	r := float64(vm.next()>>11) / (1 << 53)
	switch L.GetTop() {
	case 0:
		L.Push(glua.LNumber(r))
	case 1:
		m := L.CheckInt(1)
		if m < 1 {
			L.ArgError(1, "interval is empty")
		}
		L.Push(glua.LNumber(math.Floor(r*float64(m)) + 1))
	case 2:
		m, n := L.CheckInt(1), L.CheckInt(2)
		if m > n {
			L.ArgError(2, "interval is empty")
		}
		L.Push(glua.LNumber(math.Floor(r*float64(n-m+1)) + float64(m)))
	default:
		L.RaiseError("wrong number of arguments")
	}
	return 1
}

func (vm *VM) mathRandomseed(L *glua.LState) int {
	vm.seed(uint64(int64(L.CheckNumber(1))))
	return 0
}

// osClock reports the instructions run so far as seconds at a nominal
// 10M instructions a second: a clock that advances with the script's
// work, the same on every replica, and that reaches a few seconds within
// the budget.
func (vm *VM) osClock(L *glua.LState) int {
	L.Push(glua.LNumber(float64(vm.Budget.used) / clockRate))
	return 1
}

var _ context.Context = (*Budget)(nil)

// describe is tostring's text for a table, function or userdata. Lua
// prints their address, which differs from one replica to the next and
// would diverge a script that stores it; here each gets a number in the
// order tostring first met it, a function of the script alone.
func (vm *VM) describe(v glua.LValue) (string, bool) {
	switch v.(type) {
	case *glua.LTable, *glua.LFunction, *glua.LUserData, *glua.LState:
	default:
		return "", false
	}
	id, ok := vm.ids[v]
	if !ok {
		if vm.ids == nil {
			vm.ids = make(map[glua.LValue]int)
		}
		id = len(vm.ids) + 1
		vm.ids[v] = id
	}
	return fmt.Sprintf("%s: 0x%08x", v.Type().String(), id), true
}

// toString is tostring with describe's text for tables, functions and
// userdata (a __tostring metamethod still wins).
func (vm *VM) toString(L *glua.LState) int {
	v := L.CheckAny(1)
	if fn, ok := L.GetMetaField(v, "__tostring").(*glua.LFunction); ok {
		L.Push(fn)
		L.Push(v)
		L.Call(1, 1)
		return 1
	}
	if s, ok := vm.describe(v); ok {
		L.Push(glua.LString(s))
		return 1
	}
	L.Push(glua.LString(v.String()))
	return 1
}

// describeArgs makes string.format print describe's text for tables,
// functions and userdata, instead of their addresses.
func (vm *VM) describeArgs(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		for i := 2; i <= L.GetTop(); i++ {
			if s, ok := vm.describe(L.Get(i)); ok {
				L.Replace(i, glua.LString(s))
			}
		}
		return orig(L)
	}
}

// sortedCopy returns a copy of t with its keys inserted in order: integer
// keys first, then string keys by byte order (other keys are dropped;
// library tables have none).
func sortedCopy(L *glua.LState, t *glua.LTable) *glua.LTable {
	var names []string
	out := L.NewTable()
	for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
		switch kk := k.(type) {
		case glua.LString:
			names = append(names, string(kk))
		case glua.LNumber:
			out.RawSet(kk, v)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out.RawSetString(n, t.RawGetString(n))
	}
	out.Metatable = t.Metatable
	return out
}
