// Package node wires one elastickv process together: the Pebble state
// machine, the Raft group, the peer transport and its gRPC server, the Redis
// front door and the metrics endpoint; it owns their start and shutdown
// order.
//
// Shutdown order is the reverse of the data path: stop taking client
// requests (Redis), then stop Raft, then the transport and gRPC server, then
// close Pebble, so nothing is applied to a closed store.
package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/elastickv/elastickv/internal/config"
	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/redis"
	"github.com/elastickv/elastickv/internal/transport"
)

// Config configures a node; DefaultConfig gives every default, flags and
// environment variables only fill it in.
type Config struct {
	// Name is this node's id, e.g. "n1".
	Name string
	// DataDir holds everything the node persists.
	DataDir string
	// RaftAddr is the peer gRPC listen address (also used for forwarding).
	RaftAddr string
	// RaftListener, if set, is an already-open listener for RaftAddr (tests
	// reserve ports this way without races). The node takes ownership.
	RaftListener net.Listener
	// RedisAddr is the client listen address.
	RedisAddr string
	// MetricsAddr is the HTTP address for /metrics, /healthz, /readyz; empty
	// disables it.
	MetricsAddr string
	// MetricsToken, when set, must be presented as "Authorization: Bearer
	// <token>" on every metrics-listener request except /healthz and
	// /readyz. Required when MetricsAddr is not a loopback address.
	MetricsToken string
	// Join lists peer addresses (comma-separated host:port) of running
	// members. A node with an empty data directory asks them to add it (as
	// a learner the leader promotes once caught up) instead of
	// bootstrapping; with state on disk it only uses them to reach the
	// cluster. Exclusive with Peers.
	Join string
	// Peers is the initial membership for a brand-new cluster. Ignored once
	// DataDir holds state: the state on disk wins.
	Peers []raft.Member
	// PeerDialOverrides maps a peer's name to the address this node dials
	// instead of the peer's advertised address (e.g. a fault-injecting
	// proxy in the chaos harness). Local to this node; never replicated.
	PeerDialOverrides map[string]string
	// HeartbeatInterval and ElectionTimeout tune Raft.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	// ReadMode is how the leader proves reads linearizable (--read-mode).
	ReadMode raft.ReadMode
	// MaxValueBytes caps a single value or argument.
	MaxValueBytes int
	// FSMSync makes every applied batch durable in Pebble within ~10 ms
	// (ELASTICKV_FSM_SYNC_MODE).
	FSMSync bool
	// PebbleCacheBytes sizes Pebble's block cache (ELASTICKV_PEBBLE_CACHE_MB).
	PebbleCacheBytes int64
	// Lanes is the transport's lane layout (ELASTICKV_RAFT_DISPATCHER_LANES).
	Lanes transport.LaneMode
	// SnapshotRateBytesPerSec throttles the snapshot lane; 0 is unlimited.
	SnapshotRateBytesPerSec int64
	// PeerLimits bound what peers can make this node hold in memory and on
	// disk: --peer-queue-mb, --snapshot-max-inbound, --snapshot-spool-mb,
	// --snapshot-disk-margin-mb (see transport.Limits).
	PeerLimits transport.Limits
	// MaxInboundBytes bounds the log entries received from peers and
	// queued for the Raft loop (--peer-inbound-mb; raft.Config).
	MaxInboundBytes int64
	// SnapshotCount, SnapshotLogBytes, MaxSnapshots and MaxWALFiles
	// control snapshots and log compaction (see raft.Config).
	SnapshotCount    uint64
	SnapshotLogBytes uint64
	MaxSnapshots     int
	MaxWALFiles      int
	// RequestTimeout bounds how long a client request may wait, e.g. for a
	// leader to be elected.
	RequestTimeout time.Duration
	// Memory budgets of the Raft group (see raft.Config): MaxEntryBytes
	// caps one log entry (--max-entry-bytes), MaxUncommittedBytes the
	// leader's unacknowledged log (--max-uncommitted-mb), ApplyBatchBytes
	// one apply batch (--apply-batch-mb).
	MaxEntryBytes       int
	MaxUncommittedBytes uint64
	ApplyBatchBytes     int
	// RedisClients bounds Redis clients and their buffers (--maxclients,
	// --timeout, --client-output-buffer-limit, --maxmemory-clients).
	RedisClients redis.ClientLimits
	// QueryBufferLimit is --client-query-buffer-limit, the largest command
	// and input buffer of one client; zero means
	// redis.DefaultMaxCommandBytes(MaxValueBytes).
	QueryBufferLimit int
	// WallClock is where the Raft group reads the wall clock for its
	// stamps; nil means the system clock. Tests put a node's clock behind.
	WallClock raft.Clock
	// ExpireSweepRate bounds the keys a second the leader's expiry sweeper
	// proposes to delete (--expire-sweep-rate); zero means
	// DefaultExpireSweepRate, and a negative rate turns the sweeper off
	// (tests that need expired keys to stay in the store).
	ExpireSweepRate int
	// Params is the configuration registry the flags filled; CONFIG GET
	// and SET serve it. Nil means a new one at its defaults.
	Params *config.Registry
	// MaxFormat is the highest log format version this node claims to
	// support (--max-log-format); 0 means kv.MaxFormat, this binary's. Set
	// lower, it holds the cluster's format down (a rollback to the
	// previous release stays possible until it is lifted); tests use it to
	// stand in for an older binary (format.go).
	MaxFormat uint8
	// Logger is the process logger.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		HeartbeatInterval: 100 * time.Millisecond,
		ElectionTimeout:   time.Second,
		// The chaos suite's pause and partition nemeses pass with it
		// (TestChaosReadModes); readindex needs no clock assumption.
		ReadMode:         raft.ReadModeLease,
		MaxValueBytes:    16 << 20,
		FSMSync:          true,
		PebbleCacheBytes: 256 << 20,
		Lanes:            transport.DefaultConfig().Lanes,
		RequestTimeout:   5 * time.Second,
		SnapshotCount:    raft.DefaultConfig().SnapshotCount,
		SnapshotLogBytes: raft.DefaultConfig().SnapshotLogBytes,
		MaxSnapshots:     raft.DefaultConfig().MaxSnapshots,
		MaxWALFiles:      raft.DefaultConfig().MaxWALFiles,

		MaxEntryBytes:       raft.DefaultMaxEntryBytes,
		MaxUncommittedBytes: raft.DefaultMaxUncommittedBytes,
		ApplyBatchBytes:     raft.DefaultMaxApplyBatchBytes,

		PeerLimits:      transport.DefaultLimits(),
		MaxInboundBytes: raft.DefaultMaxInboundBytes,

		RedisClients: redis.DefaultClientLimits(),
	}
}

// Validate reports the first setting a person must fix.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("--id is required")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir is required")
	}
	for flag, a := range map[string]string{"--raft-addr": c.RaftAddr, "--redis-addr": c.RedisAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("%s %q: %w", flag, a, err)
		}
	}
	if err := c.validateMetrics(); err != nil {
		return err
	}
	if err := c.validateJoin(); err != nil {
		return err
	}
	if c.MaxValueBytes <= 0 {
		return errors.New("--max-value-bytes must be positive")
	}
	if err := c.validateBudgets(); err != nil {
		return err
	}
	if err := c.validateClients(); err != nil {
		return err
	}
	if c.HeartbeatInterval <= 0 || c.ElectionTimeout < 3*c.HeartbeatInterval {
		return fmt.Errorf("--election-timeout (%v) must be at least 3 times --heartbeat-interval (%v)", c.ElectionTimeout, c.HeartbeatInterval)
	}
	seen := map[string]bool{}
	for _, p := range c.Peers {
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("--peers: empty or duplicate id %q", p.Name)
		}
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			return fmt.Errorf("--peers: %s=%q: %w", p.Name, p.Addr, err)
		}
		seen[p.Name] = true
	}
	if len(c.Peers) > 0 && !seen[c.Name] {
		return fmt.Errorf("--peers does not list this node's id %q", c.Name)
	}
	if c.MaxFormat > kv.MaxFormat {
		return fmt.Errorf("node config: MaxFormat %d is above this binary's maximum log format %d", c.MaxFormat, kv.MaxFormat)
	}
	return nil
}

// ParsePeers parses "n1=host:port,n2=host:port".
func ParsePeers(s string) ([]raft.Member, error) {
	var out []raft.Member
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("peer %q is not id=host:port", part)
		}
		out = append(out, raft.Member{Name: name, Addr: addr})
	}
	return out, nil
}

// FSMSyncFromEnv parses ELASTICKV_FSM_SYNC_MODE: "sync" (default) or
// "nosync", case-insensitive and space-tolerant; anything else means sync,
// with a warning.
func FSMSyncFromEnv(getenv func(string) string, log *slog.Logger) bool {
	v := strings.ToLower(strings.TrimSpace(getenv("ELASTICKV_FSM_SYNC_MODE")))
	switch v {
	case "", "sync":
		return true
	case "nosync":
		return false
	}
	log.Warn("unknown ELASTICKV_FSM_SYNC_MODE; using sync", "value", v)
	return true
}

// PebbleCacheFromEnv parses ELASTICKV_PEBBLE_CACHE_MB (default 256).
func PebbleCacheFromEnv(getenv func(string) string, log *slog.Logger) int64 {
	v := strings.TrimSpace(getenv("ELASTICKV_PEBBLE_CACHE_MB"))
	if v == "" {
		return 256 << 20
	}
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil || mb <= 0 {
		log.Warn("invalid ELASTICKV_PEBBLE_CACHE_MB; using 256", "value", v)
		return 256 << 20
	}
	return mb << 20
}

// ApplyEnv fills the environment-controlled settings of c.
func (c *Config) ApplyEnv(getenv func(string) string) {
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	c.FSMSync = FSMSyncFromEnv(getenv, log)
	c.PebbleCacheBytes = PebbleCacheFromEnv(getenv, log)
	c.Lanes = transport.LaneModeFromEnv(getenv, log)
}

// validateBudgets checks the memory budgets against each other: a maximal
// value must fit one log entry, and the uncommitted log one entry.
func (c *Config) validateBudgets() error {
	// 2 MiB: a SET of a maximal value, or a forwarded batch (up to 1 MiB of
	// commands plus its framing), fits one log entry with room to spare.
	if c.MaxEntryBytes < c.MaxValueBytes+2<<20 {
		return fmt.Errorf("--max-entry-bytes (%d) must exceed --max-value-bytes (%d) by at least 2 MiB, so that a SET of a maximal value fits one log entry",
			c.MaxEntryBytes, c.MaxValueBytes)
	}
	if c.MaxUncommittedBytes < uint64(c.MaxEntryBytes) {
		return fmt.Errorf("--max-uncommitted-mb (%d MiB) must hold at least one maximal log entry (--max-entry-bytes %d)",
			c.MaxUncommittedBytes>>20, c.MaxEntryBytes)
	}
	if c.ApplyBatchBytes < 1<<20 {
		return errors.New("--apply-batch-mb must be at least 1")
	}
	return nil
}
