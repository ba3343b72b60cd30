package raft

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastickv/elastickv/internal/transport"
)

// Member is one voter or learner of the group as the operator names it.
type Member struct {
	// Name is the operator-facing node id, e.g. "n1".
	Name string `json:"name"`
	// Addr is the peer (gRPC) address, host:port.
	Addr string `json:"addr"`
	// AutoPromote marks a learner that the leader promotes to voter once it
	// has caught up (a node that joined a running cluster).
	AutoPromote bool `json:"auto_promote,omitempty"`
	// MaxFormat is the highest log format version the member's binary
	// supports, as last recorded by a leader (format.go); 0 (absent, as
	// in records written before format versions) means 1.
	MaxFormat uint8 `json:"max_format,omitempty"`
}

// ID returns the Raft id derived from the member's name. Deriving it lets
// every node agree on ids without coordination; a name is never reused for a
// node that lost its disk, so neither is its id.
func (m Member) ID() uint64 { return NodeID(m.Name) }

// NodeID hashes a node name to its Raft id (never 0, which Raft reserves).
func NodeID(name string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(name))
	id := h.Sum64()
	if id == 0 {
		id = 1
	}
	return id
}

// Config configures a Group.
type Config struct {
	// GroupID identifies the group on the shared transport.
	GroupID uint64
	// Self is this node.
	Self Member
	// Bootstrap is the initial membership, used only when Dir holds no WAL.
	// Every member of a new cluster must be given the same list.
	Bootstrap []Member
	// Join starts a node whose Dir holds no WAL as a blank member of a
	// running cluster, which has already added it (as a learner): it creates
	// no configuration of its own and waits for the leader to send it the
	// log or a snapshot. Bootstrap must then be empty.
	Join bool
	// JoinMembers are the cluster's members when this node joined: only
	// their addresses are used, so that the node can answer the leader
	// before it has learned the membership from the log.
	JoinMembers []Member
	// PromoteLag is how far behind the leader's last index an auto-promote
	// learner may be when the leader promotes it; 0 means DefaultPromoteLag.
	PromoteLag uint64
	// Dir holds the WAL (Dir/wal) and snapshots (Dir/snap).
	Dir string
	// HeartbeatInterval is the leader's heartbeat period (one Raft tick).
	HeartbeatInterval time.Duration
	// ElectionTimeout is the minimum follower timeout before campaigning;
	// Raft randomises the actual timeout in [ElectionTimeout, 2*ElectionTimeout).
	ElectionTimeout time.Duration
	// ReadMode chooses ReadIndex rounds or the leader lease for reads
	// served by the leader (lease.go).
	ReadMode ReadMode
	// Clock is what the lease, ReadIndex rounds and the restart vote gate
	// measure time with (clock.go); nil means MonotonicClock. Tests inject
	// one to pause it or make it jump.
	Clock Clock
	// WallClock is where stamps read the wall clock (stamps.go); nil means
	// time.Now. Tests inject one to put a node's clock behind the others.
	WallClock Clock
	// Stamps starts the group with stamping on, as EnableStamps does: the
	// node sets it when the state machine is already at cluster format 2.
	Stamps bool
	// StampSkew is Δ, the assumed bound on wall-clock offset between
	// nodes (stamps.go); 0 means DefaultStampSkew. Every node should use
	// the same value.
	StampSkew time.Duration
	// MaxInflightMsgs bounds unacknowledged MsgApps per follower; the
	// transport's replication lane is sized to match.
	MaxInflightMsgs int
	// MaxSizePerMsg bounds the entries bytes in one MsgApp.
	MaxSizePerMsg uint64
	// MaxEntryBytes, MaxUncommittedBytes and MaxApplyBatchBytes are the
	// group's memory budgets (budgets.go); 0 means their defaults.
	MaxEntryBytes       int
	MaxUncommittedBytes uint64
	MaxApplyBatchBytes  int
	// MaxInboundBytes bounds the entry bytes of peer messages queued for
	// the event loop (inbound.go); 0 means DefaultMaxInboundBytes.
	MaxInboundBytes int64
	// StateMachine receives committed entries.
	StateMachine StateMachine
	// StateMachineSync makes every applied batch durable in the state
	// machine too: a syncer beside the applier calls StateMachine.Sync
	// after each batch, without holding up its replies (their entries are
	// already durable in the WAL of a majority) or the next batch; batches
	// applied during one sync share the next. Either way the group syncs
	// the state machine before compacting the log behind a snapshot.
	StateMachineSync bool
	// StateMachineSyncInterval is the least time between the starts of two
	// such syncs (0: back to back). A batch is then durable in the state
	// machine within about this long of being applied, which bounds what a
	// restart after a power loss replays, while a write flood no longer
	// pays a state machine fsync per batch on a disk the WAL shares.
	StateMachineSyncInterval time.Duration
	// SnapshotCount is how many applied entries trigger a snapshot; 0
	// disables snapshots (the log then grows without bound). A snapshot
	// images the whole state, so its cost grows with the data while the
	// log it lets the group drop does not: the count sets how many writes
	// share that cost.
	SnapshotCount uint64
	// SnapshotLogBytes triggers a snapshot sooner, once the entries applied
	// since the last one hold this many bytes of data (0: count only). The
	// log behind the last snapshot is kept in memory, so this bounds that
	// memory when entries are large.
	SnapshotLogBytes uint64
	// SnapshotCatchUpEntries is how many entries before a snapshot stay in
	// the log, so followers slightly behind catch up without a snapshot.
	SnapshotCatchUpEntries uint64
	// MaxSnapshots and MaxWALFiles bound how many snapshot files and WAL
	// segments (64 MiB each) are kept.
	MaxSnapshots int
	MaxWALFiles  int
	// LocalMaxFormat is the highest log format version this binary
	// supports: the leader keeps its own record equal to it (format.go);
	// 0 leaves it alone.
	LocalMaxFormat uint8
	// Transport carries messages to peers.
	Transport transport.Transport
	// Logger is the structured logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the group's metrics; nil disables them.
	Registerer prometheus.Registerer
}

// DefaultConfig returns defaults for the tunables.
func DefaultConfig() Config {
	return Config{
		GroupID:                  1,
		HeartbeatInterval:        100 * time.Millisecond,
		ElectionTimeout:          time.Second,
		MaxInflightMsgs:          1024,
		MaxSizePerMsg:            1 << 20,
		MaxEntryBytes:            DefaultMaxEntryBytes,
		MaxUncommittedBytes:      DefaultMaxUncommittedBytes,
		MaxApplyBatchBytes:       DefaultMaxApplyBatchBytes,
		MaxInboundBytes:          DefaultMaxInboundBytes,
		StampSkew:                DefaultStampSkew,
		StateMachineSync:         true,
		StateMachineSyncInterval: 10 * time.Millisecond,
		SnapshotCount:            100000,
		SnapshotLogBytes:         64 << 20,
		SnapshotCatchUpEntries:   5000,
		MaxSnapshots:             3,
		MaxWALFiles:              5,
	}
}

// Validate reports the first setting a person must fix.
func (c *Config) Validate() error {
	switch {
	case c.Self.Name == "":
		return errors.New("raft config: node name is empty")
	case c.Dir == "":
		return errors.New("raft config: data directory is empty")
	case c.HeartbeatInterval <= 0:
		return errors.New("raft config: heartbeat interval must be positive")
	case c.ElectionTimeout < 3*c.HeartbeatInterval:
		return fmt.Errorf("raft config: election timeout %v must be at least 3 heartbeat intervals (%v)", c.ElectionTimeout, 3*c.HeartbeatInterval)
	case c.StateMachine == nil:
		return errors.New("raft config: no state machine")
	case c.Transport == nil:
		return errors.New("raft config: no transport")
	case c.MaxSnapshots < 1 || c.MaxWALFiles < 1:
		return errors.New("raft config: keep at least one snapshot and one WAL file")
	case c.MaxInflightMsgs <= 0:
		return errors.New("raft config: MaxInflightMsgs must be positive")
	case c.MaxEntryBytes < 0 || (c.MaxEntryBytes > 0 && c.MaxEntryBytes <= maxHeaderLen):
		return fmt.Errorf("raft config: MaxEntryBytes %d is too small", c.MaxEntryBytes)
	case c.MaxUncommittedBytes > 0 && c.MaxEntryBytes > 0 && c.MaxUncommittedBytes < uint64(c.MaxEntryBytes):
		return fmt.Errorf("raft config: MaxUncommittedBytes (%d) must hold at least one maximal entry (%d)", c.MaxUncommittedBytes, c.MaxEntryBytes)
	case c.MaxApplyBatchBytes < 0:
		return errors.New("raft config: MaxApplyBatchBytes is negative")
	case c.StampSkew < 0:
		return errors.New("raft config: StampSkew is negative")
	case c.MaxInboundBytes < 0:
		return errors.New("raft config: MaxInboundBytes is negative")
	case c.Join && len(c.Bootstrap) > 0:
		return errors.New("raft config: a joining node must not bootstrap a configuration")
	}
	return nil
}

func (c *Config) electionTicks() int {
	return int(c.ElectionTimeout / c.HeartbeatInterval)
}
