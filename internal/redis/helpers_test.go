package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/elastickv/elastickv/internal/kv"
)

func TestMain(m *testing.M) {
	// Route go-redis's log lines into goredisLog so that tests can assert
	// that a client talks to the server without warnings.
	goredis.SetLogger(&goredisLog)
	goleak.VerifyTestMain(m)
}

// goredisLog records every line go-redis logs. Tests do not run in
// parallel, so a test may take everything logged during its run as its own.
var goredisLog capturedLog

type capturedLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *capturedLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, v...))
}

// take returns and forgets what was logged so far.
func (l *capturedLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	l.lines = nil
	return lines
}

// storeBackend is a Backend without Raft: it applies every write straight
// to a real kv.Store, one at a time, with consecutive log indexes. It is
// what a single-node cluster would do, minus replication.
type storeBackend struct {
	store *kv.Store

	mu     sync.Mutex // serialises Apply and guards index, status and clock
	index  uint64
	status Status
	// clock is the replicated time in Unix ms: every entry is stamped with
	// it and every read evaluates expiry at it, as a leader would. Tests
	// move it with advance; it starts at the wall clock.
	clock uint64
}

func newStoreBackend(t testing.TB) *storeBackend {
	t.Helper()
	st, err := kv.Open(kv.Config{Dir: t.TempDir(), CacheBytes: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	ex, err := NewApplyExecutor(nil)
	require.NoError(t, err)
	st.SetExecutor(ex) // EXEC entries run their commands on apply
	b := &storeBackend{
		store:  st,
		status: Status{NodeID: "n1", RaftState: "leader", LeaderID: "n1", Term: 3},
		clock:  uint64(time.Now().UnixMilli()),
	}
	// A new cluster runs at the newest log format.
	_, err = b.Write(context.Background(), kv.NewRaiseFormat(kv.MaxFormat))
	require.NoError(t, err)
	return b
}

// advance moves the backend's clock forward by d.
func (b *storeBackend) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clock += uint64(d.Milliseconds())
}

func (b *storeBackend) now() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clock
}

func (b *storeBackend) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	if err := ctx.Err(); err != nil {
		return kv.Result{}, err
	}
	if err := cmd.Validate(); err != nil {
		return kv.Result{}, fmt.Errorf("validate: %w", err)
	}
	data := cmd.AppendEncode(nil)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	res, err := b.store.Apply([]kv.Entry{{Index: b.index, Data: data, Stamp: b.clock}})
	if err != nil {
		return kv.Result{}, fmt.Errorf("apply: %w", err)
	}
	return res[0], nil
}

func (b *storeBackend) Read(ctx context.Context, fn func(v kv.View) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.store.ReadAt(b.now(), fn)
}

func (b *storeBackend) Status() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.status
	st.CommitIndex, st.AppliedIndex = b.index, b.index
	st.ExpiredKeys = b.store.ExpiredKeys()
	return st
}

func (b *storeBackend) setStatus(st Status) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status = st
}

// funcBackend lets a test script the Backend's behaviour.
type funcBackend struct {
	write func(ctx context.Context, cmd *kv.Command) (kv.Result, error)
	read  func(ctx context.Context, fn func(v kv.View) error) error
}

func (b *funcBackend) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	return b.write(ctx, cmd)
}

func (b *funcBackend) Read(ctx context.Context, fn func(v kv.View) error) error {
	return b.read(ctx, fn)
}

func (b *funcBackend) Status() Status { return Status{NodeID: "f", RaftState: "follower"} }

// startServer starts a Server on a loopback port and closes it when the
// test ends.
func startServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := NewServer(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// newClient returns a go-redis client of s with default options, closed
// when the test ends (before the server: cleanups run last-in first-out).
func newClient(t testing.TB, s *Server, opts ...func(*goredis.Options)) *goredis.Client {
	t.Helper()
	o := &goredis.Options{Addr: s.Addr().String()}
	for _, f := range opts {
		f(o)
	}
	c := goredis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fixture is a server over a real kv.Store and a go-redis client of it.
type fixture struct {
	t       *testing.T
	ctx     context.Context
	backend *storeBackend
	srv     *Server
	rdb     *goredis.Client
}

func newFixture(t *testing.T, tweak ...func(*Config)) *fixture {
	t.Helper()
	b := newStoreBackend(t)
	cfg := Config{Backend: b}
	for _, f := range tweak {
		f(&cfg)
	}
	s := startServer(t, cfg)
	// A server given more than the default request timeout gets a client
	// that waits as long for its replies.
	rdb := newClient(t, s, func(o *goredis.Options) {
		if cfg.RequestTimeout > DefaultRequestTimeout {
			o.ReadTimeout = cfg.RequestTimeout
		}
	})
	return &fixture{t: t, ctx: context.Background(), backend: b, srv: s, rdb: rdb}
}

// do runs a raw command through go-redis.
func (f *fixture) do(args ...any) *goredis.Cmd {
	return f.rdb.Do(f.ctx, args...)
}

// requireErr asserts that err is the Redis error reply want (without '-').
func requireErr(t testing.TB, err error, want string) {
	t.Helper()
	require.Error(t, err)
	var rerr goredis.Error
	require.True(t, errors.As(err, &rerr), "not a Redis error reply: %v", err)
	require.Equal(t, want, err.Error())
}

// rawConn is a plain TCP connection for speaking RESP by hand.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	rd *bufio.Reader
}

func dialRaw(t testing.TB, s *Server) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, rd: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	require.NoError(r.t, r.c.SetWriteDeadline(time.Now().Add(5*time.Second)))
	_, err := io.WriteString(r.c, s)
	require.NoError(r.t, err)
}

// line reads one reply line, without its CRLF.
func (r *rawConn) line() string {
	r.t.Helper()
	require.NoError(r.t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	l, err := r.rd.ReadString('\n')
	require.NoError(r.t, err, "read reply line")
	return strings.TrimSuffix(l, "\r\n")
}

// reply reads one RESP value: a simple string or error as its line (with
// its '+' or '-'), an integer as int64, a bulk string as string (nil for
// the null bulk), an array as []any.
func (r *rawConn) reply() any {
	r.t.Helper()
	l := r.line()
	require.NotEmpty(r.t, l)
	switch l[0] {
	case '+', '-':
		return l
	case ':':
		n, err := strconv.ParseInt(l[1:], 10, 64)
		require.NoError(r.t, err)
		return n
	case '$':
		n, err := strconv.Atoi(l[1:])
		require.NoError(r.t, err)
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		_, err = io.ReadFull(r.rd, buf)
		require.NoError(r.t, err)
		return string(buf[:n])
	case '*':
		n, err := strconv.Atoi(l[1:])
		require.NoError(r.t, err)
		if n < 0 {
			return nilArray{} // a failed EXEC's null array
		}
		out := make([]any, n)
		for i := range out {
			out[i] = r.reply()
		}
		return out
	}
	r.t.Fatalf("unexpected reply line %q", l)
	return nil
}

// nilArray is the null array (RESP2 "*-1").
type nilArray struct{}

// requireClosed asserts that the server closes the connection, reading
// (and failing on) anything it still sends.
func (r *rawConn) requireClosed() {
	r.t.Helper()
	require.NoError(r.t, r.c.SetReadDeadline(time.Now().Add(5*time.Second)))
	b, err := r.rd.ReadByte()
	require.ErrorIs(r.t, err, io.EOF, "expected EOF, got byte %q", b)
}

// cmd encodes args as a RESP array of bulk strings.
func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, cond func() bool, what string) {
	t.Helper()
	require.Eventually(t, cond, 10*time.Second, 5*time.Millisecond, what)
}

// Digest makes storeBackend a Digester, as the node's backend is.
func (b *storeBackend) Digest(ctx context.Context) (uint64, uint64, error) {
	return b.store.HashContext(ctx)
}
