package redis

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastickv/elastickv/internal/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tidwall/redcon"
)

// Defaults applied by DefaultConfig and, for zero fields, by NewServer.
const (
	// DefaultMaxValueBytes bounds any single argument (key or value).
	DefaultMaxValueBytes = 16 << 20
	// DefaultRequestTimeout bounds how long a command waits on the Backend.
	DefaultRequestTimeout = 5 * time.Second
)

// Config configures a Server. Zero fields take the values of DefaultConfig,
// except Backend, which is required.
type Config struct {
	// Addr is the TCP address to listen on, e.g. ":6379" or "127.0.0.1:0".
	Addr string
	// MaxValueBytes is the largest argument accepted; a longer one is
	// refused with "-ERR value too large" before anything is proposed.
	MaxValueBytes int
	// MaxCommandBytes is client-query-buffer-limit: it bounds one command
	// as framed on the wire, and the input one connection may have
	// buffered (commands received and not yet run). A client that
	// announces a bigger command gets a protocol error and is disconnected
	// before the command is buffered, which is what keeps per-connection
	// memory bounded. It also bounds the largest reply MGET or KEYS
	// gathers. Zero means 4*MaxValueBytes + 1 MiB, room for a few maximal
	// values in one MSET.
	MaxCommandBytes int
	// Clients bounds connections and their buffers (clients.go); the zero
	// value means DefaultClientLimits.
	Clients ClientLimits
	// Backend executes the commands. Required.
	Backend Backend
	// RequestTimeout bounds each Backend call; a command that runs out of
	// it is answered "-TRYAGAIN".
	RequestTimeout time.Duration
	// ScriptRunning, if set, says for how long the node's applier has been
	// running a script (0: none); the node wires it to its
	// ApplyExecutor's. It drives BUSY and SCRIPT KILL (script.go).
	ScriptRunning func() time.Duration
	// Logger receives connection and failure events; nil discards them.
	Logger *slog.Logger
	// Registerer receives the server's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Version is reported as elastickv_version by INFO. Empty means the
	// main module version from the build info.
	Version string
	// Params is the node's configuration registry, which CONFIG GET and
	// SET read and change. NewServer stores this Config's effective client
	// limits, value bound and address in it; nil means a new
	// config.New().
	Params *config.Registry
}

// DefaultConfig returns a Config with every default filled in; the caller
// still sets Addr and Backend.
func DefaultConfig() Config {
	return Config{
		Addr:           ":6379",
		MaxValueBytes:  DefaultMaxValueBytes,
		RequestTimeout: DefaultRequestTimeout,
		Clients:        DefaultClientLimits(),
	}
}

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	def := DefaultConfig()
	if c.MaxValueBytes == 0 {
		c.MaxValueBytes = def.MaxValueBytes
	}
	if c.MaxCommandBytes == 0 {
		c.MaxCommandBytes = DefaultMaxCommandBytes(c.MaxValueBytes)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = def.RequestTimeout
	}
	if c.Clients == (ClientLimits{}) {
		c.Clients = def.Clients
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Version == "" {
		c.Version = buildVersion()
	}
	if c.Params == nil {
		c.Params = config.New()
	}
	switch {
	case c.Backend == nil:
		return c, errors.New("redis: Config.Backend is required")
	case c.MaxValueBytes < 0:
		return c, fmt.Errorf("redis: Config.MaxValueBytes is %d; it must be positive", c.MaxValueBytes)
	case c.MaxCommandBytes <= c.MaxValueBytes:
		return c, fmt.Errorf("redis: Config.MaxCommandBytes (%d) must exceed MaxValueBytes (%d) so that a maximal value fits in a command",
			c.MaxCommandBytes, c.MaxValueBytes)
	case c.RequestTimeout < 0:
		return c, fmt.Errorf("redis: Config.RequestTimeout is %v; it must be positive", c.RequestTimeout)
	}
	if err := c.Clients.Validate(c.MaxCommandBytes); err != nil {
		return c, fmt.Errorf("redis: %w", err)
	}
	return c, nil
}

// DefaultMaxCommandBytes is the default query buffer limit for a value
// bound: room for a few maximal values in one MSET.
func DefaultMaxCommandBytes(maxValueBytes int) int { return 4*maxValueBytes + 1<<20 }

func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// ErrServerClosed is returned by Serve and Start once Close has been called.
var ErrServerClosed = errors.New("redis: server closed")

// Server is a RESP server. Create it with NewServer, run it with Serve or
// Start, stop it with Close.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	rs      *redcon.Server
	metrics *metrics
	cursors *cursorTable
	// params is the configuration registry; live mirrors its client
	// limits for the hot paths (params.go).
	params  *config.Registry
	live    liveLimits
	started time.Time
	runID   string

	// baseCtx parents every Backend call; Close cancels it so that no
	// handler keeps Close waiting on a slow proposal.
	baseCtx context.Context
	cancel  context.CancelFunc

	nextClientID atomic.Uint64
	clients      atomic.Int64
	conns        sync.WaitGroup // one per accepted connection, done when its handler goroutine ends
	errLog       rateLimiter    // Backend failures
	acceptLog    rateLimiter    // Accept failures

	// Client limits (clients.go).
	registry      clientRegistry
	mem           clientMemory
	clientMetrics *clientMetrics
	limitLog      rateLimiter   // clients refused or closed by a limit
	evictDone     chan struct{} // closed when evictLoop ends

	// blocked holds the clients blocked on keys (waiters.go).
	blocked      blockRegistry
	blockMetrics *blockMetrics

	// roScripts are the EVAL_RO and FCALL_RO scripts running on this
	// node, which SCRIPT KILL may stop (script.go).
	roScripts roScripts

	mu        sync.Mutex
	closed    bool
	serving   bool
	serveDone chan struct{} // closed when the accept loop ends; Close waits on it once serving is set
}

// NewServer validates cfg and listens on cfg.Addr at once, so that the
// caller can learn the bound port (Addr may be "127.0.0.1:0") before
// serving. Connections are accepted once Serve or Start runs.
func NewServer(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	cm, err := newClientMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	bm, err := newBlockMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("redis: listen on %s: %w", cfg.Addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "redis"),
		metrics:       m,
		cursors:       newCursorTable(maxScanCursors, maxScanCursorBytes),
		started:       time.Now(),
		runID:         randomHex(20),
		baseCtx:       ctx,
		cancel:        cancel,
		serveDone:     make(chan struct{}),
		clientMetrics: cm,
		mem:           clientMemory{wake: make(chan struct{}, 1), m: cm},
		evictDone:     make(chan struct{}),
		blockMetrics:  bm,
	}
	s.ln = &limitListener{Listener: ln, live: &s.live}
	if err := s.bindParams(cfg); err != nil {
		cancel()
		_ = ln.Close()
		return nil, err
	}
	go s.evictLoop()
	s.rs = redcon.NewServer(cfg.Addr, s.handle, s.accept, s.closedConn)
	s.rs.AcceptError = s.acceptError
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts and serves connections until Close is called, then returns
// nil. It returns ErrServerClosed if Close came first, and an error if the
// server is already serving.
func (s *Server) Serve() error {
	if err := s.markServing(); err != nil {
		return err
	}
	return s.serve()
}

// Start runs Serve in a goroutine owned by the Server; Close waits for it.
// A failure of the accept loop after start is logged.
func (s *Server) Start() error {
	if err := s.markServing(); err != nil {
		return err
	}
	go func() {
		if err := s.serve(); err != nil {
			s.log.Error("RESP server stopped", "err", err)
		}
	}()
	return nil
}

// markServing claims the accept loop. Once it succeeds Close waits for
// serveDone, so it must be followed by serve.
func (s *Server) markServing() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case s.serving:
		return errors.New("redis: server already serving")
	}
	s.serving = true
	return nil
}

func (s *Server) serve() error {
	defer close(s.serveDone)
	s.log.Info("serving RESP", "addr", s.Addr().String())
	// redcon.Server.Serve returns once the listener is closed, after closing
	// every connection it accepted (their handler goroutines end on their
	// own; s.conns tracks them).
	err := s.rs.Serve(s.ln)
	if s.isClosed() {
		return nil
	}
	if err == nil {
		err = errors.New("listener stopped")
	}
	return fmt.Errorf("redis: serve on %s: %w", s.Addr(), err)
}

// acceptError runs on the accept loop when Accept fails for a reason other
// than the listener closing (e.g. out of file descriptors). redcon retries
// at once, so pause here to keep the loop from spinning.
func (s *Server) acceptError(err error) {
	if ok, n := s.acceptLog.allow(time.Second); ok {
		s.log.Warn("accept failed; retrying", "err", err, "suppressed", n)
	}
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.baseCtx.Done():
	}
}

// Close stops accepting, cancels in-flight Backend calls, closes every
// client connection and waits for every goroutine the Server started. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	serving := s.serving
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	if serving {
		<-s.serveDone
	}
	s.conns.Wait()
	<-s.evictDone
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("redis: close listener: %w", err)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// accept runs on redcon's accept loop for each new connection.
func (s *Server) accept(conn redcon.Conn) bool {
	if s.isClosed() {
		return false
	}
	c := &client{
		id:      s.nextClientID.Add(1),
		conn:    conn,
		addr:    conn.RemoteAddr(),
		created: time.Now(),
	}
	if !s.admit(conn, c) {
		return false
	}
	// Add before the handler goroutine exists; Close waits for the accept
	// loop to end before it waits on s.conns, so no Add can race the Wait.
	s.conns.Add(1)
	s.clients.Add(1)
	conn.SetContext(c)
	s.log.Debug("client connected", "client", c.id, "addr", c.addr)
	return true
}

// closedConn runs on the connection's handler goroutine as it ends.
func (s *Server) closedConn(conn redcon.Conn, err error) {
	defer s.conns.Done()
	s.clients.Add(-1)
	c, _ := conn.Context().(*client)
	var id uint64
	if c != nil {
		id = c.id
		s.release(c, err)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		// Protocol errors and resets are the client's business, not the
		// operator's: debug level.
		s.log.Debug("client disconnected", "client", id, "addr", conn.RemoteAddr(), "err", err)
		return
	}
	s.log.Debug("client disconnected", "client", id, "addr", conn.RemoteAddr())
}

// requestContext bounds one Backend call.
func (s *Server) requestContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.baseCtx, s.cfg.RequestTimeout)
}

// tcpPort is the port INFO reports.
func (s *Server) tcpPort() int {
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	_, p, _ := net.SplitHostPort(s.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}

var pid = os.Getpid()

// rateLimiter lets one event through per interval and counts the rest, so
// that a failing Backend cannot flood the log from the hot path.
type rateLimiter struct {
	last       atomic.Int64 // unix nanos of the last event let through
	suppressed atomic.Int64
}

// allow reports whether to log now and how many events were suppressed
// since the last one that was.
func (r *rateLimiter) allow(interval time.Duration) (bool, int64) {
	now := time.Now().UnixNano()
	last := r.last.Load()
	if now-last < int64(interval) || !r.last.CompareAndSwap(last, now) {
		r.suppressed.Add(1)
		return false, 0
	}
	return true, r.suppressed.Swap(0)
}

// randomHex returns n random bytes in hex, for INFO's run_id, which tells
// an operator whether a node restarted.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
