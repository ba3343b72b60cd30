package raft

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the group's Prometheus series. With a nil Registerer they are
// created but never exported, so callers need no nil checks.
type metrics struct {
	term, commit, applied, isLeader prometheus.Gauge
	snapshotIndex                   prometheus.Gauge
	// leaderInfo is 1 for the leader this node currently follows (label
	// leader = its name), with one series per leader name seen.
	leaderInfo                    *prometheus.GaugeVec
	stateInfo                     *prometheus.GaugeVec
	leaderChanges                 prometheus.Counter
	proposalsFailed               prometheus.Counter
	leaseReads, readIndexReads    prometheus.Counter
	inboundDropped                prometheus.Counter
	commitClamped                 prometheus.Counter
	snapshots, snapshotsInstalled prometheus.Counter
	proposeLatency                prometheus.Observer
	applyLatency                  prometheus.Observer
	applyBatch                    prometheus.Observer
	walSave                       prometheus.Observer
	fsmSync                       prometheus.Observer

	// How often the memory budgets (budgets.go) bite.
	refusedTooLarge    prometheus.Counter
	droppedBudget      prometheus.Counter
	applyBatchBytes    prometheus.Observer
	applyCutByBytes    prometheus.Counter
	undecodableEntries prometheus.Counter

	// Replicated time (stamps.go).
	idleStamps        prometheus.Counter
	followerReadTimes prometheus.Counter
	stampLag          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, group uint64) *metrics {
	labels := prometheus.Labels{"group": strconv.FormatUint(group, 10)}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	}
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: labels, Buckets: buckets})
	}
	lat := prometheus.ExponentialBuckets(0.0001, 2, 16)
	m := &metrics{
		term:               g("elastickv_raft_term", "Current Raft term."),
		commit:             g("elastickv_raft_commit_index", "Highest log index known committed."),
		applied:            g("elastickv_raft_applied_index", "Highest log index applied to the state machine."),
		isLeader:           g("elastickv_raft_is_leader", "1 if this node leads the group."),
		leaderChanges:      c("elastickv_raft_leader_changes_total", "Leader changes (elections) seen by this node."),
		proposalsFailed:    c("elastickv_raft_proposals_failed_total", "Proposals that returned an error or timed out."),
		leaseReads:         c("elastickv_raft_lease_reads_total", "Linearizable reads served under the leader lease, without a network round."),
		readIndexReads:     c("elastickv_raft_read_index_reads_total", "Linearizable reads that waited for a ReadIndex round."),
		inboundDropped:     c("elastickv_raft_step_queue_dropped_total", "Inbound peer messages dropped because the group's step queue was full."),
		commitClamped:      c("elastickv_raft_inbound_commit_clamped_total", "Heartbeats whose commit index lay beyond this node's log (a buggy or hostile peer), clamped to the log's end instead of crashing Raft."),
		snapshotIndex:      g("elastickv_raft_snapshot_index", "Log index of the newest snapshot (the log is compacted behind it)."),
		leaderInfo:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "elastickv_raft_leader", Help: "1 for the leader this node knows (label leader), 0 for leaders it knew before.", ConstLabels: labels}, []string{"leader"}),
		stateInfo:          prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "elastickv_raft_state", Help: "1 for this node's current Raft state (label state).", ConstLabels: labels}, []string{"state"}),
		snapshots:          c("elastickv_raft_snapshots_total", "Snapshots taken by this node."),
		snapshotsInstalled: c("elastickv_raft_snapshots_installed_total", "Snapshots received from a leader and restored."),
		refusedTooLarge:    c("elastickv_raft_proposals_too_large_total", "Proposals refused because they exceed the log entry cap (--max-entry-bytes)."),
		droppedBudget:      c("elastickv_raft_proposals_dropped_uncommitted_total", "Proposal batches the leader dropped because its uncommitted log held --max-uncommitted-mb; their callers retry."),
		applyCutByBytes:    c("elastickv_raft_apply_batches_cut_by_bytes_total", "Apply batches closed early because they reached --apply-batch-mb of entries."),
		undecodableEntries: c("elastickv_raft_undecodable_entries_total", "Committed entries this binary could not decode; the group stops at the first."),
		idleStamps:         c("elastickv_raft_idle_stamps_total", "Empty stamped entries this leader proposed because nothing else was proposed for half the stamp skew bound, so that read times keep up with the clock."),
		followerReadTimes:  c("elastickv_raft_follower_read_times_total", "Follower ReadIndex requests this leader answered with its read time."),
		stampLag:           g("elastickv_raft_stamp_lag_seconds", "On the leader with stamping on: its wall clock minus the newest committed stamp (0 elsewhere). Normally commit latency plus up to half the stamp skew bound; large: stamps are not being committed; negative: the leader's clock is behind the stamps (stepped back, or behind its predecessor's), and replicated time stands still until it catches up."),
	}
	ph := h("elastickv_raft_propose_duration_seconds", "Time from proposal to applied result on the proposing node.", lat)
	ah := h("elastickv_raft_apply_duration_seconds", "Time to apply one batch of committed entries (the fsync of sync mode is elastickv_raft_fsm_sync_duration_seconds).", lat)
	bh := h("elastickv_raft_apply_batch_entries", "Committed entries applied per batch.", prometheus.ExponentialBuckets(1, 2, 12))
	wh := h("elastickv_raft_wal_save_duration_seconds", "Time to append one Ready to the WAL, fsync included.", lat)
	sh := h("elastickv_raft_fsm_sync_duration_seconds", "Time to fsync the state machine after an applied batch (sync mode), off the write path.", lat)
	abh := h("elastickv_raft_apply_batch_bytes", "Committed entry bytes applied per state machine call.", prometheus.ExponentialBuckets(256, 4, 12))
	m.proposeLatency, m.applyLatency, m.applyBatch, m.walSave, m.fsmSync, m.applyBatchBytes = ph, ah, bh, wh, sh, abh
	if reg != nil {
		for _, col := range []prometheus.Collector{m.term, m.commit, m.applied, m.isLeader, m.leaderChanges, m.proposalsFailed, m.leaseReads, m.readIndexReads, m.inboundDropped, m.commitClamped, m.snapshots, m.snapshotsInstalled, m.snapshotIndex, m.leaderInfo, m.stateInfo, ph, ah, bh, wh, sh,
			m.refusedTooLarge, m.droppedBudget, abh, m.applyCutByBytes, m.undecodableEntries, m.idleStamps, m.followerReadTimes, m.stampLag} {
			_ = reg.Register(col)
		}
	}
	return m
}

func (m *metrics) observeStatus(term, commit, applied uint64, leader bool) {
	m.term.Set(float64(term))
	m.commit.Set(float64(commit))
	m.applied.Set(float64(applied))
	if leader {
		m.isLeader.Set(1)
	} else {
		m.isLeader.Set(0)
	}
}

func (m *metrics) observeApply(d time.Duration, n int) {
	m.applyLatency.Observe(d.Seconds())
	m.applyBatch.Observe(float64(n))
}

// observeRoles records the leader's name and this node's state, keeping
// label cardinality bounded by the cluster's members and Raft's states.
func (m *metrics) observeRoles(leader, state string) {
	m.leaderInfo.Reset()
	if leader != "" {
		m.leaderInfo.WithLabelValues(leader).Set(1)
	}
	for _, s := range []string{"leader", "follower", "candidate", "precandidate", "learner"} {
		v := 0.0
		if s == state {
			v = 1
		}
		m.stateInfo.WithLabelValues(s).Set(v)
	}
}
