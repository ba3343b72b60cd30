package redis

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// MULTI, EXEC, DISCARD, WATCH and UNWATCH against a real store, with the
// ApplyExecutor installed as the node installs it. Expected replies are
// Redis 7.2's (checked against redis-server where the docs are silent).

// newMultiFixture is a fixture whose store runs EXEC entries (every
// fixture's does: newStoreBackend installs the executor).
func newMultiFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixture(t)
}

// tx sends each command (space-separated words) and returns the replies.
func (r *rawConn) tx(lines ...[]string) []any {
	r.t.Helper()
	out := make([]any, len(lines))
	for i, l := range lines {
		r.send(cmd(l...))
		out[i] = r.reply()
	}
	return out
}

func words(ws ...string) []string { return ws }

func TestMultiQueuesAndExecRepliesInOrderSeeingOwnWrites(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("MULTI"),
		words("SET", "a", "1"),
		words("INCR", "a"),
		words("GET", "a"),
		words("RPUSH", "l", "x", "y"),
		words("LRANGE", "l", "0", "-1"),
		words("HSET", "h", "f", "v"),
		words("HGETALL", "h"),
		words("PING"),
		words("ECHO", "hi"),
		words("EXEC"),
	)
	require.Equal(t, []any{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED",
		[]any{"+OK", int64(2), "2", int64(2), []any{"x", "y"}, int64(1), []any{"f", "v"}, "+PONG", "hi"}}, got)
	// Nothing is left of the transaction: the connection is out of MULTI.
	require.Equal(t, []any{"+PONG", "2"}, r.tx(words("PING"), words("GET", "a")))
}

func TestMultiNothingRunsBeforeExec(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	require.Equal(t, []any{"+OK", "+QUEUED"}, r.tx(words("MULTI"), words("SET", "a", "1")))
	// Another client does not see the queued write.
	require.ErrorIs(t, f.rdb.Get(f.ctx, "a").Err(), goredis.Nil)
	require.Equal(t, []any{[]any{"+OK"}}, r.tx(words("EXEC")))
	require.Equal(t, "1", f.rdb.Get(f.ctx, "a").Val())
}

func TestExecAbortsAfterAQueueingError(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  []string
		err  string
	}{
		{"unknown command", words("NOSUCH", "x"), "-ERR unknown command 'NOSUCH', with args beginning with: 'x' "},
		{"wrong arity", words("GET"), "-ERR wrong number of arguments for 'get' command"},
		{"unknown subcommand", words("CLIENT", "NOSUCH"), "-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."},
		{"refused inside MULTI", words("SAVE"), "-ERR Command not allowed inside a transaction"},
		{"refused inside MULTI, lowercase", words("shutdown", "nosave"), "-ERR Command not allowed inside a transaction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMultiFixture(t)
			r := dialRaw(t, f.srv)
			got := r.tx(
				words("MULTI"),
				words("SET", "a", "1"),
				tc.bad,
				words("SET", "b", "2"),
				words("EXEC"),
			)
			require.Equal(t, []any{"+OK", "+QUEUED", tc.err, "+QUEUED",
				"-EXECABORT Transaction discarded because of previous errors."}, got)
			require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "a", "b").Val(), "an aborted EXEC writes nothing")
			// The MULTI state is cleared: commands run at once again.
			require.Equal(t, []any{"+OK", "1"}, r.tx(words("SET", "c", "1"), words("GET", "c")))
		})
	}
}

func TestExecRuntimeErrorsStayPerCommand(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("MULTI"),
		words("LPUSH", "l", "a"),
		words("INCR", "l"),
		words("SET", "k", "v"),
		words("INCRBY", "k", "1"),
		words("HSET", "k", "f", "v"),
		words("SETEX", "e", "-1", "v"),
		words("GET", "k"),
		words("EXEC"),
	)
	require.Equal(t, []any{
		"-WRONGTYPE Operation against a key holding the wrong kind of value",
		"+OK",
		"-ERR value is not an integer or out of range",
		"-WRONGTYPE Operation against a key holding the wrong kind of value",
		"-ERR invalid expire time in 'setex' command",
		"v",
	}, got[len(got)-1].([]any)[1:])
	require.Equal(t, "v", f.rdb.Get(f.ctx, "k").Val(), "the commands around the errors ran")
}

func TestNestedMultiAndWatchInsideMultiAreRefusedWithoutAbort(t *testing.T) {
	// Redis 7.2 refuses both and keeps the transaction (Valkey 8 aborts it).
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("MULTI"),
		words("MULTI"),
		words("WATCH", "x"),
		words("SET", "a", "1"),
		words("EXEC"),
	)
	require.Equal(t, []any{"+OK", "-ERR MULTI calls can not be nested", "-ERR WATCH inside MULTI is not allowed",
		"+QUEUED", []any{"+OK"}}, got)
}

func TestExecAndDiscardWithoutMulti(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	require.Equal(t, []any{"-ERR EXEC without MULTI", "-ERR DISCARD without MULTI"},
		r.tx(words("EXEC"), words("DISCARD")))
}

func TestEmptyMultiExecRepliesAnEmptyArray(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	require.Equal(t, []any{"+OK", []any{}}, r.tx(words("MULTI"), words("EXEC")))
	// Watched, and the watch holds: still an empty array.
	require.Equal(t, []any{"+OK", "+OK", []any{}}, r.tx(words("WATCH", "w"), words("MULTI"), words("EXEC")))
	// Watched, and the watch fails: the null array.
	require.Equal(t, []any{"+OK"}, r.tx(words("WATCH", "w")))
	require.NoError(t, f.rdb.Set(f.ctx, "w", "1", 0).Err())
	require.Equal(t, []any{"+OK", nilArray{}}, r.tx(words("MULTI"), words("EXEC")))
}

func TestDiscardForgetsQueueAndWatches(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("WATCH", "x"),
		words("MULTI"),
		words("SET", "a", "1"),
		words("DISCARD"),
	)
	require.Equal(t, []any{"+OK", "+OK", "+QUEUED", "+OK"}, got)
	require.NoError(t, f.rdb.Set(f.ctx, "x", "changed", 0).Err())
	// x is no longer watched, and the discarded SET never ran.
	require.Equal(t, []any{"+OK", "+QUEUED", []any{int64(0)}}, r.tx(words("MULTI"), words("EXISTS", "a"), words("EXEC")))
}

func TestUnwatch(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	require.Equal(t, []any{"+OK"}, r.tx(words("UNWATCH")), "UNWATCH with nothing watched")
	require.Equal(t, []any{"+OK", "+OK"}, r.tx(words("WATCH", "x", "y"), words("UNWATCH")))
	require.NoError(t, f.rdb.Set(f.ctx, "x", "changed", 0).Err())
	require.Equal(t, []any{"+OK", "+QUEUED", []any{"+PONG"}}, r.tx(words("MULTI"), words("PING"), words("EXEC")))

	// UNWATCH inside MULTI is queued and answers OK inside the array; it
	// comes too late to save a transaction whose watch already failed.
	require.Equal(t, []any{"+OK", "+OK", "+QUEUED", "+QUEUED", []any{"+PONG", "+OK"}},
		r.tx(words("WATCH", "x"), words("MULTI"), words("PING"), words("UNWATCH"), words("EXEC")))
	require.Equal(t, []any{"+OK"}, r.tx(words("WATCH", "x")))
	require.NoError(t, f.rdb.Set(f.ctx, "x", "again", 0).Err())
	require.Equal(t, []any{"+OK", "+QUEUED", "+QUEUED", nilArray{}},
		r.tx(words("MULTI"), words("UNWATCH"), words("PING"), words("EXEC")))
}

func TestExecForgetsWatches(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	// After a successful EXEC.
	require.Equal(t, []any{"+OK", "+OK", "+QUEUED", []any{"+PONG"}},
		r.tx(words("WATCH", "x"), words("MULTI"), words("PING"), words("EXEC")))
	require.NoError(t, f.rdb.Set(f.ctx, "x", "1", 0).Err())
	require.Equal(t, []any{"+OK", "+QUEUED", []any{"+PONG"}}, r.tx(words("MULTI"), words("PING"), words("EXEC")))
	// After a failed one.
	require.Equal(t, []any{"+OK"}, r.tx(words("WATCH", "x")))
	require.NoError(t, f.rdb.Set(f.ctx, "x", "2", 0).Err())
	require.Equal(t, []any{"+OK", "+QUEUED", nilArray{}}, r.tx(words("MULTI"), words("PING"), words("EXEC")))
	require.NoError(t, f.rdb.Set(f.ctx, "x", "3", 0).Err())
	require.Equal(t, []any{"+OK", "+QUEUED", []any{"+PONG"}}, r.tx(words("MULTI"), words("PING"), words("EXEC")))
}

// TestWatchedKeyChanges runs WATCH k, then a change, then MULTI PING EXEC,
// and checks whether EXEC ran, as Redis 7.2 decides.
func TestWatchedKeyChanges(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(e watchEnv) // before WATCH
		change func(e watchEnv) // between WATCH and MULTI
		runs   bool
	}{
		{"untouched live key", setK, nil, true},
		{"read by another client", setK, func(e watchEnv) { e.f.rdb.Get(e.f.ctx, "k") }, true},
		{"written by another client", setK, func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "w", 0) }, false},
		{"written with the same value", setK, func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "v", 0) }, false},
		{"deleted", setK, func(e watchEnv) { e.f.rdb.Del(e.f.ctx, "k") }, false},
		{"given a TTL", setK, func(e watchEnv) { e.f.rdb.Expire(e.f.ctx, "k", time.Hour) }, false},
		{"PERSIST of a key without TTL", setK, func(e watchEnv) { e.f.rdb.Persist(e.f.ctx, "k") }, true},
		{"expired after WATCH", func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "v", 100*time.Millisecond) },
			func(e watchEnv) { e.f.backend.advance(time.Second) }, false},
		{"live with a TTL that has not passed", func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "v", time.Hour) },
			func(e watchEnv) { e.f.backend.advance(time.Second) }, true},
		{"stale at WATCH, untouched", setStale, nil, true},
		{"stale at WATCH, read", setStale, func(e watchEnv) { e.f.rdb.Exists(e.f.ctx, "k") }, true},
		{"stale at WATCH, deleted", setStale, func(e watchEnv) { e.f.rdb.Del(e.f.ctx, "k") }, true},
		{"stale at WATCH, EXPIRE that finds nothing", setStale, func(e watchEnv) { e.f.rdb.Expire(e.f.ctx, "k", time.Hour) }, true},
		{"stale at WATCH, flushed", setStale, func(e watchEnv) { e.f.rdb.FlushAll(e.f.ctx) }, true},
		{"stale at WATCH, written", setStale, func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "w", 0) }, false},
		{"absent, untouched", nil, nil, true},
		{"absent, DEL of nothing", nil, func(e watchEnv) { e.f.rdb.Del(e.f.ctx, "k") }, true},
		{"absent, created", nil, func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "v", 0) }, false},
		{"absent, created then deleted", nil, func(e watchEnv) {
			e.f.rdb.Set(e.f.ctx, "k", "v", 0)
			e.f.rdb.Del(e.f.ctx, "k")
		}, false},
		{"FLUSHALL that removed it", setK, func(e watchEnv) { e.f.rdb.FlushAll(e.f.ctx) }, false},
		{"FLUSHDB that removed it", setK, func(e watchEnv) { e.f.rdb.FlushDB(e.f.ctx) }, false},
		{"FLUSHALL while it was absent", func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "other", "v", 0) },
			func(e watchEnv) { e.f.rdb.FlushAll(e.f.ctx) }, true},
		{"FLUSHDB while it was absent", func(e watchEnv) { e.f.rdb.Set(e.f.ctx, "other", "v", 0) },
			func(e watchEnv) { e.f.rdb.FlushDB(e.f.ctx) }, true},
		{"written by the watching connection itself", setK, func(e watchEnv) {
			require.Equal(e.f.t, []any{"+OK"}, e.self.tx(words("SET", "k", "mine")))
		}, false},
		{"read by the watching connection itself", setK, func(e watchEnv) {
			require.Equal(e.f.t, []any{"v"}, e.self.tx(words("GET", "k")))
		}, true},
		{"target of SORT STORE with an empty result", func(e watchEnv) { e.f.rdb.RPush(e.f.ctx, "k", "x") },
			func(e watchEnv) { e.f.rdb.SortStore(e.f.ctx, "nolist", "k", &goredis.Sort{}) }, false},
		{"renamed away", setK, func(e watchEnv) { e.f.rdb.Rename(e.f.ctx, "k", "k2") }, false},
		{"overwritten by RENAME", func(e watchEnv) { setK(e); e.f.rdb.Set(e.f.ctx, "src", "s", 0) },
			func(e watchEnv) { e.f.rdb.Rename(e.f.ctx, "src", "k") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newMultiFixture(t)
			e := watchEnv{f: f, self: dialRaw(t, f.srv)}
			if tc.before != nil {
				tc.before(e)
			}
			require.Equal(t, []any{"+OK"}, e.self.tx(words("WATCH", "k")))
			if tc.change != nil {
				tc.change(e)
			}
			got := e.self.tx(words("MULTI"), words("PING"), words("EXEC"))
			require.Equal(t, []any{"+OK", "+QUEUED"}, got[:2])
			if tc.runs {
				require.Equal(t, []any{"+PONG"}, got[2], "EXEC should run")
			} else {
				require.Equal(t, nilArray{}, got[2], "EXEC should fail")
			}
		})
	}
}

// watchEnv is what a TestWatchedKeyChanges step acts with.
type watchEnv struct {
	f    *fixture
	self *rawConn // the watching connection
}

func setK(e watchEnv) { e.f.rdb.Set(e.f.ctx, "k", "v", 0) }

// setStale leaves k expired but still stored (nothing swept it).
func setStale(e watchEnv) {
	e.f.rdb.Set(e.f.ctx, "k", "v", 10*time.Millisecond)
	e.f.backend.advance(time.Second)
}

func TestWatchFailureRunsNothingAndKeepsOtherKeysWatchedTogether(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	require.NoError(t, f.rdb.MSet(f.ctx, "a", "1", "b", "1").Err())
	require.Equal(t, []any{"+OK", "+OK"}, r.tx(words("WATCH", "a", "b", "c"), words("WATCH", "d")))
	require.NoError(t, f.rdb.Set(f.ctx, "d", "x", 0).Err())
	got := r.tx(words("MULTI"), words("INCR", "a"), words("SET", "z", "1"), words("EXEC"))
	require.Equal(t, nilArray{}, got[3])
	require.Equal(t, "1", f.rdb.Get(f.ctx, "a").Val())
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "z").Val())
}

func TestMultiKeyspaceScansRunOnApply(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("MULTI"),
		words("SET", "k1", "1"),
		words("SET", "k2", "2"),
		words("KEYS", "*"),
		words("DBSIZE"),
		words("SCAN", "0", "COUNT", "100"),
		words("RANDOMKEY"),
		words("DEL", "k1", "k2"),
		words("DBSIZE"),
		words("RANDOMKEY"),
		words("EXEC"),
	)
	res := got[len(got)-1].([]any)
	keys := toStrings(t, res[2])
	sort.Strings(keys)
	require.Equal(t, []string{"k1", "k2"}, keys, "KEYS sees the transaction's own writes")
	require.Equal(t, int64(2), res[3])
	scan := res[4].([]any)
	require.Equal(t, "0", scan[0])
	scanned := toStrings(t, scan[1])
	sort.Strings(scanned)
	require.Equal(t, []string{"k1", "k2"}, scanned)
	require.Contains(t, []any{"k1", "k2"}, res[5])
	require.Equal(t, []any{int64(2), int64(0), nil}, res[6:])
}

func toStrings(t *testing.T, v any) []string {
	t.Helper()
	arr, ok := v.([]any)
	require.True(t, ok, "not an array: %#v", v)
	out := make([]string, len(arr))
	for i, e := range arr {
		out[i], ok = e.(string)
		require.True(t, ok, "not a bulk string: %#v", e)
	}
	return out
}

func TestMultiBlockingCommandsDoNotBlock(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	start := time.Now()
	got := r.tx(
		words("MULTI"),
		words("BLPOP", "empty", "0"),
		words("BRPOP", "empty", "0"),
		words("BRPOPLPUSH", "empty", "dst", "0"),
		words("BLMOVE", "empty", "dst", "LEFT", "LEFT", "0"),
		words("BZPOPMIN", "emptyz", "0"),
		words("BZPOPMAX", "emptyz", "0"),
		words("BLMPOP", "0", "1", "empty", "LEFT"),
		words("BZMPOP", "0", "1", "emptyz", "MIN"),
		words("RPUSH", "full", "a", "b"),
		words("BLPOP", "full", "0"),
		words("BRPOP", "full", "0"),
		words("BLPOP", "full", "0"),
		words("EXEC"),
	)
	require.Less(t, time.Since(start), 3*time.Second, "a blocking command inside MULTI never waits")
	require.Equal(t, []any{nilArray{}, nilArray{}, nil, nil, nilArray{}, nilArray{}, nilArray{}, nilArray{},
		int64(2), []any{"full", "a"}, []any{"full", "b"}, nilArray{}}, got[len(got)-1])
}

func TestMultiNodeLocalCommandsRunAfterTheEntry(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	id := r.tx(words("CLIENT", "ID"))[0]
	got := r.tx(
		words("MULTI"),
		words("CLIENT", "SETNAME", "txname"),
		words("SET", "a", "1"),
		words("CLIENT", "GETNAME"),
		words("LRANGE", "nolist", "0", "-1"),
		words("CONFIG", "GET", "maxmemory"),
		words("CONFIG", "SET", "maxmemory", "bla"),
		words("CLIENT", "ID"),
		words("SELECT", "0"),
		words("GET", "a"),
		words("EXEC"),
	)
	require.Equal(t, []any{"+OK", "+OK", "txname", []any{}, []any{"maxmemory", "0"}}, got[len(got)-1].([]any)[:5])
	res := got[len(got)-1].([]any)
	require.Regexp(t, `^-ERR CONFIG SET failed \(possibly related to argument 'maxmemory'\)`, res[5])
	require.Equal(t, []any{id, "+OK", "1"}, res[6:])

	// A failed watch runs none of them.
	require.Equal(t, []any{"+OK"}, r.tx(words("WATCH", "a")))
	require.NoError(t, f.rdb.Set(f.ctx, "a", "2", 0).Err())
	got = r.tx(words("MULTI"), words("CLIENT", "SETNAME", "other"), words("EXEC"), words("CLIENT", "GETNAME"))
	require.Equal(t, []any{"+OK", "+QUEUED", nilArray{}, "txname"}, got)

	// Only node-local commands, watched or not.
	require.Equal(t, []any{"+OK", "+QUEUED", []any{"txname"}}, r.tx(words("MULTI"), words("CLIENT", "GETNAME"), words("EXEC")))
	require.Equal(t, []any{"+OK", "+OK", "+QUEUED", []any{"txname"}},
		r.tx(words("WATCH", "a"), words("MULTI"), words("CLIENT", "GETNAME"), words("EXEC")))
}

func TestTxPipelinedFromGoRedis(t *testing.T) {
	f := newMultiFixture(t)
	var incrA, incrB *goredis.IntCmd
	var get *goredis.StringCmd
	cmds, err := f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		incrA = p.Incr(f.ctx, "a")
		incrB = p.Incr(f.ctx, "b")
		get = p.Get(f.ctx, "a")
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 3)
	require.Equal(t, int64(1), incrA.Val())
	require.Equal(t, int64(1), incrB.Val())
	require.Equal(t, "1", get.Val())

	// A runtime error is that command's error; the others succeed.
	require.NoError(t, f.rdb.RPush(f.ctx, "l", "x").Err())
	var bad *goredis.IntCmd
	var ok *goredis.StatusCmd
	_, err = f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		bad = p.Incr(f.ctx, "l")
		ok = p.Set(f.ctx, "s", "v", 0)
		return nil
	})
	requireErr(t, err, "WRONGTYPE Operation against a key holding the wrong kind of value")
	requireErr(t, bad.Err(), "WRONGTYPE Operation against a key holding the wrong kind of value")
	require.Equal(t, "OK", ok.Val())

	// A queueing error aborts the whole transaction.
	_, err = f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		p.Set(f.ctx, "never", "v", 0)
		p.Do(f.ctx, "nosuchcommand")
		return nil
	})
	require.Error(t, err)
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "never").Val())
}

// TestWatchCheckAndSetNeverLosesAnIncrement runs go-redis's optimistic
// check-and-set loop from several clients at once.
func TestWatchCheckAndSetNeverLosesAnIncrement(t *testing.T) {
	f := newMultiFixture(t)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				err := f.rdb.Watch(f.ctx, func(tx *goredis.Tx) error {
					n, err := tx.Get(f.ctx, "counter").Int()
					if err != nil && !errors.Is(err, goredis.Nil) {
						return err
					}
					_, err = tx.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
						p.Set(f.ctx, "counter", n+1, 0)
						return nil
					})
					return err
				}, "counter")
				switch {
				case err == nil:
					i++
				case errors.Is(err, goredis.TxFailedErr):
				default:
					errs <- fmt.Errorf("check-and-set: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, strconv.Itoa(workers*each), f.rdb.Get(f.ctx, "counter").Val())
}

func TestSplitRESPArray(t *testing.T) {
	good := "*4\r\n+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n*-1\r\n$-1\r\n"
	parts, err := splitRESPArray([]byte(good), 4)
	require.NoError(t, err)
	require.Equal(t, []string{"+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n*-1\r\n", "$-1\r\n"},
		[]string{string(parts[0]), string(parts[1]), string(parts[2]), string(parts[3])})
	empty, err := splitRESPArray([]byte("*0\r\n"), 0)
	require.NoError(t, err)
	require.Empty(t, empty)
	for _, bad := range []string{
		"", "*1\r\n", "*2\r\n+OK\r\n", "+OK\r\n", "*1\r\n$5\r\nab\r\n", "*1\r\n$2\r\nabcd\r\n",
		"*1\r\n+OK", "*1\r\n+OK\r\nextra", "*x\r\n", "*1\r\n?\r\n", "*1\r\n*-2\r\n",
	} {
		_, err := splitRESPArray([]byte(bad), 1)
		require.Error(t, err, "%q", bad)
	}
	_, err = splitRESPArray([]byte("*1\r\n+OK\r\n"), 2)
	require.Error(t, err, "count mismatch")
}

func TestPipelinedMultiWithDiscardQueuesEveryCommand(t *testing.T) {
	// Writes pipelined behind MULTI would otherwise join a write batch and
	// run at once, outside the transaction (pipeline.go).
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("SET", "before", "1") + cmd("MULTI") + cmd("SET", "a", "1") + cmd("SET", "b", "2") +
		cmd("GET", "a") + cmd("DISCARD") + cmd("GET", "a") + cmd("MULTI") + cmd("INCR", "c") + cmd("INCR", "c") + cmd("EXEC"))
	got := make([]any, 11)
	for i := range got {
		got[i] = r.reply()
	}
	require.Equal(t, []any{"+OK", "+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+OK", nil, "+OK", "+QUEUED", "+QUEUED",
		[]any{int64(1), int64(2)}}, got)
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "a", "b").Val(), "the discarded writes never ran")
}

func TestTransactionCommandsWithWrongArityInsideMulti(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	// EXEC refused aborts at once, naming the error; the transaction is
	// gone.
	require.Equal(t, []any{"+OK", "+QUEUED", "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command",
		"-ERR DISCARD without MULTI"},
		r.tx(words("MULTI"), words("SET", "a", "1"), words("EXEC", "extra"), words("DISCARD")))
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "a").Val())
	// The others flag the transaction, which EXEC then aborts.
	for _, bad := range [][]string{words("MULTI", "extra"), words("DISCARD", "extra"), words("UNWATCH", "extra"), words("WATCH")} {
		got := r.tx(words("MULTI"), words("SET", "a", "1"), bad, words("EXEC"))
		require.Equal(t, "-EXECABORT Transaction discarded because of previous errors.", got[3], "%v", bad)
		require.Regexp(t, `^-ERR wrong number of arguments for '[a-z]+' command$`, got[2])
	}
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "a").Val())
}

func TestMultiRunsObjectAndMemoryOnApply(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	got := r.tx(words("MULTI"), words("SET", "k", "v"), words("OBJECT", "ENCODING", "k"), words("OBJECT", "REFCOUNT", "nokey"),
		words("MEMORY", "USAGE", "nokey"), words("EXEC"))
	require.Equal(t, []any{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", []any{"+OK", "embstr", nil, nil}}, got)
}

func TestMultiSeesOneTimeForTheWholeEntry(t *testing.T) {
	f := newMultiFixture(t)
	r := dialRaw(t, f.srv)
	// A key set with the shortest TTL is still there for the commands
	// after it: the entry has one apply time.
	got := r.tx(words("MULTI"), words("SET", "k", "v", "PX", "1"), words("GET", "k"), words("PTTL", "k"), words("EXEC"))
	require.Equal(t, []any{"+OK", "v", int64(1)}, got[4])
}

// TestExecRandomChoicesAreTheSameOnEveryReplica applies the same EXEC
// entries, with random commands, to two stores as two replicas would
// (same indexes, same stamps): their replies and their states match byte
// for byte, because the randomness comes from the entry's index.
func TestExecRandomChoicesAreTheSameOnEveryReplica(t *testing.T) {
	replicas := []*storeBackend{newStoreBackend(t), newStoreBackend(t)}
	replicas[1].clock = replicas[0].clock
	argv := func(ws ...string) [][]byte {
		out := make([][]byte, len(ws))
		for i, w := range ws {
			out[i] = []byte(w)
		}
		return out
	}
	seed := [][][]byte{argv("SET", "k1", "v"), argv("SET", "k2", "v"), argv("SET", "k3", "v")}
	sadd, zadd, hset := argv("SADD", "s"), argv("ZADD", "z"), argv("HSET", "h")
	for i := range 40 {
		m := fmt.Sprintf("m%02d", i)
		sadd = append(sadd, []byte(m))
		zadd = append(zadd, []byte(strconv.Itoa(i)), []byte(m))
		hset = append(hset, []byte(m), []byte("v"))
	}
	seed = append(seed, sadd, zadd, hset)
	random := [][][]byte{
		argv("SPOP", "s", "3"), argv("SRANDMEMBER", "s", "-5"), argv("SRANDMEMBER", "s", "5"),
		argv("RANDOMKEY"), argv("HRANDFIELD", "h", "-4", "WITHVALUES"), argv("ZRANDMEMBER", "z", "3"),
		argv("SPOP", "s"), argv("SMEMBERS", "s"),
		// A cursor's id is drawn too: the same on both replicas.
		argv("SCAN", "0", "COUNT", "1"),
	}
	entries := []*kv.Command{kv.NewExec(nil, nil, seed)}
	for range 5 {
		entries = append(entries, kv.NewExec(nil, nil, random))
	}
	var replies [2][]string
	for i, b := range replicas {
		for _, e := range entries {
			r, err := b.Write(context.Background(), e)
			require.NoError(t, err)
			require.Equal(t, kv.ResultRaw, r.Kind)
			replies[i] = append(replies[i], string(r.Bytes))
		}
	}
	require.Equal(t, replies[0], replies[1], "the same replies on both replicas")
	require.NotEqual(t, replies[0][1], replies[0][2], "the second entry sees the first one's pops")
	_, h0, err := replicas[0].store.Hash()
	require.NoError(t, err)
	_, h1, err := replicas[1].store.Hash()
	require.NoError(t, err)
	require.Equal(t, h0, h1, "the same state on both replicas")
}

// TestExecReplyIsBounded: a transaction whose reply passes
// kv.MaxExecReplyBytes is rolled back whole, on every replica alike, and
// EXEC answers the error.
func TestExecReplyIsBounded(t *testing.T) {
	f := newMultiFixture(t)
	big := strings.Repeat("x", 12<<20)
	require.NoError(t, f.rdb.Set(f.ctx, "big", big, 0).Err())
	r := dialRaw(t, f.srv)
	got := r.tx(
		words("MULTI"),
		words("INCR", "n"),
		words("GET", "big"),
		words("GET", "big"),
		words("GET", "big"),
		words("EXEC"),
	)
	require.Equal(t, fmt.Sprintf("-ERR the transaction's reply passed %d bytes; nothing of it was applied", kv.MaxExecReplyBytes), got[len(got)-1])
	require.ErrorIs(t, f.rdb.Get(f.ctx, "n").Err(), goredis.Nil, "the INCR before the limit was rolled back")
	// Two fit.
	got = r.tx(words("MULTI"), words("INCR", "n"), words("GET", "big"), words("GET", "big"), words("EXEC"))
	require.Equal(t, []any{int64(1), big, big}, got[len(got)-1])
}
