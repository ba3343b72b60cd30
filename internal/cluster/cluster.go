// Package cluster is a test harness: it runs a cluster of real elastickv
// nodes in one process, talking over real gRPC on loopback, and hands out
// real Redis clients. Tests read as scenarios: start, find the leader, stop
// or restart nodes, check data.
package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/raft"
)

// Cluster is a set of in-process nodes sharing a temporary directory.
type Cluster struct {
	t       testing.TB
	Dir     string
	cfgs    []node.Config
	nodes   []*node.Node
	clients []*goredis.Client
}

// Option adjusts every node's configuration before start.
type Option func(i int, c *node.Config)

// WithTimings sets heartbeat and election timeout for every node.
func WithTimings(hb, election time.Duration) Option {
	return func(_ int, c *node.Config) { c.HeartbeatInterval, c.ElectionTimeout = hb, election }
}

// WithSnapshotCount makes every node snapshot (and compact) every n
// applied entries, however many bytes they hold.
func WithSnapshotCount(n uint64) Option {
	return func(_ int, c *node.Config) { c.SnapshotCount, c.SnapshotLogBytes = n, 0 }
}

// WithReadMode sets how every node's leader serves reads.
func WithReadMode(m raft.ReadMode) Option {
	return func(_ int, c *node.Config) { c.ReadMode = m }
}

// WithoutSweeper turns the expiry sweeper off on every node, so expired
// keys stay in the store until a write meets them.
func WithoutSweeper() Option {
	return func(_ int, c *node.Config) { c.ExpireSweepRate = -1 }
}

// WithWallClockOffset puts node i's wall clock, which its Raft stamps read,
// off by d (negative: behind).
func WithWallClockOffset(i int, d time.Duration) Option {
	return func(j int, c *node.Config) {
		if j == i {
			c.WallClock = offsetClock(d)
		}
	}
}

// offsetClock is the system clock moved by a fixed offset.
type offsetClock time.Duration

// Now returns the system time moved by the offset.
func (o offsetClock) Now() time.Time { return time.Now().Add(time.Duration(o)) }

// New starts n nodes and waits for a leader. The cluster is closed by
// t.Cleanup.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Dir: t.TempDir()}
	var members []raft.Member
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve raft port: %v", err)
		}
		lns[i] = ln
		members = append(members, raft.Member{Name: fmt.Sprintf("n%d", i+1), Addr: ln.Addr().String()})
	}
	level := slog.LevelWarn
	if os.Getenv("ELASTICKV_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	for i := range n {
		cfg := node.DefaultConfig()
		cfg.Name = members[i].Name
		cfg.DataDir = filepath.Join(c.Dir, cfg.Name)
		cfg.RaftAddr = members[i].Addr
		cfg.RedisAddr = "127.0.0.1:0"
		cfg.Peers = members
		cfg.HeartbeatInterval = 50 * time.Millisecond
		cfg.ElectionTimeout = 500 * time.Millisecond
		cfg.PebbleCacheBytes = 8 << 20
		cfg.RequestTimeout = 5 * time.Second
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
		for _, o := range opts {
			o(i, &cfg)
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	c.nodes = make([]*node.Node, n)
	c.clients = make([]*goredis.Client, n)
	t.Cleanup(c.Close)
	for i := range n {
		c.cfgs[i].RaftListener = lns[i]
		c.start(i)
	}
	c.WaitLeader(10 * time.Second)
	c.waitFormat(10 * time.Second)
	return c
}

// waitFormat waits until every node applied the format its first leader
// raises a new cluster to: the lowest maximum among the nodes' binaries.
// Tests then start from a settled cluster: the raise and the leader's
// writes of the members' format records (membership changes) are done.
func (c *Cluster) waitFormat(timeout time.Duration) {
	c.t.Helper()
	want := kv.MaxFormat
	for _, cfg := range c.cfgs {
		if cfg.MaxFormat != 0 {
			want = min(want, cfg.MaxFormat)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for _, n := range c.nodes {
			if n != nil && n.Store().FormatVersion() < want {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the cluster was not raised to log format %d within %v", want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	if err := c.TryRestart(i); err != nil {
		c.t.Fatalf("start %s: %v", c.cfgs[i].Name, err)
	}
}

// TryRestart starts a stopped node i and returns the error instead of
// failing the test (for tests that expect a node to refuse to start).
func (c *Cluster) TryRestart(i int) error {
	cfg := c.cfgs[i]
	if cfg.RaftListener == nil {
		ln, err := listenRetry(cfg.RaftAddr)
		if err != nil {
			return fmt.Errorf("relisten %s: %w", cfg.RaftAddr, err)
		}
		cfg.RaftListener = ln
	}
	c.cfgs[i].RaftListener = nil
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	c.nodes[i] = n
	c.clients[i] = goredis.NewClient(&goredis.Options{
		Addr: n.RedisAddr(), ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxRetries: -1, DisableIdentity: false,
	})
	return nil
}

// listenRetry re-binds a port just released by a stopped node.
func listenRetry(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, err
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// Node returns node i, or nil while it is stopped.
func (c *Cluster) Node(i int) *node.Node { return c.nodes[i] }

// Client returns a go-redis client for node i (nil while it is stopped).
func (c *Cluster) Client(i int) *goredis.Client { return c.clients[i] }

// Name returns node i's id.
func (c *Cluster) Name(i int) string { return c.cfgs[i].Name }

// Stop closes node i (a clean shutdown; its data stays).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if c.nodes[i] == nil {
		return
	}
	_ = c.clients[i].Close()
	if err := c.nodes[i].Close(); err != nil {
		c.t.Errorf("close %s: %v", c.cfgs[i].Name, err)
	}
	c.nodes[i], c.clients[i] = nil, nil
}

// LoseDisk stops node i and deletes its data directory, as a failed and
// replaced disk would leave it.
func (c *Cluster) LoseDisk(i int) {
	c.t.Helper()
	c.Stop(i)
	if err := os.RemoveAll(filepath.Join(c.Dir, c.Name(i))); err != nil {
		c.t.Fatalf("delete the data of %s: %v", c.Name(i), err)
	}
}

// Restart starts a stopped node i from its data directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
}

// Leader returns the index of the node every running node agrees leads, or
// -1.
func (c *Cluster) Leader() int {
	var leader uint64
	for _, n := range c.nodes {
		if n == nil {
			continue
		}
		st := n.Group().Status()
		if st.LeaderID == 0 || (leader != 0 && st.LeaderID != leader) {
			return -1
		}
		leader = st.LeaderID
	}
	for i, n := range c.nodes {
		if n != nil && n.Group().ID() == leader && n.Group().Status().State == "leader" {
			return i
		}
	}
	return -1
}

// WaitLeader waits until the running nodes agree on a running leader.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.Leader(); l >= 0 {
			return l
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no agreed leader within %v", timeout)
	return -1
}

// WaitApplied waits until every running node has applied at least index.
func (c *Cluster) WaitApplied(index uint64, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range c.nodes {
			if n != nil && n.Group().AppliedIndex() < index {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("nodes did not apply index %d within %v", index, timeout)
}

// WaitConverged waits until every running node has applied at least the
// highest index any of them had committed when the attempt began, and
// they all hold the same logical content (kv.Store.Hash), and returns the
// lowest index applied among them. The indexes may differ: once the
// cluster is at format 2 the leader proposes an idle stamp entry every
// half skew, which changes neither the content nor the hash (the apply
// time is left out of it), so replicas are rarely at one index at the
// instant they are read.
func (c *Cluster) WaitConverged(timeout time.Duration) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var target uint64
		for _, n := range c.nodes {
			if n != nil {
				target = max(target, n.Group().Status().Commit)
			}
		}
		var low, hash uint64
		same, first := true, true
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			a, h, err := n.Store().Hash()
			if err != nil {
				c.t.Fatalf("hash state: %v", err)
			}
			switch {
			case a < target:
				same = false
				last = fmt.Sprintf("applied %d, behind commit index %d", a, target)
			case first:
				low, hash, first = a, h, false
			case h != hash:
				same = false
				last = fmt.Sprintf("applied %d hash %x vs applied %d hash %x", low, hash, a, h)
			default:
				low = min(low, a)
			}
		}
		if same {
			return low
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("replicas did not converge within %v: %s", timeout, last)
	return 0
}

// Ctx returns a context bounded by d, cancelled at test end.
func (c *Cluster) Ctx(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	c.t.Cleanup(cancel)
	return ctx
}

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.nodes {
		if c.nodes[i] != nil {
			c.Stop(i)
		}
	}
}
