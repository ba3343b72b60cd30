package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/elastickv/elastickv/internal/chaos"
)

// errChecksFailed makes `elastickv chaos` exit 1 when a check failed,
// after the summary has been printed.
var errChecksFailed = errors.New("checks failed")

func runChaos(args []string, stdout, stderr io.Writer) error {
	cfg := chaos.DefaultConfig()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "cluster size: 3 or 5")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long the workload runs under faults")
	seed := fs.Uint64("seed", 0, "seed of every random choice; 0 picks one from the clock (printed, so the run can be replayed)")
	nemeses := fs.String("nemesis", "all", "comma-separated faults to inject, or all: "+strings.Join(chaos.Nemeses(), ", "))
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent clients, one request in flight each")
	fs.IntVar(&cfg.Keys, "keys", cfg.Keys, "number of keys the clients share")
	fs.IntVar(&cfg.ExpiryKeys, "expiry-keys", cfg.ExpiryKeys, "number of keys with short TTLs that expire during the run (0: none)")
	workloads := fs.String("workload", "all", "comma-separated workloads to run, or all: "+strings.Join(chaos.Workloads(), ", "))
	fs.BoolVar(&cfg.FailMissedWakeups, "fail-missed-wakeups", cfg.FailMissedWakeups, "fail the run on a blocking pop that timed out with nil while the queue certainly held an element")
	fs.IntVar(&cfg.CollectionKeys, "collection-keys", cfg.CollectionKeys, "keys of each collection type (hash, set, list) of the collections workload")
	out := fs.String("out", "", "results directory (default chaos-results/<time>-seed<N>)")
	fs.DurationVar(&cfg.RecoveryBound, "recovery-bound", cfg.RecoveryBound, "every node must serve writes again this soon after a fault heals")
	fs.DurationVar(&cfg.CheckTimeout, "check-timeout", cfg.CheckTimeout, "time limit of the linearizability check (running out is a failure)")
	fs.IntVar(&cfg.SnapshotCount, "snapshot-count", cfg.SnapshotCount, "--snapshot-count of the servers")
	serverEnv := fs.String("server-env", "", "KEY=VALUE,... added to every server's environment (e.g. ELASTICKV_FSM_SYNC_MODE=nosync)")
	fs.StringVar(&cfg.ReadMode, "read-mode", "", "--read-mode of the servers (lease or readindex); empty keeps the servers' default")
	keep := fs.Bool("keep-data", false, "keep the nodes' data directories even when the run passes")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	switch {
	case cfg.Nodes != 3 && cfg.Nodes != 5:
		return usageErr(fmt.Errorf("--nodes must be 3 or 5"))
	case cfg.Duration <= 0:
		return usageErr(fmt.Errorf("--duration must be positive"))
	case cfg.Clients < 1 || cfg.Clients > 64:
		return usageErr(fmt.Errorf("--clients must be between 1 and 64"))
	case cfg.Keys < 1 || cfg.Keys > 1000:
		return usageErr(fmt.Errorf("--keys must be between 1 and 1000"))
	case cfg.ExpiryKeys < 0 || cfg.ExpiryKeys > 1000:
		return usageErr(fmt.Errorf("--expiry-keys must be between 0 and 1000"))
	case cfg.CollectionKeys < 1 || cfg.CollectionKeys > 100:
		return usageErr(fmt.Errorf("--collection-keys must be between 1 and 100"))
	case cfg.SnapshotCount < 1:
		return usageErr(fmt.Errorf("--snapshot-count must be positive"))
	case cfg.RecoveryBound <= 0 || cfg.CheckTimeout <= 0:
		return usageErr(fmt.Errorf("--recovery-bound and --check-timeout must be positive"))
	}
	var err error
	if cfg.Nemeses, err = chaos.ParseNemeses(*nemeses); err != nil {
		return usageErr(fmt.Errorf("--nemesis: %w", err))
	}
	if cfg.Workloads, err = chaos.ParseWorkloads(*workloads); err != nil {
		return usageErr(fmt.Errorf("--workload: %w", err))
	}
	for _, kv := range strings.Split(*serverEnv, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageErr(fmt.Errorf("--server-env: %q is not KEY=VALUE", kv))
		}
		cfg.ServerEnv = append(cfg.ServerEnv, kv)
	}
	cfg.Seed = *seed
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	if cfg.Binary, err = os.Executable(); err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cfg.OutDir = *out
	if cfg.OutDir == "" {
		cfg.OutDir = filepath.Join("chaos-results", fmt.Sprintf("%s-seed%d", time.Now().Format("20060102-150405"), cfg.Seed))
	}
	if cfg.OutDir, err = filepath.Abs(cfg.OutDir); err != nil {
		return fmt.Errorf("resolve --out: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(stdout, "elastickv chaos: seed %d, %d nodes, %v, nemeses %s, workloads %s; results in %s\n",
		cfg.Seed, cfg.Nodes, cfg.Duration, strings.Join(cfg.Nemeses, ","), strings.Join(cfg.Workloads, ","), cfg.OutDir)
	rep, err := chaos.Run(ctx, cfg)
	if rep != nil {
		fmt.Fprint(stdout, rep.Summary())
	}
	if err != nil {
		return err
	}
	if !rep.Passed() {
		return fmt.Errorf("%w: replay with --seed %d", errChecksFailed, cfg.Seed)
	}
	if !*keep {
		// Data directories are large and only useful for a post-mortem.
		_ = os.RemoveAll(filepath.Join(cfg.OutDir, "data"))
	}
	return nil
}
