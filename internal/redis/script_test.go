package redis

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// newScriptFixture is a fixture whose store runs EXEC entries (scripts)
// through an ApplyExecutor, as a node's does, and whose Server knows when
// that executor runs a script.
func newScriptFixture(t *testing.T) (*fixture, *ApplyExecutor) {
	t.Helper()
	e, err := NewApplyExecutor(nil)
	require.NoError(t, err)
	b := newStoreBackend(t)
	b.store.SetExecutor(e)
	s := startServer(t, Config{Backend: b, ScriptRunning: e.ScriptRunning})
	// No retry, and time to wait: a script at its budget runs for a while
	// under -race, and a retried EVAL would run twice.
	rdb := newClient(t, s, func(o *goredis.Options) { o.ReadTimeout = time.Minute; o.MaxRetries = -1 })
	old := instructionBudget
	instructionBudget = 5_000_000
	t.Cleanup(func() { instructionBudget = old })
	return &fixture{t: t, ctx: context.Background(), backend: b, srv: s, rdb: rdb}, e
}

func TestEvalReplies(t *testing.T) {
	f, _ := newScriptFixture(t)
	for _, tc := range []struct {
		args []any
		want any
	}{
		{[]any{"EVAL", "return 'hello'", 0}, "hello"},
		{[]any{"EVAL", "return 100.5", 0}, int64(100)},
		{[]any{"EVAL", "return true", 0}, int64(1)},
		{[]any{"EVAL", "return {1,2,3,'ciao',{1,2}}", 0}, []any{int64(1), int64(2), int64(3), "ciao", []any{int64(1), int64(2)}}},
		{[]any{"EVAL", "return {KEYS[1],KEYS[2],ARGV[1],ARGV[2]}", 2, "a", "b", "c", "d"}, []any{"a", "b", "c", "d"}},
		{[]any{"EVAL", "redis.call('set', KEYS[1], ARGV[1]); return redis.call('get', KEYS[1])", 1, "k", "v"}, "v"},
		{[]any{"EVAL", "return redis.call('set', 'k2', 'x')", 0}, "OK"},
		{[]any{"EVAL", "return redis.call('get', 'nokey') == false", 0}, int64(1)},
		{[]any{"EVAL", "return redis.status_reply('FINE')", 0}, "FINE"},
		{[]any{"EVAL", "return type(redis.pcall('incr', 'k').err)", 0}, "string"},
		{[]any{"EVAL", "local s, r = pcall(function() return foo end); return tostring(s) .. ' ' .. r", 0},
			"false user_script:1: Script attempted to access nonexistent global variable 'foo'"},
		{[]any{"EVAL", "return redis.sha1hex('')", 0}, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{[]any{"EVAL", "return server.call('ping')", 0}, "PONG"},
		{[]any{"EVAL", "return cjson.encode({1,2,{a=1}})", 0}, `[1,2,{"a":1}]`},
		{[]any{"EVAL", "return redis.call('type', 'k')", 0}, "string"},
	} {
		got, err := f.do(tc.args...).Result()
		require.NoError(t, err, "%v", tc.args)
		require.Equal(t, tc.want, got, "%v", tc.args)
	}
}

func TestEvalErrors(t *testing.T) {
	f, _ := newScriptFixture(t)
	require.NoError(t, f.do("SET", "str", "x").Err())
	sha := func(body string) string { return kv.ScriptSHA([]byte(body)) }
	for _, tc := range []struct {
		args []any
		want string
	}{
		{[]any{"EVAL", "return redis.call('incr', 'str')", 0},
			"ERR value is not an integer or out of range script: " + sha("return redis.call('incr', 'str')") + ", on @user_script:1."},
		{[]any{"EVAL", "\nreturn redis.call('lpush', 'str', 'a')", 0},
			"WRONGTYPE Operation against a key holding the wrong kind of value script: " + sha("\nreturn redis.call('lpush', 'str', 'a')") + ", on @user_script:2."},
		{[]any{"EVAL", "return redis.pcall('incr', 'str')", 0}, "ERR value is not an integer or out of range"},
		{[]any{"EVAL", "return {err='ERR this is an error'}", 0}, "ERR this is an error"},
		{[]any{"EVAL", "return redis.error_reply('MY_ERR custom')", 0}, "MY_ERR custom"},
		{[]any{"EVAL", "return redis.error_reply('')", 0}, "ERR"},
		{[]any{"EVAL", "return 1", -1}, "ERR Number of keys can't be negative"},
		{[]any{"EVAL", "return 1", 2, "a"}, "ERR Number of keys can't be greater than number of args"},
		{[]any{"EVAL", "return 1", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", 0}, "NOSCRIPT No matching script. Please use EVAL."},
		{[]any{"EVALSHA_RO", "ffffffffffffffffffffffffffffffffffffffff", 0}, "NOSCRIPT No matching script. Please use EVAL."},
		{[]any{"SCRIPT", "KILL"}, "NOTBUSY No scripts in execution right now."},
	} {
		requireErr(t, f.do(tc.args...).Err(), tc.want)
	}
	for _, tc := range []struct {
		body, want string
	}{
		{"a = 1", "Attempt to modify a readonly table"},
		{"return a", "Script attempted to access nonexistent global variable 'a'"},
		{"print('x')", "Script attempted to access nonexistent global variable 'print'"},
		{"setmetatable(_G, {})", "Attempt to modify a readonly table"},
		{"redis.call = 1", "Attempt to modify a readonly table"},
		{"bit.lshift = 1", "Attempt to modify a readonly table"},
		{"return redis.call()", "ERR Please specify at least one argument for this redis lib call"},
		{"return redis.call('nosuch')", "ERR Unknown Redis command called from script"},
		{"return redis.call('get', 'a', 'b')", "ERR Wrong number of args calling Redis command from script"},
		{"return redis.call('eval', 'return 1', 0)", "ERR This Redis command is not allowed from script"},
		{"return redis.call('ping', {})", "ERR Lua redis lib command arguments must be strings or integers"},
		{"while true do end", "ERR Script stopped at its budget of 5000000 Lua instructions"},
		{"return 1 +", "ERR Error compiling script (new function): "},
		{"error('boom')", "ERR user_script:1: boom script: "},
	} {
		err := f.do("EVAL", tc.body, 0).Err()
		require.Error(t, err, tc.body)
		require.Contains(t, err.Error(), tc.want, tc.body)
	}
}

func TestScriptThatFailsAfterAWriteKeepsTheWrite(t *testing.T) {
	f, _ := newScriptFixture(t)
	err := f.do("EVAL", "redis.call('set', KEYS[1], 'written'); error('after')", 1, "k").Err()
	require.ErrorContains(t, err, "after")
	got, err := f.do("GET", "k").Result()
	require.NoError(t, err)
	require.Equal(t, "written", got)
}

func TestScriptCache(t *testing.T) {
	f, _ := newScriptFixture(t)
	body := "return 'cached ' .. ARGV[1]"
	sha, err := f.do("SCRIPT", "LOAD", body).Text()
	require.NoError(t, err)
	require.Equal(t, kv.ScriptSHA([]byte(body)), sha)
	got, err := f.do("EVALSHA", sha, 0, "x").Result()
	require.NoError(t, err)
	require.Equal(t, "cached x", got)
	got, err = f.do("EVALSHA", strings.ToUpper(sha), 0, "y").Result()
	require.NoError(t, err)
	require.Equal(t, "cached y", got, "a SHA1 is case-insensitive")
	got, err = f.do("EVALSHA_RO", sha, 0, "z").Result()
	require.NoError(t, err)
	require.Equal(t, "cached z", got)

	// EVAL caches what it runs.
	evalBody := "return 42"
	require.NoError(t, f.do("EVAL", evalBody, 0).Err())
	exists, err := f.rdb.ScriptExists(f.ctx, sha, kv.ScriptSHA([]byte(evalBody)), "nope").Result()
	require.NoError(t, err)
	require.Equal(t, []bool{true, true, false}, exists)

	// FLUSHALL keeps the cache; SCRIPT FLUSH empties it.
	require.NoError(t, f.do("FLUSHALL").Err())
	require.NoError(t, f.do("EVALSHA", sha, 0, "x").Err())
	require.NoError(t, f.do("SCRIPT", "FLUSH", "ASYNC").Err())
	requireErr(t, f.do("EVALSHA", sha, 0, "x").Err(), "NOSCRIPT No matching script. Please use EVAL.")
	requireErr(t, f.do("SCRIPT", "FLUSH", "LATER").Err(), "ERR SCRIPT FLUSH only support SYNC|ASYNC option")

	// A script that does not compile is not cached, and needs no entry.
	require.Error(t, f.do("SCRIPT", "LOAD", "return +").Err())
}

func TestEvalReadOnly(t *testing.T) {
	f, _ := newScriptFixture(t)
	require.NoError(t, f.do("SET", "k", "v").Err())
	before := f.backend.Status().AppliedIndex
	got, err := f.do("EVAL_RO", "return redis.call('get', KEYS[1])", 1, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
	require.Equal(t, before, f.backend.Status().AppliedIndex, "EVAL_RO needs no log entry")
	err = f.do("EVAL_RO", "return redis.call('set', KEYS[1], 'w')", 1, "k").Err()
	require.ErrorContains(t, err, "ERR Write commands are not allowed from read-only scripts.")
	// Not cached: EVAL_RO writes nothing, not even the cache.
	exists, err := f.rdb.ScriptExists(f.ctx, kv.ScriptSHA([]byte("return redis.call('get', KEYS[1])"))).Result()
	require.NoError(t, err)
	require.Equal(t, []bool{false}, exists)
}

func TestEvalInsideMulti(t *testing.T) {
	f, _ := newScriptFixture(t)
	var incr *goredis.IntCmd
	var eval *goredis.Cmd
	_, err := f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		incr = p.Incr(f.ctx, "n")
		eval = p.Eval(f.ctx, "return redis.call('incrby', KEYS[1], 10)", []string{"n"})
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(1), incr.Val())
	require.Equal(t, int64(11), eval.Val())
}

func TestMathRandomInAScriptVariesByEntry(t *testing.T) {
	f, _ := newScriptFixture(t)
	a, err := f.do("EVAL", "return tostring(math.random())", 0).Text()
	require.NoError(t, err)
	b, err := f.do("EVAL", "return tostring(math.random())", 0).Text()
	require.NoError(t, err)
	require.NotEqual(t, a, b, "each entry seeds its own sequence")
}

func TestBusyWhileAScriptRunsAndScriptKill(t *testing.T) {
	f, e := newScriptFixture(t)
	require.NoError(t, f.do("CONFIG", "SET", "busy-reply-threshold", "0").Err())
	got, err := f.do("CONFIG", "GET", "lua-time-limit").StringSlice()
	require.NoError(t, err)
	require.Equal(t, []string{"lua-time-limit", "0"}, got)

	other := newClient(t, f.srv)
	var wg sync.WaitGroup
	wg.Add(1)
	var evalErr error
	go func() {
		defer wg.Done()
		// Ends at the budget: an endless loop cannot be killed.
		evalErr = f.do("EVAL", "while true do end", 0).Err()
	}()
	sawBusy := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !sawBusy {
		if e.ScriptRunning() == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		err := other.Ping(f.ctx).Err()
		if err != nil && err.Error() == errTextBusy {
			sawBusy = true
			// SCRIPT KILL is allowed while busy, and says why it cannot.
			kerr := other.Do(f.ctx, "SCRIPT", "KILL").Err()
			if e.ScriptRunning() > 0 || kerr.Error() != errTextNotBusy {
				requireErr(t, kerr, errTextUnkillable)
			}
		}
	}
	wg.Wait()
	require.True(t, sawBusy, "a command sent while the script ran got BUSY")
	require.ErrorContains(t, evalErr, "budget")
	require.NoError(t, other.Ping(f.ctx).Err(), "no BUSY once the script ended")
	requireErr(t, other.Do(f.ctx, "SCRIPT", "KILL").Err(), errTextNotBusy)
}

func TestFunctions(t *testing.T) {
	f, _ := newScriptFixture(t)
	lib := "#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n" +
		"redis.register_function{function_name='ro', callback=function(keys) return redis.call('get', keys[1]) end, flags={'no-writes'}, description='reads'}"
	for _, tc := range []struct {
		args []any
		want any // an error reply's text, or the reply
		err  bool
	}{
		{[]any{"FUNCTION", "LOAD", lib}, "mylib", false},
		{[]any{"FUNCTION", "LOAD", lib}, "ERR Library 'mylib' already exists", true},
		{[]any{"FUNCTION", "LOAD", "REPLACE", lib}, "mylib", false},
		{[]any{"FUNCTION", "LOAD", "FOO", lib}, "ERR Unknown option given: FOO", true},
		{[]any{"FCALL", "myfunc", 1, "k", 5}, int64(5), false},
		{[]any{"FCALL", "MYFUNC", 1, "k", 5}, int64(10), false},
		{[]any{"FCALL_RO", "ro", 1, "k"}, "10", false},
		{[]any{"FCALL_RO", "myfunc", 1, "k", 1}, "ERR Can not execute a script with write flag using *_ro command.", true},
		{[]any{"FCALL", "nosuch", 0}, "ERR Function not found", true},
		{[]any{"FCALL", "myfunc", "x"}, "ERR Bad number of keys provided", true},
		{[]any{"FUNCTION", "LIST"}, []any{[]any{"library_name", "mylib", "engine", "LUA", "functions", []any{
			[]any{"name", "myfunc", "description", nil, "flags", []any{}},
			[]any{"name", "ro", "description", "reads", "flags", []any{"no-writes"}}}}}, false},
		{[]any{"FUNCTION", "LIST", "LIBRARYNAME", "other*"}, []any{}, false},
		{[]any{"FUNCTION", "STATS"}, []any{"running_script", nil, "engines", []any{"LUA", []any{"libraries_count", int64(1), "functions_count", int64(2)}}}, false},
		{[]any{"FUNCTION", "LOAD", "#!lua name=lib2\nreturn math.random()"},
			"ERR Error registering functions: user_function:1: Script attempted to access nonexistent global variable 'math'", true},
		{[]any{"FUNCTION", "LOAD", "#!lua name=lib2\nreturn redis.call('ping')"},
			"ERR Error registering functions: user_function:1: Script attempted to access nonexistent global variable 'call'", true},
		{[]any{"FUNCTION", "LOAD", "#!lua name=lib2\nredis.register_function('myfunc', function() end)"}, "ERR Function myfunc already exists", true},
		{[]any{"FUNCTION", "LOAD", "#!lua name=lib2\nlocal x = 1"}, "ERR No functions registered", true},
		{[]any{"FUNCTION", "LOAD", "#!lua\nlocal x = 1"}, "ERR Library name was not given", true},
		{[]any{"FUNCTION", "LOAD", "#!lua name=a-b\nlocal x = 1"}, errTextBadLibName, true},
		{[]any{"FUNCTION", "LOAD", "#!foo name=x\nlocal x = 1"}, "ERR Engine 'foo' not found", true},
		{[]any{"FUNCTION", "LOAD", "local x = 1"}, "ERR Missing library metadata", true},
		{[]any{"FLUSHALL"}, "OK", false},
		{[]any{"FCALL", "myfunc", 1, "k", 5}, int64(5), false},
		{[]any{"FUNCTION", "DELETE", "mylib"}, "OK", false},
		{[]any{"FUNCTION", "DELETE", "mylib"}, "ERR Library not found", true},
		{[]any{"FCALL", "myfunc", 1, "k", 5}, "ERR Function not found", true},
		{[]any{"FUNCTION", "KILL"}, "NOTBUSY No scripts in execution right now.", true},
	} {
		got, err := f.do(tc.args...).Result()
		if tc.err {
			requireErr(t, err, tc.want.(string))
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		require.Equal(t, tc.want, got, "%v", tc.args)
	}
	require.NoError(t, f.do("FUNCTION", "LOAD", lib).Err())
	require.NoError(t, f.do("FUNCTION", "FLUSH").Err())
	requireErr(t, f.do("FCALL", "myfunc", 1, "k", 5).Err(), "ERR Function not found")
}

func TestFunctionRegisterOnlyWhileLoading(t *testing.T) {
	f, _ := newScriptFixture(t)
	require.NoError(t, f.do("FUNCTION", "LOAD", "#!lua name=lib1\nlocal lib = redis\n"+
		"lib.register_function('f2', function() lib.register_function('f1', function() end) end)").Err())
	err := f.do("FCALL", "f2", 0).Err()
	require.ErrorContains(t, err, "can only be called on FUNCTION LOAD command")
}

func TestScriptCommandsElastickvLacks(t *testing.T) {
	f, _ := newScriptFixture(t)
	err := f.do("EVAL", "return redis.call('cluster', 'reset', 'hard')", 0).Err()
	require.ErrorContains(t, err, "ERR This Redis command is not allowed from script", "Redis refuses it in scripts, so elastickv says so")
	err = f.do("EVAL", "return redis.call('nosuchcommand')", 0).Err()
	require.ErrorContains(t, err, "ERR Unknown Redis command called from script")
}

func TestEvalShebang(t *testing.T) {
	f, _ := newScriptFixture(t)
	got, err := f.do("EVAL", "#!lua\nreturn 1", 0).Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), got)
	requireErr(t, f.do("EVAL", "#!not-lua\nreturn 1", 0).Err(), "ERR Unexpected engine in script shebang: not-lua")
	requireErr(t, f.do("EVAL", "#!lua badger=data\nreturn 1", 0).Err(), "ERR Unknown lua shebang option: badger=data")
	requireErr(t, f.do("EVAL", "#!lua flags=allow-oom,what?\nreturn 1", 0).Err(), "ERR Unexpected flag in script shebang: what?")
	err = f.do("EVAL", "#!lua flags=no-writes\nreturn redis.call('set', KEYS[1], 1)", 1, "k").Err()
	require.ErrorContains(t, err, "ERR Write commands are not allowed from read-only scripts. script: ")
	require.ErrorContains(t, err, "on @user_script:2.", "line numbers count the shebang line")
}

func TestFunctionLoadEdgeCases(t *testing.T) {
	f, _ := newScriptFixture(t)
	requireErr(t, f.do("FUNCTION", "LOAD", "#!lua name=slow\nwhile true do end").Err(),
		"ERR FUNCTION LOAD timeout: the library's code ran past its budget of 1000000 Lua instructions")
	requireErr(t, f.do("FUNCTION", "LOAD", "#! name=test\nredis.register_function('foo', function() return 1 end)").Err(), "ERR Engine '' not found")
	got, err := f.do("FUNCTION", "LOAD", "#!lua name=\"foo\"\nredis.register_function('foo', function() return 1 end)").Text()
	require.NoError(t, err)
	require.Equal(t, "foo", got, "the name may be quoted")
	err = f.do("FUNCTION", "LOAD", "#!lua name=bad\nredis.register_function('a-b', function() end)").Err()
	require.ErrorContains(t, err, "Library names can only contain letters", "Redis 7.2 answers a bad function name with the library names' message")
	err = f.do("FUNCTION", "LOAD", "#!lua name=bad\nmt = getmetatable(_G)").Err()
	require.ErrorContains(t, err, "Script attempted to access nonexistent global variable 'getmetatable'")
	requireErr(t, f.do("FUNCTION", "FLUSH", "SYNC", "extra").Err(), "ERR unknown subcommand or wrong number of arguments for 'FLUSH'. Try FUNCTION HELP.")
}

func TestScriptKillStopsAReadOnlyScript(t *testing.T) {
	f, _ := newScriptFixture(t)
	instructionBudget = 1 << 40 // the script runs until it is killed
	other := newClient(t, f.srv)
	done := make(chan error, 1)
	go func() { done <- f.do("EVAL_RO", "while true do end", 0).Err() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		require.True(t, time.Now().Before(deadline), "the script never showed as running")
		err := other.Do(f.ctx, "SCRIPT", "KILL").Err()
		if err == nil {
			break // it was running, and is stopped
		}
		requireErr(t, err, errTextNotBusy)
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-done:
		require.ErrorContains(t, err, "ERR Script killed by user with SCRIPT KILL")
	case <-time.After(30 * time.Second):
		t.Fatal("the killed script did not end")
	}
	requireErr(t, other.Do(f.ctx, "FUNCTION", "KILL").Err(), errTextNotBusy)
}
