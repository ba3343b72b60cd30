package lua

import (
	"math"
	"math/bits"

	glua "github.com/yuin/gopher-lua"
)

// bit: the LuaBitOp library Redis gives scripts. Every operation works on
// 32-bit integers and returns a signed 32-bit result; a number argument
// is rounded to an integer and taken modulo 2^32 (bit.tobit).

func newBit(L *glua.LState) *glua.LTable {
	t := L.NewTable()
	reduce := func(op func(a, b uint32) uint32) glua.LGFunction {
		return func(L *glua.LState) int {
			acc := toBit(L, 1)
			for i := 2; i <= L.GetTop(); i++ {
				acc = op(acc, toBit(L, i))
			}
			L.Push(bitResult(acc))
			return 1
		}
	}
	shift := func(op func(a uint32, n uint) uint32) glua.LGFunction {
		return func(L *glua.LState) int {
			a, n := toBit(L, 1), toBit(L, 2)&31
			L.Push(bitResult(op(a, uint(n))))
			return 1
		}
	}
	funcs := map[string]glua.LGFunction{
		"tobit": func(L *glua.LState) int { L.Push(bitResult(toBit(L, 1))); return 1 },
		"bnot":  func(L *glua.LState) int { L.Push(bitResult(^toBit(L, 1))); return 1 },
		"band":  reduce(func(a, b uint32) uint32 { return a & b }),
		"bor":   reduce(func(a, b uint32) uint32 { return a | b }),
		"bxor":  reduce(func(a, b uint32) uint32 { return a ^ b }),
		"lshift": shift(func(a uint32, n uint) uint32 {
			return a << n
		}),
		"rshift": shift(func(a uint32, n uint) uint32 {
			return a >> n
		}),
		"arshift": shift(func(a uint32, n uint) uint32 {
			return uint32(int32(a) >> n)
		}),
		"rol": shift(func(a uint32, n uint) uint32 {
			return bits.RotateLeft32(a, int(n))
		}),
		"ror": shift(func(a uint32, n uint) uint32 {
			return bits.RotateLeft32(a, -int(n))
		}),
		"bswap": func(L *glua.LState) int { L.Push(bitResult(bits.ReverseBytes32(toBit(L, 1)))); return 1 },
		"tohex": func(L *glua.LState) int {
			b := toBit(L, 1)
			n := 8
			if L.GetTop() >= 2 {
				n = int(int32(toBit(L, 2)))
			}
			digits := "0123456789abcdef"
			if n < 0 {
				n = -n
				digits = "0123456789ABCDEF"
			}
			n = min(n, 8)
			out := make([]byte, n)
			for i := n - 1; i >= 0; i-- {
				out[i] = digits[b&15]
				b >>= 4
			}
			L.Push(glua.LString(out))
			return 1
		},
	}
	// Registered in a fixed order: the table's iteration order is its
	// insertion order, and it must be the same on every replica.
	for _, name := range []string{"tobit", "bnot", "band", "bor", "bxor", "lshift", "rshift", "arshift", "rol", "ror", "bswap", "tohex"} {
		t.RawSetString(name, L.NewFunction(funcs[name]))
	}
	return t
}

// toBit reads argument i as LuaBitOp does: rounded to the nearest integer
// (ties to even) and reduced modulo 2^32.
func toBit(L *glua.LState, i int) uint32 {
	f := float64(L.CheckNumber(i))
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	f = math.RoundToEven(f)
	f = math.Mod(f, 1<<32)
	if f < 0 {
		f += 1 << 32
	}
	return uint32(uint64(f))
}

func bitResult(b uint32) glua.LNumber { return glua.LNumber(int32(b)) }
