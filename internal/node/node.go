package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/redis"
	"github.com/elastickv/elastickv/internal/transport"
)

// groupID is the only Raft group today. Every peer message and forwarded
// request already carries it, so key-range sharding can add more.
const groupID = 1

// Node is one running elastickv process.
type Node struct {
	cfg     Config
	log     *slog.Logger
	reg     *prometheus.Registry
	store   *kv.Store
	tr      *transport.GRPC
	grpcSrv *grpc.Server
	grpcLn  net.Listener
	group   *raft.Group
	// served is group once it is open: the gRPC handlers run before that
	// (the peer server must be up for Raft to start) and read it here.
	served   atomic.Pointer[raft.Group]
	redis    *redis.Server
	fwd      *forwardClient
	httpSrv  *http.Server
	httpLn   net.Listener
	wg       sync.WaitGroup
	names    sync.Map // raft id -> node name, for metric labels
	closeMu  sync.Mutex
	closed   bool
	closeErr error

	// ready moves /readyz's target (health.go).
	ready readySampler

	formatState // format.go
	// sweep is the active-expiry loop (sweeper.go).
	sweep sweeper
	// keyWatcher receives apply events once the Redis server exists
	// (wake.go); nil before.
	keyWatcher atomic.Pointer[redis.Server]
}

// Start opens the node's storage, joins (or bootstraps) its Raft group and
// starts serving. On error everything already started is stopped.
func Start(cfg Config) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		if cfg.RaftListener != nil {
			_ = cfg.RaftListener.Close()
		}
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.Name)
	n = &Node{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	n.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	syncMode := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "elastickv_fsm_apply_sync_mode",
		Help: "1 for the active state-machine sync mode (sync: fsync every applied batch; nosync: the Raft WAL is the durability boundary).",
	}, []string{"mode"})
	syncMode.WithLabelValues("sync").Set(b2f(cfg.FSMSync))
	syncMode.WithLabelValues("nosync").Set(b2f(!cfg.FSMSync))
	n.reg.MustRegister(syncMode)
	for _, p := range cfg.Peers {
		n.names.Store(p.ID(), p.Name)
	}
	self := n
	defer func() {
		if err != nil {
			// Every early return hands back nil, so close through self.
			_ = self.Close()
			n = nil
		}
	}()

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	kcfg := kv.DefaultConfig(filepath.Join(cfg.DataDir, "kv"))
	// The group, not the store, syncs in sync mode: it acknowledges a
	// batch's writes (durable in the Raft WAL of a majority) as soon as
	// they are applied, and fsyncs the store before applying the next
	// batch (raft.Config.StateMachineSync).
	kcfg.Sync = false
	kcfg.CacheBytes = cfg.PebbleCacheBytes
	kcfg.Logger = log
	kcfg.MaxBatchBytes = cfg.ApplyBatchBytes
	kcfg.OnStorageFailure = n.reportStorageFailure // health.go
	kcfg.OnFormatChange = n.onFormatChange         // format.go
	n.sweep.hints = newSweepHints()
	kcfg.OnApplyEvents = n.onApplyEvents // wake.go
	if n.store, err = kv.Open(kcfg); err != nil {
		return nil, err
	}
	if err := n.checkFormat(); err != nil {
		return nil, err
	}
	// EXEC entries run their commands through the Redis handlers on
	// apply (kv/exec.go, redis/exec.go); installed before Raft replays.
	execr, err := redis.NewApplyExecutor(log)
	if err != nil {
		return nil, fmt.Errorf("apply executor: %w", err)
	}
	n.store.SetExecutor(execr)
	n.reg.MustRegister(n.store.Collector())

	tcfg := transport.DefaultConfig()
	tcfg.LocalID = raft.NodeID(cfg.Name)
	tcfg.Lanes = cfg.Lanes
	// A MsgApp carries up to MaxSizePerMsg of entries plus one more entry
	// of up to MaxEntryBytes: the transport must carry it, or a committed
	// entry would stall replication.
	tcfg.MaxMessageBytes = max(tcfg.MaxMessageBytes, cfg.MaxEntryBytes+int(raft.DefaultConfig().MaxSizePerMsg)+(4<<20))
	tcfg.SnapshotRateBytesPerSec = cfg.SnapshotRateBytesPerSec
	tcfg.Limits = cfg.PeerLimits
	tcfg.SpoolDir = filepath.Join(cfg.DataDir, "snap-spool")
	tcfg.Registerer = n.reg
	tcfg.Logger = log
	tcfg.PeerName = n.peerName
	tcfg.LocalMaxFormat = n.maxFormat()
	if err := os.MkdirAll(tcfg.SpoolDir, 0o750); err != nil {
		return nil, fmt.Errorf("create snapshot spool dir: %w", err)
	}
	if n.tr, err = transport.New(tcfg); err != nil {
		return nil, fmt.Errorf("start transport: %w", err)
	}
	n.fwd = newForwardClient(tcfg.MaxMessageBytes, n.reg)
	n.tr.SetClusterFormat(n.store.FormatVersion())

	if n.grpcLn = cfg.RaftListener; n.grpcLn == nil {
		if n.grpcLn, err = net.Listen("tcp", cfg.RaftAddr); err != nil {
			return nil, fmt.Errorf("listen on raft address %s: %w", cfg.RaftAddr, err)
		}
	}
	n.grpcSrv = grpc.NewServer(tcfg.ServerOptions()...)
	n.tr.RegisterService(n.grpcSrv)
	n.grpcSrv.RegisterService(&forwardDesc, &forwardServer{n: n})
	n.grpcSrv.RegisterService(&adminDesc, &adminServer{n: n})
	// The goroutine must not read n: an early "return nil, err" below sets
	// the named result to nil while Close still waits for this goroutine.
	srv, srvLn := n.grpcSrv, n.grpcLn
	n.wg.Add(1)
	go func() {
		defer self.wg.Done()
		if err := srv.Serve(srvLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			log.Error("peer grpc server stopped", "err", err)
		}
	}()

	if err := n.checkNotLostDisk(); err != nil {
		return nil, err
	}
	joinMembers, err := n.joinCluster()
	if err != nil {
		return nil, err
	}
	rcfg := raft.DefaultConfig()
	rcfg.GroupID = groupID
	rcfg.Self = raft.Member{Name: cfg.Name, Addr: cfg.RaftAddr}
	rcfg.Bootstrap = cfg.Peers
	rcfg.Join = cfg.Join != ""
	rcfg.JoinMembers = joinMembers
	rcfg.Dir = filepath.Join(cfg.DataDir, "raft")
	rcfg.HeartbeatInterval = cfg.HeartbeatInterval
	rcfg.ElectionTimeout = cfg.ElectionTimeout
	rcfg.ReadMode = cfg.ReadMode
	rcfg.StateMachine = n.store.StateMachine()
	rcfg.StateMachineSync = cfg.FSMSync
	rcfg.SnapshotCount = cfg.SnapshotCount
	rcfg.SnapshotLogBytes = cfg.SnapshotLogBytes
	rcfg.MaxSnapshots = cfg.MaxSnapshots
	rcfg.MaxInboundBytes = cfg.MaxInboundBytes
	rcfg.MaxWALFiles = cfg.MaxWALFiles
	rcfg.MaxEntryBytes = cfg.MaxEntryBytes
	rcfg.MaxUncommittedBytes = cfg.MaxUncommittedBytes
	rcfg.MaxApplyBatchBytes = cfg.ApplyBatchBytes
	if cfg.SnapshotCount > 0 {
		rcfg.SnapshotCatchUpEntries = min(rcfg.SnapshotCatchUpEntries, cfg.SnapshotCount/2)
	}
	rcfg.LocalMaxFormat = n.maxFormat()
	rcfg.WallClock = cfg.WallClock
	rcfg.Stamps = n.store.FormatVersion() >= kv.FormatV2
	rcfg.Transport = overrideTransport{GRPC: n.tr, n: n}
	rcfg.Logger = log
	rcfg.Registerer = n.reg
	if n.group, err = raft.Open(rcfg); err != nil {
		return nil, err
	}
	n.served.Store(n.group)
	if n.stampsDue.Load() || n.store.FormatVersion() >= kv.FormatV2 {
		// Raised while the group was opening (replayed entries).
		n.enableStamps()
	}
	n.raiseStop = make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer self.wg.Done()
		self.runRaise(self.raiseStop)
	}()
	if err := n.store.Err(); err != nil {
		n.group.Fail(err) // failed before the group could hear of it
	}
	n.startReadySampler(readySampleInterval)
	n.startSweeper()

	rdcfg := redis.DefaultConfig()
	rdcfg.Addr = cfg.RedisAddr
	rdcfg.MaxValueBytes = cfg.MaxValueBytes
	rdcfg.MaxCommandBytes = cfg.QueryBufferLimit
	rdcfg.Clients = cfg.RedisClients
	rdcfg.Params = cfg.Params
	rdcfg.Backend = backend{n}
	rdcfg.RequestTimeout = cfg.RequestTimeout
	rdcfg.ScriptRunning = execr.ScriptRunning // BUSY and SCRIPT KILL (issue 17)
	rdcfg.Logger = log
	rdcfg.Registerer = n.reg
	if n.redis, err = redis.NewServer(rdcfg); err != nil {
		return nil, fmt.Errorf("start redis server: %w", err)
	}
	// Blocked clients wake on the events of entries applied from now on;
	// a client blocks only once the server runs, after this store.
	n.keyWatcher.Store(n.redis)
	if err := n.redis.Start(); err != nil {
		return nil, fmt.Errorf("start redis server: %w", err)
	}

	if cfg.MetricsAddr != "" {
		if err := n.startHTTP(); err != nil {
			return nil, err
		}
	}
	log.Info("node started", "raft", n.grpcLn.Addr().String(), "redis", n.redis.Addr().String(), "metrics", cfg.MetricsAddr)
	return n, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dialAddr is where this node reaches member m: its advertised address
// unless a local override exists.
func (n *Node) dialAddr(m raft.Member) string {
	if a, ok := n.cfg.PeerDialOverrides[m.Name]; ok {
		return a
	}
	return m.Addr
}

// overrideTransport applies PeerDialOverrides to peers the group adds, and
// learns their names for metric labels.
type overrideTransport struct {
	*transport.GRPC
	n *Node
}

func (o overrideTransport) AddPeer(id uint64, addr string) {
	for name, a := range o.n.cfg.PeerDialOverrides {
		if raft.NodeID(name) == id {
			addr = a
		}
	}
	o.GRPC.AddPeer(id, addr)
}

func (n *Node) peerName(id uint64) string {
	if v, ok := n.names.Load(id); ok {
		return v.(string)
	}
	return strconv.FormatUint(id, 16)
}

func (n *Node) startHTTP() error {
	var err error
	if n.httpLn, err = net.Listen("tcp", n.cfg.MetricsAddr); err != nil {
		return fmt.Errorf("listen on metrics address %s: %w", n.cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	// Profiling on the (loopback or token-protected) metrics listener.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", n.serveHealthz)
	mux.HandleFunc("/readyz", n.serveReadyz)
	n.httpSrv = &http.Server{Handler: n.requireToken(mux), ReadHeaderTimeout: 5 * time.Second}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// RedisAddr is the address the Redis server listens on.
func (n *Node) RedisAddr() string { return n.redis.Addr().String() }

// RaftAddr is the address the peer gRPC server listens on.
func (n *Node) RaftAddr() string { return n.grpcLn.Addr().String() }

// Group exposes the node's Raft group (status, tests).
func (n *Node) Group() *raft.Group { return n.group }

// Store exposes the node's state machine (tests compare replicas).
func (n *Node) Store() *kv.Store { return n.store }

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Close stops the node in reverse data-path order and waits for every
// goroutine it started.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return n.closeErr
	}
	n.closed = true
	n.stopReadySampler()
	if n.raiseStop != nil {
		close(n.raiseStop) // before the group closes under the loop
	}
	n.stopSweeper()
	var errs []error
	if n.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = n.httpSrv.Shutdown(ctx)
		cancel()
	}
	if n.redis != nil {
		errs = append(errs, n.redis.Close())
	}
	if n.group != nil {
		errs = append(errs, n.group.Close())
	}
	if n.grpcSrv != nil {
		// Stop, not GracefulStop: peers hold long-lived streams that would
		// keep a graceful stop waiting.
		n.grpcSrv.Stop()
	} else if n.grpcLn != nil {
		_ = n.grpcLn.Close()
	}
	if n.tr != nil {
		errs = append(errs, n.tr.Close())
	}
	if n.fwd != nil {
		n.fwd.close()
	}
	n.wg.Wait()
	if n.store != nil {
		errs = append(errs, n.store.Close())
	}
	n.closeErr = errors.Join(errs...)
	return n.closeErr
}
