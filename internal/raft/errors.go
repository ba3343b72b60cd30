package raft

import (
	"errors"
	"fmt"
)

// Sentinel errors for callers to test with errors.Is.
var (
	// ErrStopped: the group is shutting down.
	ErrStopped = errors.New("raft group stopped")
	// ErrNotLeader: this node cannot take proposals; see NotLeaderError for
	// the leader it knows of.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrProposalLost: the proposal's entry was replaced by another leader's
	// entry; it was not applied.
	ErrProposalLost = errors.New("proposal lost to a leader change")
	// ErrProposalUnknown: the proposer cannot tell whether its entry was
	// applied (e.g. this node installed a snapshot that may or may not
	// contain it). The caller must not retry blindly.
	ErrProposalUnknown = errors.New("proposal outcome unknown")
	// ErrNoLeader: no leader is known, so a linearizable read cannot be
	// served yet.
	ErrNoLeader = errors.New("no raft leader")
	// ErrTooLarge: a proposal exceeds the log entry limit
	// (Config.MaxEntryBytes); it was not proposed.
	ErrTooLarge = errors.New("proposal too large")
	// ErrUndecodable: a committed entry this binary cannot decode. The
	// group stops rather than skip it (see Group.Err).
	ErrUndecodable = errors.New("committed entry cannot be decoded by this binary")
)

// NotLeaderError says who the leader is, when known (LeaderID 0 otherwise).
type NotLeaderError struct {
	LeaderID uint64
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == 0 {
		return "not the raft leader; no leader known"
	}
	return fmt.Sprintf("not the raft leader; leader is %x", e.LeaderID)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
