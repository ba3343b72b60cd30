package lua

import (
	"errors"
	"math"
	"strconv"

	"github.com/tidwall/redcon"
	glua "github.com/yuin/gopher-lua"
)

// Conversions between RESP replies and Lua values, by Redis's rules.
//
// RESP to Lua (a command's reply, as redis.call returns it): integer ->
// number, bulk string -> string, null -> false, array -> table (nested),
// status -> {ok=...}, error -> {err=...}.
//
// Lua to RESP (a script's result): number -> integer (truncated), string
// -> bulk, true -> 1, false and nil -> null, a table with a string "ok" ->
// status, with a string "err" -> error, else an array of t[1], t[2], ...
// up to the first nil.

// ErrMalformed is returned for a reply that is not complete RESP.
var ErrMalformed = errors.New("lua: malformed RESP reply")

// FromRESP parses one RESP reply from b into a Lua value and returns the
// bytes after it.
func FromRESP(L *glua.LState, b []byte) (glua.LValue, []byte, error) {
	if len(b) < 3 {
		return nil, nil, ErrMalformed
	}
	line, rest, ok := cutLine(b[1:])
	if !ok {
		return nil, nil, ErrMalformed
	}
	switch b[0] {
	case '+':
		t := L.NewTable()
		t.RawSetString("ok", glua.LString(line))
		return t, rest, nil
	case '-':
		t := L.NewTable()
		t.RawSetString("err", glua.LString(line))
		return t, rest, nil
	case ':':
		n, err := strconv.ParseInt(string(line), 10, 64)
		if err != nil {
			return nil, nil, ErrMalformed
		}
		return glua.LNumber(n), rest, nil
	case '$':
		n, err := strconv.Atoi(string(line))
		if err != nil {
			return nil, nil, ErrMalformed
		}
		if n < 0 {
			return glua.LFalse, rest, nil
		}
		if len(rest) < n+2 {
			return nil, nil, ErrMalformed
		}
		return glua.LString(rest[:n]), rest[n+2:], nil
	case '*':
		n, err := strconv.Atoi(string(line))
		if err != nil {
			return nil, nil, ErrMalformed
		}
		if n < 0 {
			return glua.LFalse, rest, nil
		}
		t := L.CreateTable(n, 0)
		for i := 1; i <= n; i++ {
			var v glua.LValue
			if v, rest, err = FromRESP(L, rest); err != nil {
				return nil, nil, err
			}
			t.RawSetInt(i, v)
		}
		return t, rest, nil
	case '_':
		return glua.LFalse, rest, nil
	}
	return nil, nil, ErrMalformed
}

func cutLine(b []byte) (line, rest []byte, ok bool) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], b[i+2:], true
		}
	}
	return nil, nil, false
}

// errReplyTooLarge is the reply to a result past MaxReplyBytes.
const errReplyTooLarge = "ERR the script's reply is too large"

// ToRESP appends v's RESP reply to dst, by Redis's rules. The reply is
// bounded in depth (MaxReplyDepth: deeper, the innermost element is an
// error, as Redis answers when its Lua stack runs out) and in size
// (MaxReplyBytes: past it the whole reply is one error).
func ToRESP(dst []byte, v glua.LValue) []byte {
	start := len(dst)
	out, ok := toRESP(dst, v, 0)
	if !ok {
		return redcon.AppendError(dst[:start], errReplyTooLarge)
	}
	return out
}

func toRESP(dst []byte, v glua.LValue, depth int) ([]byte, bool) {
	if len(dst) > MaxReplyBytes {
		return dst, false
	}
	switch x := v.(type) {
	case glua.LString:
		return redcon.AppendBulkString(dst, string(x)), true
	case glua.LNumber:
		return redcon.AppendInt(dst, truncate(float64(x))), true
	case glua.LBool:
		if x {
			return redcon.AppendInt(dst, 1), true
		}
		return redcon.AppendNull(dst), true
	case *glua.LTable:
		if depth >= MaxReplyDepth {
			return redcon.AppendError(dst, "ERR reached lua stack limit"), true
		}
		if s, ok := x.RawGetString("err").(glua.LString); ok {
			return redcon.AppendError(dst, ErrorText(string(s))), true
		}
		if s, ok := x.RawGetString("ok").(glua.LString); ok {
			return redcon.AppendString(dst, string(s)), true
		}
		if d, ok := x.RawGetString("double").(glua.LNumber); ok {
			return redcon.AppendBulkString(dst, strconv.FormatFloat(float64(d), 'g', 17, 64)), true
		}
		n := 0
		for x.RawGetInt(n+1) != glua.LNil {
			n++
		}
		dst = redcon.AppendArray(dst, n)
		for i := 1; i <= n; i++ {
			var ok bool
			if dst, ok = toRESP(dst, x.RawGetInt(i), depth+1); !ok {
				return dst, false
			}
		}
		return dst, true
	}
	return redcon.AppendNull(dst), true
}

// ErrorText makes an error table's text a valid error reply: one line,
// never empty (Redis answers a bare "ERR" for an empty one).
func ErrorText(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch == '\r' || ch == '\n' {
			b[i] = ' '
		}
	}
	if len(b) == 0 {
		return "ERR"
	}
	return string(b)
}

// truncate converts a Lua number to a RESP integer as C's cast does for
// values in range, saturating outside it (NaN is 0).
func truncate(f float64) int64 {
	switch {
	case math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}
