package lua

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	glua "github.com/yuin/gopher-lua"
)

// run compiles and runs body in a fresh VM with the given budget.
func run(t *testing.T, body string, budget uint64) (glua.LValue, *VM, error) {
	t.Helper()
	proto, err := Compile([]byte(body))
	require.NoError(t, err)
	vm := New(1, budget)
	t.Cleanup(vm.Close)
	ret, err := vm.Run(proto)
	return ret, vm, err
}

func TestBudgetStopsAnEndlessLoopAtTheSamePointEveryRun(t *testing.T) {
	var msgs []string
	for range 3 {
		_, vm, err := run(t, "while true do end", 10_000)
		require.Error(t, err)
		var le *Error
		require.ErrorAs(t, err, &le)
		require.True(t, le.Budget)
		require.True(t, vm.Budget.Exhausted())
		require.Equal(t, uint64(10_001), vm.Budget.Used(), "the VM checks the budget once per instruction")
		msgs = append(msgs, le.Msg)
	}
	require.Equal(t, msgs[0], msgs[1])
	require.Equal(t, msgs[0], msgs[2])
}

func TestBudgetLetsAScriptJustBelowItRun(t *testing.T) {
	const body = "local x = 0 for i = 1, 1000 do x = x + i end return x"
	// Count the script's instructions with a budget it cannot reach.
	_, vm, err := run(t, body, 1<<40)
	require.NoError(t, err)
	used := vm.Budget.Used()
	require.Greater(t, used, uint64(2000))

	ret, _, err := run(t, body, used)
	require.NoError(t, err, "a budget of exactly the instructions it runs lets it finish")
	require.Equal(t, glua.LNumber(500500), ret)

	_, _, err = run(t, body, used-1)
	var le *Error
	require.ErrorAs(t, err, &le)
	require.True(t, le.Budget, "one instruction less stops it")
}

func TestBudgetCannotBeCaughtByPcall(t *testing.T) {
	_, _, err := run(t, "for i = 1, 100 do pcall(function() while true do end end) end return 1", 10_000)
	var le *Error
	require.ErrorAs(t, err, &le)
	require.True(t, le.Budget)
}

func TestHostileScriptsEndInErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"deep recursion", "local function f(n) return 1 + f(n + 1) end return f(1)", "stack overflow"},
		{"recursion through pcall", "local function f() pcall(f) error('x') end f()", ""},
		{"huge string.rep", "return string.rep('x', 1e12)", "resulting string too large"},
		{"huge table.concat", "local t = {string.rep('x', 1e8)} for i = 2, 10 do t[i] = t[1] end return table.concat(t)", "resulting string too large"},
		{"error(nil)", "error(nil)", ""},
		{"error of a table", "error({})", ""},
		{"coroutine absent", "return coroutine.create(function() end)", "nonexistent global variable 'coroutine'"},
		{"loadfile absent", "loadfile('x')", "nonexistent global variable 'loadfile'"},
		{"globals readonly", "x = 1", "Attempt to modify a readonly table"},
		{"rawset on globals", "rawset(_G, 'x', 1)", "Attempt to modify a readonly table"},
		{"library tables readonly", "cjson.encode = nil", "Attempt to modify a readonly table"},
		{"metatable of globals", "getmetatable(_G).__index = {}", "Attempt to modify a readonly table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.body, InstructionBudget)
			require.Error(t, err)
			if tc.want != "" {
				require.Contains(t, err.Error(), tc.want)
			}
		})
	}
}

func TestCyclicTableReplyIsBounded(t *testing.T) {
	ret, _, err := run(t, "local t = {} t[1] = t return t", InstructionBudget)
	require.NoError(t, err)
	out := ToRESP(nil, ret)
	require.Equal(t, MaxReplyDepth, strings.Count(string(out), "*1\r\n"))
	require.True(t, strings.HasSuffix(string(out), "-ERR reached lua stack limit\r\n"))
}

func TestToRESPFollowsRedisConversionRules(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"return 100.9", ":100\r\n"},
		{"return -3.7", ":-3\r\n"},
		{"return 'hi'", "$2\r\nhi\r\n"},
		{"return true", ":1\r\n"},
		{"return false", "$-1\r\n"},
		{"return nil", "$-1\r\n"},
		{"return {1, 'a', {2}}", "*3\r\n:1\r\n$1\r\na\r\n*1\r\n:2\r\n"},
		{"return {1, nil, 3}", "*1\r\n:1\r\n"},
		{"return {ok = 'FINE'}", "+FINE\r\n"},
		{"return {err = 'BAD thing'}", "-BAD thing\r\n"},
		{"return {err = ''}", "-ERR\r\n"},
	} {
		ret, _, err := run(t, tc.body, InstructionBudget)
		require.NoError(t, err, tc.body)
		require.Equal(t, tc.want, string(ToRESP(nil, ret)), tc.body)
	}
}

func TestFromRESPFollowsRedisConversionRules(t *testing.T) {
	L := glua.NewState()
	defer L.Close()
	v, rest, err := FromRESP(L, []byte("*4\r\n:7\r\n$-1\r\n+OK\r\n-ERR no\r\nrest"))
	require.NoError(t, err)
	require.Equal(t, "rest", string(rest))
	tb := v.(*glua.LTable)
	require.Equal(t, glua.LNumber(7), tb.RawGetInt(1))
	require.Equal(t, glua.LFalse, tb.RawGetInt(2))
	require.Equal(t, glua.LString("OK"), tb.RawGetInt(3).(*glua.LTable).RawGetString("ok"))
	require.Equal(t, glua.LString("ERR no"), tb.RawGetInt(4).(*glua.LTable).RawGetString("err"))
	_, _, err = FromRESP(L, []byte("$5\r\nab"))
	require.ErrorIs(t, err, ErrMalformed)
}

func TestMathRandomDependsOnlyOnTheSeed(t *testing.T) {
	const body = "local t = {} for i = 1, 5 do t[i] = math.random(1000) end return table.concat(t, ',')"
	a, _, err := run(t, body, InstructionBudget)
	require.NoError(t, err)
	b, _, err := run(t, body, InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, a, b)
	proto, err := Compile([]byte(body))
	require.NoError(t, err)
	vm := New(2, InstructionBudget)
	defer vm.Close()
	c, err := vm.Run(proto)
	require.NoError(t, err)
	require.NotEqual(t, a, c, "another seed, another sequence")
}

func TestPairsOrderIsTheSameInEveryVM(t *testing.T) {
	const body = "local t = {} for k in pairs(string) do t[#t+1] = k end for k in pairs(math) do t[#t+1] = k end return table.concat(t, ',')"
	first, _, err := run(t, body, InstructionBudget)
	require.NoError(t, err)
	for range 5 {
		again, _, err := run(t, body, InstructionBudget)
		require.NoError(t, err)
		require.Equal(t, first, again)
	}
}

func TestCJSON(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`return cjson.encode({1, 2, 'a/b'})`, `[1,2,"a\/b"]`},
		{`return cjson.encode({})`, `{}`},
		{`local t = {} t.b = 1 t.a = 2 return cjson.encode(t)`, `{"b":1,"a":2}`},
		{`return cjson.encode(cjson.decode('{"x":[1,2.5,null,true]}'))`, `{"x":[1,2.5,null,true]}`},
		{`return cjson.encode(0.1)`, `0.1`},
		{`return tostring(cjson.decode('9007199254740991'))`, `9007199254740991`},
	} {
		ret, _, err := run(t, tc.body, InstructionBudget)
		require.NoError(t, err, tc.body)
		require.Equal(t, glua.LString(tc.want), ret, tc.body)
	}
	_, _, err := run(t, `return cjson.decode('{')`, InstructionBudget)
	require.Error(t, err)
}

func TestBit(t *testing.T) {
	for _, tc := range []struct {
		body string
		want float64
	}{
		{"return bit.band(0xff, 0x0f, 0x3)", 3},
		{"return bit.bor(1, 2, 4)", 7},
		{"return bit.bxor(5, 1)", 4},
		{"return bit.bnot(0)", -1},
		{"return bit.lshift(1, 31)", -2147483648},
		{"return bit.rshift(-1, 28)", 15},
		{"return bit.arshift(-256, 4)", -16},
		{"return bit.rol(0x12345678, 8)", 0x34567812},
		{"return bit.ror(0x12345678, 8)", 0x78123456},
		{"return bit.bswap(0x12345678)", 0x78563412},
		{"return bit.tobit(0xffffffff + 1)", 0},
		{"return bit.tobit(2^32 + 5)", 5},
	} {
		ret, _, err := run(t, tc.body, InstructionBudget)
		require.NoError(t, err, tc.body)
		require.Equal(t, glua.LNumber(tc.want), ret, tc.body)
	}
	ret, _, err := run(t, "return bit.tohex(255) .. ' ' .. bit.tohex(-1, -4) .. ' ' .. bit.tohex(0x1234, 2)", InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LString("000000ff FFFF 34"), ret)
}

func TestCMsgpack(t *testing.T) {
	hex := func(expr string) string {
		t.Helper()
		ret, _, err := run(t, "local e = "+expr+" local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h", InstructionBudget)
		require.NoError(t, err, expr)
		return string(ret.(glua.LString))
	}
	require.Equal(t, "cb3fb999999999999a", hex("cmsgpack.pack(0.1)"))
	require.Equal(t, "d3ffffff0000000000", hex("cmsgpack.pack(-1099511627776)"))
	require.Equal(t, "93010203", hex("cmsgpack.pack({1, 2, 3})"))
	require.Equal(t, "81a161c3", hex("cmsgpack.pack({a = true})"))
	require.Equal(t, "82a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a17882a17905a17881a178c0",
		hex("(function() local a = {x = nil, y = 5} local b = {x = a} a['x'] = b return cmsgpack.pack(a) end)()"), "a cycle ends at the nesting limit")
	ret, _, err := run(t, `
		local s = cmsgpack.pack({1, 'two', {k = 3.5}, false}, string.rep('x', 300))
		local a, b = cmsgpack.unpack(s)
		local off, one = cmsgpack.unpack_one(s, 0)
		local off2, two = cmsgpack.unpack_one(s, off)
		return {a[1], a[2], tostring(a[3].k), tostring(a[4]), #b, #two, off2}`, InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, "*7\r\n:1\r\n$3\r\ntwo\r\n$3\r\n3.5\r\n$5\r\nfalse\r\n:300\r\n:300\r\n:-1\r\n", string(ToRESP(nil, ret)))
	_, _, err = run(t, "return cmsgpack.unpack('\\205')", InstructionBudget)
	require.ErrorContains(t, err, "Missing bytes")
}

func TestCJSONSettings(t *testing.T) {
	_, _, err := run(t, "cjson.encode_max_depth(1) return cjson.encode({{1}})", InstructionBudget)
	require.ErrorContains(t, err, "excessive nesting")
	_, _, err = run(t, `cjson.decode_max_depth(1) return cjson.decode('{"a":{"b":1}}')`, InstructionBudget)
	require.ErrorContains(t, err, "too many nested")
	_, _, err = run(t, "return cjson.encode({n = 0/0})", InstructionBudget)
	require.Error(t, err)
	ret, _, err := run(t, "cjson.encode_invalid_numbers(true) return cjson.encode({n = 1/0})", InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LString(`{"n":inf}`), ret)
	_, _, err = run(t, "local t = {} t[false] = 1 return cjson.encode(t)", InstructionBudget)
	require.Error(t, err, "a boolean key cannot be serialised")
}

func TestStringMemoryIsBounded(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"doubling by concatenation", "local s = 'x' for i = 1, 60 do s = s .. s end return #s"},
		{"doubling through an upvalue", "local s = 'x' local function f() s = s .. s end for i = 1, 60 do f() end return #s"},
		{"many large strings kept", "local t = {} local s = string.rep('x', 1e6) for i = 1, 1e6 do t[i] = s .. i end return #t"},
		{"format width", "return string.format('%999999999d', 1)"},
		{"format of many copies", "local s = string.rep('x', 1e6) local t = {} for i = 1, 1000 do t[i] = s end return string.format(string.rep('%s', 1000), unpack(t))"},
		{"gsub blow-up", "local s = string.rep('x', 1e5) return string.gsub(s, '.', s)"},
		{"gsub through a function", "local s = string.rep('x', 1e5) return string.gsub(s, '.', function() return s end)"},
		{"gmatch on a huge subject", "for w in string.gmatch(string.rep('x', 1e7), '.') do end"},
		{"cjson.encode of shared strings", "local s = string.rep('x', 1e6) local t = {} for i = 1, 1000 do t[i] = s end return cjson.encode(t)"},
		{"cmsgpack.pack of shared strings", "local s = string.rep('x', 1e6) local t = {} for i = 1, 1000 do t[i] = s end return cmsgpack.pack(t)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, vm, err := run(t, tc.body, InstructionBudget)
			require.Error(t, err)
			require.LessOrEqual(t, vm.Budget.bytes, uint64(MaxStringBytes)+1<<30, "the charge stops soon after the limit")
		})
	}
	// Below the limits, the same operations run.
	ret, _, err := run(t, "local s = 'x' for i = 1, 20 do s = s .. s end return #string.gsub(string.rep('ab', 1000), 'a', '%0%0')", InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LNumber(3000), ret)
}

func TestToStringIsTheSameInEveryVM(t *testing.T) {
	const body = "local a, b = {}, function() end return tostring(a) .. ' ' .. tostring(b) .. ' ' .. tostring(a) .. ' ' .. string.format('%s', {})"
	first, _, err := run(t, body, InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LString("table: 0x00000001 function: 0x00000002 table: 0x00000001 table: 0x00000003"), first)
	ret, _, err := run(t, "return tostring(setmetatable({}, {__tostring = function() return 'mine' end}))", InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LString("mine"), ret)
}

func TestStringMethodsAreTheBoundedOnes(t *testing.T) {
	_, _, err := run(t, "return ('x'):rep(1e12)", InstructionBudget)
	require.ErrorContains(t, err, "resulting string too large")
	_, _, err = run(t, "return ('%999999999d'):format(1)", InstructionBudget)
	require.ErrorContains(t, err, "invalid format")
	ret, _, err := run(t, "return ('%s-%s'):format({}, 'a')", InstructionBudget)
	require.NoError(t, err)
	require.Equal(t, glua.LString("table: 0x00000001-a"), ret)
}
