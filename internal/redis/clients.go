package redis

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/config"
)

// Client limits.
//
// Every connection is a *client in the Server's clientRegistry, which is
// locked only to connect, disconnect, and when the maxmemory-clients
// evictor looks for the largest clients; commands never take it. What a
// client holds is accounted in its clientAcct:
//
//   - input: what redcon's reader holds for it (limitConn estimates it from
//     the bytes it hands redcon, see limits.go), bounded per client by
//     client-query-buffer-limit (Config.MaxCommandBytes);
//   - output: reply bytes appended to redcon's writer and not yet written to
//     the socket, bounded per client by client-output-buffer-limit.
//
// The handler goroutine owns the running counts and publishes them to the
// client's atomics (and the server-wide totals) only when they move by
// publishStep or more, or drop to zero, so a small command costs a few
// integer additions and no shared-memory write.

// Defaults of ClientLimits.
const (
	// DefaultMaxClients is Redis's maxclients default.
	DefaultMaxClients = 10000
	// DefaultOutputHardLimit is the pending-output size at which a client is
	// cut at once. It exceeds the largest reply a node builds
	// (Config.MaxCommandBytes, 65 MiB by default) plus DefaultOutputSoftLimit,
	// so no single legitimate reply can trip it.
	DefaultOutputHardLimit = 128 << 20
	// DefaultOutputSoftLimit is the pending output at which the server stops
	// executing a client's pipeline and waits for the client to read.
	DefaultOutputSoftLimit = 1 << 20
	// DefaultOutputSoftTimeout bounds how long the server waits for a client
	// to accept its pending output before cutting it.
	DefaultOutputSoftTimeout = 60 * time.Second
	// DefaultMaxMemoryClients bounds all clients' buffers together: room for
	// several maximal commands or replies in flight at once (each is at most
	// about 65 MiB, held about twice by redcon while it parses), while a
	// 1 GiB node keeps half its memory for Raft, Pebble and the Go runtime.
	DefaultMaxMemoryClients = 512 << 20
)

// OutputBufferLimit is client-output-buffer-limit for normal clients:
// "hard soft seconds" as in Redis. Pending output is what commands replied
// and the socket has not accepted yet.
type OutputBufferLimit struct {
	// Hard cuts a client as soon as its pending output would exceed it;
	// zero means no limit.
	Hard int64
	// Soft is the pending output at which the server flushes in the middle
	// of a pipeline and waits for the client to read before running the
	// next command; zero means replies are flushed only once the commands
	// read together have all run (redcon's own behaviour).
	Soft int64
	// SoftTimeout bounds every wait for the client to accept output; a
	// client that accepts none of it for that long is cut. Zero means no
	// bound, as in Redis.
	SoftTimeout time.Duration
}

// String formats l as redis.conf writes it, e.g. "normal 128mb 1mb 60".
func (l OutputBufferLimit) String() string {
	return fmt.Sprintf("normal %s %s %d", config.FormatMemory(l.Hard), config.FormatMemory(l.Soft), int64(l.SoftTimeout/time.Second))
}

// ClientLimits bound what clients may hold on a node. The zero value means
// DefaultClientLimits.
type ClientLimits struct {
	// MaxClients is maxclients: a connection beyond it is answered
	// "-ERR max number of clients reached" and closed.
	MaxClients int
	// IdleTimeout is timeout: a client that sends nothing for this long is
	// closed. Zero means never, as in Redis.
	IdleTimeout time.Duration
	// Output is client-output-buffer-limit for normal clients.
	Output OutputBufferLimit
	// MaxMemoryClients is maxmemory-clients: once all clients' input and
	// output buffers together exceed it, the largest clients are closed
	// until they fit. Zero means no limit.
	MaxMemoryClients int64
}

// DefaultClientLimits returns the defaults of every client limit.
func DefaultClientLimits() ClientLimits {
	return ClientLimits{
		MaxClients:       DefaultMaxClients,
		Output:           OutputBufferLimit{Hard: DefaultOutputHardLimit, Soft: DefaultOutputSoftLimit, SoftTimeout: DefaultOutputSoftTimeout},
		MaxMemoryClients: DefaultMaxMemoryClients,
	}
}

// Validate checks l against the largest reply the server builds, which is
// the query buffer limit (Config.MaxCommandBytes).
func (l ClientLimits) Validate(maxReply int) error {
	switch {
	case l.MaxClients < 1:
		return fmt.Errorf("maxclients is %d; it must be at least 1", l.MaxClients)
	case l.IdleTimeout < 0:
		return fmt.Errorf("timeout is %v; it must not be negative", l.IdleTimeout)
	case l.Output.Hard < 0 || l.Output.Soft < 0 || l.Output.SoftTimeout < 0:
		return fmt.Errorf("client-output-buffer-limit %q must not be negative", l.Output)
	case l.MaxMemoryClients < 0:
		return fmt.Errorf("maxmemory-clients is %d; it must not be negative", l.MaxMemoryClients)
	case l.Output.Hard > 0 && l.Output.Hard <= int64(maxReply)+l.Output.Soft:
		return fmt.Errorf("client-output-buffer-limit: the hard limit (%d) must exceed the largest reply (%d bytes, the query buffer limit) plus the soft limit (%d), or no client could receive a maximal reply",
			l.Output.Hard, maxReply, l.Output.Soft)
	}
	return nil
}

// disconnectReason says which limit closed a client; the zero value is none.
type disconnectReason uint32

const (
	reasonNone disconnectReason = iota
	reasonMaxClients
	reasonIdleTimeout
	reasonQueryBuffer
	reasonOutputBuffer
	reasonOutputTimeout
	reasonMaxMemoryClients
	numReasons
)

// label is the reason's value of the disconnects metric's reason label.
func (r disconnectReason) label() string {
	return [...]string{"none", "maxclients", "timeout", "query_buffer_limit", "output_buffer_limit", "output_write_timeout", "maxmemory_clients"}[r]
}

// publishStep is how far a client's count must move before it is published
// to the shared totals: small replies and commands never publish.
const publishStep = 64 << 10

// clientAcct is what the server knows of one client's memory, shared
// between its handler goroutine and the evictor.
type clientAcct struct {
	s    *Server
	conn net.Conn // the accepted connection; Close is safe from any goroutine

	// Published by the handler goroutine, read by the evictor.
	in, out atomic.Int64
	// reason is the first limit that closed the client (a disconnectReason).
	reason atomic.Uint32

	// Owned by the handler goroutine.
	pendingOut int // reply bytes appended since the last flush
}

// kill marks the client as closed by r and closes its socket, which ends
// its handler goroutine at its next read or write. Safe from any goroutine;
// only the first reason sticks.
func (a *clientAcct) kill(r disconnectReason) {
	if a.reason.CompareAndSwap(uint32(reasonNone), uint32(r)) {
		_ = a.conn.Close()
	}
}

// killed reports whether the client was closed by a limit.
func (a *clientAcct) killed() bool { return a.reason.Load() != uint32(reasonNone) }

// setIn publishes the client's input bytes.
func (a *clientAcct) setIn(n int64) {
	if d := n - a.in.Swap(n); d != 0 {
		a.s.mem.add(d, 0)
	}
}

// setOut publishes the client's pending output bytes.
func (a *clientAcct) setOut(n int64) {
	if d := n - a.out.Swap(n); d != 0 {
		a.s.mem.add(0, d)
	}
}

// clientMemory is the server-wide total of client buffers.
type clientMemory struct {
	in, out atomic.Int64
	limit   atomic.Int64  // maxmemory-clients; 0 none
	wake    chan struct{} // poked when the total passes the limit
	m       *clientMetrics
}

func (m *clientMemory) add(in, out int64) {
	total := m.in.Add(in) + m.out.Add(out)
	if in != 0 {
		m.m.inBytes.Add(float64(in))
	}
	if out != 0 {
		m.m.outBytes.Add(float64(out))
	}
	if limit := m.limit.Load(); limit > 0 && total > limit && in+out > 0 {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

func (m *clientMemory) total() int64 { return m.in.Load() + m.out.Load() }

// clientRegistry holds every connected client. It is locked only on
// connect, disconnect and eviction, never by a command.
type clientRegistry struct {
	mu      sync.Mutex
	clients map[uint64]*client
}

func (r *clientRegistry) add(c *client) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clients == nil {
		r.clients = make(map[uint64]*client)
	}
	r.clients[c.id] = c
	return len(r.clients)
}

func (r *clientRegistry) remove(c *client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clients, c.id)
}

func (r *clientRegistry) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.clients)
}

// admit runs on redcon's accept loop: it refuses a connection beyond
// maxclients, telling it why, and otherwise sets up its accounting.
// Only the accept loop adds clients, so the count cannot pass the limit
// between the check and the add.
func (s *Server) admit(conn redcon.Conn, c *client) bool {
	if maxClients := s.live.maxClients.Load(); int64(s.registry.len()) >= maxClients {
		s.clientMetrics.disconnects[reasonMaxClients].Inc()
		if ok, n := s.limitLog.allow(time.Second); ok {
			s.log.Warn("refused a client: maxclients reached", "maxclients", maxClients, "addr", conn.RemoteAddr(), "suppressed", n)
		}
		// Write past limitConn, whose write deadline is meant for replies:
		// this runs on the accept loop and must not wait long.
		nc := conn.NetConn()
		if lc, ok := nc.(*limitConn); ok {
			nc = lc.Conn
		}
		_ = nc.SetWriteDeadline(time.Now().Add(violationWriteTimeout))
		_, _ = nc.Write([]byte("-ERR max number of clients reached\r\n"))
		return false
	}
	c.acct = &clientAcct{s: s, conn: conn.NetConn()}
	if lc, ok := conn.NetConn().(*limitConn); ok {
		lc.acct = c.acct
	}
	s.registry.add(c)
	return true
}

// release forgets a client that has disconnected and counts the limit that
// closed it, if any.
func (s *Server) release(c *client, err error) {
	s.registry.remove(c)
	a := c.acct
	if a == nil {
		return
	}
	a.setIn(0)
	a.setOut(0)
	r := disconnectReason(a.reason.Load())
	if r == reasonNone && errors.Is(err, os.ErrDeadlineExceeded) && s.live.idleTimeout.Load() > 0 {
		// The read deadline is the idle timeout; write timeouts set
		// reasonOutputTimeout before they return.
		r = reasonIdleTimeout
	}
	if r == reasonNone {
		return
	}
	s.clientMetrics.disconnects[r].Inc()
	if ok, n := s.limitLog.allow(time.Second); ok {
		s.log.Warn("client disconnected by a limit", "reason", r.label(), "client", c.id, "addr", c.addr, "suppressed", n)
	}
}

// evictLoop closes the largest clients whenever all clients' buffers
// together exceed maxmemory-clients. It runs until ctx ends.
func (s *Server) evictLoop() {
	defer close(s.evictDone)
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-s.mem.wake:
			s.evict()
		}
	}
}

// evict closes clients, largest first, until the rest fit the budget. The
// closed clients' bytes are released when their handlers end; they are
// counted as freed at once so that one pass never closes more than needed.
func (s *Server) evict() {
	limit := s.mem.limit.Load()
	over := s.mem.total() - limit
	if limit <= 0 || over <= 0 {
		return
	}
	type sized struct {
		c    *client
		size int64
	}
	s.registry.mu.Lock()
	all := make([]sized, 0, len(s.registry.clients))
	for _, c := range s.registry.clients {
		a := c.acct
		if a == nil {
			continue
		}
		n := a.in.Load() + a.out.Load()
		if a.killed() {
			// Closed already; its bytes are freed when its handler ends.
			over -= n
			continue
		}
		if n > 0 {
			all = append(all, sized{c, n})
		}
	}
	s.registry.mu.Unlock()
	slices.SortFunc(all, func(a, b sized) int { return cmp.Compare(b.size, a.size) })
	for _, x := range all {
		if over <= 0 {
			break
		}
		x.c.acct.kill(reasonMaxMemoryClients)
		over -= x.size
	}
}

// Output accounting, called by the reply helpers on the handler goroutine.

// charge accounts n reply bytes about to be appended and reports whether to
// append them: false once the client is over its hard limit or closed.
func (c *client) charge(n int) bool {
	a := c.acct
	if a == nil {
		return true
	}
	if c.cut || a.killed() {
		// Closed by a limit (perhaps by the evictor, from another
		// goroutine): build no more replies.
		c.cut, c.quit = true, true
		return false
	}
	a.pendingOut += n
	if hard := a.s.live.outHard.Load(); hard > 0 && int64(a.pendingOut) > hard {
		c.cutOutput()
		return false
	}
	if int64(a.pendingOut)-a.out.Load() >= publishStep {
		a.setOut(int64(a.pendingOut))
	}
	return true
}

// cutOutput closes a client over its output hard limit: what it has not
// been sent is dropped (Redis closes such a client without a reply too) and
// nothing more it pipelined runs.
func (c *client) cutOutput() {
	c.cut, c.quit = true, true
	c.acct.reason.CompareAndSwap(uint32(reasonNone), uint32(reasonOutputBuffer))
	if w := redcon.BaseWriter(c.conn); w != nil {
		w.SetBuffer(nil)
	}
	c.acct.pendingOut = 0
	c.acct.setOut(0)
	c.conn.ReadPipeline()
	_ = c.conn.Close()
}

// afterCommand runs once a command has replied: past the soft limit it
// flushes, waiting (at most SoftTimeout) for the client to read before the
// next pipelined command runs, so pending output stays near Soft plus one
// reply however long the pipeline.
func (c *client) afterCommand() {
	a := c.acct
	if a == nil || c.cut {
		return
	}
	if soft := a.s.live.outSoft.Load(); soft == 0 || int64(a.pendingOut) < soft {
		return
	}
	w := redcon.BaseWriter(c.conn)
	if w == nil {
		return
	}
	lc, _ := a.conn.(*limitConn)
	if lc != nil {
		lc.midFlush = true
	}
	err := w.Flush()
	if lc != nil {
		lc.midFlush = false
	}
	a.pendingOut = 0
	a.setOut(0)
	if err != nil {
		// redcon's writer keeps the error and ends the connection after
		// this batch; run nothing more, its replies could not be sent.
		c.cut, c.quit = true, true
		c.conn.ReadPipeline()
	}
}

// flushed runs when redcon has written a batch's replies.
func (a *clientAcct) flushed() {
	a.pendingOut = 0
	if a.out.Load() != 0 {
		a.setOut(0)
	}
}
