package lua

import (
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// Memory bounds of the string library.
//
// A script's memory is bounded by its instruction budget (each instruction
// allocates a bounded amount) except where one instruction can build an
// arbitrarily large string: a library function. Those are replaced here by
// wrappers that check, before building, that the result fits the script's
// remaining string budget (Budget.Charge; the result is charged when the
// register check first sees it), or, for pattern iteration, which gathers
// every match up front, that the subject is small enough. All the checks
// depend on the arguments only, so every replica refuses alike.

// maxPatternSubject bounds the subject of string.gsub (without a small
// match limit) and string.gmatch: gopher-lua gathers all their matches
// before the first is used, a few dozen bytes per match.
const maxPatternSubject = 4 << 20

// errTooLarge is the error of a library call whose result would pass the
// script's string budget.
const errTooLarge = "resulting string too large"

// remaining is the script's string budget left.
func (b *Budget) remaining() uint64 {
	if b.bytes >= MaxStringBytes {
		return 0
	}
	return MaxStringBytes - b.bytes
}

// fits reports whether a string of n bytes fits the remaining budget.
func (vm *VM) fits(n uint64) bool { return n <= vm.Budget.remaining() }

func (vm *VM) strRep(L *glua.LState) int {
	str := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || len(str) == 0 {
		L.Push(glua.LString(""))
		return 1
	}
	if !vm.fits(uint64(len(str)) * uint64(n)) {
		L.RaiseError(errTooLarge)
	}
	L.Push(glua.LString(strings.Repeat(str, n)))
	return 1
}

// tableConcat is table.concat with its result checked against the budget.
func (vm *VM) tableConcat(L *glua.LState) int {
	tbl := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, tbl.Len())
	total := uint64(0)
	for k := i; k <= j; k++ {
		v := tbl.RawGetInt(k)
		if !glua.LVCanConvToString(v) {
			L.RaiseError("invalid value (at index %d) in table for concat", k)
		}
		total += uint64(len(glua.LVAsString(v)) + len(sep))
		if !vm.fits(total) {
			L.RaiseError(errTooLarge)
		}
	}
	var b strings.Builder
	b.Grow(int(total))
	for k := i; k <= j; k++ {
		b.WriteString(glua.LVAsString(tbl.RawGetInt(k)))
		if k != j {
			b.WriteString(sep)
		}
	}
	L.Push(glua.LString(b.String()))
	return 1
}

// wrapFormat bounds string.format: a width or precision of more than two
// digits is refused, as Lua 5.1 refuses it, and the result is at most the
// format, the arguments' text and 100 bytes per argument.
func (vm *VM) wrapFormat(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		f := L.CheckString(1)
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			i++
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			digits := 0
			for i < len(f) && (('0' <= f[i] && f[i] <= '9') || f[i] == '.') {
				if f[i] == '.' {
					digits = 0
				} else if digits++; digits > 2 {
					L.RaiseError("invalid format (width or precision too long)")
				}
				i++
			}
		}
		total := uint64(len(f))
		for i := 2; i <= L.GetTop(); i++ {
			total += uint64(len(glua.LVAsString(L.Get(i)))) + 100
		}
		if !vm.fits(total) {
			L.RaiseError(errTooLarge)
		}
		return orig(L)
	}
}

// wrapGsub bounds string.gsub: the subject's size (all matches are
// gathered first), and the result: with a string replacement by an upper
// bound of its size, with a function or table one by charging each
// replacement as it is made.
func (vm *VM) wrapGsub(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		s := L.CheckString(1)
		limit := L.OptInt(4, -1)
		if len(s) > maxPatternSubject && (limit < 0 || limit > maxPatternSubject) {
			L.RaiseError("string too large for gsub (%d bytes at most, or give a match limit)", maxPatternSubject)
		}
		matches := uint64(len(s) + 1)
		if limit >= 0 {
			matches = min(matches, uint64(limit))
		}
		switch repl := L.Get(3).(type) {
		case glua.LString:
			refs := uint64(strings.Count(string(repl), "%"))
			if !vm.fits(uint64(len(s))*(refs+1) + matches*uint64(len(repl))) {
				L.RaiseError(errTooLarge)
			}
		case *glua.LFunction, *glua.LTable:
			base := uint64(len(s))
			L.Replace(3, L.NewFunction(func(L *glua.LState) int {
				var v glua.LValue
				if fn, ok := repl.(*glua.LFunction); ok {
					n := L.GetTop()
					L.Push(fn)
					for i := 1; i <= n; i++ {
						L.Push(L.Get(i))
					}
					L.Call(n, 1)
					v = L.Get(-1)
					L.Pop(1)
				} else {
					v = L.GetTable(repl, L.Get(1))
				}
				base += uint64(len(glua.LVAsString(v)))
				if !vm.fits(base) {
					L.RaiseError(errTooLarge)
				}
				L.Push(v)
				return 1
			}))
		}
		return orig(L)
	}
}

// wrapGmatch bounds string.gmatch's subject (all matches are gathered
// when the iterator is made).
func wrapGmatch(orig glua.LGFunction) glua.LGFunction {
	return func(L *glua.LState) int {
		if len(L.CheckString(1)) > maxPatternSubject {
			L.RaiseError("string too large for gmatch (%d bytes at most)", maxPatternSubject)
		}
		return orig(L)
	}
}
