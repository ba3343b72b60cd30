package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	goredis "github.com/redis/go-redis/v9"
)

// Config describes one chaos run. DefaultConfig fills every field but
// Binary and OutDir.
type Config struct {
	// Binary is the elastickv executable whose `server` command is run.
	Binary string
	// Nodes is the cluster size (3 or 5).
	Nodes int
	// Duration is how long the workload runs under faults; the final
	// heal, convergence wait and check come on top.
	Duration time.Duration
	// Seed drives every random choice of the harness (which fault, which
	// node, which operation). Thread timing is not reproducible, so a seed
	// replays the same schedule of faults, not the same interleaving.
	Seed uint64
	// Nemeses are the fault kinds to cycle through (see Nemeses).
	Nemeses []string
	// Clients is the number of concurrent clients.
	Clients int
	// Keys is the number of keys the clients share.
	Keys int
	// ExpiryKeys is the number of expiry keys (short TTLs that fire during
	// the run, checked by CheckExpiry); 0 leaves them out. The register
	// keys get TTL commands too, whenever the binary has them.
	ExpiryKeys int
	// Workloads are the workloads to run (see Workloads): "registers" (the
	// register keys, and the expiry keys when ExpiryKeys > 0),
	// "collections" (hash, set and list keys in the porcupine model) and
	// "queue" (producers and BLPOP/BLMOVE consumers, CheckQueue). A
	// workload whose commands the binary lacks is left out and named in
	// Report.Unsupported.
	Workloads []string
	// FailMissedWakeups makes a blocking pop that timed out with nil while
	// the queue certainly held an element (QueueResult.MissedWakeups) fail
	// the run; off, they are only counted in the report.
	FailMissedWakeups bool
	// CollectionKeys is the number of keys of each collection type (hash,
	// set, list, sorted set) of the collections workload.
	CollectionKeys int
	// ExpirySkew is the bound CheckExpiry allows between an operation's
	// apply or read time and its real-time interval (see expiry.go).
	ExpirySkew time.Duration
	// OutDir receives the node logs, the data directories, the history,
	// the summary and, on failure, the porcupine visualisation.
	OutDir string
	// Logger receives the harness's progress; it is also written to
	// OutDir/harness.log.
	Logger *slog.Logger

	// ServerEnv is added to every server's environment, e.g.
	// ELASTICKV_FSM_SYNC_MODE=nosync to exercise WAL replay.
	ServerEnv []string
	// ReadMode, when set, is passed to every server as --read-mode.
	ReadMode string

	// HeartbeatInterval, ElectionTimeout, SnapshotCount and
	// RequestTimeout are passed to every server; short, so faults have
	// visible effects within a short run.
	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration
	SnapshotCount     int
	RequestTimeout    time.Duration
	// OpTimeout bounds each client operation; longer than RequestTimeout,
	// so a live server answers (often with a definite outcome) before the
	// client gives up.
	OpTimeout time.Duration
	// FaultMin and FaultMax bound how long a fault is held.
	FaultMin, FaultMax time.Duration
	// Quiet is the healthy time between two faults.
	Quiet time.Duration
	// RecoveryBound is how soon after a heal every node must serve a write
	// and a read again.
	RecoveryBound time.Duration
	// ConvergeTimeout bounds the final wait for identical replicas.
	ConvergeTimeout time.Duration
	// CheckTimeout bounds the linearizability check.
	CheckTimeout time.Duration
}

// DefaultConfig returns the defaults of `elastickv chaos`.
func DefaultConfig() Config {
	return Config{
		Nodes:             3,
		Duration:          time.Minute,
		Seed:              1,
		Nemeses:           Nemeses(),
		Clients:           5,
		Keys:              10,
		ExpiryKeys:        8,
		Workloads:         defaultWorkloads(),
		FailMissedWakeups: true,
		CollectionKeys:    2,
		ExpirySkew:        DefaultExpirySkew,
		HeartbeatInterval: 50 * time.Millisecond,
		ElectionTimeout:   500 * time.Millisecond,
		SnapshotCount:     200,
		RequestTimeout:    1500 * time.Millisecond,
		OpTimeout:         2500 * time.Millisecond,
		FaultMin:          2 * time.Second,
		FaultMax:          4 * time.Second,
		Quiet:             time.Second,
		RecoveryBound:     10 * time.Second,
		ConvergeTimeout:   30 * time.Second,
		CheckTimeout:      2 * time.Minute,
	}
}

// validate reports the first setting to fix.
func (c *Config) validate() error {
	switch {
	case c.Binary == "":
		return errors.New("no elastickv binary given")
	case c.OutDir == "":
		return errors.New("no output directory given")
	case c.Nodes != 3 && c.Nodes != 5:
		return fmt.Errorf("--nodes must be 3 or 5, not %d", c.Nodes)
	case c.Duration <= 0:
		return errors.New("--duration must be positive")
	case c.Clients < 1 || c.Clients > 64:
		return fmt.Errorf("--clients must be between 1 and 64, not %d", c.Clients)
	case c.Keys < 1 || c.Keys > 1000:
		return fmt.Errorf("--keys must be between 1 and 1000, not %d", c.Keys)
	case c.ExpiryKeys < 0 || c.ExpiryKeys > 1000:
		return fmt.Errorf("--expiry-keys must be between 0 and 1000, not %d", c.ExpiryKeys)
	case c.CollectionKeys < 1 || c.CollectionKeys > 100:
		return fmt.Errorf("--collection-keys must be between 1 and 100, not %d", c.CollectionKeys)
	case len(c.Workloads) == 0:
		return errors.New("no workload given")
	case c.ExpirySkew <= 0:
		return errors.New("expiry skew must be positive")
	case c.SnapshotCount < 1:
		return errors.New("snapshot count must be positive")
	case c.FaultMin <= 0 || c.FaultMax < c.FaultMin:
		return errors.New("fault window must satisfy 0 < min <= max")
	case c.OpTimeout <= 0 || c.RequestTimeout <= 0 || c.RecoveryBound <= 0 || c.CheckTimeout <= 0 || c.ConvergeTimeout <= 0:
		return errors.New("timeouts must be positive")
	}
	for _, n := range c.Nemeses {
		if _, ok := lookupNemesis(n); !ok {
			return fmt.Errorf("unknown nemesis %q (known: %s)", n, strings.Join(Nemeses(), ", "))
		}
	}
	for _, n := range c.Workloads {
		if !slices.Contains(Workloads(), n) {
			return fmt.Errorf("unknown workload %q (known: %s)", n, strings.Join(Workloads(), ", "))
		}
	}
	return nil
}

// The workloads a run can combine.
const (
	// WorkloadRegisters: string keys (GET, SET, INCR, APPEND, DEL and the
	// TTL commands) in the porcupine model, plus the expiry keys.
	WorkloadRegisters = "registers"
	// WorkloadCollections: hash, set and list keys in the porcupine model
	// (collections.go).
	WorkloadCollections = "collections"
	// WorkloadQueue: a job queue on lists with blocking pops (queue.go).
	WorkloadQueue = "queue"
	// WorkloadTxn: MULTI/INCR/INCR/EXEC on pairs of keys and reads of
	// both, all-or-nothing and isolated (txn.go, CheckTxn).
	WorkloadTxn = "txn"
	// WorkloadCAS: a WATCH-based check-and-set counter (cas.go,
	// CheckCAS).
	WorkloadCAS = "cas"
	// WorkloadLock: a lock with a Lua compare-and-delete release and a
	// fencing counter (lock.go, CheckLock).
	WorkloadLock = "lock"
)

// Workloads lists every workload, the meaning of "all".
func Workloads() []string {
	return []string{WorkloadRegisters, WorkloadCollections, WorkloadQueue, WorkloadTxn, WorkloadCAS, WorkloadLock}
}

// defaultWorkloads are DefaultConfig's: all but the transaction workloads,
// which run when asked for (`elastickv chaos --workload`, whose "all"
// includes them, and TestChaosTransactions); in every short chaos test
// they would lengthen the suite.
func defaultWorkloads() []string {
	return []string{WorkloadRegisters, WorkloadCollections, WorkloadQueue}
}

// ParseWorkloads turns "all" or a comma-separated list into workload
// names.
func ParseWorkloads(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return Workloads(), nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(Workloads(), n) {
			return nil, fmt.Errorf("unknown workload %q (known: all, %s)", n, strings.Join(Workloads(), ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no workload given")
	}
	return out, nil
}

// ParseNemeses turns "all" or a comma-separated list into nemesis names.
func ParseNemeses(s string) ([]string, error) {
	if strings.TrimSpace(s) == "all" {
		return Nemeses(), nil
	}
	var out []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if _, ok := lookupNemesis(n); !ok {
			return nil, fmt.Errorf("unknown nemesis %q (known: all, %s)", n, strings.Join(Nemeses(), ", "))
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no nemesis given")
	}
	return out, nil
}

// Report is the outcome of a run. A run passed when Failures is empty.
type Report struct {
	Seed    uint64   `json:"seed"`
	Nodes   int      `json:"nodes"`
	Nemeses []string `json:"nemeses"`
	// Skipped lists requested nemeses the binary cannot support.
	Skipped  []string       `json:"skipped,omitempty"`
	Duration time.Duration  `json:"duration_ns"`
	Counts   Counts         `json:"ops"`
	Events   []NemesisEvent `json:"events"`
	// ExpiryUnsupported says why the TTL commands were left out of the
	// workload (a binary without them); empty when they ran.
	ExpiryUnsupported string `json:"expiry_unsupported,omitempty"`
	// Expiry is CheckExpiry's verdict on the expiry keys.
	Expiry ExpiryResult `json:"expiry"`
	// Workloads are the workloads that ran.
	Workloads []string `json:"workloads"`
	// Unsupported names each requested workload, or part of one, that was
	// left out because the binary lacks its commands, with the reply.
	Unsupported []string `json:"unsupported,omitempty"`
	// Collections counts the operations on the collection keys, which the
	// porcupine check covers with the register keys.
	Collections Counts `json:"collections"`
	// Queue is CheckQueue's account of the queue workload.
	Queue *QueueResult `json:"queue,omitempty"`
	// Txn, CAS and Lock are the transaction workloads' checkers' accounts
	// (txn.go, cas.go, lock.go).
	Txn  *TxnResult  `json:"txn,omitempty"`
	CAS  *CASResult  `json:"cas,omitempty"`
	Lock *LockResult `json:"lock,omitempty"`
	// Linearizable is porcupine's verdict (Ok, Illegal or Unknown).
	Linearizable porcupine.CheckResult `json:"linearizable"`
	CheckTime    time.Duration         `json:"check_time_ns"`
	// Digest is the state every replica converged to, "applied:digest".
	Digest   string   `json:"digest"`
	Failures []string `json:"failures"`
	OutDir   string   `json:"out_dir"`
}

// Passed reports whether every check held.
func (r *Report) Passed() bool { return len(r.Failures) == 0 }

// ScenarioStats summarises the events of one nemesis kind.
type ScenarioStats struct {
	Name     string
	Runs     int
	Failures int
	// Ops is the number of client operations during these faults and
	// their recoveries.
	Ops int
	// Recovery times (heal until every node serves writes) of the runs.
	RecoveryMin, RecoveryMedian, RecoveryMax time.Duration
}

// Scenarios groups the report's events by nemesis, in the order given.
func (r *Report) Scenarios() []ScenarioStats {
	var out []ScenarioStats
	for _, name := range r.Nemeses {
		s := ScenarioStats{Name: name}
		var recs []time.Duration
		for _, e := range r.Events {
			if e.Name != name {
				continue
			}
			s.Runs++
			s.Ops += e.Ops
			if e.Failure != "" {
				s.Failures++
			}
			if d := e.RecoveryAll(); d > 0 {
				recs = append(recs, d)
			}
		}
		if len(recs) > 0 {
			slices.Sort(recs)
			s.RecoveryMin, s.RecoveryMedian, s.RecoveryMax = recs[0], recs[len(recs)/2], recs[len(recs)-1]
		}
		out = append(out, s)
	}
	return out
}

// Summary renders the report as a short human-readable text.
func (r *Report) Summary() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed() {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "chaos %s: seed %d, %d nodes, %v, %d ops (%d ok, %d unknown, %d failed), linearizable: %s (checked in %v), converged at %s\n",
		verdict, r.Seed, r.Nodes, r.Duration.Round(time.Second), r.Counts.Total, r.Counts.OK, r.Counts.Unknown, r.Counts.Failed,
		r.Linearizable, r.CheckTime.Round(time.Millisecond), r.Digest)
	fmt.Fprintf(&b, "%-18s %5s %7s %5s %28s\n", "scenario", "runs", "ops", "fail", "recovery min/median/max")
	for _, s := range r.Scenarios() {
		fmt.Fprintf(&b, "%-18s %5d %7d %5d %28s\n", s.Name, s.Runs, s.Ops, s.Failures,
			fmt.Sprintf("%v/%v/%v", s.RecoveryMin.Round(time.Millisecond), s.RecoveryMedian.Round(time.Millisecond), s.RecoveryMax.Round(time.Millisecond)))
	}
	fmt.Fprintf(&b, "workloads: %s\n", strings.Join(r.Workloads, ", "))
	for _, u := range r.Unsupported {
		fmt.Fprintf(&b, "not run: %s\n", u)
	}
	if c := r.Collections; c.Total > 0 {
		fmt.Fprintf(&b, "collection keys: %d ops (%d ok, %d unknown, %d failed), in the linearizability check\n", c.Total, c.OK, c.Unknown, c.Failed)
	}
	if q := r.Queue; q != nil {
		fmt.Fprintf(&b, "queue: %d pushed (+%d unknown), %d BLPOPed, %d BLMOVEd, %d empty, %d/%d BLPOP/BLMOVE unknown; at the end %d queued, %d done, %d maybe popped; %d violations, %d missed wakeups\n",
			q.Pushed, q.PushUnknown, q.Popped, q.Moved, q.Empty, q.UnknownPops, q.UnknownMoves, q.Remaining, q.Done, q.MaybePopped, len(q.Violations), len(q.MissedWakeups))
	}
	r.summaryTxn(&b)
	switch {
	case !slices.Contains(r.Workloads, WorkloadRegisters):
		// No TTL workload was asked for.
	case r.ExpiryUnsupported != "":
		fmt.Fprintf(&b, "TTL commands not run: %s\n", r.ExpiryUnsupported)
	default:
		e := r.Expiry
		fmt.Fprintf(&b, "expiry keys: %d, %d ops; reads bound to be present %d, of a bounded lifetime %d, checked for revival %d; %d violations\n",
			e.Keys, e.Ops, e.Anchored, e.Bounded, e.Revivable, len(e.Violations))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "skipped (binary has no admin command): %s\n", strings.Join(r.Skipped, ", "))
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "FAILURE: %s\n", f)
	}
	fmt.Fprintf(&b, "results in %s\n", r.OutDir)
	return b.String()
}

// Run starts a cluster, runs the workload under the configured faults,
// heals everything, and checks the history. The error is for a harness
// that could not do its job (no binary, no leader ever); failed checks are
// in Report.Failures. Every process, proxy and goroutine is stopped before
// Run returns, whatever happens.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logDir, dataDir := filepath.Join(cfg.OutDir, "logs"), filepath.Join(cfg.OutDir, "data")
	for _, d := range []string{logDir, dataDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	hlog, err := os.Create(filepath.Join(cfg.OutDir, "harness.log"))
	if err != nil {
		return nil, fmt.Errorf("create harness log: %w", err)
	}
	// slog drops its write errors anyway; the history, not this log, is
	// what the checks read.
	defer func() { _ = hlog.Close() }()
	base := cfg.Logger
	if base == nil {
		base = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	log := slog.New(slog.NewMultiHandler(base.Handler(), slog.NewTextHandler(hlog, nil))).With("seed", cfg.Seed)
	routeRedisLogs(log)

	rep := &Report{Seed: cfg.Seed, Nodes: cfg.Nodes, OutDir: cfg.OutDir}
	if !adminAvailable(cfg.Binary) {
		// Older binaries have no admin command: run what can be run and
		// say what was left out.
		var keep []string
		for _, name := range cfg.Nemeses {
			if nm, _ := lookupNemesis(name); nm.needsAdmin {
				rep.Skipped = append(rep.Skipped, name)
				continue
			}
			keep = append(keep, name)
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("%s has no admin command, which every requested nemesis needs", cfg.Binary)
		}
		log.Warn("binary has no admin command; skipping nemeses", "skipped", rep.Skipped)
		cfg.Nemeses = keep
	}
	rep.Nemeses = cfg.Nemeses
	serverArgs := []string{
		"--heartbeat-interval", cfg.HeartbeatInterval.String(),
		"--election-timeout", cfg.ElectionTimeout.String(),
		"--snapshot-count", strconv.Itoa(cfg.SnapshotCount),
		"--request-timeout", cfg.RequestTimeout.String(),
	}
	if cfg.ReadMode != "" {
		serverArgs = append(serverArgs, "--read-mode", cfg.ReadMode)
	}
	c, err := startCluster(clusterConfig{
		binary: cfg.Binary, nodes: cfg.Nodes, dataDir: dataDir, logDir: logDir, log: log, env: cfg.ServerEnv,
		serverArgs: serverArgs,
	})
	if err != nil {
		return nil, err
	}
	defer c.close()
	h := NewHistory()
	if err := waitReady(ctx, c, 30*time.Second); err != nil {
		return nil, fmt.Errorf("cluster did not come up: %w (logs in %s)", err, logDir)
	}
	log.Info("cluster up", "nodes", cfg.Nodes, "out", cfg.OutDir)

	w := &workload{h: h, clients: cfg.Clients, opTimeout: cfg.OpTimeout, seed: cfg.Seed,
		longTTL: longTTL(cfg.Duration).Milliseconds()}
	for _, n := range c.nodes {
		w.addrs = append(w.addrs, n.redisAddr)
		w.names = append(w.names, n.name)
	}
	if err := w.setUpFamilies(ctx, c, &cfg, rep, log); err != nil {
		return nil, fmt.Errorf("%w (logs in %s)", err, logDir)
	}
	if registers := slices.Contains(cfg.Workloads, WorkloadRegisters); registers {
		if err := ttlReady(ctx, c, 30*time.Second); err != nil {
			var no errNoTTL
			if !errors.As(err, &no) {
				return nil, fmt.Errorf("cluster did not accept TTL commands: %w (logs in %s)", err, logDir)
			}
			rep.ExpiryUnsupported = err.Error()
			log.Warn("binary has no TTL commands; running the workload without them", "err", err)
		} else {
			w.ttl = true
			for i := range cfg.ExpiryKeys {
				w.expiryKeys = append(w.expiryKeys, expiryKeyName(i))
			}
			w.expiryWritesUntil = h.Now() + int64(expiryWritesFor(cfg.Duration, cfg.ExpirySkew))
		}
	}
	w.start()
	started := time.Now()
	rep.Events = runNemeses(ctx, c, &cfg, h, log)
	w.stopAndWait()
	rep.Duration = time.Since(started)
	for _, e := range rep.Events {
		if e.Failure != "" {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s (%s): %s", e.Name, e.Detail, e.Failure))
		}
	}

	// Heal everything and let the replicas converge with writes stopped.
	if err := c.healAll(); err != nil {
		rep.Failures = append(rep.Failures, "final heal: "+err.Error())
	}
	if digest, err := c.waitConverged(ctx, cfg.ConvergeTimeout); err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	} else {
		rep.Digest = digest
	}
	finals, err := w.finalReads(ctx, int(w.nextProc.Load()))
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	w.reportTxn(ctx, &cfg, rep)
	rep.Failures = append(rep.Failures, c.takeUnexpected()...)
	// Stop the servers so their logs are complete, then fail the run on
	// any race report in them (servers built with -race; BuildServer).
	c.close()
	races, err := RaceReports(filepath.Join(logDir, "*.log"))
	if err != nil {
		rep.Failures = append(rep.Failures, err.Error())
	}
	rep.Failures = append(rep.Failures, races...)
	if ctx.Err() != nil {
		return rep, fmt.Errorf("run interrupted: %w", ctx.Err())
	}

	ops := h.Ops()
	rep.Counts = CountOps(ops)
	countEventOps(rep.Events, ops)
	w.countTxn(rep)
	if err := WriteHistoryJSON(filepath.Join(cfg.OutDir, "history.json"), ops); err != nil {
		log.Warn("saving history failed", "err", err)
	}
	rep.Failures = append(rep.Failures, lostWrites(ops, finals)...)
	rep.Collections = CountOps(slices.DeleteFunc(slices.Clone(ops), func(op Op) bool { return !IsCollectionKey(op.Input.Key) }))
	if w.queue {
		q := CheckQueue(ops)
		rep.Queue = &q
		const shown = 20
		for i, v := range q.Violations {
			if i == shown {
				rep.Failures = append(rep.Failures, fmt.Sprintf("queue: %d more violations in summary.json", len(q.Violations)-shown))
				break
			}
			rep.Failures = append(rep.Failures, "queue: "+v)
		}
		if cfg.FailMissedWakeups {
			for i, v := range q.MissedWakeups {
				if i == shown {
					rep.Failures = append(rep.Failures, fmt.Sprintf("queue: %d more missed wakeups in summary.json", len(q.MissedWakeups)-shown))
					break
				}
				rep.Failures = append(rep.Failures, "queue: missed wakeup: "+v)
			}
		}
	}
	if w.ttl {
		if end := time.Duration(h.Now()); end >= time.Duration(w.longTTL)*time.Millisecond-cfg.ExpirySkew {
			rep.Failures = append(rep.Failures, fmt.Sprintf("the run lasted %v, longer than the register keys' TTL of %d ms minus the skew: the register model no longer holds", end, w.longTTL))
		}
		rep.Expiry = CheckExpiry(ops, cfg.ExpirySkew)
		const shown = 20
		for i, v := range rep.Expiry.Violations {
			if i == shown {
				rep.Failures = append(rep.Failures, fmt.Sprintf("expiry: %d more violations in summary.json", len(rep.Expiry.Violations)-shown))
				break
			}
			rep.Failures = append(rep.Failures, "expiry: "+v.String())
		}
	}
	log.Info("checking linearizability", "ops", len(ops))
	t0 := time.Now()
	res, info := CheckLinearizable(ops, cfg.CheckTimeout)
	rep.CheckTime, rep.Linearizable = time.Since(t0), res
	if msg := linearizabilityFailure(res, cfg.CheckTimeout); msg != "" {
		path := filepath.Join(cfg.OutDir, "linearizability.html")
		if err := WriteVisualization(path, info, rep.Events); err != nil {
			log.Warn("saving visualisation failed", "err", err)
		} else {
			msg += "; see " + path
		}
		rep.Failures = append(rep.Failures, msg)
	}
	if err := writeReport(filepath.Join(cfg.OutDir, "summary.json"), rep); err != nil {
		log.Warn("saving summary failed", "err", err)
	}
	log.Info("run finished", "passed", rep.Passed(), "ops", rep.Counts.Total, "linearizable", res)
	return rep, nil
}

func writeReport(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// setUpFamilies gives the workload the keys of the requested workloads
// whose commands the binary has, and records the rest in
// rep.Unsupported.
func (w *workload) setUpFamilies(ctx context.Context, c *cluster, cfg *Config, rep *Report, log *slog.Logger) error {
	if slices.Contains(cfg.Workloads, WorkloadRegisters) {
		for i := range cfg.Keys {
			w.keys = append(w.keys, keyName(i))
		}
		rep.Workloads = append(rep.Workloads, WorkloadRegisters)
	}
	supported := func(what string, args ...any) (bool, error) {
		reply, err := commandSupported(ctx, c, 30*time.Second, args...)
		if err != nil {
			return false, fmt.Errorf("cluster did not accept %s: %w", what, err)
		}
		if reply != "" {
			rep.Unsupported = append(rep.Unsupported, what+": "+reply)
			log.Warn("binary lacks a workload's commands; leaving them out", "what", what, "reply", reply)
			return false, nil
		}
		return true, nil
	}
	coll, queue := slices.Contains(cfg.Workloads, WorkloadCollections), slices.Contains(cfg.Workloads, WorkloadQueue)
	var hashes, sets, lists bool
	var err error
	if coll {
		if hashes, err = supported("hashes", "hset", "chaos:probe:h", "f", "v"); err != nil {
			return err
		}
		if sets, err = supported("sets", "sadd", "chaos:probe:s", "m"); err != nil {
			return err
		}
	}
	if coll || queue {
		if lists, err = supported("lists", "rpush", "chaos:probe:l", "e"); err != nil {
			return err
		}
	}
	var zsets bool
	if coll {
		if zsets, err = supported("sorted sets", "zadd", "chaos:probe:z", "1", "m"); err != nil {
			return err
		}
		w.collKeys = collKeyNames(cfg.CollectionKeys, hashes, sets, lists, zsets)
		if len(w.collKeys) > 0 {
			rep.Workloads = append(rep.Workloads, WorkloadCollections)
		}
	}
	if queue && lists {
		ok, err := supported("blocking pops", "blmove", "chaos:probe:q{p}", "chaos:probe:q{p}:d", "left", "right", "0.01")
		if err != nil {
			return err
		}
		if ok {
			w.queue = true
			rep.Workloads = append(rep.Workloads, WorkloadQueue)
		}
	}
	if err := w.setUpTxn(cfg, rep, supported); err != nil {
		return err
	}
	if len(rep.Workloads) == 0 {
		return fmt.Errorf("the binary has the commands of none of the workloads %s: %s", strings.Join(cfg.Workloads, ", "), strings.Join(rep.Unsupported, "; "))
	}
	return nil
}

// commandSupported sends a probe command to every node until each has
// executed it, which a fresh cluster does once its first leader has
// raised the log format. It returns "" when every node ran it, the reply
// of a node that does not know the command, or an error when a node did
// neither within limit.
func commandSupported(ctx context.Context, c *cluster, limit time.Duration, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, n := range c.nodes {
		for {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			err := n.admin.Do(cctx, args...).Err()
			ccancel()
			if err == nil || errors.Is(err, goredis.Nil) {
				break
			}
			var rerr goredis.Error
			if errors.As(err, &rerr) && strings.Contains(err.Error(), "unknown command") {
				return err.Error(), nil
			}
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("%s: %w", n.name, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return "", nil
}

// longTTL is the TTL of the register keys: ten minutes beyond twice the
// run, so no register key's TTL fires while the history is recorded.
func longTTL(d time.Duration) time.Duration { return 10*time.Minute + 2*d }

// expiryWritesFor is how long into the run the expiry keys are written:
// up to the longest TTL plus twice the skew before the end, so that every
// TTL set has certainly passed before the end of the run, but at least
// half the run.
func expiryWritesFor(d, skew time.Duration) time.Duration {
	return max(d/2, d-expiryMaxTTL*time.Millisecond-2*skew)
}

// noTTLReply recognises the replies of binaries that have no key expiry:
// releases before it answered SET ... PX with "not supported", and a
// server without the option at all says "syntax error".
func noTTLReply(reply string) bool {
	for _, s := range []string{"syntax error", "unknown command", "not supported"} {
		if strings.Contains(reply, s) {
			return true
		}
	}
	return false
}

// errNoTTL is ttlReady's verdict on a binary without TTL commands.
type errNoTTL struct{ reply string }

func (e errNoTTL) Error() string { return "the server does not know SET ... PX: " + e.reply }

// ttlReady waits until every node accepts SET ... PX, which a fresh
// cluster does once its first leader has raised the log format; a server
// that does not know the command (an older binary) is reported as
// errNoTTL at once.
func ttlReady(ctx context.Context, c *cluster, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for _, n := range c.nodes {
		for {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			err := n.admin.Do(cctx, "set", "chaos:probe:ttl:"+n.name, "1", "px", 60_000).Err()
			ccancel()
			if err == nil {
				break
			}
			var rerr goredis.Error
			if errors.As(err, &rerr) && noTTLReply(err.Error()) {
				return errNoTTL{reply: err.Error()}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s: %w", n.name, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// waitReady waits for a leader and for every node to serve a write and a
// read.
func waitReady(ctx context.Context, c *cluster, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if _, err := c.leader(ctx, limit); err != nil {
		return err
	}
	for i := range c.nodes {
		for {
			err := c.probe(ctx, i, "ready")
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not serving: %w", c.nodes[i].name, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// runNemeses injects faults one after another until cfg.Duration is used
// up, cycling through the configured kinds in a seeded shuffled order so a
// run covers each kind evenly.
func runNemeses(ctx context.Context, c *cluster, cfg *Config, h *History, log *slog.Logger) []NemesisEvent {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6e656d65736973))
	e := &env{c: c, cfg: cfg, rng: rng, log: log}
	end := time.Now().Add(cfg.Duration)
	var events []NemesisEvent
	var order []string
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleep(min(cfg.Quiet, time.Until(end))) {
		return events
	}
	for time.Until(end) > time.Second && ctx.Err() == nil {
		if len(order) == 0 {
			order = slices.Clone(cfg.Nemeses)
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		nm, _ := lookupNemesis(order[0])
		order = order[1:]
		ev := runOne(ctx, e, nm, h)
		log.Info("nemesis done", "name", ev.Name, "detail", ev.Detail, "recovery", ev.RecoveryAll(), "failure", ev.Failure)
		events = append(events, ev)
		if !sleep(min(cfg.Quiet, max(time.Until(end), 0))) {
			break
		}
	}
	return events
}

// runOne injects one fault, holds it, heals it, and measures recovery.
func runOne(ctx context.Context, e *env, nm nemesis, h *History) NemesisEvent {
	ev := NemesisEvent{Name: nm.name, Start: h.Now()}
	e.log.Info("nemesis start", "name", nm.name)
	f, err := nm.inject(ctx, e)
	ev.Detail = f.detail
	if err != nil {
		ev.Failure = "inject: " + err.Error()
		// Whatever half-happened must not leak into the next fault.
		_ = e.c.healAll()
		ev.Healed = h.Now()
		return ev
	}
	hold := f.hold
	if hold == 0 {
		hold = e.cfg.FaultMin + time.Duration(e.rng.Int64N(int64(e.cfg.FaultMax-e.cfg.FaultMin)+1))
	}
	t := time.NewTimer(hold)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
	}
	if err := f.heal(); err != nil {
		ev.Failure = "heal: " + err.Error()
		_ = e.c.healAll()
	}
	ev.Healed = h.Now()
	var failures []string
	if ev.Failure != "" {
		failures = append(failures, ev.Failure)
	}
	ev.RecoveredAny, ev.RecoveredAll, err = measureRecovery(ctx, e.c, e.cfg.RecoveryBound, h)
	if err != nil {
		failures = append(failures, err.Error())
	}
	if f.verify != nil {
		if err := f.verify(ctx); err != nil {
			failures = append(failures, err.Error())
		}
	}
	failures = append(failures, e.c.takeUnexpected()...)
	ev.Failure = strings.Join(failures, "; ")
	return ev
}

// measureRecovery probes every node until it serves a write and a read,
// returning when the first and the last node did (history clock).
func measureRecovery(ctx context.Context, c *cluster, bound time.Duration, h *History) (anyAt, allAt int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	at := make([]int64, len(c.nodes))
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				err := c.probe(ctx, i, strconv.FormatInt(h.Now(), 10))
				if err == nil {
					at[i] = h.Now()
					return
				}
				errs[i] = err
				select {
				case <-ctx.Done():
					return
				case <-time.After(25 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	var late []string
	for i, t := range at {
		if t == 0 {
			late = append(late, fmt.Sprintf("%s (last error: %v)", c.nodes[i].name, errs[i]))
			continue
		}
		if anyAt == 0 || t < anyAt {
			anyAt = t
		}
		allAt = max(allAt, t)
	}
	if len(late) > 0 {
		return anyAt, 0, fmt.Errorf("not serving writes within %v of the heal: %s", bound, strings.Join(late, ", "))
	}
	return anyAt, allAt, nil
}

// go-redis logs dial failures through a process-wide logger, straight to
// stderr by default; during a chaos run they are expected by the dozen.
// They are routed to the current run's log at debug level instead.
var (
	redisLog     atomic.Pointer[slog.Logger]
	redisLogOnce sync.Once
)

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.Debug("go-redis: " + fmt.Sprintf(format, v...))
	}
}

func routeRedisLogs(log *slog.Logger) {
	redisLog.Store(log)
	redisLogOnce.Do(func() { goredis.SetLogger(redisLogger{}) })
}
