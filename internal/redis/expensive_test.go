package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// fillKeys writes n keys named prefix+index+pad, each holding "v",
// pipelined in MSETs of 1000.
func fillKeys(t *testing.T, rdb *goredis.Client, prefix string, n int, pad string) {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	for start := 0; start < n; start += 1000 {
		args := make([]any, 0, 2000)
		for i := start; i < min(start+1000, n); i++ {
			args = append(args, fmt.Sprintf("%s%07d%s", prefix, i, pad), "v")
		}
		pipe.MSet(ctx, args...)
		if pipe.Len() == 20 {
			_, err := pipe.Exec(ctx)
			require.NoError(t, err)
		}
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
}

// aborted reads elastickv_redis_commands_aborted_total{cmd, reason}.
func aborted(s *Server, cmd, reason string) float64 {
	var m dto.Metric
	_ = s.metrics.aborted.WithLabelValues(cmd, reason).(prometheus.Metric).Write(&m)
	return m.GetCounter().GetValue()
}

func expensiveInFlight(s *Server) float64 {
	var m dto.Metric
	_ = s.metrics.expensiveInFlight.Write(&m)
	return m.GetGauge().GetValue()
}

// requireServing shows that the node still serves another client: it
// writes, then reads back, a fresh key, and returns it.
func requireServing(t *testing.T, rdb *goredis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, rdb.Set(ctx, key, "still-here", 0).Err())
	require.Equal(t, "still-here", rdb.Get(ctx, key).Val())
}

// generous gives the checking server of a test a request timeout that no
// check of a few hundred thousand keys reaches, even under -race on a
// loaded machine; its client gets the same read timeout.
func generous(c *Config) { c.RequestTimeout = time.Minute }

// longKeyPattern is a pattern whose match against a run of 'a's costs
// about len(pattern) x len(key) steps, the worst case of the matcher.
var longKeyPattern = "*" + strings.Repeat("a", 1000) + "b"

// TestHostileKeysWithPathologicalPatternStopsAtDeadline: 200k keys, 1000 of
// them 4 KiB of 'a's, and a KEYS (then a SCAN) whose pattern costs about
// 3M steps per long key. The command stops at the request timeout with an
// error naming it; other clients are served meanwhile and afterwards, and
// every acknowledged write is still there.
func TestHostileKeysWithPathologicalPatternStopsAtDeadline(t *testing.T) {
	f := newFixture(t, generous)
	ctx := f.ctx
	fillKeys(t, f.rdb, "a:", 1000, strings.Repeat("a", 4096)) // sorted first: SCAN meets them
	fillKeys(t, f.rdb, "key:", 200_000, "")
	// The hostile client's server has a deadline of 300ms; a second
	// server over the same store, with the default, serves the checks.
	hostile := startServer(t, Config{Backend: f.backend, RequestTimeout: 300 * time.Millisecond})
	rdb := newClient(t, hostile, func(o *goredis.Options) { o.MaxRetries = -1 })
	other := newClient(t, hostile)

	var wg sync.WaitGroup
	wg.Add(1)
	var keysErr error
	go func() {
		defer wg.Done()
		keysErr = rdb.Keys(ctx, longKeyPattern).Err()
	}()
	// While KEYS runs, another client is served.
	eventually(t, func() bool { return expensiveInFlight(hostile) == 1 }, "KEYS in progress")
	requireServing(t, other, "during-keys")
	wg.Wait()
	require.ErrorContains(t, keysErr, "ERR KEYS exceeded its time limit of 300ms (request-timeout) after examining")
	require.Equal(t, 1.0, aborted(hostile, "keys", abortDeadline))

	_, _, err := rdb.Scan(ctx, 0, longKeyPattern, 10000).Result()
	require.ErrorContains(t, err, "ERR SCAN exceeded its time limit of 300ms")
	require.Equal(t, 1.0, aborted(hostile, "scan", abortDeadline))

	// The same client, and the others, carry on; nothing acknowledged is lost.
	requireServing(t, rdb, "after-keys")
	require.Equal(t, int64(201_002), f.rdb.DBSize(ctx).Val())
	require.Equal(t, "still-here", other.Get(ctx, "during-keys").Val())
	require.Equal(t, "v", other.Get(ctx, "key:0199999").Val())
	// A cheap pattern still works: the deadline bites only what outruns it.
	ks, err := rdb.Keys(ctx, "key:019999?").Result()
	require.NoError(t, err)
	require.Len(t, ks, 10)
	require.Zero(t, expensiveInFlight(hostile))
}

// TestHostileCountingCommandsStopAtDeadline: MGET of many keys, EXISTS of
// many keys and DEBUG DIGEST over 200k keys, with a request timeout far
// shorter than any of them takes, each answer an error naming the limit,
// and the node keeps serving; DBSIZE and INFO's count, O(1), answer.
func TestHostileCountingCommandsStopAtDeadline(t *testing.T) {
	f := newFixture(t, generous)
	ctx := f.ctx
	fillKeys(t, f.rdb, "key:", 200_000, "")
	// A second server over the same store, with a deadline of a
	// millisecond: nothing that walks 200k keys finishes within it.
	// Its backend ignores the deadline before reading, as a leader under
	// its lease does, so that only the reads' own budgets can trip.
	short := startServer(t, Config{Backend: leaseBackend{f.backend}, RequestTimeout: time.Millisecond})
	rdb := newClient(t, short, func(o *goredis.Options) { o.MaxRetries = -1 })

	requireErrPrefix := func(err error, prefix string) {
		t.Helper()
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), prefix), "%v", err)
	}
	// DBSIZE reads the running count: O(1), it beats any deadline.
	require.Equal(t, int64(200_000), rdb.DBSize(ctx).Val())

	many := make([]string, 20_000)
	for i := range many {
		many[i] = fmt.Sprintf("key:%07d", i)
	}
	requireErrPrefix(rdb.MGet(ctx, many...).Err(), "ERR MGET exceeded its time limit of 1ms")
	requireErrPrefix(rdb.Exists(ctx, many...).Err(), "ERR EXISTS exceeded its time limit of 1ms")
	requireErrPrefix(rdb.Do(ctx, "DEBUG", "DIGEST").Err(), "ERR DEBUG DIGEST exceeded its time limit of 1ms")
	require.Equal(t, 1.0, aborted(short, "mget", abortDeadline))
	require.Equal(t, 1.0, aborted(short, "exists", abortDeadline))
	require.Equal(t, 1.0, aborted(short, "debug", abortDeadline))

	// INFO's key count is the running count too.
	info, err := rdb.Info(ctx, "keyspace").Result()
	require.NoError(t, err)
	require.Contains(t, info, "db0:keys=200000,")

	// A few keys are cheap and stay within any deadline; the first server,
	// with the default timeout, counts everything.
	require.Equal(t, []any{"v", nil}, rdb.MGet(ctx, "key:0000001", "missing").Val())
	requireServing(t, rdb, "after")
	require.Equal(t, int64(200_001), f.rdb.DBSize(ctx).Val())
	n, err := f.rdb.Exists(ctx, many[:2000]...).Result()
	require.NoError(t, err)
	require.Equal(t, int64(2000), n)
	require.NoError(t, f.rdb.Do(ctx, "DEBUG", "DIGEST").Err())
}

// TestHostileCloseDuringLongKeysReturnsPromptly: a KEYS that would run for
// minutes (2000 keys of 16 KiB against a pattern costing ~50M steps each)
// does not hold up Server.Close, nor the store's Close after it.
func TestHostileCloseDuringLongKeysReturnsPromptly(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.RequestTimeout = time.Hour })
	fillKeys(t, f.rdb, "long:", 2000, strings.Repeat("a", 16<<10))
	require.Equal(t, int64(2000), f.rdb.DBSize(context.Background()).Val())
	pattern := "*" + strings.Repeat("a", 4000) + "b"

	keysDone := make(chan error, 1)
	go func() { keysDone <- f.rdb.Keys(context.Background(), pattern).Err() }()
	eventually(t, func() bool { return expensiveInFlight(f.srv) == 1 }, "KEYS in progress")
	// Another client is served while KEYS runs.
	requireServing(t, newClient(t, f.srv), "during")

	closed := make(chan error, 1)
	go func() { closed <- f.srv.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Server.Close still waiting on KEYS after 10s")
	}
	select {
	case err := <-keysDone:
		require.Error(t, err) // "server is shutting down", or the connection closed under it
	case <-time.After(10 * time.Second):
		t.Fatal("KEYS not answered after Close")
	}
	require.Equal(t, 1.0, aborted(f.srv, "keys", abortShutdown))
	require.Zero(t, expensiveInFlight(f.srv))
	// The data is intact (the store was never in danger).
	n := 0
	require.NoError(t, f.backend.store.Read(func(v kv.View) error {
		n = 0
		return v.ScanKeys(nil, func([]byte) bool { n++; return true })
	}))
	require.Equal(t, 2001, n) // and the key written during KEYS
}

// leaseBackend reads at once whatever the context says, as the node's
// backend does for a leader within its lease (ReadNow).
type leaseBackend struct{ *storeBackend }

func (b leaseBackend) Read(_ context.Context, fn func(v kv.View) error) error {
	return b.store.Read(fn)
}
