package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// newScriptFixture is a fixture whose store runs EXEC entries (scripts)
// through an ApplyExecutor, as a node's does.
func newScriptFixture(t *testing.T, tweak ...func(*Config)) (*fixture, *ApplyExecutor) {
	t.Helper()
	e, err := NewApplyExecutor()
	require.NoError(t, err)
	b := newStoreBackend(t)
	b.store.SetExecutor(e)
	cfg := Config{Backend: b, ScriptRunning: e.ScriptRunning}
	for _, f := range tweak {
		f(&cfg)
	}
	s := startServer(t, cfg)
	rdb := newClient(t, s)
	return &fixture{t: t, ctx: t.Context(), backend: b, srv: s, rdb: rdb}, e
}

var _ = goredis.Nil

func TestScriptScratch(t *testing.T) {
	f, _ := newScriptFixture(t)
	for _, c := range [][]any{
		{"EVAL", "return 'hello'", 0},
		{"EVAL", "return 100.5", 0},
		{"EVAL", "return {1,2,3,'ciao',{1,2}}", 0},
		{"EVAL", "return {KEYS[1],ARGV[1]}", 1, "a", "b"},
		{"EVAL", "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])", 1, "k", "v"},
		{"EVAL", "return redis.call('incr', 'k')", 0},
		{"EVAL", "return redis.pcall('incr', 'k')", 0},
		{"EVAL", "a = 1", 0},
		{"EVAL", "return a", 0},
		{"EVAL", "os.execute()", 0},
		{"EVAL", "print('x')", 0},
		{"EVAL", "setmetatable(_G, {})", 0},
		{"EVAL", "redis.call = 1", 0},
		{"EVAL", "return redis.call()", 0},
		{"EVAL", "return redis.call('nosuch')", 0},
		{"EVAL", "return redis.call('get','a','b')", 0},
		{"EVAL", "return redis.call('eval','return 1', 0)", 0},
		{"EVAL", "return {err='ERR this is an error'}", 0},
		{"EVAL", "return redis.error_reply('MY_ERR x')", 0},
		{"EVAL", "return redis.status_reply('FINE')", 0},
		{"EVAL", "local s, r = pcall(function() return foo end); return tostring(s) .. ' ' .. r", 0},
		{"EVAL", "return cjson.encode({1,2,{a=1}})", 0},
		{"EVAL", "return cjson.decode('[1,2,{\"a\":3}]')[3].a", 0},
		{"EVAL", "return bit.tohex(bit.band(0xff, 0x0f))", 0},
		{"EVAL", "while true do end", 0},
		{"EVAL", "return tostring(math.random())", 0},
		{"EVAL", "return loadstring(string.dump(function() return 1 end))()", 0},
		{"EVAL", "error('boom')", 0},
		{"EVAL", "error({err='X boom'})", 0},
		{"EVAL", "return 1 +", 0},
		{"EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", 0},
		{"SCRIPT", "LOAD", "return 'loaded'"},
		{"EVALSHA", "b534286061d4b06c06015ae8e7e3d1c6c0f32d51", 0},
		{"EVAL_RO", "return redis.call('get','k')", 0},
		{"EVAL_RO", "return redis.call('set','k', 1)", 0},
		{"SCRIPT", "KILL"},
		{"SCRIPT", "EXISTS", "b534286061d4b06c06015ae8e7e3d1c6c0f32d51", "x"},
	} {
		v, err := f.do(c...).Result()
		t.Logf("%v => %v %v", c, v, err)
	}
}
