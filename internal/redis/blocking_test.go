package redis

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// newBlockingFixture is newFixture over a store whose apply events reach
// the server, as the node wires them (node/wake.go).
func newBlockingFixture(t *testing.T) *fixture {
	t.Helper()
	f, _ := newFaultyBlockingFixture(t)
	return f
}

// blockFaults lets a test take from a blocking fixture what a follower
// can lose: the apply events (a snapshot install applies without them, a
// node cut from its leader applies nothing) and the leader (pops refused
// with TRYAGAIN).
type blockFaults struct {
	// muteEvents drops the store's apply events before they reach the
	// server.
	muteEvents atomic.Bool
	// refusePops makes the Backend refuse list pops as a node without a
	// leader does: TRYAGAIN, certainly not applied.
	refusePops atomic.Bool
}

// faultyBackend is a storeBackend that refuses pops on demand.
type faultyBackend struct {
	*storeBackend
	faults *blockFaults
}

func (b *faultyBackend) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	if b.faults.refusePops.Load() && cmd.Op == kv.OpListPop {
		return kv.Result{}, fmt.Errorf("%w: no leader available", ErrTryAgain)
	}
	return b.storeBackend.Write(ctx, cmd)
}

// newFaultyBlockingFixture is newBlockingFixture with faults the test
// switches on, and a client that does not retry TRYAGAIN by itself.
func newFaultyBlockingFixture(t *testing.T) (*fixture, *blockFaults) {
	t.Helper()
	var srv atomic.Pointer[Server]
	faults := &blockFaults{}
	st, err := kv.Open(kv.Config{Dir: t.TempDir(), CacheBytes: 1 << 20, OnApplyEvents: func(ev []kv.ApplyEvent) {
		if s := srv.Load(); s != nil && !faults.muteEvents.Load() {
			s.KeysApplied(ev)
		}
	}})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	b := &storeBackend{
		store:  st,
		status: Status{NodeID: "n1", RaftState: "leader", LeaderID: "n1", Term: 3},
		clock:  uint64(time.Now().UnixMilli()),
	}
	_, err = b.Write(context.Background(), kv.NewRaiseFormat(kv.MaxFormat))
	require.NoError(t, err)
	s := startServer(t, Config{Backend: &faultyBackend{storeBackend: b, faults: faults}})
	srv.Store(s)
	rdb := newClient(t, s, func(o *goredis.Options) { o.MaxRetries = -1 })
	return &fixture{t: t, ctx: context.Background(), backend: b, srv: s, rdb: rdb}, faults
}

// installBGetDel adds a test-only blocking command, BGETDEL key [key ...]
// timeout: GETDEL of the first key that exists, waiting for one. It drives
// the blocking machinery with a string op, independent of the list
// family. Tests do not run in parallel, so the table may change here.
func installBGetDel(t *testing.T) {
	t.Helper()
	commandTable["bgetdel"] = &command{name: "bgetdel", arity: -3, run: func(s *Server, c *client, args [][]byte) {
		timeout, err := parseBlockTimeout(args[len(args)-1], time.Now())
		if err != nil {
			c.err(err.Error())
			return
		}
		keys := args[1 : len(args)-1]
		// GETDEL takes one key: the stand-in watches all, pops the first.
		s.runBlocking(c, &blockOp{keys: keys, want: keyspace.TypeString, cmd: &kv.Command{Op: kv.OpGetDel, Keys: keys[:1]}}, timeout)
	}}
	t.Cleanup(func() { delete(commandTable, "bgetdel") })
}

// blockedCount is how many clients wait in a blocking command.
func (f *fixture) blockedCount() int64 { return f.srv.blocked.blockedClients() }

// waitBlocked waits until n clients are blocked.
func (f *fixture) waitBlocked(n int64) {
	f.t.Helper()
	eventually(f.t, func() bool { return f.blockedCount() == n }, "clients blocked")
}

func TestBlockingWakesOnWrite(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	got := make(chan any, 1)
	go func() {
		v, err := f.rdb.Do(f.ctx, "BGETDEL", "k", "0").Result()
		if err != nil {
			got <- err
			return
		}
		got <- v
	}()
	f.waitBlocked(1)
	require.Contains(t, f.rdb.Info(f.ctx, "clients").Val(), "blocked_clients:1\r\n")
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	select {
	case v := <-got:
		require.Equal(t, "v", v)
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked client was not woken")
	}
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "k").Val())
	f.waitBlocked(0)
}

func TestBlockingServesAtOnceWhenPresent(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	v, err := f.rdb.Do(f.ctx, "BGETDEL", "k", "0").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

func TestBlockingTimeoutRepliesNullArray(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	r := dialRaw(t, f.srv)
	start := time.Now()
	r.send(cmd("BGETDEL", "k", "0.2"))
	require.Equal(t, "*-1", r.line())
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	f.waitBlocked(0)
}

func TestBlockingFIFOOnOneKey(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	first, second := dialRaw(t, f.srv), dialRaw(t, f.srv)
	first.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	second.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(2)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "one", 0).Err())
	require.Equal(t, "one", first.reply())
	f.waitBlocked(1)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "two", 0).Err())
	require.Equal(t, "two", second.reply())
	f.waitBlocked(0)
}

func TestBlockedClientThatLeftPopsNothing(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	require.NoError(t, r.c.Close())
	// The server sees the close while the client is blocked, before any
	// write to its key.
	f.waitBlocked(0)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.rdb.Get(f.ctx, "k").Val())
}

func TestCommandsSentWhileBlockedRunAfterwards(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	// Sent while blocked: read ahead by the close watch, run once the
	// block ends, in order.
	r.send(cmd("PING", "a") + cmd("ECHO", "b"))
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	require.Equal(t, "v", r.reply())
	require.Equal(t, "a", r.reply())
	require.Equal(t, "b", r.reply())
}

func TestClientUnblock(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("CLIENT", "ID"))
	id := r.reply().(int64)

	r.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	require.Equal(t, int64(1), f.do("CLIENT", "UNBLOCK", id).Val())
	require.Equal(t, "*-1", r.line())
	f.waitBlocked(0)
	require.Equal(t, int64(0), f.do("CLIENT", "UNBLOCK", id).Val(), "not blocked any more")

	r.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	require.Equal(t, int64(1), f.do("CLIENT", "UNBLOCK", id, "ERROR").Val())
	require.Equal(t, "-"+errTextUnblocked, r.line())
	f.waitBlocked(0)

	requireErr(t, f.do("CLIENT", "UNBLOCK", id, "NOW").Err(), "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
	requireErr(t, f.do("CLIENT", "UNBLOCK", "x").Err(), "ERR value is not an integer or out of range")
	require.Equal(t, int64(0), f.do("CLIENT", "UNBLOCK", 99999).Val())
	// The key was never written: nothing was popped.
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.rdb.Get(f.ctx, "k").Val())
}

func TestServerCloseEndsBlockedClients(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	done := make(chan error, 1)
	go func() { done <- f.srv.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited on a blocked client")
	}
	require.Equal(t, int64(0), f.blockedCount())
}

func TestBlockingTimeoutParsing(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{in: "0", want: 0},
		{in: "0.0", want: 0},
		{in: "1", want: time.Second},
		{in: "0.001", want: time.Millisecond},
		{in: "0.0001", want: time.Millisecond}, // rounded up, as Redis's ceill
		{in: "1.5", want: 1500 * time.Millisecond},
		{in: "+2", want: 2 * time.Second},
		{in: "-0.0001", want: 0}, // ceil gives 0: for ever, not negative
		{in: "-1", err: "ERR timeout is negative"},
		{in: "-inf", err: "ERR timeout is negative"},
		{in: "inf", err: "ERR timeout is out of range"},
		{in: "0x7FFFFFFFFFFFFF", err: "ERR timeout is out of range"},
		{in: "1e300", err: "ERR timeout is out of range"},
		{in: "9223372036854775.807", err: "ERR timeout is out of range"}, // LLONG_MAX - now overflows
		{in: "abc", err: "ERR timeout is not a float or out of range"},
		{in: "nan", err: "ERR timeout is not a float or out of range"},
		{in: "", err: "ERR timeout is not a float or out of range"},
		{in: " 1", err: "ERR timeout is not a float or out of range"},
		{in: "1 ", err: "ERR timeout is not a float or out of range"},
		{in: "1e999", err: "ERR timeout is not a float or out of range"},
	} {
		got, err := parseBlockTimeout([]byte(tc.in), now)
		if tc.err != "" {
			require.EqualError(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestBlockingArgumentErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []any
		err  string
	}{
		{[]any{"BLPOP", "k", "x"}, "ERR timeout is not a float or out of range"},
		{[]any{"BLPOP", "k", "-1"}, "ERR timeout is negative"},
		{[]any{"BLPOP", "k"}, "ERR wrong number of arguments for 'blpop' command"},
		{[]any{"BLMOVE", "a", "b", "UP", "LEFT", "0"}, "ERR syntax error"},
		{[]any{"BLMOVE", "a", "b", "LEFT", "DOWN", "0"}, "ERR syntax error"},
		{[]any{"BLMOVE", "a", "b", "LEFT", "LEFT", "x"}, "ERR timeout is not a float or out of range"},
		{[]any{"BRPOPLPUSH", "a", "b", "-2"}, "ERR timeout is negative"},
		{[]any{"BLMPOP", "x", "1", "k", "LEFT"}, "ERR timeout is not a float or out of range"},
		{[]any{"BLMPOP", "0", "0", "k", "LEFT"}, "ERR numkeys should be greater than 0"},
		{[]any{"BLMPOP", "0", "x", "k", "LEFT"}, "ERR numkeys should be greater than 0"},
		{[]any{"BLMPOP", "0", "2", "k", "LEFT"}, "ERR syntax error"},
		{[]any{"BLMPOP", "0", "9223372036854775807", "k", "LEFT"}, "ERR syntax error"},
		{[]any{"BLMPOP", "0", "1", "k", "UP"}, "ERR syntax error"},
		{[]any{"BLMPOP", "0", "1", "k", "LEFT", "COUNT", "0"}, "ERR count should be greater than 0"},
		{[]any{"BLMPOP", "0", "1", "k", "LEFT", "COUNT"}, "ERR syntax error"},
		{[]any{"BLMPOP", "0", "1", "k", "LEFT", "COUNT", "1", "COUNT", "1"}, "ERR syntax error"},
		{[]any{"BLMPOP", "0", "1", "k", "LEFT", "junk"}, "ERR syntax error"},
	} {
		requireErr(t, f.do(tc.args...).Err(), tc.err)
	}
}

// TestCloseWatchKeepsEarlyInputAcrossBlocks drives limitConn directly:
// input read ahead during one block must reach redcon in order even when
// a second block starts before redcon has read all of it.
func TestCloseWatchKeepsEarlyInputAcrossBlocks(t *testing.T) {
	server, peer := net.Pipe()
	defer func() { _ = peer.Close() }()
	lc := &limitConn{Conn: server}
	lc.scan.limits.maxCommandBytes = 1 << 20
	w := &closeWatch{lc: lc, closed: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	_, err := peer.Write([]byte("abc"))
	require.NoError(t, err)
	w.stop()
	w2 := &closeWatch{lc: lc, closed: make(chan struct{}), done: make(chan struct{})}
	go w2.run()
	_, err = peer.Write([]byte("def"))
	require.NoError(t, err)
	w2.stop()
	buf := make([]byte, 2)
	var got []byte
	for len(got) < 6 {
		n, err := lc.Read(buf)
		require.NoError(t, err)
		got = append(got, buf[:n]...)
	}
	require.Equal(t, "abcdef", string(got))
	require.NoError(t, peer.Close())
	w3 := &closeWatch{lc: lc, closed: make(chan struct{}), done: make(chan struct{})}
	go w3.run()
	select {
	case <-w3.gone():
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not see the close")
	}
	w3.stop()
	_, err = lc.Read(buf)
	require.Error(t, err)
}

// TestBlockedClientIsNotOvertaken: a client that writes a key and blocks
// on it in one pipeline must not take what a client already blocked on
// the key is owed (Redis's "Unblock fairness is kept while pipelining").
func TestBlockedClientIsNotOvertaken(t *testing.T) {
	f := newBlockingFixture(t)
	installBGetDel(t)
	first, second := dialRaw(t, f.srv), dialRaw(t, f.srv)
	first.send(cmd("BGETDEL", "k", "0"))
	f.waitBlocked(1)
	second.send(cmd("SET", "k", "one") + cmd("BGETDEL", "k", "0"))
	require.Equal(t, "one", first.reply())
	require.Equal(t, "+OK", second.reply())
	f.waitBlocked(1)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "two", 0).Err())
	require.Equal(t, "two", second.reply())
	f.waitBlocked(0)
}

// TestBlockedPopRefusedUntilTimeoutAnswersTheError: a pop refused with
// TRYAGAIN (no leader) until the timeout leaves it unknown whether there
// was anything to pop, so the client gets the error, never nil (nil means
// "nothing to pop"; the chaos queue checker's missed wakeup).
func TestBlockedPopRefusedUntilTimeoutAnswersTheError(t *testing.T) {
	f, faults := newFaultyBlockingFixture(t)
	require.NoError(t, f.rdb.RPush(f.ctx, "q", "a").Err())
	faults.refusePops.Store(true)
	err := f.rdb.Do(f.ctx, "BLPOP", "q", "0.3").Err()
	requireErr(t, err, "TRYAGAIN try again later: no leader available")
	faults.refusePops.Store(false)
	require.Equal(t, []string{"a"}, f.rdb.LRange(f.ctx, "q", 0, -1).Val())
}

// TestBlockedPopWithoutEventSeesPushAtTimeout: a push this node applied
// without an event (a follower installing a snapshot; here the events are
// dropped) must not end the block with nil while the list holds it: the
// last linearizable look at the timeout finds and pops it.
func TestBlockedPopWithoutEventSeesPushAtTimeout(t *testing.T) {
	f, faults := newFaultyBlockingFixture(t)
	faults.muteEvents.Store(true)
	done := make(chan []string, 1)
	go func() {
		v, _ := f.rdb.Do(f.ctx, "BLPOP", "q", "0.4").StringSlice()
		done <- v
	}()
	f.waitBlocked(1)
	require.NoError(t, f.rdb.RPush(f.ctx, "q", "a").Err())
	// The timeout (400 ms) comes before the periodic re-check (1 s).
	select {
	case v := <-done:
		require.Equal(t, []string{"q", "a"}, v)
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP did not return")
	}
	require.Zero(t, f.rdb.Exists(f.ctx, "q").Val())
}

// TestBlockedPopTimesOutWithNilWhenEmptyAtTheEnd: the last look at the
// timeout answers nil when the keys hold nothing of the waited-for type
// (a key of another type included, as Redis keeps such a client blocked).
func TestBlockedPopTimesOutWithNilWhenEmptyAtTheEnd(t *testing.T) {
	f, faults := newFaultyBlockingFixture(t)
	faults.muteEvents.Store(true)
	done := make(chan error, 1)
	go func() { done <- f.rdb.Do(f.ctx, "BLPOP", "q", "0.3").Err() }()
	f.waitBlocked(1)
	require.NoError(t, f.rdb.Set(f.ctx, "q", "s", 0).Err())
	select {
	case err := <-done:
		require.ErrorIs(t, err, goredis.Nil)
	case <-time.After(5 * time.Second):
		t.Fatal("BLPOP did not return")
	}
	require.Equal(t, "s", f.rdb.Get(f.ctx, "q").Val())
}

// TestNewcomerBehindAStuckWaiterStillPops: a client that blocks behind
// another waiter of this node, on a list that holds an element the waiter
// ahead was never woken for (its event lost), looks itself after its
// turn interval instead of timing out with nil.
func TestNewcomerBehindAStuckWaiterStillPops(t *testing.T) {
	f, faults := newFaultyBlockingFixture(t)
	installBGetDel(t)
	first := dialRaw(t, f.srv)
	first.send(cmd("BGETDEL", "other", "k", "0"))
	f.waitBlocked(1)
	faults.muteEvents.Store(true)
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	// The timeout (0.8 s) comes before the periodic re-check (1 s): the
	// newcomer is served by its own look after blockTurnInterval.
	v, err := f.rdb.Do(f.ctx, "BGETDEL", "k", "0.8").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
	faults.muteEvents.Store(false)
	require.NoError(t, f.rdb.Set(f.ctx, "other", "w", 0).Err())
	require.Equal(t, "w", first.reply())
	f.waitBlocked(0)
}
