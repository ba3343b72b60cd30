package redis

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/elastickv/elastickv/internal/config"
)

// Run-time parameters (CONFIG SET).
//
// The client limits live in the config registry; the Server mirrors them
// into liveLimits, one atomic per value, which the hot paths read: a reply
// costs one extra atomic load (the hard output limit), a socket read three.
// The registry's change hook stores new values after CONFIG SET has
// validated them all, so every limit sees each value only once it is valid
// together with the others. What takes effect when:
//   - maxclients: the next connection accepted;
//   - timeout: the next socket read of every client;
//   - client-query-buffer-limit: the next socket read of every client (a
//     command being received is measured against the new bound), and the
//     next MGET or KEYS reply;
//   - client-output-buffer-limit: the next reply of every client (hard and
//     soft), the next socket write (seconds);
//   - maxmemory-clients: the next change of the clients' total.

// liveLimits are the client limits as currently set.
type liveLimits struct {
	maxClients       atomic.Int64
	idleTimeout      atomic.Int64 // nanoseconds; 0 never
	queryLimit       atomic.Int64 // client-query-buffer-limit, bytes
	outHard, outSoft atomic.Int64 // bytes; 0 none
	outTimeout       atomic.Int64 // nanoseconds; 0 none
}

// storeLimits publishes the limits of snap.
func (s *Server) storeLimits(snap config.Snapshot) {
	l := clientLimitsOf(snap)
	s.live.maxClients.Store(int64(l.MaxClients))
	if old := s.live.idleTimeout.Swap(int64(l.IdleTimeout)); old != int64(l.IdleTimeout) {
		s.rearmIdle(l.IdleTimeout)
	}
	s.live.queryLimit.Store(snap.Int(config.ClientQueryBufferLimit))
	s.live.outHard.Store(l.Output.Hard)
	s.live.outSoft.Store(l.Output.Soft)
	s.live.outTimeout.Store(int64(l.Output.SoftTimeout))
	s.mem.limit.Store(l.MaxMemoryClients)
	if l.MaxMemoryClients > 0 && s.mem.total() > l.MaxMemoryClients {
		// A lowered budget bites now, not at the next allocation.
		select {
		case s.mem.wake <- struct{}{}:
		default:
		}
	}
}

// rearmIdle applies a new timeout to clients already waiting for input:
// their handlers are blocked in a read armed with the old deadline (or
// none) and would only see the new one at their next read. As in Redis,
// the idle time counts from now for every client, not from its last
// command. Each handler re-arms its own deadline at its next read.
func (s *Server) rearmIdle(d time.Duration) {
	var at time.Time // zero: no deadline
	if d > 0 {
		at = time.Now().Add(d)
	}
	s.registry.mu.Lock()
	defer s.registry.mu.Unlock()
	for _, c := range s.registry.clients {
		if c.acct != nil {
			_ = c.acct.conn.SetReadDeadline(at)
		}
	}
}

// clientLimitsOf reads the client limits of a snapshot.
func clientLimitsOf(snap config.Snapshot) ClientLimits {
	out := snap.Value(config.ClientOutputLimit).Out
	return ClientLimits{
		MaxClients:       int(snap.Int(config.MaxClients)),
		IdleTimeout:      snap.Duration(config.Timeout),
		Output:           OutputBufferLimit{Hard: out.Hard, Soft: out.Soft, SoftTimeout: time.Duration(out.Seconds) * time.Second},
		MaxMemoryClients: snap.Int(config.MaxMemoryClients),
	}
}

// ClientLimitsFrom returns the client limits a registry holds, and its
// client-query-buffer-limit, for callers that build a Config from flags.
func ClientLimitsFrom(r *config.Registry) (ClientLimits, int) {
	snap := r.Snapshot()
	return clientLimitsOf(snap), int(snap.Int(config.ClientQueryBufferLimit))
}

// bindParams seeds the registry with cfg's effective values (the registry
// may come from flags, or be new when a library caller built cfg by hand),
// adds the checks that relate the limits, and mirrors the limits into
// s.live from now on.
func (s *Server) bindParams(cfg Config) error {
	r := cfg.Params
	host, port, err := net.SplitHostPort(s.ln.Addr().String())
	if err != nil {
		return fmt.Errorf("redis: listen address %s: %w", s.ln.Addr(), err)
	}
	l := cfg.Clients
	err = r.SetAtStart([][2]string{
		{config.MaxClients, strconv.Itoa(l.MaxClients)},
		{config.Timeout, l.IdleTimeout.String()},
		{config.ClientQueryBufferLimit, strconv.Itoa(cfg.MaxCommandBytes)},
		{config.ClientOutputLimit, fmt.Sprintf("%d %d %d", l.Output.Hard, l.Output.Soft, int64(l.Output.SoftTimeout/time.Second))},
		{config.MaxMemoryClients, strconv.FormatInt(l.MaxMemoryClients, 10)},
		{config.ProtoMaxBulkLen, strconv.Itoa(cfg.MaxValueBytes)},
		{config.Port, port},
		{config.Bind, host},
	})
	if err != nil {
		return fmt.Errorf("redis: config registry: %w", err)
	}
	err = r.AddCheck(func(snap config.Snapshot) error {
		q := snap.Int(config.ClientQueryBufferLimit)
		if v := snap.Int(config.ProtoMaxBulkLen); q <= v {
			return &config.SetError{Name: config.ClientQueryBufferLimit,
				Err: fmt.Errorf("must exceed proto-max-bulk-len (%d) so that a maximal value fits in a command", v)}
		}
		if err := clientLimitsOf(snap).Validate(int(q)); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	s.params = r
	s.storeLimits(r.Snapshot())
	r.OnChange(s.storeLimits)
	return nil
}

// maxReply bounds the values or keys one MGET or KEYS gathers: the query
// buffer limit, as currently set.
func (s *Server) maxReply() int { return int(s.live.queryLimit.Load()) }
