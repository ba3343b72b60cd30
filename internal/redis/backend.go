package redis

import (
	"context"
	"errors"

	"github.com/elastickv/elastickv/internal/kv"
)

// Backend executes commands against the replicated state machine. It must be
// safe for concurrent use: every client connection calls it from its own
// goroutine.
type Backend interface {
	// Write replicates cmd through Raft (forwarding to the leader when
	// needed) and returns the state machine's result once applied. cmd and
	// the byte slices it references are never modified after the call, so
	// the backend may keep them (e.g. in a proposal queue) after returning.
	Write(ctx context.Context, cmd *kv.Command) (kv.Result, error)
	// Read runs fn against a linearizable view (ReadIndex) of the keyspace
	// and returns fn's error, if any.
	Read(ctx context.Context, fn func(v kv.View) error) error
	// Status describes this node for INFO. It must not block: INFO has to
	// answer even when the cluster has no quorum.
	Status() Status
}

// Status is a snapshot of this node's Raft state, shown by INFO and HELLO.
type Status struct {
	// NodeID identifies this node in the cluster.
	NodeID string
	// RaftState is one of leader, follower, candidate, precandidate,
	// learner, or failed once the node stopped serving (see Failure).
	RaftState string
	// LeaderID is the current leader's NodeID, or "" when none is known.
	LeaderID string
	// Term is the current Raft term.
	Term uint64
	// CommitIndex is the highest log index known to be committed.
	CommitIndex uint64
	// AppliedIndex is the highest log index applied to the state machine.
	AppliedIndex uint64
	// Failure is why the node stopped serving (a storage failure), or "".
	Failure string
	// ClusterFormat is the replicated log's format version as applied
	// here; BinaryMaxFormat the newest this binary supports;
	// MinMemberFormat the lowest any member advertises.
	ClusterFormat, BinaryMaxFormat, MinMemberFormat uint8
	// ExpiredKeys counts keys this node deleted on apply because they
	// expired (INFO stats expired_keys).
	ExpiredKeys uint64
}

// RaftStateLeader is the Status.RaftState of the node that leads its group;
// it reports role:master in INFO and HELLO.
const RaftStateLeader = "leader"

// ErrTryAgain marks a transient Backend failure after which the command
// has certainly not been applied (no leader yet, leadership changing, the
// proposal refused before it entered the log). A Backend error wrapping it
// is sent to the client as "-TRYAGAIN <message>", which clients such as
// go-redis retry automatically, so a Backend must not wrap it around a
// write whose fate is unknown. A read that runs out of
// Config.RequestTimeout is reported as TRYAGAIN too; a write that does is
// reported as of unknown outcome, since it may still commit.
var ErrTryAgain = errors.New("try again later")

// ErrCommandTooLarge marks a write the Backend refused before proposing
// it because its encoding exceeds the log entry limit. The client gets
// "-ERR <message>"; nothing was applied.
var ErrCommandTooLarge = errors.New("command too large for one log entry")
