package transport

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testNode is one transport with its own gRPC server on 127.0.0.1:0.
type testNode struct {
	id   uint64
	addr string
	tr   *GRPC
	reg  *prometheus.Registry
	srv  *grpc.Server
	cfg  Config
	done chan struct{}

	stopOnce sync.Once
}

// testConfig is DefaultConfig with small lanes and short timeouts.
func testConfig(t testing.TB, id uint64, mode LaneMode) Config {
	cfg := DefaultConfig()
	cfg.LocalID = id
	cfg.Lanes = mode
	cfg.SpoolDir = t.TempDir()
	cfg.DialTimeout = 2 * time.Second
	cfg.SendTimeout = 2 * time.Second
	cfg.SnapshotAckTimeout = 5 * time.Second
	cfg.SnapshotIdleTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(testLogOut(), nil))
	return cfg
}

// startNode builds a transport from cfg (Registerer replaced by a fresh
// registry), serves it and stops both at cleanup. prepare runs before the
// server starts, e.g. to install hooks.
func startNode(t testing.TB, cfg Config, prepare func(*GRPC)) *testNode {
	t.Helper()
	return startNodeAt(t, cfg, "127.0.0.1:0", prepare)
}

// startNodeAt is startNode listening on addr.
func startNodeAt(t testing.TB, cfg Config, addr string, prepare func(*GRPC)) *testNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	tr, err := New(cfg)
	require.NoError(t, err)
	if prepare != nil {
		prepare(tr)
	}
	lis, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := grpc.NewServer(cfg.ServerOptions()...)
	tr.RegisterService(srv)
	n := &testNode{id: cfg.LocalID, addr: lis.Addr().String(), tr: tr, reg: reg, srv: srv, cfg: cfg, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) stop() {
	n.stopOnce.Do(n.doStop)
}

func (n *testNode) doStop() {
	_ = n.tr.Close()
	n.srv.Stop()
	<-n.done
}

// recorder is a Handler that records everything the transport tells it.
type recorder struct {
	mu        sync.Mutex
	stepped   []*raftpb.Message
	unreach   map[uint64]int
	snapshots map[raft.SnapshotStatus]int
	stepErr   error
	block     chan struct{} // if set, Step waits for it to close
}

func newRecorder() *recorder {
	return &recorder{unreach: map[uint64]int{}, snapshots: map[raft.SnapshotStatus]int{}}
}

func (r *recorder) Step(m *raftpb.Message) error {
	r.mu.Lock()
	block := r.block
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stepErr != nil {
		return r.stepErr
	}
	r.stepped = append(r.stepped, m)
	return nil
}

func (r *recorder) ReportUnreachable(peer uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreach[peer]++
}

func (r *recorder) ReportSnapshot(_ uint64, st raft.SnapshotStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapshots[st]++
}

func (r *recorder) unreachable(peer uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreach[peer]
}

func (r *recorder) snapshotReports(st raft.SnapshotStatus) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshots[st]
}

// count returns how many stepped messages have type typ.
func (r *recorder) count(typ raftpb.MessageType) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.stepped {
		if m.GetType() == typ {
			n++
		}
	}
	return n
}

func (r *recorder) ofType(typ raftpb.MessageType) []*raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*raftpb.Message
	for _, m := range r.stepped {
		if m.GetType() == typ {
			out = append(out, m)
		}
	}
	return out
}

// storeRecorder adds SnapshotStore to recorder. Outbound payloads come from
// payload (or a blocking reader when blockRead is set); inbound files are
// read, checked and deleted.
type storeRecorder struct {
	*recorder
	payload   []byte
	blockRead bool
	opened    chan struct{} // receives once per OpenSnapshot

	mu       sync.Mutex
	received [][]byte
	paths    []string
}

func newStoreRecorder(payload []byte) *storeRecorder {
	return &storeRecorder{recorder: newRecorder(), payload: payload, opened: make(chan struct{}, 64)}
}

func (s *storeRecorder) OpenSnapshot(*raftpb.Message) (io.ReadCloser, int64, error) {
	s.opened <- struct{}{}
	if s.blockRead {
		return newBlockingReader(), int64(len(s.payload)), nil
	}
	return io.NopCloser(bytes.NewReader(s.payload)), int64(len(s.payload)), nil
}

func (s *storeRecorder) ReceiveSnapshot(m *raftpb.Message, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	s.mu.Lock()
	s.received = append(s.received, data)
	s.paths = append(s.paths, path)
	s.mu.Unlock()
	return s.Step(m)
}

func (s *storeRecorder) receivedPayloads() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.received...)
}

// blockingReader blocks every Read until Close, like a store whose disk
// hangs; Close must unblock it (the SnapshotStore contract).
type blockingReader struct {
	once   sync.Once
	closed chan struct{}
}

func newBlockingReader() *blockingReader { return &blockingReader{closed: make(chan struct{})} }

func (b *blockingReader) Read([]byte) (int, error) {
	<-b.closed
	return 0, errors.New("reader closed")
}

func (b *blockingReader) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metricValue reads one counter or gauge series from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if len(got) != len(labels) {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func mustMetric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	v, ok := metricValue(t, reg, name, labels)
	require.Truef(t, ok, "metric %s%v missing", name, labels)
	return v
}

// msg builds a message of typ from -> to.
func msg(typ raftpb.MessageType, from, to uint64) *raftpb.Message {
	return &raftpb.Message{Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(1)}
}

// appMsg builds a MsgApp with index idx, for ordering checks.
func appMsg(from, to, idx uint64) *raftpb.Message {
	m := msg(raftpb.MsgApp, from, to)
	m.Index = proto.Uint64(idx)
	m.Entries = []*raftpb.Entry{{Index: proto.Uint64(idx + 1), Term: proto.Uint64(1), Data: []byte("x")}}
	return m
}

// snapMsg builds a MsgSnap carrying data.
func snapMsg(from, to uint64, data []byte) *raftpb.Message {
	m := msg(raftpb.MsgSnap, from, to)
	m.Snapshot = &raftpb.Snapshot{
		Data: data,
		Metadata: &raftpb.SnapshotMetadata{
			Index:     proto.Uint64(100),
			Term:      proto.Uint64(1),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
		},
	}
	return m
}

// allModes are the lane layouts tests run under.
var allModes = []LaneMode{FourLanes, TwoLanes}

func spoolEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func testLogOut() io.Writer {
	if os.Getenv("TRANSPORT_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
