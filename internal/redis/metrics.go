package redis

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// unknownCommandLabel is the cmd label of every command not in the table,
// which keeps the label's cardinality bounded whatever clients send.
const unknownCommandLabel = "unknown"

// metrics are the server's Prometheus collectors, with the per-command
// children resolved once so the hot path does no label lookups.
type metrics struct {
	byName  map[string]*commandMetrics // keyed by command table name
	unknown *commandMetrics
	// aborted counts expensive reads cut before they finished, by command
	// and reason (deadline, shutdown; LCS also table_size, busy); see
	// expensive.go and strings_range.go.
	aborted *prometheus.CounterVec
	// expensiveInFlight counts expensive reads in progress.
	expensiveInFlight prometheus.Gauge
}

// commandMetrics are one command's children of the three vectors.
type commandMetrics struct {
	calls    prometheus.Counter
	errors   prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elastickv_redis_commands_total",
		Help: "Redis commands received, by command name (unknown for names not in the command table).",
	}, []string{"cmd"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elastickv_redis_command_errors_total",
		Help: "Redis commands answered with an error reply, by command name.",
	}, []string{"cmd"})
	// 100µs to ~6.5s: a local read at the bottom, RequestTimeout at the top.
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "elastickv_redis_command_duration_seconds",
		Help:    "Time from receiving a Redis command to having its reply ready, by command name.",
		Buckets: prometheus.ExponentialBuckets(100e-6, 2, 17),
	}, []string{"cmd"})
	aborted := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elastickv_redis_commands_aborted_total",
		Help: "Expensive reads (KEYS, SCAN, DBSIZE, MGET, EXISTS, INFO keyspace, DEBUG DIGEST, LCS) cut before finishing, by command and reason: deadline (the request timeout passed), shutdown (the server is closing), table_size (LCS's table would pass its cell bound) or busy (no LCS table slot freed before the deadline).",
	}, []string{"cmd", "reason"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "elastickv_redis_expensive_reads_in_flight",
		Help: "Expensive reads (see elastickv_redis_commands_aborted_total) in progress.",
	})
	if reg != nil {
		var err error
		if aborted, err = registerVec(reg, aborted); err != nil {
			return nil, err
		}
		if inFlight, err = registerVec(reg, inFlight); err != nil {
			return nil, err
		}
		if calls, err = registerVec(reg, calls); err != nil {
			return nil, err
		}
		if errs, err = registerVec(reg, errs); err != nil {
			return nil, err
		}
		if dur, err = registerVec(reg, dur); err != nil {
			return nil, err
		}
	}
	child := func(name string) *commandMetrics {
		return &commandMetrics{
			calls:    calls.WithLabelValues(name),
			errors:   errs.WithLabelValues(name),
			duration: dur.WithLabelValues(name),
		}
	}
	m := &metrics{byName: make(map[string]*commandMetrics, len(commandTable)), unknown: child(unknownCommandLabel),
		aborted: aborted, expensiveInFlight: inFlight}
	for name := range commandTable {
		m.byName[name] = child(name)
	}
	return m, nil
}

// registerVec registers c, or returns the collector already registered under
// the same description, so that a node restarting its server within one
// process (and registry) keeps counting into the same series.
func registerVec[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("redis: register metrics: %w", err)
}

// forCommand returns the metrics of a table command, or of "unknown".
func (m *metrics) forCommand(name string) *commandMetrics {
	if cm, ok := m.byName[name]; ok {
		return cm
	}
	return m.unknown
}

// commandAborted counts an expensive read of cmd (a command table name)
// cut for reason.
func (m *metrics) commandAborted(cmd, reason string) {
	m.aborted.WithLabelValues(cmd, reason).Inc()
}

// clientMetrics count what the client limits do (clients.go).
type clientMetrics struct {
	disconnects [numReasons]prometheus.Counter
	inBytes     prometheus.Gauge
	outBytes    prometheus.Gauge
}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	disc := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elastickv_redis_client_disconnects_total",
		Help: "Clients refused or closed by a client limit, by limit (maxclients, timeout, query_buffer_limit, output_buffer_limit, output_write_timeout, maxmemory_clients).",
	}, []string{"reason"})
	buf := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "elastickv_redis_client_buffer_bytes",
		Help: "Bytes held in client buffers, all clients together: input (redcon's read buffers, estimated) and output (replies not yet written); maxmemory-clients bounds their sum.",
	}, []string{"kind"})
	if reg != nil {
		var err error
		if disc, err = registerVec(reg, disc); err != nil {
			return nil, err
		}
		if buf, err = registerVec(reg, buf); err != nil {
			return nil, err
		}
	}
	m := &clientMetrics{inBytes: buf.WithLabelValues("input"), outBytes: buf.WithLabelValues("output")}
	for r := reasonMaxClients; r < numReasons; r++ {
		m.disconnects[r] = disc.WithLabelValues(r.label())
	}
	return m, nil
}
