package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/chaos"
)

// Storage failures with a real full disk: part of a node's data directory
// is a small tmpfs that client writes fill (the etcd WAL has no pluggable
// filesystem, so ENOSPC has to be real). The node must notice, fail
// /healthz with the reason, exit non-zero, and after space is freed come
// back from its WAL with every acknowledged write.

// mountTmpfs mounts a tmpfs of sizeMB at dir and unmounts it when the test
// ends. The tests need root, as CI has: a failed mount fails the test
// rather than skipping it, so that the scenario is never silently untested.
func mountTmpfs(t *testing.T, dir string, sizeMB int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o750))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMB), "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount -t tmpfs on %s failed (this test must run as root, as CI does): %s", dir, out)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// growTmpfs frees space on the tmpfs at dir by growing it, as an operator
// growing a full volume would.
func growTmpfs(t *testing.T, dir string, sizeMB int) {
	t.Helper()
	out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%dm", sizeMB), dir).CombinedOutput()
	require.NoError(t, err, "remount %s: %s", dir, out)
}

// serverProc is one `elastickv server` process the test started itself, so
// that it can see the exit status.
type serverProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, set before exited closes
}

// threeNodes is a cluster of three server processes on a port offset.
type threeNodes struct {
	t       *testing.T
	bin     string
	off     int
	dirs    [3]string
	logs    [3]string
	procs   [3]*serverProc
	clients [3]*goredis.Client
}

func (c *threeNodes) addr(base, i int) string { return fmt.Sprintf("127.0.0.1:%d", base+i+1+c.off) }

// start starts node i (0-based) with the cluster's command line.
func (c *threeNodes) start(i int, extra ...string) {
	t := c.t
	peers := make([]string, 3)
	for j := range 3 {
		peers[j] = fmt.Sprintf("n%d=%s", j+1, c.addr(7000, j))
	}
	args := append([]string{"server", "--id", fmt.Sprintf("n%d", i+1), "--data-dir", c.dirs[i],
		"--raft-addr", c.addr(7000, i), "--redis-addr", c.addr(6380, i), "--metrics-addr", c.addr(9100, i),
		"--peers", strings.Join(peers, ",")}, extra...)
	logf, err := os.OpenFile(c.logs[i], os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	require.NoError(t, err)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	p := &serverProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.exited)
	}()
	c.procs[i] = p
}

func startThreeNodes(t *testing.T, bin string, dirs [3]string, extra ...string) *threeNodes {
	t.Helper()
	c := &threeNodes{t: t, bin: bin, off: freeOffset(t), dirs: dirs}
	logDir := t.TempDir()
	for i := range 3 {
		c.logs[i] = filepath.Join(logDir, fmt.Sprintf("n%d.log", i+1))
	}
	// Registered before the processes start, so it runs after they are
	// stopped (cleanups run last-in first-out) but before any unmount
	// registered earlier.
	t.Cleanup(func() {
		for _, p := range c.procs {
			if p == nil {
				continue
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			c.dumpLogs()
		}
	})
	for i := range 3 {
		c.start(i, extra...)
		cl := goredis.NewClient(&goredis.Options{Addr: c.addr(6380, i), MaxRetries: -1,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
		t.Cleanup(func() { _ = cl.Close() })
		c.clients[i] = cl
	}
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.clients[1].Set(ctx, "up", "1", 0).Err() == nil
	}, 30*time.Second, 50*time.Millisecond, "cluster takes writes")
	return c
}

func (c *threeNodes) dumpLogs() {
	for _, name := range c.logs {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		c.t.Logf("--- last lines of %s:\n%s", filepath.Base(name), strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// digests returns each node's DEBUG DIGEST (or the error).
func (c *threeNodes) digests() []string {
	out := make([]string, 3)
	for i, cl := range c.clients {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s, err := cl.Do(ctx, "debug", "digest").Text()
		cancel()
		if err != nil {
			s = "error: " + err.Error()
		}
		out[i] = s
	}
	return out
}

// probe is one observation of a node's health endpoint.
type probe struct {
	code int
	body string
	at   time.Time
}

// failureSeen is what a watcher saw of a node while it failed.
type failureSeen struct {
	health []probe // every distinct non-200 /healthz answer, in order
	info   string  // the first INFO that reported raft_state:failed
}

// watchFailure polls a node's /healthz and INFO until stop closes.
func watchFailure(healthURL string, rc *goredis.Client, stop <-chan struct{}) <-chan failureSeen {
	res := make(chan failureSeen, 1)
	go func() {
		var seen failureSeen
		cl := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stop:
				res <- seen
				return
			default:
			}
			if resp, err := cl.Get(healthURL); err == nil {
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK && (len(seen.health) == 0 || seen.health[len(seen.health)-1].body != string(b)) {
					seen.health = append(seen.health, probe{resp.StatusCode, string(b), time.Now()})
				}
			}
			if seen.info == "" {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				if info, err := rc.Info(ctx, "replication", "raft").Result(); err == nil && strings.Contains(info, "raft_state:failed") {
					seen.info = info
				}
				cancel()
			}
			time.Sleep(10 * time.Millisecond) // a probe's period, not a wait for a condition
		}
	}()
	return res
}

// TestHostileWritesFillDisk: clients write large values until one node's
// disk is full. Each case puts a small tmpfs under one part of the node's
// data directory, so that the first ENOSPC is met where the case means it
// to be, whatever the timing of Pebble's flushes and compactions against
// the WAL's segment preallocation (with both on one tmpfs, which filled
// first depended on how far compactions lagged on a loaded machine):
//   - pebble: the state machine's directory (kv/) fills with distinct keys;
//   - wal: the Raft directory (raft/) holds two 64 MB WAL segments and
//     cannot hold the third, preallocated when the second fills.
func TestHostileWritesFillDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	for _, tc := range []struct {
		name   string
		keys   int    // distinct keys the writers cycle through
		sub    string // the part of n1's data directory on the tmpfs
		sizeMB int    // tmpfs size
		extra  []string
		want   string // in the error /healthz reports
	}{
		{name: "pebble", keys: 1 << 30, sub: "kv", sizeMB: 64, want: "kv: storage write failed"},
		// Snapshots every 256 MiB of log, so the tmpfs holds only WAL.
		{name: "wal", keys: 4, sub: "raft", sizeMB: 190, extra: []string{"--snapshot-log-mb", "256"}, want: "save to wal"},
	} {
		t.Run(tc.name, func(t *testing.T) { testDiskFull(t, bin, tc.keys, tc.sub, tc.sizeMB, tc.extra, tc.want) })
	}
}

func testDiskFull(t *testing.T, bin string, keys int, sub string, sizeMB int, extra []string, want string) {
	dir := filepath.Join(t.TempDir(), "n1")
	full := filepath.Join(dir, sub)
	mountTmpfs(t, full, sizeMB)
	c := startThreeNodes(t, bin, [3]string{dir, t.TempDir(), t.TempDir()}, extra...)
	stopWatch := make(chan struct{})
	watched := watchFailure("http://"+c.addr(9100, 0)+"/healthz", c.clients[0], stopWatch)

	// Writers through the healthy nodes (forwarded to whichever leads) and
	// through the node whose disk fills.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Per key, the values it may hold: the last acknowledged one, then
	// any whose write failed after it (outcome unknown: it may have been
	// applied). Each key has one writer, so this order is the log's.
	var mu sync.Mutex
	acked := map[string][]string{}
	var cmdErr string // the first error the failed node's client got that says why
	var wg sync.WaitGroup
	// Incompressible values: Pebble compresses its tables, and repeated
	// bytes would never fill its share of the disk.
	value := func(w, j int) string {
		b := make([]byte, 128<<10)
		_, _ = crand.Read(b)
		return fmt.Sprintf("w%d-%d:%x", w, j, b)
	}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := c.clients[w%3]
			for j := 0; ctx.Err() == nil; j++ {
				k := fmt.Sprintf("k%d-%d", w, j%keys)
				v := value(w, j)
				op, opCancel := context.WithTimeout(ctx, 5*time.Second)
				err := cl.Set(op, k, v, 0).Err()
				opCancel()
				mu.Lock()
				if err != nil && w == 0 && cmdErr == "" && strings.Contains(err.Error(), "stopped serving") {
					cmdErr = err.Error()
				}
				if err == nil {
					acked[k] = []string{v}
				} else if acked[k] != nil {
					acked[k] = append(acked[k], v)
				}
				mu.Unlock()
			}
		}()
	}

	// The full node stops serving, says why, and exits non-zero.
	select {
	case <-c.procs[0].exited:
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatal("the node on the full disk did not exit within 90s")
	}
	close(stopWatch)
	w := <-watched
	seen := w.health
	exitedAt := time.Now()
	var ee *exec.ExitError
	require.True(t, errors.As(c.procs[0].err, &ee), "exit status: %v", c.procs[0].err)
	require.Equal(t, 1, ee.ExitCode(), "a node that stopped serving exits 1")
	require.NotEmpty(t, seen, "/healthz failed before the process exited")
	require.Equal(t, http.StatusServiceUnavailable, seen[0].code)
	require.Contains(t, seen[0].body, "no space left on device", "/healthz says why")
	require.Contains(t, seen[0].body, want, "the failure met first")
	// It exits after the grace for probes, and its shutdown is bounded.
	require.Less(t, exitedAt.Sub(seen[0].at), failedExitDelay+shutdownTimeout+3*time.Second, "exit is prompt")
	t.Logf("exited %v after /healthz first failed", exitedAt.Sub(seen[0].at).Round(time.Millisecond))
	logText, err := os.ReadFile(c.logs[0])
	require.NoError(t, err)
	require.Contains(t, string(logText), "free space on the data directory", "the log says what to do")
	require.Contains(t, string(logText), "node stopped serving: raft group 1 stopped serving", "exit line")
	require.NotContains(t, string(logText), "panic:", "no panic")
	t.Logf("healthz saw: %q", seen[0].body)
	require.Contains(t, w.info, "role:slave", "INFO no longer reports a leader")
	require.Contains(t, w.info, "master_link_status:down", "INFO no longer reports a healthy follower")
	require.Contains(t, w.info, "raft_failure:", "INFO says why")
	mu.Lock()
	require.Contains(t, cmdErr, "no space left on device", "a client of the failed node is told why")
	mu.Unlock()

	// The other two keep serving.
	for _, i := range []int{1, 2} {
		require.Eventually(t, func() bool {
			op, opCancel := context.WithTimeout(ctx, 2*time.Second)
			defer opCancel()
			return c.clients[i].Set(op, fmt.Sprintf("after-%d", i), "ok", 0).Err() == nil
		}, 20*time.Second, 50*time.Millisecond, "node %d takes writes after n1 stopped", i+1)
	}
	cancel()
	wg.Wait()

	// Space is freed; the node restarts from its WAL and catches up.
	growTmpfs(t, full, 2048)
	c.start(0, extra...)
	deadline := time.Now().Add(60 * time.Second)
	var last []string
	for time.Now().Before(deadline) {
		last = c.digests()
		if chaos.SameDigests(last) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling for convergence; the loop's deadline bounds it
	}
	require.True(t, chaos.SameDigests(last), "replicas converge after the restart: %v", last)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, acked)
	for k, vs := range acked {
		op, opCancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := c.clients[0].Get(op, k).Result()
		opCancel()
		require.NoError(t, err, "key %s on the restarted node", k)
		require.Contains(t, vs, got, "key %s on the restarted node holds the acknowledged value or a later one", k)
	}
	t.Logf("%d acknowledged writes present on the restarted node; digests %s", len(acked), last[0])
}
