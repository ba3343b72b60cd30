package raft

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"
)

// DefaultMaxInboundBytes is the default of Config.MaxInboundBytes.
const DefaultMaxInboundBytes = 256 << 20

// inboundBudget bounds the entry and snapshot bytes of peer messages
// queued for the event loop (Group.Step to Group.step). The step queues
// are bounded in messages, but a message can carry up to the transport's
// message limit of entries: 4096 of them queued behind a slow loop would
// be tens of gigabytes. A message that does not fit is refused, which
// Raft tolerates as a lost message (the leader resends). An empty queue
// admits any one message, so no message is refused for its size alone.
//
// Invariant: queued is the sum of msgBytes of the messages in the step
// queues, and at most max unless one message alone exceeds it.
type inboundBudget struct {
	max     int64
	queued  atomic.Int64
	gauge   prometheus.Gauge
	dropped prometheus.Counter
}

func newInboundBudget(max int64, reg prometheus.Registerer, group uint64) *inboundBudget {
	if max <= 0 {
		max = DefaultMaxInboundBytes
	}
	labels := prometheus.Labels{"group": strconv.FormatUint(group, 10)}
	b := &inboundBudget{
		max: max,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "elastickv_raft_step_queue_bytes", ConstLabels: labels,
			Help: "Entry and snapshot bytes of peer messages queued for the Raft loop, bounded by --peer-inbound-mb."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "elastickv_raft_step_queue_budget_dropped_total", ConstLabels: labels,
			Help: "Peer messages refused because the Raft loop's queue held --peer-inbound-mb of entries; the sender resends."}),
	}
	if reg != nil {
		_ = reg.Register(b.gauge)
		_ = reg.Register(b.dropped)
	}
	return b
}

// msgBytes is what a message counts against the budget: the payload bytes
// it carries, which dominate its size when it is large.
func msgBytes(m *raftpb.Message) int64 {
	n := int64(len(m.GetSnapshot().GetData()))
	for _, e := range m.GetEntries() {
		n += int64(len(e.GetData()))
	}
	return n
}

// admit charges n bytes, or refuses them (and counts it).
func (b *inboundBudget) admit(n int64) bool {
	if n == 0 || b == nil { // nil: a Group built by a unit test, not Open
		return true
	}
	for {
		cur := b.queued.Load()
		if cur > 0 && cur+n > b.max {
			b.dropped.Inc()
			return false
		}
		if b.queued.CompareAndSwap(cur, cur+n) {
			b.gauge.Set(float64(cur + n))
			return true
		}
	}
}

// release returns n bytes once their message left the queue.
func (b *inboundBudget) release(n int64) {
	if n != 0 && b != nil {
		b.gauge.Set(float64(b.queued.Add(-n)))
	}
}
