package raft

import "io"

// ApplyEntry is a committed entry as the state machine sees it.
type ApplyEntry struct {
	// Index is the entry's Raft index.
	Index uint64
	// Data is the proposed payload, or nil for entries without one (leader
	// no-ops, configuration changes).
	Data []byte
	// Stamp is the entry's replicated time, Unix milliseconds, assigned by
	// the leader that proposed it (stamps.go), or 0 for an entry without
	// one (entries of cluster format 1, leader no-ops, configuration
	// changes, acknowledgement records). Stamps never decrease in log
	// order; an entry with Data nil and a Stamp is an idle stamp, which
	// only moves time forward. The state machine's apply time is
	// max(Stamp, previous apply time).
	Stamp uint64
	// Meta are records to store atomically with this entry (the membership
	// after a configuration change), so that the state machine's copy of the
	// membership always matches its applied index.
	Meta []MetaRecord
}

// MetaRecord is a named blob the group asks the state machine to keep.
type MetaRecord struct {
	Name  string
	Value []byte
}

// MetaMembers is the MetaRecord holding the JSON-encoded membership.
const MetaMembers = "raft.members"

// StateMachine is what a Group applies committed entries to.
//
// Apply must be idempotent by index: entries at or below AppliedIndex are
// skipped, so that replaying the log after a crash is safe. Apply is only
// called from the group's applier goroutine.
type StateMachine interface {
	// Apply applies entries (in index order) and returns one result per
	// entry, handed to the proposer of that entry. An error is fatal for
	// the group: the state machine may be partially written.
	Apply(entries []ApplyEntry) ([]any, error)
	// AppliedIndex is the index of the last applied entry.
	AppliedIndex() uint64
	// Meta returns a record stored through ApplyEntry.Meta, or nil.
	Meta(name string) ([]byte, error)
	// Snapshot captures the state as of AppliedIndex. It is called between
	// Apply calls and must be cheap; the image is written out later, in the
	// background, while Apply goes on.
	Snapshot() (StateSnapshot, error)
	// Restore replaces the whole state with an image written by a
	// StateSnapshot of index. It must be crash-safe: after a crash midway,
	// AppliedIndex must read below index so the restore is redone.
	Restore(r io.Reader, index uint64) error
	// Sync makes everything applied so far durable.
	Sync() error
}

// AppliedStamper is an optional StateMachine capability: the newest stamp
// (ApplyEntry.Stamp) among the entries the state machine holds, including
// those it received in a snapshot image, persisted with its applied index.
// The group reads it at Open and after restoring a snapshot, because the
// entries it covers may no longer be in the log, and a leader's first
// stamps must be above every stamp ever committed (stamps.go). Without it
// the group knows only the stamps it saw in its log and in received
// snapshot descriptors.
type AppliedStamper interface {
	AppliedStamp() uint64
}

// StateSnapshot is a point-in-time image of a StateMachine.
type StateSnapshot interface {
	// Index is the applied index the image reflects.
	Index() uint64
	// WriteTo streams the image.
	WriteTo(w io.Writer) (int64, error)
	// Close releases the image.
	Close() error
}
