package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/raft"
)

func runServer(args []string, stdout, stderr io.Writer) error {
	cfg := node.DefaultConfig()
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.StringVar(&cfg.Name, "id", "", "this node's id, e.g. n1 (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the node's WAL, snapshots and Pebble data (required)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7001", "peer (gRPC) listen address")
	fs.StringVar(&cfg.RedisAddr, "redis-addr", "127.0.0.1:6381", "Redis protocol listen address")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:9101", "metrics and health HTTP address; a non-loopback address needs --metrics-token; empty disables")
	fs.StringVar(&cfg.MetricsToken, "metrics-token", "", "bearer token required on the metrics listener (except /healthz, /readyz); default $ELASTICKV_METRICS_TOKEN")
	fs.StringVar(&cfg.Join, "join", "", "host:port,... of running members' peer addresses: with an empty data dir, ask them to add this node (exclusive with --peers)")
	peers := fs.String("peers", "", "initial cluster, id=host:port,...; used only when the data dir is empty")
	dials := fs.String("peer-dial", "", "id=host:port,...: dial these addresses instead of the peers' own (e.g. through a proxy); local to this node")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "Raft heartbeat interval")
	fs.DurationVar(&cfg.ElectionTimeout, "election-timeout", cfg.ElectionTimeout, "Raft election timeout")
	readMode := fs.String("read-mode", cfg.ReadMode.String(), "how the leader serves linearizable reads: lease (no network round while its lease holds) or readindex (a heartbeat round per batch of reads)")
	fs.IntVar(&cfg.MaxValueBytes, "max-value-bytes", cfg.MaxValueBytes, "largest accepted value or argument, in bytes")
	fs.Uint64Var(&cfg.SnapshotCount, "snapshot-count", cfg.SnapshotCount, "applied entries between snapshots (log compaction)")
	logMB := fs.Uint64("snapshot-log-mb", cfg.SnapshotLogBytes>>20, "snapshot sooner once the entries since the last snapshot hold this many MiB (bounds the in-memory log); 0 means by count only")
	fs.IntVar(&cfg.MaxSnapshots, "max-snapshots", cfg.MaxSnapshots, "snapshot files to keep")
	fs.IntVar(&cfg.MaxWALFiles, "max-wal-files", cfg.MaxWALFiles, "WAL segments (64 MiB each) to keep")
	rateMB := fs.Int64("snapshot-rate-mb", 0, "snapshot send rate limit in MiB/s; 0 means unlimited")
	peerLimits := peerLimitFlags(fs, cfg.PeerLimits, cfg.MaxInboundBytes)
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "how long a client request may wait (e.g. for a leader)")
	// Memory budgets of the Raft group and the apply path.
	fs.IntVar(&cfg.MaxEntryBytes, "max-entry-bytes", cfg.MaxEntryBytes, "largest Raft log entry in bytes; a write whose encoding is larger is refused with -ERR before it is proposed")
	uncommittedMB := fs.Uint64("max-uncommitted-mb", cfg.MaxUncommittedBytes>>20, "MiB of log entries a leader holds before a quorum acknowledged them; past it, writes wait (and time out with -TRYAGAIN)")
	applyMB := fs.Int("apply-batch-mb", cfg.ApplyBatchBytes>>20, "MiB of committed entries, and of pending state machine writes, in one apply batch")
	cacheMB := fs.Int64("pebble-cache-mb", 0, "Pebble block cache in MiB; 0 means $ELASTICKV_PEBBLE_CACHE_MB, else 256")
	goMemMB := fs.Int64("go-memory-limit-mb", 512, "soft limit of the Go runtime's memory in MiB (the GC works harder near it; Pebble's cache is outside it); 0 means none; $GOMEMLIMIT wins")
	maxFormat := fs.Int("max-log-format", int(kv.MaxFormat), "newest replicated log format this node advertises; lower holds the cluster's format down, so the previous release can still be rolled back to")
	fs.IntVar(&cfg.ExpireSweepRate, "expire-sweep-rate", node.DefaultExpireSweepRate, "most expired keys a second the leader proposes to delete in the background (reads never return an expired key either way)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	clientLimits := addClientFlags(fs, &cfg)
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := clientLimits.apply(&cfg); err != nil {
		return usageErr(err)
	}
	var lvl slog.Level
	var err error
	if err = lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fmt.Errorf("--log-level %q: %w", *logLevel, err))
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if cfg.ReadMode, err = raft.ParseReadMode(*readMode); err != nil {
		return usageErr(fmt.Errorf("--read-mode: %w", err))
	}
	ps, err := node.ParsePeers(*peers)
	if err != nil {
		return usageErr(fmt.Errorf("--peers: %w", err))
	}
	cfg.Peers = ps
	if *dials != "" {
		ds, err := node.ParsePeers(*dials)
		if err != nil {
			return usageErr(fmt.Errorf("--peer-dial: %w", err))
		}
		cfg.PeerDialOverrides = map[string]string{}
		for _, d := range ds {
			cfg.PeerDialOverrides[d.Name] = d.Addr
		}
	}
	if *rateMB < 0 {
		return usageErr(fmt.Errorf("--snapshot-rate-mb must not be negative"))
	}
	cfg.SnapshotRateBytesPerSec = *rateMB << 20
	if *logMB > 1<<20 {
		return usageErr(fmt.Errorf("--snapshot-log-mb must be at most %d", 1<<20))
	}
	cfg.SnapshotLogBytes = *logMB << 20
	if *uncommittedMB > 1<<20 || *applyMB < 0 || *applyMB > 1<<20 {
		return usageErr(fmt.Errorf("--max-uncommitted-mb and --apply-batch-mb must be between 0 and %d", 1<<20))
	}
	cfg.MaxUncommittedBytes, cfg.ApplyBatchBytes = *uncommittedMB<<20, *applyMB<<20
	if cfg.PeerLimits, cfg.MaxInboundBytes, err = peerLimits(); err != nil {
		return usageErr(err)
	}
	cfg.ApplyEnv(os.Getenv)
	if *maxFormat < 1 || *maxFormat > int(kv.MaxFormat) {
		return usageErr(fmt.Errorf("--max-log-format must be between 1 and %d", kv.MaxFormat))
	}
	cfg.MaxFormat = uint8(*maxFormat)
	if cfg.ExpireSweepRate < 1 {
		return usageErr(fmt.Errorf("--expire-sweep-rate must be at least 1"))
	}
	if *goMemMB < 0 {
		return usageErr(fmt.Errorf("--go-memory-limit-mb must not be negative"))
	}
	if *cacheMB < 0 {
		return usageErr(fmt.Errorf("--pebble-cache-mb must not be negative"))
	}
	if *cacheMB > 0 {
		cfg.PebbleCacheBytes = *cacheMB << 20
	}
	if cfg.MetricsToken == "" {
		// The environment keeps the token out of `ps` output.
		cfg.MetricsToken = os.Getenv("ELASTICKV_METRICS_TOKEN")
	}
	if err := cfg.Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "--") {
			return usageErr(err)
		}
		return err
	}

	if os.Getenv("GOGC") == "" {
		// The Go heap is small (Pebble's cache lives outside it) and
		// short-lived garbage dominates: collecting a quarter as often
		// cut the cluster's CPU per SET by about 10% (docs/benchmarks.md).
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" && *goMemMB > 0 {
		// GOGC=400 lets garbage reach five times the live heap before a
		// collection. Large values make garbage fast (Pebble copies a
		// 16 MiB value on every flush and compaction): 300 pipelined
		// APPENDs to a 16 MiB value peaked at 2.1 GiB RSS without a
		// limit and 0.7 GiB with 512 MiB. The limit is soft: the runtime
		// collects more often near it, never fails an allocation.
		debug.SetMemoryLimit(*goMemMB << 20)
	}
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	return serveUntilDone(n, cfg.Logger) // shutdown.go
}
