package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/elastickv/elastickv/internal/kv"
)

func TestProtocolErrorClosesOnlyThatConnection(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())

	for _, tc := range []struct{ name, garbage, reply string }{
		{"bad bulk length", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length"},
		{"bad multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length"},
		{"missing dollar", "*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'"},
		{"unbalanced quotes", "SET \"k v\r\n", "-ERR Protocol error: unbalanced quotes in request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := dialRaw(t, f.srv)
			other.send(cmd("PING"))
			require.Equal(t, "+PONG", other.line())

			bad := dialRaw(t, f.srv)
			bad.send(cmd("PING"))
			require.Equal(t, "+PONG", bad.line())
			bad.send(tc.garbage)
			require.Equal(t, tc.reply, bad.line())
			bad.requireClosed()

			other.send(cmd("GET", "k"))
			require.Equal(t, "$1", other.line())
			require.Equal(t, "v", other.line())
			require.Equal(t, "v", f.rdb.Get(ctx, "k").Val())
		})
	}
}

func TestOversizedCommandIsCutBeforeItIsBuffered(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxValueBytes = 1024; c.MaxCommandBytes = 64 << 10 })
	other := dialRaw(t, f.srv)

	// A bulk announcing more than MaxCommandBytes is refused at its header:
	// the server never waits for (or buffers) the gigabyte.
	bad := dialRaw(t, f.srv)
	bad.send(cmd("PING") + "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000000\r\n")
	require.Equal(t, "+PONG", bad.line())
	require.Equal(t, "-ERR Protocol error: command too large", bad.line())
	bad.requireClosed()

	// Many small arguments add up the same way. Send the stream only up to
	// the byte that crosses the bound: the server closes the connection
	// there, and unread bytes would make the kernel reset the connection
	// and discard the error reply before the test reads it.
	var b strings.Builder
	b.WriteString("*100000\r\n$4\r\nMGET\r\n")
	for range 20000 {
		b.WriteString("$1\r\nk\r\n")
	}
	probe := frameScanner{limits: frameLimits{maxCommandBytes: f.srv.cfg.MaxCommandBytes}}
	cut, _, v := probe.feed([]byte(b.String()))
	require.NotNil(t, v)
	bad = dialRaw(t, f.srv)
	bad.send(b.String()[:cut+1])
	require.Equal(t, "-ERR Protocol error: command too large", bad.line())
	bad.requireClosed()

	bad = dialRaw(t, f.srv)
	bad.send("*2000000\r\n")
	require.Equal(t, "-ERR Protocol error: invalid multibulk length", bad.line())
	bad.requireClosed()

	bad = dialRaw(t, f.srv)
	bad.send(strings.Repeat("a", maxInlineBytes+1))
	require.Equal(t, "-ERR Protocol error: too big inline request", bad.line())
	bad.requireClosed()

	other.send(cmd("PING"))
	require.Equal(t, "+PONG", other.line())
}

func TestBackendErrorsBecomeTryAgainOrErr(t *testing.T) {
	var mode string
	var mu sync.Mutex
	setMode := func(m string) { mu.Lock(); mode = m; mu.Unlock() }
	fail := func(ctx context.Context) error {
		mu.Lock()
		m := mode
		mu.Unlock()
		switch m {
		case "tryagain":
			return fmt.Errorf("no leader for group 1: %w", ErrTryAgain)
		case "block":
			<-ctx.Done()
			return ctx.Err()
		default:
			return errors.New("disk on fire")
		}
	}
	b := &funcBackend{
		write: func(ctx context.Context, _ *kv.Command) (kv.Result, error) { return kv.Result{}, fail(ctx) },
		read:  func(ctx context.Context, _ func(kv.View) error) error { return fail(ctx) },
	}
	s := startServer(t, Config{Backend: b, RequestTimeout: 50 * time.Millisecond})
	rdb := newClient(t, s, func(o *goredis.Options) { o.MaxRetries = -1 })
	ctx := context.Background()

	setMode("tryagain")
	requireErr(t, rdb.Set(ctx, "k", "v", 0).Err(), "TRYAGAIN no leader for group 1: try again later")
	requireErr(t, rdb.Get(ctx, "k").Err(), "TRYAGAIN no leader for group 1: try again later")
	setMode("block")
	// A timed-out write may still commit: no TRYAGAIN, which clients retry.
	requireErr(t, rdb.Incr(ctx, "k").Err(), "ERR write timed out after 50ms; it may or may not have been applied")
	requireErr(t, rdb.Exists(ctx, "k").Err(), "TRYAGAIN request timed out after 50ms")
	setMode("other")
	requireErr(t, rdb.Del(ctx, "k").Err(), "ERR disk on fire")
	requireErr(t, rdb.DBSize(ctx).Err(), "ERR disk on fire")

	// INFO still answers without the key count, and quickly.
	setMode("block")
	info, err := rdb.InfoMap(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, "follower", info["Raft"]["raft_state"])
	require.Empty(t, info["Keyspace"])
	require.Equal(t, "PONG", rdb.Ping(ctx).Val())
}

func TestCloseCancelsInFlightCommandsAndWaitsForEveryGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	entered := make(chan struct{}, 16)
	b := &funcBackend{
		write: func(ctx context.Context, _ *kv.Command) (kv.Result, error) {
			entered <- struct{}{}
			<-ctx.Done()
			return kv.Result{}, ctx.Err()
		},
		read: func(ctx context.Context, _ func(kv.View) error) error { return ctx.Err() },
	}
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: b, RequestTimeout: time.Hour})
	require.NoError(t, err)
	require.NoError(t, s.Start())

	// Idle connections, and ones stuck in a proposal.
	var conns []net.Conn
	for i := range 4 {
		c, err := net.Dial("tcp", s.Addr().String())
		require.NoError(t, err)
		conns = append(conns, c)
		if i%2 == 0 {
			_, err = c.Write([]byte(cmd("SET", "k", "v")))
			require.NoError(t, err)
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the write never reached the backend")
			}
		}
	}
	eventually(t, func() bool { return s.clients.Load() == 4 }, "all clients accepted")

	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	require.Zero(t, s.clients.Load())
	for _, c := range conns {
		_ = c.Close()
	}
	require.NoError(t, s.Close(), "Close is idempotent")
	require.ErrorIs(t, s.Serve(), ErrServerClosed)
	_, err = net.DialTimeout("tcp", s.Addr().String(), time.Second)
	require.Error(t, err, "the listener is closed")
}

func TestCloseWithoutServe(t *testing.T) {
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: &funcBackend{}})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Start(), ErrServerClosed)
}

func TestNewServerValidatesConfig(t *testing.T) {
	_, err := NewServer(Config{Addr: "127.0.0.1:0"})
	require.ErrorContains(t, err, "Backend is required")
	_, err = NewServer(Config{Addr: "127.0.0.1:0", Backend: &funcBackend{}, MaxValueBytes: 100, MaxCommandBytes: 100})
	require.ErrorContains(t, err, "MaxCommandBytes")
	_, err = NewServer(Config{Addr: "256.0.0.1:0", Backend: &funcBackend{}})
	require.ErrorContains(t, err, "listen on 256.0.0.1:0")
}

func TestPipelinedRepliesKeepTheirOrder(t *testing.T) {
	f := newFixture(t)
	pipe := f.rdb.Pipeline()
	var cmds []*goredis.IntCmd
	for range 200 {
		cmds = append(cmds, pipe.Incr(f.ctx, "seq"))
	}
	_, err := pipe.Exec(f.ctx)
	require.NoError(t, err)
	for i, c := range cmds {
		require.Equal(t, int64(i+1), c.Val())
	}
}

func TestConcurrentClients(t *testing.T) {
	f := newFixture(t)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := f.rdb.Incr(f.ctx, "shared").Err(); err != nil {
					t.Errorf("worker %d incr %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, "400", f.rdb.Get(f.ctx, "shared").Val())
}

func TestMetricsCountCommandsErrorsAndDurations(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *Config) { c.Registerer = reg })
	ctx := f.ctx
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, f.rdb.Get(ctx, "k").Err())
	require.Error(t, f.rdb.Incr(ctx, "k").Err())
	require.Error(t, f.do("NOSUCH", "x").Err())
	require.Error(t, f.do("NOSUCH2").Err())

	families, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]map[string]float64{}
	for _, mf := range families {
		values[mf.GetName()] = map[string]float64{}
		for _, m := range mf.GetMetric() {
			values[mf.GetName()][label(m, "cmd")] = metricValue(mf.GetType(), m)
		}
	}
	calls := values["elastickv_redis_commands_total"]
	require.Equal(t, 1.0, calls["set"])
	require.Equal(t, 1.0, calls["get"])
	require.Equal(t, 1.0, calls["incr"])
	require.Equal(t, 2.0, calls["unknown"], "unknown names share one label")
	require.NotContains(t, calls, "nosuch")
	require.Positive(t, calls["hello"], "go-redis's handshake is counted")
	errs := values["elastickv_redis_command_errors_total"]
	require.Equal(t, 1.0, errs["incr"])
	require.Equal(t, 0.0, errs["get"])
	require.Equal(t, 2.0, errs["unknown"])
	require.Equal(t, 1.0, values["elastickv_redis_command_duration_seconds"]["set"], "one observation")

	// A second server on the same registry shares the series.
	s2 := startServer(t, Config{Backend: f.backend, Registerer: reg})
	require.NoError(t, newClient(t, s2).Get(ctx, "k").Err())
	families, err = reg.Gather()
	require.NoError(t, err)
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "elastickv_redis_commands_total" && label(m, "cmd") == "get" {
				require.Equal(t, 2.0, m.GetCounter().GetValue())
			}
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func metricValue(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_HISTOGRAM {
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetCounter().GetValue()
}

// slowWrites is a storeBackend whose every Write takes at least delay.
type slowWrites struct {
	*storeBackend
	delay time.Duration
}

func (b slowWrites) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	time.Sleep(b.delay)
	return b.storeBackend.Write(ctx, cmd)
}

// TestPipelinedCommandDurationsIncludeTheBatch: a pipelined write waits
// for its run's batch before it is answered, so that wait is part of the
// duration its histogram records, not only the reply.
func TestPipelinedCommandDurationsIncludeTheBatch(t *testing.T) {
	const delay = 30 * time.Millisecond
	reg := prometheus.NewRegistry()
	s := startServer(t, Config{Backend: slowWrites{newStoreBackend(t), delay}, Registerer: reg})
	rdb := newClient(t, s)
	ctx := context.Background()
	_, err := rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := 0; i < 4; i++ {
			p.Set(ctx, fmt.Sprintf("k%d", i), "v", 0)
		}
		return nil
	})
	require.NoError(t, err)
	families, err := reg.Gather()
	require.NoError(t, err)
	var h *dto.Histogram
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "elastickv_redis_command_duration_seconds" && label(m, "cmd") == "set" {
				h = m.GetHistogram()
			}
		}
	}
	require.NotNil(t, h)
	require.Equal(t, uint64(4), h.GetSampleCount())
	require.GreaterOrEqual(t, h.GetSampleSum(), 4*delay.Seconds(), "each SET waited for a write of at least %v", delay)
}
