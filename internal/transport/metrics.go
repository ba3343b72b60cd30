package transport

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for elastickv_raft_dispatch_unroutable_total.
const (
	unroutableLocal       = "local_message"
	unroutableUnknownPeer = "unknown_peer"
	unroutableClosed      = "transport_closed"
)

// Reasons for elastickv_raft_inbound_dropped_total.
const (
	inboundUnknownGroup  = "unknown_group"
	inboundWrongTo       = "wrong_recipient"
	inboundLocalType     = "local_type"
	inboundSnapOnStream  = "snapshot_on_message_stream"
	inboundStepRefused   = "step_refused"
	inboundMalformed     = "malformed"
	inboundSnapshotError = "snapshot_rejected"
)

// metrics holds the transport's collectors. Per-peer series are created in
// AddPeer, so every peer × lane pair is visible (at zero) from the moment the
// peer exists, and deleted in RemovePeer so removed peers do not linger.
type metrics struct {
	drops      *prometheus.CounterVec
	errors     *prometheus.CounterVec
	depth      *prometheus.GaugeVec
	unroutable *prometheus.CounterVec
	inbound    *prometheus.CounterVec
	snapshots  *prometheus.CounterVec
	hbSend     prometheus.Histogram
	hbDelivery prometheus.Histogram

	// Limits (limits.go).
	budgetDrops *prometheus.CounterVec
	queueBytes  *prometheus.GaugeVec
	snapRefused *prometheus.CounterVec
	snapStreams prometheus.Gauge
	spoolBytes  prometheus.Gauge

	// formatRefused: elastickv_transport_format_refused_total (format.go).
	formatRefused *prometheus.CounterVec
}

// heartbeatBuckets span 50µs to ~6.5s: a healthy loopback heartbeat sits in
// the first buckets, and anything near the election timeout must still be
// told apart from "slow".
var heartbeatBuckets = prometheus.ExponentialBuckets(50e-6, 2, 18)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		formatRefused: newFormatRefusedCounter(),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_dispatch_drop_total",
			Help: "Raft messages dropped before reaching the wire because the peer's lane was full.",
		}, []string{"peer", "lane"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_dispatch_errors_total",
			Help: "Raft messages (or snapshots) whose dispatch to the peer failed with a transport error.",
		}, []string{"peer", "lane"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "elastickv_raft_dispatch_queue_depth",
			Help: "Raft messages waiting in the peer's lane.",
		}, []string{"peer", "lane"}),
		unroutable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_dispatch_unroutable_total",
			Help: "Outbound Raft messages dropped before choosing a lane (local type, unknown peer, closed transport).",
		}, []string{"reason"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_inbound_dropped_total",
			Help: "Inbound Raft messages not delivered to a group.",
		}, []string{"reason"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_snapshot_transfers_total",
			Help: "Snapshot transfers by direction (send, receive) and result (ok, error).",
		}, []string{"direction", "result"}),
		hbSend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "elastickv_raft_heartbeat_send_latency_seconds",
			Help:    "Time from Send to the heartbeat being written to its stream.",
			Buckets: heartbeatBuckets,
		}),
		hbDelivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "elastickv_raft_heartbeat_delivery_delay_seconds",
			Help:    "Time from the sender's Send to this node receiving the heartbeat (includes clock skew across hosts).",
			Buckets: heartbeatBuckets,
		}),
		budgetDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_dispatch_budget_drop_total",
			Help: "Raft messages dropped before reaching the wire because the peer's queued bytes reached PeerQueueBytes (--peer-queue-mb).",
		}, []string{"peer", "lane"}),
		queueBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "elastickv_raft_dispatch_queue_bytes",
			Help: "Marshalled bytes queued toward the peer (all lanes but heartbeat), bounded by PeerQueueBytes plus one message.",
		}, []string{"peer"}),
		snapRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "elastickv_raft_snapshot_inbound_refused_total",
			Help: "Inbound snapshots refused before spooling, by reason (too_many_streams, spool_budget, disk_space, too_large).",
		}, []string{"reason"}),
		snapStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastickv_raft_snapshot_inbound_streams",
			Help: "Inbound snapshot streams in progress, at most MaxInboundSnapshots (--snapshot-max-inbound).",
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastickv_raft_snapshot_spool_bytes",
			Help: "Bytes declared by the inbound snapshots in flight, at most SnapshotSpoolBytes (--snapshot-spool-mb).",
		}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.drops, m.errors, m.depth, m.unroutable, m.inbound, m.snapshots, m.hbSend, m.hbDelivery,
		m.budgetDrops, m.queueBytes, m.snapRefused, m.snapStreams, m.spoolBytes, m.formatRefused} {
		if err := reg.Register(c); err != nil {
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return nil, fmt.Errorf("register transport metrics: %w (use one registerer per transport)", err)
			}
			return nil, fmt.Errorf("register transport metrics: %w", err)
		}
	}
	// Pre-create the label-only series so dashboards see zeros.
	for _, r := range []string{unroutableLocal, unroutableUnknownPeer, unroutableClosed} {
		m.unroutable.WithLabelValues(r)
	}
	for _, r := range []string{inboundUnknownGroup, inboundWrongTo, inboundLocalType, inboundSnapOnStream, inboundStepRefused, inboundMalformed, inboundSnapshotError} {
		m.inbound.WithLabelValues(r)
	}
	for _, r := range []string{refusedTooManyStreams, refusedSpoolBudget, refusedDiskSpace, refusedTooLarge} {
		m.snapRefused.WithLabelValues(r)
	}
	for _, d := range []string{"send", "receive"} {
		for _, r := range []string{"ok", "error"} {
			m.snapshots.WithLabelValues(d, r)
		}
	}
	return m, nil
}

// laneMetrics are one lane's series, resolved once so the hot path never
// hashes label values.
type laneMetrics struct {
	drops       prometheus.Counter
	errors      prometheus.Counter
	depth       prometheus.Gauge
	budgetDrops prometheus.Counter
}

func (m *metrics) forLane(peer string, l Lane) laneMetrics {
	return laneMetrics{
		drops:  m.drops.WithLabelValues(peer, l.String()),
		errors: m.errors.WithLabelValues(peer, l.String()),
		depth:  m.depth.WithLabelValues(peer, l.String()),

		budgetDrops: m.budgetDrops.WithLabelValues(peer, l.String()),
	}
}

// deleteLane removes one lane's series (peer removal).
func (m *metrics) deleteLane(peer string, l Lane) {
	m.drops.DeleteLabelValues(peer, l.String())
	m.errors.DeleteLabelValues(peer, l.String())
	m.depth.DeleteLabelValues(peer, l.String())
	m.budgetDrops.DeleteLabelValues(peer, l.String())
}

// deletePeer removes a peer's per-peer series (peer removal).
func (m *metrics) deletePeer(peer string) {
	m.queueBytes.DeleteLabelValues(peer)
	m.formatRefused.DeleteLabelValues(peer)
}
