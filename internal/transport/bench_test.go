package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// BenchmarkHeartbeatIsolation measures what the lane layout does to Raft
// liveness under load. Three nodes in this process talk over real gRPC on
// loopback, each node one transport shared by two Raft groups (RawNode +
// MemoryStorage, no disk; PreVote and CheckQuorum on). Node 1 leads both.
//
// Clock: one tick every 10ms, HeartbeatTick 10 (a heartbeat every 100ms),
// ElectionTick 100 (followers campaign after 1-2s without a leader).
//
//   - Warm-up: nodes 1 and 2 only. Group 1 takes writes from 16 goroutines
//     (1-4 KiB entries, as fast as the leader commits them) and compacts its
//     log, so node 3 will need a snapshot.
//   - Measured window: node 3 starts. Group 1's leader streams it a 64 MiB
//     snapshot (SnapshotStore payload) while the writes go on; group 2, the
//     bystander, replicates a light write stream to all three nodes, so its
//     MsgApp to node 3 shares node 1's lanes with group 1's snapshot. The
//     window ends 1s after node 3's group 1 caught up.
//
// Reported: heartbeat delay from the sender's Send to receipt (the envelope
// timestamp, so lane queueing counts), elections (replicas entering
// pre-candidate or candidate state) and term changes, heartbeats dropped by
// full lanes, catch-up time (snapshot start until node 3 applied the
// leader's commit index as of the moment node 3 installed the snapshot),
// the largest delivery delay of a bystander MsgApp to node 3, the bystander
// stall (longest time node 3's bystander replica was behind its leader
// without progressing) and the heavy group's commit rate.
func BenchmarkHeartbeatIsolation(b *testing.B) {
	for _, c := range []struct {
		name string
		mode LaneMode
	}{
		{"lanes=1", laneModeSingle},
		{"lanes=2", TwoLanes},
		{"lanes=4", FourLanes},
	} {
		b.Run(c.name, func(b *testing.B) {
			var res isolationResult
			for i := 0; i < b.N; i++ {
				res.merge(runIsolation(b, c.mode))
			}
			res.report(b)
		})
	}
}

const (
	benchTick           = 10 * time.Millisecond
	benchHeartbeatTick  = 10
	benchElectionTick   = 100
	benchSnapshotBytes  = 64 << 20
	benchWriters        = 16
	benchBystanders     = 2
	benchMaxUncommitted = 1024 // entries in flight per leader, our backpressure
	benchRetain         = 5000 // entries kept behind the applied index
	benchWarmup         = time.Second
	benchSteady         = time.Second
	benchCatchupLimit   = 20 * time.Second
	benchHeavyGroup     = 1
	benchBystanderGroup = 2
)

// isolationResult aggregates one or more runs.
type isolationResult struct {
	runs           int
	hbDelays       []time.Duration
	bystanderDelay []time.Duration
	elections      int64
	termChanges    int64
	hbDrops        int64
	catchup        time.Duration // summed
	catchupMissed  int
	bystanderStall time.Duration // max over runs
	commits        float64       // per second, summed
}

func (r *isolationResult) merge(o isolationResult) {
	r.runs += o.runs
	r.hbDelays = append(r.hbDelays, o.hbDelays...)
	r.bystanderDelay = append(r.bystanderDelay, o.bystanderDelay...)
	r.elections += o.elections
	r.termChanges += o.termChanges
	r.hbDrops += o.hbDrops
	r.catchup += o.catchup
	r.catchupMissed += o.catchupMissed
	r.bystanderStall = max(r.bystanderStall, o.bystanderStall)
	r.commits += o.commits
}

func (r *isolationResult) report(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	n := float64(max(r.runs, 1))
	b.ReportMetric(ms(percentile(r.hbDelays, 0.50)), "hb-p50-ms")
	b.ReportMetric(ms(percentile(r.hbDelays, 0.99)), "hb-p99-ms")
	b.ReportMetric(ms(percentile(r.hbDelays, 1)), "hb-max-ms")
	b.ReportMetric(float64(r.elections)/n, "elections")
	b.ReportMetric(float64(r.termChanges)/n, "term-changes")
	b.ReportMetric(float64(r.hbDrops)/n, "hb-drops")
	b.ReportMetric(ms(r.catchup)/n, "catchup-ms")
	b.ReportMetric(ms(percentile(r.bystanderDelay, 1)), "bystander-app-max-ms")
	b.ReportMetric(ms(r.bystanderStall), "bystander-stall-ms")
	b.ReportMetric(r.commits/n, "commits/s")
	if r.catchupMissed > 0 {
		b.Logf("node 3 did not catch up within %s in %d run(s); catchup-ms counts the limit", benchCatchupLimit, r.catchupMissed)
	}
	b.ReportMetric(0, "ns/op") // wall time per run is not the point
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// benchCluster is three nodes, two groups, and what the run observes.
type benchCluster struct {
	b     testing.TB
	mode  LaneMode
	nodes [3]*benchNode

	props map[uint64]chan []byte // per group, read by its leader

	measuring   atomic.Bool
	mu          sync.Mutex
	hbDelays    []time.Duration
	bysDelays   []time.Duration
	elections   atomic.Int64
	termChanges atomic.Int64
	hbDrops     atomic.Int64

	snapStart   atomic.Int64  // unix nanos of the first OpenSnapshot to node 3
	catchTarget atomic.Uint64 // leader commit when node 3 installed the snapshot
}

// benchNode is one process: a transport, a gRPC server, one replica per group.
type benchNode struct {
	id       uint64
	c        *benchCluster
	tr       *GRPC
	srv      *grpc.Server
	lis      net.Listener
	served   chan struct{}
	replicas map[uint64]*benchReplica
}

// benchReplica is one group's Raft on one node, driven by its own loop; it
// is also the group's transport Handler and SnapshotStore.
type benchReplica struct {
	n       *benchNode
	group   uint64
	storage *raft.MemoryStorage
	rn      *raft.RawNode
	conf    *raftpb.ConfState

	prio, recv chan *raftpb.Message
	snaps      chan *raftpb.Message
	repMu      sync.Mutex
	reps       []func(*raft.RawNode)
	repSig     chan struct{}
	do         chan func()
	stop       chan struct{}
	done       chan struct{}

	leader    bool
	protect   atomic.Bool // keep entries lagging followers still need
	applied   atomic.Uint64
	commit    atomic.Uint64
	lead      atomic.Uint64
	lastComp  uint64
	lastState raft.StateType
	lastTerm  uint64
}

func runIsolation(b *testing.B, mode LaneMode) isolationResult {
	b.StopTimer()
	c := &benchCluster{b: b, mode: mode, props: map[uint64]chan []byte{
		benchHeavyGroup:     make(chan []byte, 1024),
		benchBystanderGroup: make(chan []byte, 64),
	}}
	for i := range c.nodes {
		c.nodes[i] = c.newNode(uint64(i + 1))
	}
	defer c.shutdown()

	// Warm-up with nodes 1 and 2.
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	n1.tr.AddPeer(2, n2.lis.Addr().String())
	n2.tr.AddPeer(1, n1.lis.Addr().String())
	for _, n := range []*benchNode{n1, n2} {
		for _, r := range n.replicas {
			go r.run()
		}
	}
	for _, g := range []uint64{benchHeavyGroup, benchBystanderGroup} {
		r := n1.replicas[g]
		r.do <- func() { _ = r.rn.Campaign() }
	}
	waitFor(b, "node 1 leads both groups", func() bool {
		return n1.replicas[benchHeavyGroup].lead.Load() == 1 && n1.replicas[benchBystanderGroup].lead.Load() == 1 &&
			n2.replicas[benchHeavyGroup].lead.Load() == 1 && n2.replicas[benchBystanderGroup].lead.Load() == 1
	})
	stopWriters := make(chan struct{})
	var writers sync.WaitGroup
	startWriters(&writers, stopWriters, c.props[benchHeavyGroup], benchWriters, 0)
	defer func() { close(stopWriters); writers.Wait() }()
	time.Sleep(benchWarmup) // warm-up length, not a synchronisation
	heavy := n1.replicas[benchHeavyGroup]
	compacted := make(chan struct{})
	heavy.do <- func() { heavy.compact(heavy.applied.Load()); close(compacted) }
	<-compacted
	heavy.protect.Store(true)

	// Measured window: node 3 joins.
	b.StartTimer()
	c.measuring.Store(true)
	start := time.Now()
	commitsAtStart := heavy.commit.Load()
	for _, n := range []*benchNode{n1, n2} {
		n.tr.AddPeer(3, n3.lis.Addr().String())
		n3.tr.AddPeer(n.id, n.lis.Addr().String())
	}
	for _, r := range n3.replicas {
		go r.run()
	}
	startWriters(&writers, stopWriters, c.props[benchBystanderGroup], benchBystanders, 2*time.Millisecond)

	var res isolationResult
	res.runs = 1
	n3heavy := n3.replicas[benchHeavyGroup]
	n1bys, n3bys := n1.replicas[benchBystanderGroup], n3.replicas[benchBystanderGroup]
	// The bystander stall is the longest time node 3's bystander replica
	// made no progress while its leader had committed more.
	lastApplied, lastProgress := n3bys.applied.Load(), start
	sample := func() {
		now := time.Now()
		a := n3bys.applied.Load()
		switch {
		case a != lastApplied || n1bys.commit.Load() <= a:
			lastApplied, lastProgress = a, now
		default:
			res.bystanderStall = max(res.bystanderStall, now.Sub(lastProgress))
		}
	}
	deadline := start.Add(benchCatchupLimit)
	for {
		sample()
		target := c.catchTarget.Load()
		if target > 0 && n3heavy.applied.Load() >= target {
			res.catchup = time.Since(time.Unix(0, c.snapStart.Load()))
			break
		}
		if time.Now().After(deadline) {
			res.catchupMissed = 1
			res.catchup = benchCatchupLimit
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Keep measuring in steady state.
	for end := time.Now().Add(benchSteady); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		sample()
	}
	c.measuring.Store(false)
	elapsed := time.Since(start)
	b.StopTimer()

	res.commits = float64(heavy.commit.Load()-commitsAtStart) / elapsed.Seconds()
	c.mu.Lock()
	res.hbDelays, res.bystanderDelay = c.hbDelays, c.bysDelays
	c.mu.Unlock()
	res.elections, res.termChanges, res.hbDrops = c.elections.Load(), c.termChanges.Load(), c.hbDrops.Load()
	return res
}

func startWriters(wg *sync.WaitGroup, stop chan struct{}, props chan []byte, n int, pause time.Duration) {
	payloads := make([][]byte, 64)
	for i := range payloads {
		payloads[i] = make([]byte, 1024+i*48) // 1 KiB .. 4 KiB
		for j := range payloads[i] {
			payloads[i][j] = byte(i + j)
		}
	}
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case props <- payloads[i%len(payloads)]:
				case <-stop:
					return
				}
				if pause > 0 {
					select {
					case <-time.After(pause):
					case <-stop:
						return
					}
				}
			}
		}()
	}
}

func (c *benchCluster) newNode(id uint64) *benchNode {
	cfg := DefaultConfig()
	cfg.LocalID = id
	cfg.Lanes = c.mode
	cfg.SpoolDir = c.b.TempDir()
	cfg.Registerer = prometheus.NewRegistry()
	cfg.Logger = slog.New(slog.DiscardHandler)
	tr, err := New(cfg)
	if err != nil {
		c.b.Fatal(err)
	}
	n := &benchNode{id: id, c: c, tr: tr, served: make(chan struct{}), replicas: map[uint64]*benchReplica{}}
	tr.hooks.delivered = c.delivered
	tr.hooks.dropped = func(_ uint64, _ Lane, t raftpb.MessageType) {
		if isHeartbeat(t) && c.measuring.Load() {
			c.hbDrops.Add(1)
		}
	}
	n.lis, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.b.Fatal(err)
	}
	n.srv = grpc.NewServer(cfg.ServerOptions()...)
	tr.RegisterService(n.srv)
	go func() {
		defer close(n.served)
		_ = n.srv.Serve(n.lis)
	}()
	for _, g := range []uint64{benchHeavyGroup, benchBystanderGroup} {
		r := n.newReplica(g)
		n.replicas[g] = r
		tr.Register(g, r)
	}
	return n
}

func (c *benchCluster) delivered(group uint64, m *raftpb.Message, sent, received time.Time) {
	if !c.measuring.Load() {
		return
	}
	switch {
	case m.GetType() == raftpb.MsgHeartbeat:
		c.mu.Lock()
		c.hbDelays = append(c.hbDelays, received.Sub(sent))
		c.mu.Unlock()
	case m.GetType() == raftpb.MsgApp && group == benchBystanderGroup && m.GetTo() == 3:
		c.mu.Lock()
		c.bysDelays = append(c.bysDelays, received.Sub(sent))
		c.mu.Unlock()
	}
}

func (c *benchCluster) shutdown() {
	for _, n := range c.nodes {
		for _, r := range n.replicas {
			r.halt()
		}
	}
	for _, n := range c.nodes {
		_ = n.tr.Close()
		n.srv.Stop()
		<-n.served
	}
}

func (n *benchNode) newReplica(group uint64) *benchReplica {
	conf := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	st := raft.NewMemoryStorage()
	// Every replica starts from the same tiny snapshot holding the
	// membership, as a node restored from a backup would.
	if err := st.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: conf,
	}}); err != nil {
		n.c.b.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:              n.id,
		ElectionTick:    benchElectionTick,
		HeartbeatTick:   benchHeartbeatTick,
		Storage:         st,
		Applied:         1,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 256,
		// Bytes in flight per follower, per group: what one group can
		// queue in a shared replication lane ahead of another group.
		MaxInflightBytes: 4 << 20,
		CheckQuorum:      true,
		PreVote:          true,
		Logger:           &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	})
	if err != nil {
		n.c.b.Fatal(err)
	}
	return &benchReplica{
		n: n, group: group, storage: st, rn: rn, conf: conf,
		prio: make(chan *raftpb.Message, 1024), recv: make(chan *raftpb.Message, 8192),
		snaps: make(chan *raftpb.Message, 1), repSig: make(chan struct{}, 1),
		do: make(chan func()), stop: make(chan struct{}), done: make(chan struct{}),
		lastComp: 1,
	}
}

// Step implements Handler; it never blocks.
func (r *benchReplica) Step(m *raftpb.Message) error {
	q := r.recv
	if IsPriority(m.GetType()) {
		q = r.prio
	}
	select {
	case q <- m:
		return nil
	default:
		return errors.New("inbound queue full")
	}
}

func (r *benchReplica) post(f func(*raft.RawNode)) {
	r.repMu.Lock()
	r.reps = append(r.reps, f)
	r.repMu.Unlock()
	select {
	case r.repSig <- struct{}{}:
	default:
	}
}

// ReportUnreachable implements Handler.
func (r *benchReplica) ReportUnreachable(peer uint64) {
	r.post(func(rn *raft.RawNode) { rn.ReportUnreachable(peer) })
}

// ReportSnapshot implements Handler.
func (r *benchReplica) ReportSnapshot(peer uint64, st raft.SnapshotStatus) {
	r.post(func(rn *raft.RawNode) { rn.ReportSnapshot(peer, st) })
}

// OpenSnapshot implements SnapshotStore: benchSnapshotBytes of generated data.
func (r *benchReplica) OpenSnapshot(m *raftpb.Message) (io.ReadCloser, int64, error) {
	if m.GetTo() == 3 && r.n.c.measuring.Load() {
		r.n.c.snapStart.CompareAndSwap(0, time.Now().UnixNano())
	}
	return &patternReader{left: benchSnapshotBytes}, benchSnapshotBytes, nil
}

// ReceiveSnapshot implements SnapshotStore: the payload itself is not
// needed, only the message.
func (r *benchReplica) ReceiveSnapshot(m *raftpb.Message, path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	select {
	case r.snaps <- m:
		return nil
	default:
		return errors.New("a snapshot is already pending")
	}
}

var benchPattern = func() []byte {
	p := make([]byte, 1<<20)
	for i := range p {
		p[i] = byte(i*31 + i>>9)
	}
	return p
}()

type patternReader struct {
	left int64
	off  int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.left)]
	n := copy(b, benchPattern[p.off:])
	p.off = (p.off + n) % len(benchPattern)
	p.left -= int64(n)
	return n, nil
}

func (p *patternReader) Close() error { return nil }

func (r *benchReplica) halt() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.n.c.b.Error("replica loop did not stop")
	}
}

// run is the replica's event loop: ticks, inbound messages (priority
// first), transport reports, proposals, then Ready handling.
func (r *benchReplica) run() {
	defer close(r.done)
	tick := time.NewTicker(benchTick)
	defer tick.Stop()
	props := r.n.c.props[r.group]
	for {
		var in chan []byte
		if r.leader {
			if last, _ := r.storage.LastIndex(); last-r.commit.Load() < benchMaxUncommitted {
				in = props
			}
		}
		select {
		case <-r.stop:
			return
		case m := <-r.prio:
			_ = r.rn.Step(m)
		case <-tick.C:
			r.rn.Tick()
		case m := <-r.recv:
			_ = r.rn.Step(m)
			for i := 0; i < 256; i++ {
				select {
				case m := <-r.recv:
					_ = r.rn.Step(m)
					continue
				default:
				}
				break
			}
		case m := <-r.snaps:
			_ = r.rn.Step(m)
		case <-r.repSig:
			r.repMu.Lock()
			reps := r.reps
			r.reps = nil
			r.repMu.Unlock()
			for _, f := range reps {
				f(r.rn)
			}
		case f := <-r.do:
			f()
		case p := <-in:
			_ = r.rn.Propose(p)
			for i := 0; i < 255; i++ {
				select {
				case p := <-in:
					_ = r.rn.Propose(p)
					continue
				default:
				}
				break
			}
		}
		for drained := false; !drained; {
			select {
			case m := <-r.prio:
				_ = r.rn.Step(m)
			default:
				drained = true
			}
		}
		r.handleReady()
	}
}

func (r *benchReplica) handleReady() {
	c := r.n.c
	for r.rn.HasReady() {
		rd := r.rn.Ready()
		if ss := rd.SoftState; ss != nil {
			r.leader = ss.RaftState == raft.StateLeader
			r.lead.Store(ss.Lead)
			if ss.RaftState != r.lastState && (ss.RaftState == raft.StatePreCandidate || ss.RaftState == raft.StateCandidate) && c.measuring.Load() {
				c.elections.Add(1)
			}
			r.lastState = ss.RaftState
		}
		if !raft.IsEmptySnap(rd.Snapshot) {
			if err := r.storage.ApplySnapshot(rd.Snapshot); err != nil {
				c.b.Error(err)
			}
			r.applied.Store(rd.Snapshot.GetMetadata().GetIndex())
			if r.n.id == 3 && r.group == benchHeavyGroup {
				c.catchTarget.Store(c.nodes[0].replicas[benchHeavyGroup].commit.Load())
			}
		}
		if err := r.storage.Append(rd.Entries); err != nil {
			c.b.Error(err)
		}
		if hs := rd.HardState; hs != nil && !raft.IsEmptyHardState(hs) {
			if err := r.storage.SetHardState(hs); err != nil {
				c.b.Error(err)
			}
			if hs.GetTerm() != r.lastTerm && r.lastTerm != 0 && c.measuring.Load() {
				c.termChanges.Add(1)
			}
			r.lastTerm = hs.GetTerm()
			r.commit.Store(hs.GetCommit())
		}
		r.n.tr.Send(r.group, rd.Messages)
		if n := len(rd.CommittedEntries); n > 0 {
			r.applied.Store(rd.CommittedEntries[n-1].GetIndex())
		}
		r.rn.Advance(rd)
		r.maybeCompact()
	}
}

// maybeCompact keeps the heavy group's log short. Once protect is set the
// leader keeps what its followers still need (like etcd's catch-up
// entries), so node 3 needs exactly one snapshot.
func (r *benchReplica) maybeCompact() {
	if r.group != benchHeavyGroup {
		return
	}
	applied := r.applied.Load()
	if applied < r.lastComp+2*benchRetain {
		return
	}
	to := applied - benchRetain
	if r.leader && r.protect.Load() {
		for id, pr := range r.rn.Status().Progress {
			if id == r.n.id {
				continue
			}
			need := pr.Match
			if pr.State == tracker.StateSnapshot {
				need = pr.PendingSnapshot
			}
			to = min(to, need)
		}
	}
	r.compact(to)
}

func (r *benchReplica) compact(to uint64) {
	if to <= r.lastComp {
		return
	}
	desc := binary.BigEndian.AppendUint64(nil, to)
	if _, err := r.storage.CreateSnapshot(to, r.conf, desc); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
		r.n.c.b.Error(err)
		return
	}
	if err := r.storage.Compact(to); err != nil && !errors.Is(err, raft.ErrCompacted) {
		r.n.c.b.Error(err)
		return
	}
	r.lastComp = to
}
