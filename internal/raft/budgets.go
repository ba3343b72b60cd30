package raft

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

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

// budgetMetrics count how often a budget bites.
type budgetMetrics struct {
	refusedTooLarge    prometheus.Counter
	droppedBudget      prometheus.Counter
	applyBatchBytes    prometheus.Observer
	applyCutByBytes    prometheus.Counter
	undecodableEntries prometheus.Counter
}

func newBudgetMetrics(reg prometheus.Registerer, group uint64) *budgetMetrics {
	labels := prometheus.Labels{"group": strconv.FormatUint(group, 10)}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	bb := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "elastickv_raft_apply_batch_bytes", Help: "Committed entry bytes applied per state machine call.",
		ConstLabels: labels, Buckets: prometheus.ExponentialBuckets(256, 4, 12),
	})
	m := &budgetMetrics{
		refusedTooLarge:    c("elastickv_raft_proposals_too_large_total", "Proposals refused because they exceed the log entry cap (--max-entry-bytes)."),
		droppedBudget:      c("elastickv_raft_proposals_dropped_uncommitted_total", "Proposal batches the leader dropped because its uncommitted log held --max-uncommitted-mb; their callers retry."),
		applyBatchBytes:    bb,
		applyCutByBytes:    c("elastickv_raft_apply_batches_cut_by_bytes_total", "Apply batches closed early because they reached --apply-batch-mb of entries."),
		undecodableEntries: c("elastickv_raft_undecodable_entries_total", "Committed entries this binary could not decode; the group stops at the first."),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.refusedTooLarge, m.droppedBudget, bb, m.applyCutByBytes, m.undecodableEntries} {
			_ = reg.Register(col)
		}
	}
	return m
}

// MaxPayloadBytes is the largest payload Propose accepts.
func (g *Group) MaxPayloadBytes() int { return g.cfg.MaxEntryBytes - headerLen }

// CheckPayloadSize returns ErrTooLarge (and counts it) for a payload of n
// bytes above MaxPayloadBytes. Propose checks it; a node that forwards
// writes to the leader checks it first, so an oversized write is refused
// where it arrives.
func (g *Group) CheckPayloadSize(n int) error {
	if n <= g.MaxPayloadBytes() {
		return nil
	}
	g.budget.refusedTooLarge.Inc()
	return fmt.Errorf("%w: %d bytes, above the %d-byte log entry limit", ErrTooLarge, n+headerLen, g.cfg.MaxEntryBytes)
}

// fillBudgetDefaults replaces zero budgets with their defaults.
func (c *Config) fillBudgetDefaults() {
	if c.MaxEntryBytes == 0 {
		c.MaxEntryBytes = DefaultMaxEntryBytes
	}
	if c.MaxUncommittedBytes == 0 {
		c.MaxUncommittedBytes = max(DefaultMaxUncommittedBytes, 2*uint64(c.MaxEntryBytes))
	}
	if c.MaxApplyBatchBytes == 0 {
		c.MaxApplyBatchBytes = DefaultMaxApplyBatchBytes
	}
}
