package lua

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	glua "github.com/yuin/gopher-lua"
)

// cjson: the JSON library Redis gives scripts (lua-cjson's encode and
// decode), written on encoding/json's tokenizer.
//
// Behaviour kept from lua-cjson: a table whose keys are exactly 1..n
// encodes as an array, any other table as an object (number keys become
// strings), an empty table as {}; numbers print with 14 significant
// digits; '/' is escaped; JSON null decodes to cjson.null, which encodes
// back to null. Object members encode in the table's iteration order,
// which is insertion order in this VM, so the output is the same on
// every replica.

// libError is an error whose text a script sees as is: the libraries'
// messages keep the words of the C libraries Redis embeds (capitalised,
// with their punctuation), which Go's error-string style would change.
type libError string

func (e libError) Error() string { return string(e) }

func libErrorf(format string, args ...any) error { return libError(fmt.Sprintf(format, args...)) }

// maxJSONDepth bounds nesting in both directions, as lua-cjson's default
// (1000) does.
const maxJSONDepth = 1000

func newCJSON(L *glua.LState, budget *Budget) *glua.LTable {
	null := L.NewUserData()
	// The library's settings, per VM (a VM serves one script run).
	encodeDepth, decodeDepth, invalidNumbers := maxJSONDepth, maxJSONDepth, false
	t := L.NewTable()
	t.RawSetString("null", null)
	t.RawSetString("encode", L.NewFunction(func(L *glua.LState) int {
		if L.GetTop() != 1 {
			L.ArgError(1, "expected 1 argument")
		}
		e := jsonEncoder{null: null, maxDepth: encodeDepth, invalidNumbers: invalidNumbers, limit: budget.remaining()}
		if err := e.encode(L.Get(1), 0); err != nil {
			L.RaiseError("%s", err.Error())
		}
		L.Push(glua.LString(e.buf.String()))
		return 1
	}))
	t.RawSetString("decode", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		// The values decoded take about the input's size.
		if !budget.Charge(len(s)) {
			L.RaiseError(errTooLarge)
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(s)))
		dec.UseNumber()
		v, err := decodeJSON(L, dec, null, 0, decodeDepth)
		if err == nil {
			if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
				err = errors.New("trailing garbage")
			}
		}
		if err != nil {
			L.RaiseError("Expected value but found invalid token at character 1: %s", err.Error())
		}
		L.Push(v)
		return 1
	}))
	depthSetter := func(dst *int) glua.LGFunction {
		return func(L *glua.LState) int {
			if L.GetTop() >= 1 {
				n := L.CheckInt(1)
				if n < 1 || n > maxJSONDepth {
					L.ArgError(1, "expected integer between 1 and 1000")
				}
				*dst = n
			}
			L.Push(glua.LNumber(*dst))
			return 1
		}
	}
	t.RawSetString("encode_max_depth", L.NewFunction(depthSetter(&encodeDepth)))
	t.RawSetString("decode_max_depth", L.NewFunction(depthSetter(&decodeDepth)))
	t.RawSetString("encode_invalid_numbers", L.NewFunction(func(L *glua.LState) int {
		if L.GetTop() >= 1 {
			invalidNumbers = L.ToBool(1)
		}
		L.Push(glua.LBool(invalidNumbers))
		return 1
	}))
	// Settings this encoder does not need: accepted and ignored.
	for _, name := range []string{"encode_keep_buffer", "encode_number_precision", "encode_sparse_array", "decode_invalid_numbers"} {
		t.RawSetString(name, L.NewFunction(func(*glua.LState) int { return 0 }))
	}
	return t
}

type jsonEncoder struct {
	buf            bytes.Buffer
	null           *glua.LUserData
	maxDepth       int
	invalidNumbers bool   // NaN and infinities encode (as nan, inf, -inf)
	limit          uint64 // the script's string budget left
}

func (e *jsonEncoder) encode(v glua.LValue, depth int) error {
	if uint64(e.buf.Len()) > e.limit {
		return libError("Cannot serialise: result too large")
	}
	switch x := v.(type) {
	case *glua.LNilType:
		e.buf.WriteString("null")
	case glua.LBool:
		e.buf.WriteString(strconv.FormatBool(bool(x)))
	case glua.LNumber:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			if !e.invalidNumbers {
				return libError("Cannot serialise number: must not be NaN or Inf")
			}
			switch {
			case math.IsNaN(f):
				e.buf.WriteString("nan")
			case f > 0:
				e.buf.WriteString("inf")
			default:
				e.buf.WriteString("-inf")
			}
			return nil
		}
		e.buf.WriteString(formatNumber(f))
	case glua.LString:
		e.str(string(x))
	case *glua.LUserData:
		if x == e.null {
			e.buf.WriteString("null")
			return nil
		}
		return libError("Cannot serialise userdata: type not supported")
	case *glua.LTable:
		if depth >= e.maxDepth {
			return libErrorf("Cannot serialise, excessive nesting (%d)", depth+1)
		}
		n, isArray := arrayLen(x)
		if isArray && n > 0 {
			e.buf.WriteByte('[')
			for i := 1; i <= n; i++ {
				if i > 1 {
					e.buf.WriteByte(',')
				}
				if err := e.encode(x.RawGetInt(i), depth+1); err != nil {
					return err
				}
			}
			e.buf.WriteByte(']')
			return nil
		}
		e.buf.WriteByte('{')
		first := true
		for k, val := x.Next(glua.LNil); k != glua.LNil; k, val = x.Next(k) {
			var key string
			switch kk := k.(type) {
			case glua.LString:
				key = string(kk)
			case glua.LNumber:
				key = formatNumber(float64(kk))
			default:
				return errors.New("Cannot serialise " + k.Type().String() + ": table key must be a number or string")
			}
			if !first {
				e.buf.WriteByte(',')
			}
			first = false
			e.str(key)
			e.buf.WriteByte(':')
			if err := e.encode(val, depth+1); err != nil {
				return err
			}
		}
		e.buf.WriteByte('}')
	default:
		return errors.New("Cannot serialise " + v.Type().String() + ": type not supported")
	}
	return nil
}

// arrayLen reports whether t's keys are exactly 1..n, and n.
func arrayLen(t *glua.LTable) (int, bool) {
	n, count := 0, 0
	for k, _ := t.Next(glua.LNil); k != glua.LNil; k, _ = t.Next(k) {
		num, ok := k.(glua.LNumber)
		if !ok || float64(num) != math.Floor(float64(num)) || num < 1 {
			return 0, false
		}
		n = max(n, int(num))
		count++
	}
	return n, n == count
}

// formatNumber prints f as lua-cjson does ("%.14g").
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

func (e *jsonEncoder) str(s string) {
	const hex = "0123456789abcdef"
	e.buf.WriteByte('"')
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch ch {
		case '"':
			e.buf.WriteString(`\"`)
		case '\\':
			e.buf.WriteString(`\\`)
		case '/':
			e.buf.WriteString(`\/`)
		case '\b':
			e.buf.WriteString(`\b`)
		case '\f':
			e.buf.WriteString(`\f`)
		case '\n':
			e.buf.WriteString(`\n`)
		case '\r':
			e.buf.WriteString(`\r`)
		case '\t':
			e.buf.WriteString(`\t`)
		default:
			if ch < 0x20 || ch == 0x7f {
				e.buf.WriteString(`\u00`)
				e.buf.WriteByte(hex[ch>>4])
				e.buf.WriteByte(hex[ch&15])
			} else {
				e.buf.WriteByte(ch)
			}
		}
	}
	e.buf.WriteByte('"')
}

func decodeJSON(L *glua.LState, dec *json.Decoder, null *glua.LUserData, depth, maxDepth int) (glua.LValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := tok.(type) {
	case nil:
		return null, nil
	case bool:
		return glua.LBool(x), nil
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return glua.LNumber(f), nil
	case string:
		return glua.LString(x), nil
	case json.Delim:
		if depth+1 > maxDepth {
			return nil, libErrorf("Found too many nested data structures (%d)", depth+1)
		}
		t := L.NewTable()
		switch x {
		case '[':
			for i := 1; dec.More(); i++ {
				v, err := decodeJSON(L, dec, null, depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				t.RawSetInt(i, v)
			}
		case '{':
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := k.(string)
				v, err := decodeJSON(L, dec, null, depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				t.RawSetString(key, v)
			}
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return t, nil
	}
	return nil, errors.New("unexpected token")
}
