package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/chaos"
)

// devCluster is a running `elastickv dev` cluster of the real binary whose
// nodes a test can SIGKILL and restart.
type devCluster struct {
	t       *testing.T
	dir     string
	clients []*goredis.Client
	mu      sync.Mutex
	procs   map[int]*exec.Cmd // nodes restarted by the test
}

func startDev(t *testing.T, bin string, extra ...string) *devCluster {
	t.Helper()
	d := &devCluster{t: t, dir: t.TempDir(), procs: map[int]*exec.Cmd{}}
	off := freeOffset(t)
	args := append([]string{"dev", "--dir", d.dir, "--port-offset", strconv.Itoa(off)}, extra...)
	dev := exec.Command(bin, args...)
	stdout, err := dev.StdoutPipe()
	require.NoError(t, err)
	// dev's own stderr is kept too: a race in dev itself is reported there.
	devErr, err := os.Create(filepath.Join(d.dir, "dev.stderr.log"))
	require.NoError(t, err)
	dev.Stderr = io.MultiWriter(os.Stderr, devErr)
	require.NoError(t, dev.Start())
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGTERM)
		_ = dev.Wait()
		_ = devErr.Close()
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range d.procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
		d.failOnRaces()
	})
	up := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "cluster is up") {
				once.Do(func() { close(up) })
			}
		}
	}()
	select {
	case <-up:
	case <-time.After(60 * time.Second):
		t.Fatal("dev cluster did not come up")
	}
	for i := range 3 {
		cl := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", 6381+i+off), MaxRetries: -1,
			ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
		t.Cleanup(func() { _ = cl.Close() })
		d.clients = append(d.clients, cl)
	}
	return d
}

// failOnRaces fails the test on any race report in the logs of dev and
// its nodes (including nodes the test restarted), once they have stopped.
// The servers are race-built when the test run is (buildBinary).
func (d *devCluster) failOnRaces() {
	races, err := chaos.RaceReports(filepath.Join(d.dir, "*.log"))
	if err != nil {
		d.t.Error(err)
	}
	for _, r := range races {
		d.t.Error(r)
	}
}

// kill SIGKILLs node i (0-based), wherever it was started from.
func (d *devCluster) kill(i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.procs[i]; ok {
		_ = p.Process.Kill()
		_ = p.Wait()
		delete(d.procs, i)
		return
	}
	pid := readPid(d.t, filepath.Join(d.dir, fmt.Sprintf("n%d.pid", i+1)))
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Not our child, so no Wait: poll until dev has reaped it. A restart
	// before the old process is gone can find its ports still bound (seen
	// on a loaded machine: the new node exited at once and never came up).
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			d.t.Fatalf("node %d (pid %d) still alive 10s after SIGKILL", i+1, pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// restart starts node i again with the command line dev wrote for it.
func (d *devCluster) restart(i int) {
	line, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("n%d.cmd", i+1)))
	require.NoError(d.t, err)
	p := exec.Command("sh", "-c", "exec "+strings.TrimSpace(string(line)))
	logf, err := os.OpenFile(filepath.Join(d.dir, fmt.Sprintf("n%d.restarted.log", i+1)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	require.NoError(d.t, err)
	p.Stdout, p.Stderr = logf, logf
	require.NoError(d.t, p.Start())
	d.mu.Lock()
	d.procs[i] = p
	d.mu.Unlock()
}

// waitConverged waits until all three nodes report the same state digest
// (chaos.SameDigests: applied indexes may differ by idle stamps).
func (d *devCluster) waitConverged(timeout time.Duration) string {
	var last []string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		last = last[:0]
		for _, cl := range d.clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s, err := cl.Do(ctx, "debug", "digest").Text()
			cancel()
			if err != nil {
				s = "error: " + err.Error()
			}
			last = append(last, s)
		}
		if chaos.SameDigests(last) {
			return last[0]
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.dumpLogs()
	d.t.Fatalf("replicas did not converge: %v", last)
	return ""
}

// dumpLogs puts the end of every node log into the test output, for a
// failure seen only on a loaded machine (the data dir is removed after).
func (d *devCluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(d.dir, "n*.log"))
	for _, name := range logs {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		d.t.Logf("--- last lines of %s:\n%s", filepath.Base(name), strings.Join(lines[max(0, len(lines)-25):], "\n"))
	}
}

// TestProcessCrashConsistency: sustained writes from several clients,
// SIGKILL of one node, then of all nodes at once, restart: every
// acknowledged write is present, counters never go backwards, and the
// replicas converge to identical state at the same applied index.
func TestProcessCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	d := startDev(t, bin, "--", "--snapshot-count", "300")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	acked := map[string]string{}  // SET key -> value acknowledged
	maxIncr := map[string]int64{} // counter -> highest value an INCR returned
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for j := 0; ctx.Err() == nil; j++ {
				cl := d.clients[rng.IntN(3)]
				op, opCancel := context.WithTimeout(ctx, 3*time.Second)
				if j%2 == 0 {
					k, v := fmt.Sprintf("w%d-%d", w, j), strconv.Itoa(j)
					if cl.Set(op, k, v, 0).Err() == nil {
						mu.Lock()
						acked[k] = v
						mu.Unlock()
					}
				} else {
					k := fmt.Sprintf("ctr%d", rng.IntN(4))
					if n, err := cl.Incr(op, k).Result(); err == nil {
						mu.Lock()
						maxIncr[k] = max(maxIncr[k], n)
						mu.Unlock()
					}
				}
				opCancel()
				if ctx.Err() != nil {
					return
				}
			}
		}()
	}
	pause := func(d time.Duration) { time.Sleep(d) } // writes keep flowing meanwhile

	pause(time.Second)
	d.kill(1)
	pause(time.Second)
	d.restart(1)
	pause(2 * time.Second)
	for i := range 3 {
		d.kill(i)
	}
	for i := range 3 {
		d.restart(i)
	}
	pause(3 * time.Second)
	cancel()
	wg.Wait()

	digest := d.waitConverged(30 * time.Second)
	t.Logf("converged at %s", digest)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, acked)
	for i, cl := range d.clients {
		for k, v := range acked {
			c, cc := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := cl.Get(c, k).Result()
			cc()
			require.NoError(t, err, "node %d key %s", i+1, k)
			require.Equal(t, v, got, "node %d key %s", i+1, k)
		}
		for k, n := range maxIncr {
			c, cc := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := cl.Get(c, k).Int64()
			cc()
			require.NoError(t, err)
			require.GreaterOrEqual(t, got, n, "node %d counter %s went backwards", i+1, k)
		}
	}
	t.Logf("%d acknowledged SETs and %d counters verified on 3 nodes", len(acked), len(maxIncr))
}
