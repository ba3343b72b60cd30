package raft

// ApplyEntry is a committed entry as the state machine sees it.
type ApplyEntry struct {
	// Index is the entry's Raft index.
	Index uint64
	// Data is the proposed payload, or nil for entries without one (leader
	// no-ops, configuration changes).
	Data []byte
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
}
