package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// clusterConfig describes the server processes to run.
type clusterConfig struct {
	binary  string
	nodes   int
	dataDir string
	logDir  string
	// serverArgs are appended to every node's command line (timings).
	serverArgs []string
	// env is added to the servers' environment.
	env []string
	log *slog.Logger
}

// procNode is one slot of the cluster: an elastickv server process that the
// harness can kill, pause and restart with the same identity, ports and
// data. The membership nemesis replaces the member in a slot by a new one
// (new id, empty data dir, same ports); gen counts those replacements.
type procNode struct {
	name      string // the slot's label, and the id of its first member
	raftAddr  string
	redisAddr string
	logPath   string
	peers     string   // --peers of the bootstrap members
	dials     string   // --peer-dial: every member id of every other slot -> its proxy
	joins     string   // --join: the other slots' peer addresses
	extra     []string // timing flags
	admin     *goredis.Client

	mu       sync.Mutex
	gen      int
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the current process is reaped
	exitErr  error
	paused   bool
	expected bool // the harness killed or stopped it on purpose
}

// cluster is a set of server processes wired through per-link proxies:
// links[i][j] carries the connections node i opens to node j.
type cluster struct {
	cfg   clusterConfig
	log   *slog.Logger
	nodes []*procNode
	links [][]*Proxy

	wg         sync.WaitGroup // one reaper goroutine per started process
	mu         sync.Mutex
	unexpected []string // processes that died without the harness asking
	closeOnce  sync.Once
}

// freePorts reserves n distinct loopback ports for the servers. They are
// released before the servers bind them, so they are taken from below the
// kernel's ephemeral range: outgoing connections (our own proxies and
// clients among them) and listeners on port 0 never use those, so nothing
// but another program binding a fixed port can grab one in between. A
// node that still loses the race fails to start and the run reports it.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	lo, hi := fixedPortRange()
	ports := make([]int, 0, n)
	if hi > lo {
		span := hi - lo
		start := rand.IntN(span)
		for k := 0; k < span && len(ports) < n; k++ {
			p := lo + (start+k)%span
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				continue
			}
			lns = append(lns, l)
			ports = append(ports, p)
		}
	}
	for len(ports) < n {
		// No usable fixed range: fall back to kernel-chosen ports.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// fixedPortRange is the range to pick server ports from: below the
// ephemeral range (Linux's ip_local_port_range, 32768 by default) and
// above the well-known ports of common services.
func fixedPortRange() (lo, hi int) {
	lo, hi = 20000, 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				hi = v
			}
		}
	}
	if hi-lo < 1000 {
		return 0, 0 // an unusual ephemeral range: let the kernel choose
	}
	return lo, hi
}

// startCluster starts proxies and nodes. On error everything started is
// stopped again.
func startCluster(cfg clusterConfig) (c *cluster, err error) {
	c = &cluster{cfg: cfg, log: cfg.log}
	defer func() {
		if err != nil {
			c.close()
			c = nil
		}
	}()
	ports, err := freePorts(2 * cfg.nodes)
	if err != nil {
		return c, err
	}
	var peers []string
	for i := range cfg.nodes {
		n := &procNode{
			name:      fmt.Sprintf("n%d", i+1),
			raftAddr:  fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			redisAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			extra:     cfg.serverArgs,
		}
		n.logPath = filepath.Join(cfg.logDir, n.name+".log")
		n.admin = newClient(n.redisAddr, 2*time.Second, 4)
		c.nodes = append(c.nodes, n)
		peers = append(peers, n.name+"="+n.raftAddr)
	}
	c.links = make([][]*Proxy, cfg.nodes)
	for i, from := range c.nodes {
		c.links[i] = make([]*Proxy, cfg.nodes)
		var dials, joins []string
		for j, to := range c.nodes {
			if i == j {
				continue
			}
			p, err := NewProxy(from.name+"->"+to.name, to.raftAddr, c.log)
			if err != nil {
				return c, err
			}
			c.links[i][j] = p
			// Every id slot j will ever use is routed through the proxy,
			// so a replacement member is reached through it too.
			for g := range maxGenerations {
				dials = append(dials, memberID(j, g)+"="+p.Addr())
			}
			joins = append(joins, to.raftAddr)
		}
		from.peers = strings.Join(peers, ",")
		from.dials = strings.Join(dials, ",")
		from.joins = strings.Join(joins, ",")
	}
	for i := range c.nodes {
		if err := c.start(i); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maxGenerations bounds how many members one slot can host over a run
// (the first plus replacements by the membership nemesis).
const maxGenerations = 20

// memberID is the id of generation g of slot i: n1, then n1g1, n1g2...
// An id is never reused, since the node that had it lost its disk.
func memberID(i, g int) string {
	if g == 0 {
		return fmt.Sprintf("n%d", i+1)
	}
	return fmt.Sprintf("n%dg%d", i+1, g)
}

// id is the current member id of slot i.
func (c *cluster) id(i int) string {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return memberID(i, n.gen)
}

// args is the command line of slot i's current member. The first
// generation bootstraps with --peers (ignored once its data dir holds
// state); a replacement starts empty and joins the running cluster.
func (c *cluster) args(i, gen int) []string {
	n := c.nodes[i]
	id := memberID(i, gen)
	args := []string{"server",
		"--id", id,
		"--data-dir", filepath.Join(c.cfg.dataDir, id),
		"--raft-addr", n.raftAddr,
		"--redis-addr", n.redisAddr,
		"--metrics-addr=",
		"--peer-dial", n.dials,
	}
	if gen == 0 {
		args = append(args, "--peers", n.peers)
	} else {
		args = append(args, "--join", n.joins)
	}
	return append(args, n.extra...)
}

// replace starts a new member in slot i, whose previous member must have
// been removed from the cluster and stopped: a new id, an empty data
// directory, the same ports.
func (c *cluster) replace(i int) (string, error) {
	if c.running(i) {
		return "", fmt.Errorf("%s is still running", c.nodes[i].name)
	}
	n := c.nodes[i]
	n.mu.Lock()
	if n.gen+1 >= maxGenerations {
		n.mu.Unlock()
		return "", fmt.Errorf("slot %s has had %d members; no id left", n.name, maxGenerations)
	}
	n.gen++
	id := memberID(i, n.gen)
	n.mu.Unlock()
	return id, c.start(i)
}

// expectExit marks slot i's current process as allowed to exit on its own
// (a member that was removed from the cluster may shut itself down).
func (c *cluster) expectExit(i int) {
	n := c.nodes[i]
	n.mu.Lock()
	n.expected = true
	n.mu.Unlock()
}

// newClient is a go-redis client that never retries on its own: the
// history must record exactly one attempt per operation.
func newClient(addr string, timeout time.Duration, pool int) *goredis.Client {
	return goredis.NewClient(&goredis.Options{
		Addr:                     addr,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		MaxRetries:               -1,
		DialTimeout:              timeout,
		ReadTimeout:              timeout,
		WriteTimeout:             timeout,
		PoolTimeout:              timeout,
		PoolSize:                 pool,
		ContextTimeoutEnabled:    true,
	})
}

// start launches node i's process if it is not running.
func (c *cluster) start(i int) error {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("open log of %s: %w", n.name, err)
	}
	args := c.args(i, n.gen)
	if _, err := fmt.Fprintf(logf, "=== chaos: starting %s at %s: %s\n", memberID(i, n.gen), time.Now().Format(time.RFC3339Nano), strings.Join(args, " ")); err != nil {
		_ = logf.Close()
		return fmt.Errorf("write log of %s: %w", n.name, err)
	}
	cmd := exec.Command(c.cfg.binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Smaller caches: several nodes share a small machine.
	cmd.Env = append(append(os.Environ(), "ELASTICKV_PEBBLE_CACHE_MB=16"), c.cfg.env...)
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.exitErr, n.paused, n.expected = cmd, exited, nil, false, false
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := cmd.Wait()
		_ = logf.Close()
		n.mu.Lock()
		expected := n.expected
		n.exitErr = err
		if n.cmd == cmd {
			n.cmd = nil
		}
		n.mu.Unlock()
		close(exited)
		if !expected {
			msg := fmt.Sprintf("%s exited on its own: %v (see %s)", n.name, err, n.logPath)
			c.log.Error("node died unexpectedly", "node", n.name, "err", err)
			c.mu.Lock()
			c.unexpected = append(c.unexpected, msg)
			c.mu.Unlock()
		}
	}()
	return nil
}

// running reports whether node i has a live (possibly paused) process.
func (c *cluster) running(i int) bool {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// paused reports whether node i is SIGSTOPped.
func (c *cluster) paused(i int) bool {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

// signal sends sig to node i's process, marking the exit it may cause as
// intended; it returns the channel closed when that process is reaped.
func (c *cluster) signal(i int, sig syscall.Signal) (<-chan struct{}, error) {
	n := c.nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("%s is not running", n.name)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		n.expected = true
	}
	if err := n.cmd.Process.Signal(sig); err != nil {
		return n.exited, fmt.Errorf("signal %v to %s: %w", sig, n.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT, syscall.SIGKILL:
		n.paused = false
	default:
		// Any other signal leaves a paused process paused.
	}
	return n.exited, nil
}

// kill SIGKILLs node i and waits until the process is reaped.
func (c *cluster) kill(i int) error {
	done, err := c.signal(i, syscall.SIGKILL)
	if done != nil {
		<-done // SIGKILL cannot be ignored, even by a stopped process
	}
	return err
}

// pause SIGSTOPs node i; resume SIGCONTs it.
func (c *cluster) pause(i int) error {
	_, err := c.signal(i, syscall.SIGSTOP)
	return err
}

func (c *cluster) resume(i int) error {
	n := c.nodes[i]
	n.mu.Lock()
	paused := n.paused
	n.mu.Unlock()
	if !paused {
		return nil
	}
	_, err := c.signal(i, syscall.SIGCONT)
	return err
}

// link is the proxy carrying the connections node from opens to node to.
func (c *cluster) link(from, to int) *Proxy { return c.links[from][to] }

// allLinks lists every proxy.
func (c *cluster) allLinks() []*Proxy {
	var out []*Proxy
	for i := range c.links {
		for j := range c.links[i] {
			if c.links[i][j] != nil {
				out = append(out, c.links[i][j])
			}
		}
	}
	return out
}

// healAll removes every fault: links restored, paused nodes continued,
// dead nodes restarted.
func (c *cluster) healAll() error {
	for _, p := range c.allLinks() {
		p.Heal()
	}
	var errs []error
	for i := range c.nodes {
		if err := c.resume(i); err != nil {
			errs = append(errs, err)
		}
		if err := c.start(i); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// takeUnexpected returns and clears the list of unplanned process exits.
func (c *cluster) takeUnexpected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.unexpected
	c.unexpected = nil
	return out
}

// close stops every process (gracefully first, so logs are complete),
// every proxy and every client. Safe on a partly started cluster, and
// called twice by Run (once before it reads the logs, once deferred).
func (c *cluster) close() { c.closeOnce.Do(c.closeNow) }

func (c *cluster) closeNow() {
	for i := range c.nodes {
		_ = c.resume(i)
		_, _ = c.signal(i, syscall.SIGTERM)
	}
	// A context, not a timer channel: its Done stays closed for every node
	// still running once the grace period is over.
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, n := range c.nodes {
		n.mu.Lock()
		done := n.exited
		live := n.cmd != nil
		n.mu.Unlock()
		if !live {
			continue
		}
		select {
		case <-done:
		case <-grace.Done():
			_ = c.kill(i)
		}
	}
	c.wg.Wait()
	for _, p := range c.allLinks() {
		_ = p.Close()
	}
	for _, n := range c.nodes {
		_ = n.admin.Close()
	}
}

// nodeStatus is what INFO raft reports.
type nodeStatus struct {
	state   string
	leader  string
	term    uint64
	applied uint64
}

// status asks node i for its Raft state. INFO never waits for a quorum.
func (c *cluster) status(ctx context.Context, i int) (nodeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	s, err := c.nodes[i].admin.Info(ctx, "raft").Result()
	if err != nil {
		return nodeStatus{}, fmt.Errorf("INFO raft on %s: %w", c.nodes[i].name, err)
	}
	var st nodeStatus
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "raft_state":
			st.state = v
		case "raft_leader_id":
			st.leader = v
		case "raft_term":
			st.term, _ = strconv.ParseUint(v, 10, 64)
		case "raft_applied_index":
			st.applied, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return st, nil
}

// leader finds the node that leads the highest term, waiting up to limit.
// A deposed leader that has not heard of the new term yet may still say
// "leader"; the highest term wins.
func (c *cluster) leader(ctx context.Context, limit time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		best, bestTerm := -1, uint64(0)
		for i := range c.nodes {
			if !c.running(i) {
				continue
			}
			st, err := c.status(ctx, i)
			if err == nil && st.state == "leader" && st.term >= bestTerm {
				best, bestTerm = i, st.term
			}
		}
		if best >= 0 {
			return best, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("no leader within %v: %w", limit, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probe writes and reads back a key of its own through node i, proving the
// node serves both a replicated write and a linearizable read.
func (c *cluster) probe(ctx context.Context, i int, val string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cl := c.nodes[i].admin
	key := "chaos:probe:" + c.nodes[i].name
	if err := cl.Set(ctx, key, val, 0).Err(); err != nil {
		return fmt.Errorf("probe write via %s: %w", c.nodes[i].name, err)
	}
	got, err := cl.Get(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("probe read via %s: %w", c.nodes[i].name, err)
	}
	if got != val {
		return fmt.Errorf("probe read via %s: got %q, want %q", c.nodes[i].name, got, val)
	}
	return nil
}

// digests returns every node's DEBUG DIGEST ("applied:digest"), or the
// error text for a node that did not answer.
func (c *cluster) digests(ctx context.Context) []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := n.admin.Do(cctx, "debug", "digest").Text()
		cancel()
		if err != nil {
			s = "error: " + err.Error()
		}
		out[i] = s
	}
	return out
}

// waitConverged waits until every node reports the same state digest (the
// part of DEBUG DIGEST after the applied index). Writes must have stopped;
// the applied indexes may still differ by the leader's idle stamp entries,
// which change no content.
func (c *cluster) waitConverged(ctx context.Context, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ds := c.digests(ctx)
		if SameDigests(ds) {
			return ds[0], nil
		}
		select {
		case <-ctx.Done():
			var parts []string
			for i, d := range ds {
				parts = append(parts, c.nodes[i].name+"="+d)
			}
			return "", fmt.Errorf("replicas did not converge within %v: %s", limit, strings.Join(parts, " "))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// adminCommand runs `elastickv admin` against slot i's peer address (the
// real one: admin traffic is not a Raft link under test) and returns its
// output.
func (c *cluster) adminCommand(ctx context.Context, i int, timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	full := append([]string{"admin", "--endpoint", c.nodes[i].raftAddr, "--timeout", timeout.String()}, args...)
	cmd := exec.CommandContext(ctx, c.cfg.binary, full...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("elastickv %s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// adminAvailable reports whether the binary has the admin command, which
// the leadership and membership nemeses need.
func adminAvailable(binary string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, binary, "admin", "--help").Run() == nil
}

// SameDigests reports whether DEBUG DIGEST answers ("<applied index>:<hash>")
// agree on the hash, none being an error. The applied indexes are left
// out: at log format 2 an idle leader proposes a stamped empty entry every
// quarter second, so replicas with equal content are often an entry or two
// apart at any instant.
func SameDigests(ds []string) bool {
	if len(ds) == 0 {
		return false
	}
	hash := func(d string) (string, bool) {
		i := strings.LastIndexByte(d, ':')
		if i < 0 || strings.HasPrefix(d, "error") {
			return "", false
		}
		return d[i+1:], true
	}
	first, ok := hash(ds[0])
	if !ok {
		return false
	}
	for _, d := range ds[1:] {
		if h, ok := hash(d); !ok || h != first {
			return false
		}
	}
	return true
}
