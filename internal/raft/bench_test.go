package raft

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"

	"github.com/elastickv/elastickv/internal/transport"
)

// Benchmarks of a real Group: WAL with fsync, event loop, applier, and for
// three nodes the real gRPC transport on loopback. The state machine does
// nothing but record its index, so the figures are the Raft layer's cost;
// allocs/op counts every goroutine of the process, which here is the
// group(s), the transport and the benchmark's proposers.

// benchMachine is the cheapest StateMachine that still keeps its contract:
// it tracks the applied index and the metadata records, snapshots as its
// index alone, and returns each entry's payload as its result so that a
// proposer can check it got its own entry back. Boxing that result costs
// one allocation per entry, the only one the machine adds.
type benchMachine struct {
	mu      sync.Mutex
	applied uint64
	meta    map[string][]byte
}

func newBenchMachine() *benchMachine { return &benchMachine{meta: make(map[string][]byte)} }

func (m *benchMachine) Apply(ents []ApplyEntry) ([]any, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]any, len(ents))
	for i, e := range ents {
		if e.Index <= m.applied {
			continue
		}
		for _, r := range e.Meta {
			m.meta[r.Name] = bytes.Clone(r.Value)
		}
		out[i] = e.Data
		m.applied = e.Index
	}
	return out, nil
}

func (m *benchMachine) AppliedIndex() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.applied
}

func (m *benchMachine) Meta(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta[name], nil
}

func (m *benchMachine) Snapshot() (StateSnapshot, error) {
	return indexSnapshot(m.AppliedIndex()), nil
}

func (m *benchMachine) Restore(r io.Reader, index uint64) error {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("restore bench machine: %w", err)
	}
	if got := binary.BigEndian.Uint64(b[:]); got != index {
		return fmt.Errorf("restore bench machine: image of %d, want %d", got, index)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applied = index
	return nil
}

func (m *benchMachine) Sync() error { return nil }

// indexSnapshot is benchMachine's image: its applied index.
type indexSnapshot uint64

func (s indexSnapshot) Index() uint64 { return uint64(s) }

func (s indexSnapshot) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(binary.BigEndian.AppendUint64(nil, uint64(s)))
	return int64(n), err
}

func (s indexSnapshot) Close() error { return nil }

// soloTransport serves a single-node group, which never has anyone to send
// to.
type soloTransport struct{}

func (soloTransport) Send(uint64, []*raftpb.Message)     {}
func (soloTransport) Register(uint64, transport.Handler) {}
func (soloTransport) Unregister(uint64)                  {}
func (soloTransport) AddPeer(uint64, string)             {}
func (soloTransport) RemovePeer(uint64)                  {}
func (soloTransport) Close() error                       { return nil }

// benchGroupConfig is the production configuration except for faster
// election timing (the cluster harness's), so that setup stays short.
func benchGroupConfig(b testing.TB, self Member, members []Member, tr transport.Transport, mode ReadMode) Config {
	cfg := DefaultConfig()
	cfg.ReadMode = mode
	cfg.Self = self
	cfg.Bootstrap = members
	cfg.Dir = b.TempDir()
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.ElectionTimeout = 500 * time.Millisecond
	cfg.StateMachine = newBenchMachine()
	cfg.Transport = tr
	cfg.Logger = slog.New(slog.DiscardHandler)
	return cfg
}

// openSolo starts a single-node group, closed when b ends, and waits until
// it leads.
func openSolo(b *testing.B, mode ReadMode) []*Group {
	self := Member{Name: "n1", Addr: "127.0.0.1:1"}
	g, err := Open(benchGroupConfig(b, self, []Member{self}, soloTransport{}, mode))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := g.Close(); err != nil {
			b.Error(err)
		}
	})
	groups := []*Group{g}
	waitBenchLeader(b, groups)
	return groups
}

// openTrio starts three groups talking over the real gRPC transport on
// loopback, stopped when b ends in the node's order (groups, then servers,
// then transports), and waits for a leader.
func openTrio(b *testing.B, mode ReadMode) []*Group {
	return openTrioWith(b, mode, nil)
}

// openTrioWith is openTrio with each group's configuration passed through
// tune (when not nil) before it opens.
func openTrioWith(b testing.TB, mode ReadMode, tune func(*Config)) []*Group {
	const n = 3
	var (
		members []Member
		lns     []net.Listener
		trs     []*transport.GRPC
		srvs    []*grpc.Server
		groups  []*Group
		serving sync.WaitGroup
	)
	b.Cleanup(func() {
		for _, g := range groups {
			if err := g.Close(); err != nil {
				b.Error(err)
			}
		}
		for _, s := range srvs {
			s.Stop()
		}
		for _, t := range trs {
			if err := t.Close(); err != nil {
				b.Error(err)
			}
		}
		serving.Wait()
		for _, ln := range lns[len(srvs):] {
			_ = ln.Close() // listeners no server took over
		}
	})
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		lns = append(lns, ln)
		members = append(members, Member{Name: fmt.Sprintf("n%d", i+1), Addr: ln.Addr().String()})
	}
	for i, m := range members {
		tcfg := transport.DefaultConfig()
		tcfg.LocalID = m.ID()
		tcfg.SpoolDir = b.TempDir()
		tcfg.Logger = slog.New(slog.DiscardHandler)
		tr, err := transport.New(tcfg)
		if err != nil {
			b.Fatal(err)
		}
		trs = append(trs, tr)
		srv := grpc.NewServer(tcfg.ServerOptions()...)
		tr.RegisterService(srv)
		srvs = append(srvs, srv)
		serving.Add(1)
		go func() {
			defer serving.Done()
			_ = srv.Serve(lns[i]) // returns when Stop runs
		}()
	}
	for i, m := range members {
		cfg := benchGroupConfig(b, m, members, trs[i], mode)
		if tune != nil {
			tune(&cfg)
		}
		g, err := Open(cfg)
		if err != nil {
			b.Fatal(err)
		}
		groups = append(groups, g)
	}
	waitBenchLeader(b, groups)
	return groups
}

// waitBenchLeader waits until every group agrees on a leader among them.
func waitBenchLeader(b testing.TB, groups []*Group) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if benchLeader(groups) >= 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("no agreed leader within 15s")
}

// benchLeader returns the index of the group every group names leader, or -1.
func benchLeader(groups []*Group) int {
	leader := -1
	for i, g := range groups {
		st := g.Status()
		if st.LeaderID == 0 || st.LeaderID != groups[0].Status().LeaderID {
			return -1
		}
		if st.State == "leader" {
			leader = i
		}
	}
	return leader
}

// runWorkers runs b.N calls of op spread over a fixed number of goroutines
// (the same count on every machine, unlike b.RunParallel), and reports the
// rate. Each worker has its own id; op's error fails the benchmark.
func runWorkers(b *testing.B, workers int, op func(ctx context.Context, worker int, i int64) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errc = make(chan error, workers)
	)
	b.ReportAllocs()
	b.ResetTimer()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(ctx, w, i); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// benchTopologies are the groups the benchmarks run on; each opens once per
// top-level benchmark and is shared by its sub-benchmarks.
var benchTopologies = []struct {
	name string
	open func(*testing.B, ReadMode) []*Group
}{
	{"nodes=1", openSolo},
	{"nodes=3", openTrio},
}

// benchConcurrency: one caller, and 64 concurrent callers, enough to show
// how well proposals and reads are batched per Ready.
var benchConcurrency = []int{1, 64}

func concurrencyName(workers int) string {
	if workers == 1 {
		return "sequential"
	}
	return fmt.Sprintf("concurrent=%d", workers)
}

// BenchmarkProposeApply measures Propose on the leader until its entry is
// applied there: WAL append and fsync, replication (three nodes), commit,
// apply. One op is one 64-byte proposal.
func BenchmarkProposeApply(b *testing.B) {
	for _, topo := range benchTopologies {
		b.Run(topo.name, func(b *testing.B) {
			groups := topo.open(b, ReadModeReadIndex)
			for _, workers := range benchConcurrency {
				b.Run(concurrencyName(workers), func(b *testing.B) {
					// A leader change would fail proposals with
					// NotLeaderError; look the leader up per sub-benchmark.
					l := benchLeader(groups)
					if l < 0 {
						b.Fatal("no leader")
					}
					g := groups[l]
					bufs := make([][]byte, workers)
					for w := range bufs {
						bufs[w] = make([]byte, 64)
					}
					runWorkers(b, workers, func(ctx context.Context, w int, i int64) error {
						payload := bufs[w]
						binary.BigEndian.PutUint64(payload, uint64(i))
						res, err := g.Propose(ctx, payload)
						if err != nil {
							return fmt.Errorf("propose %d: %w", i, err)
						}
						if got, _ := res.([]byte); !bytes.Equal(got, payload) {
							return fmt.Errorf("propose %d: result %x is not its payload", i, got)
						}
						return nil
					})
				})
			}
		})
	}
}

// BenchmarkReadIndex measures Group.ReadIndex, the barrier before every
// linearizable read, in both read modes: on the leader a heartbeat round to
// a quorum (none for a single node) or, holding the lease, no round at all;
// on a follower a round trip to the leader as well (followers never use the
// lease). One op is one caller's barrier; concurrent callers share rounds.
func BenchmarkReadIndex(b *testing.B) {
	for _, mode := range []ReadMode{ReadModeReadIndex, ReadModeLease} {
		for _, topo := range benchTopologies {
			b.Run("mode="+mode.String()+"/"+topo.name, func(b *testing.B) {
				groups := topo.open(b, mode)
				roles := []string{"leader"}
				if len(groups) > 1 {
					roles = append(roles, "follower")
				}
				for _, role := range roles {
					for _, workers := range benchConcurrency {
						b.Run(role+"/"+concurrencyName(workers), func(b *testing.B) {
							l := benchLeader(groups)
							if l < 0 {
								b.Fatal("no leader")
							}
							g := groups[l]
							if role == "follower" {
								g = groups[(l+1)%len(groups)]
							}
							runWorkers(b, workers, func(ctx context.Context, _ int, i int64) error {
								if err := g.ReadIndex(ctx); err != nil {
									return fmt.Errorf("read index %d: %w", i, err)
								}
								return nil
							})
						})
					}
				}
			})
		}
	}
}

// The transport's interface is what soloTransport must satisfy; a change
// there should fail here, not in a confusing way at Open.
var _ transport.Transport = soloTransport{}
