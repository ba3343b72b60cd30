package raft

import "fmt"

// Memory budgets of a group, and why each exists.
//
//   - MaxEntryBytes bounds one log entry. Every entry must fit one transport
//     message together with a MsgApp's other entries (MaxSizePerMsg), so
//     the node sets the transport's message limit above their sum; a
//     proposal above it is refused before it enters the log (ErrTooLarge),
//     because an entry the transport cannot carry would stall replication
//     for good once committed locally.
//   - MaxUncommittedBytes bounds the entries a leader holds that a quorum
//     has not yet acknowledged (etcd raft's MaxUncommittedEntriesSize). Past
//     it, proposals are dropped and their callers retry until their
//     deadline: the backpressure a write flood meets when followers lag.
//   - MaxApplyBatchBytes bounds the committed entry bytes the applier
//     coalesces into one state machine call (with the entry count bound).
//     The state machine bounds its own write batch separately.
//
// None of them is read on the apply path: they decide what is proposed and
// how applying is chunked, never what an entry means.

// Defaults of the budgets.
const (
	DefaultMaxEntryBytes       = 32 << 20
	DefaultMaxUncommittedBytes = 256 << 20
	DefaultMaxApplyBatchBytes  = 64 << 20
)

// MaxPayloadBytes is the largest payload Propose accepts.
func (g *Group) MaxPayloadBytes() int { return g.cfg.MaxEntryBytes - maxHeaderLen }

// CheckPayloadSize returns ErrTooLarge (and counts it) for a payload of n
// bytes above MaxPayloadBytes. Propose checks it; a node that forwards
// writes to the leader checks it first, so an oversized write is refused
// where it arrives.
func (g *Group) CheckPayloadSize(n int) error {
	if n <= g.MaxPayloadBytes() {
		return nil
	}
	g.metrics.refusedTooLarge.Inc()
	return fmt.Errorf("%w: %d bytes, above the %d-byte log entry limit", ErrTooLarge, n+maxHeaderLen, g.cfg.MaxEntryBytes)
}

// fillBudgetDefaults replaces zero budgets with their defaults.
func (c *Config) fillBudgetDefaults() {
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = max(DefaultMaxUncommittedBytes, 2*uint64(c.MaxEntryBytes))
	}
	if c.StampSkew == 0 {
		c.StampSkew = DefaultStampSkew
	}
	if c.MaxApplyBatchBytes == 0 {
		c.MaxApplyBatchBytes = DefaultMaxApplyBatchBytes
	}
}
