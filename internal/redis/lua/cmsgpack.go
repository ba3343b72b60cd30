package lua

import (
	"encoding/binary"
	"math"

	glua "github.com/yuin/gopher-lua"
)

// cmsgpack: the MessagePack library Redis gives scripts (lua-cmsgpack's
// pack, unpack, unpack_one and unpack_limit), written here: the format is
// small, and its Lua mapping is lua-cmsgpack's own, which a general Go
// MessagePack library would not follow.
//
// Encoding: nil, booleans; a number with an integer value in the int64
// range as the smallest integer form, another as a 32-bit float when
// that is exact, else a 64-bit one; a string as str (fixstr, str8, str16,
// str32); a table whose keys are exactly 1..n (or an empty one) as an
// array, any other as a map, in the table's iteration order (insertion
// order in this VM). Tables nest to msgpackMaxNesting; deeper, a table
// encodes as nil, which also ends cycles.

// msgpackMaxNesting is lua-cmsgpack's LUACMSGPACK_MAX_NESTING.
const msgpackMaxNesting = 16

func newCMsgpack(L *glua.LState, budget *Budget) *glua.LTable {
	t := L.NewTable()
	t.RawSetString("pack", L.NewFunction(func(L *glua.LState) int {
		if L.GetTop() == 0 {
			L.ArgError(1, "MessagePack pack needs input.")
		}
		var buf []byte
		for i := 1; i <= L.GetTop(); i++ {
			buf = msgpackEncode(buf, L.Get(i), 0, budget.remaining())
			if uint64(len(buf)) > budget.remaining() {
				L.RaiseError("MessagePack pack: result too large")
			}
		}
		L.Push(glua.LString(buf))
		return 1
	}))
	t.RawSetString("unpack", L.NewFunction(func(L *glua.LState) int {
		s := []byte(L.CheckString(1))
		// The values decoded take about the input's size.
		if !budget.Charge(len(s)) {
			L.RaiseError(errTooLarge)
		}
		n := 0
		for len(s) > 0 {
			v, rest, err := msgpackDecode(L, s, 0)
			if err != nil {
				L.RaiseError("%s", err.Error())
			}
			L.Push(v)
			n++
			s = rest
		}
		return n
	}))
	unpackLimit := func(L *glua.LState, limit, offset int) int {
		s := []byte(L.CheckString(1))
		if offset < 0 || offset > len(s) {
			L.ArgError(3, "offset out of range")
		}
		rest := s[offset:]
		var vals []glua.LValue
		for len(rest) > 0 && (limit <= 0 || len(vals) < limit) {
			v, r, err := msgpackDecode(L, rest, 0)
			if err != nil {
				L.RaiseError("%s", err.Error())
			}
			vals = append(vals, v)
			rest = r
		}
		next := len(s) - len(rest)
		// Charged after decoding: what was decoded is bounded by the
		// bytes it came from.
		if !budget.Charge(next - offset) {
			L.RaiseError(errTooLarge)
		}
		if len(rest) == 0 {
			next = -1
		}
		L.Push(glua.LNumber(next))
		for _, v := range vals {
			L.Push(v)
		}
		return 1 + len(vals)
	}
	t.RawSetString("unpack_one", L.NewFunction(func(L *glua.LState) int {
		return unpackLimit(L, 1, L.OptInt(2, 0))
	}))
	t.RawSetString("unpack_limit", L.NewFunction(func(L *glua.LState) int {
		return unpackLimit(L, L.CheckInt(2), L.OptInt(3, 0))
	}))
	return t
}

func msgpackEncode(b []byte, v glua.LValue, depth int, limit uint64) []byte {
	if uint64(len(b)) > limit {
		return b // the caller refuses the result
	}
	switch x := v.(type) {
	case glua.LBool:
		if x {
			return append(b, 0xc3)
		}
		return append(b, 0xc2)
	case glua.LNumber:
		return msgpackNumber(b, float64(x))
	case glua.LString:
		n := len(x)
		switch {
		case n < 32:
			b = append(b, 0xa0|byte(n))
		case n <= math.MaxUint8:
			b = append(b, 0xd9, byte(n))
		case n <= math.MaxUint16:
			b = binary.BigEndian.AppendUint16(append(b, 0xda), uint16(n))
		default:
			b = binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(n))
		}
		return append(b, x...)
	case *glua.LTable:
		if depth >= msgpackMaxNesting {
			return append(b, 0xc0)
		}
		if n, ok := arrayLen(x); ok {
			b = msgpackHeader(b, n, 0x90, 0xdc, 0xdd)
			for i := 1; i <= n; i++ {
				b = msgpackEncode(b, x.RawGetInt(i), depth+1, limit)
			}
			return b
		}
		count := 0
		for k, _ := x.Next(glua.LNil); k != glua.LNil; k, _ = x.Next(k) {
			count++
		}
		b = msgpackHeader(b, count, 0x80, 0xde, 0xdf)
		for k, val := x.Next(glua.LNil); k != glua.LNil; k, val = x.Next(k) {
			b = msgpackEncode(b, k, depth+1, limit)
			b = msgpackEncode(b, val, depth+1, limit)
		}
		return b
	}
	return append(b, 0xc0)
}

func msgpackHeader(b []byte, n int, fix, c16, c32 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, c16), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(b, c32), uint32(n))
}

func msgpackNumber(b []byte, f float64) []byte {
	if f == math.Trunc(f) && f >= math.MinInt64 && f < math.MaxInt64 && !math.IsInf(f, 0) {
		n := int64(f)
		switch {
		case n >= 0 && n < 128:
			return append(b, byte(n))
		case n >= 0 && n <= math.MaxUint8:
			return append(b, 0xcc, byte(n))
		case n >= 0 && n <= math.MaxUint16:
			return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(n))
		case n >= 0 && n <= math.MaxUint32:
			return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(n))
		case n >= 0:
			return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(n))
		case n >= -32:
			return append(b, byte(n))
		case n >= math.MinInt8:
			return append(b, 0xd0, byte(n))
		case n >= math.MinInt16:
			return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(n))
		case n >= math.MinInt32:
			return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(n))
		}
		return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(n))
	}
	if float64(float32(f)) == f || math.IsNaN(f) {
		return binary.BigEndian.AppendUint32(append(b, 0xca), math.Float32bits(float32(f)))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xcb), math.Float64bits(f))
}

var errMsgpackShort error = libError("Missing bytes in input.")

func msgpackDecode(L *glua.LState, b []byte, depth int) (glua.LValue, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errMsgpackShort
	}
	if depth > 2*msgpackMaxNesting+MaxReplyDepth {
		return nil, nil, libError("Bad data format in input.")
	}
	c := b[0]
	b = b[1:]
	need := func(n int) ([]byte, error) {
		if len(b) < n {
			return nil, errMsgpackShort
		}
		out := b[:n]
		b = b[n:]
		return out, nil
	}
	readUint := func(n int) (uint64, error) {
		p, err := need(n)
		if err != nil {
			return 0, err
		}
		var v uint64
		for _, x := range p {
			v = v<<8 | uint64(x)
		}
		return v, nil
	}
	str := func(n uint64) (glua.LValue, []byte, error) {
		if uint64(len(b)) < n {
			return nil, nil, errMsgpackShort
		}
		return glua.LString(b[:n]), b[n:], nil
	}
	seq := func(n uint64, isMap bool) (glua.LValue, []byte, error) {
		if n > uint64(len(b)) {
			return nil, nil, errMsgpackShort // every element takes a byte at least
		}
		t := L.NewTable()
		for i := uint64(1); i <= n; i++ {
			var k glua.LValue = glua.LNumber(i)
			var v glua.LValue
			var err error
			if isMap {
				if k, b, err = msgpackDecode(L, b, depth+1); err != nil {
					return nil, nil, err
				}
			}
			if v, b, err = msgpackDecode(L, b, depth+1); err != nil {
				return nil, nil, err
			}
			if k != glua.LNil {
				t.RawSet(k, v)
			}
		}
		return t, b, nil
	}
	switch {
	case c < 0x80:
		return glua.LNumber(c), b, nil
	case c >= 0xe0:
		return glua.LNumber(int8(c)), b, nil
	case c&0xf0 == 0x80:
		return seq(uint64(c&0x0f), true)
	case c&0xf0 == 0x90:
		return seq(uint64(c&0x0f), false)
	case c&0xe0 == 0xa0:
		return str(uint64(c & 0x1f))
	}
	var n uint64
	var err error
	switch c {
	case 0xc0:
		return glua.LNil, b, nil
	case 0xc2:
		return glua.LFalse, b, nil
	case 0xc3:
		return glua.LTrue, b, nil
	case 0xca:
		if n, err = readUint(4); err == nil {
			return glua.LNumber(math.Float32frombits(uint32(n))), b, nil
		}
	case 0xcb:
		if n, err = readUint(8); err == nil {
			return glua.LNumber(math.Float64frombits(n)), b, nil
		}
	case 0xcc, 0xcd, 0xce, 0xcf:
		if n, err = readUint(1 << (c - 0xcc)); err == nil {
			return glua.LNumber(float64(n)), b, nil
		}
	case 0xd0:
		if n, err = readUint(1); err == nil {
			return glua.LNumber(int8(n)), b, nil
		}
	case 0xd1:
		if n, err = readUint(2); err == nil {
			return glua.LNumber(int16(n)), b, nil
		}
	case 0xd2:
		if n, err = readUint(4); err == nil {
			return glua.LNumber(int32(n)), b, nil
		}
	case 0xd3:
		if n, err = readUint(8); err == nil {
			return glua.LNumber(int64(n)), b, nil
		}
	case 0xd9, 0xc4:
		if n, err = readUint(1); err == nil {
			return str(n)
		}
	case 0xda, 0xc5:
		if n, err = readUint(2); err == nil {
			return str(n)
		}
	case 0xdb, 0xc6:
		if n, err = readUint(4); err == nil {
			return str(n)
		}
	case 0xdc, 0xdd:
		if n, err = readUint(2 << (c - 0xdc)); err == nil {
			return seq(n, false)
		}
	case 0xde, 0xdf:
		if n, err = readUint(2 << (c - 0xde)); err == nil {
			return seq(n, true)
		}
	default:
		return nil, nil, libError("Bad data format in input.")
	}
	return nil, nil, err
}
