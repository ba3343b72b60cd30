package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// buildPlainBinary compiles the real binary without the race detector,
// whatever the test run uses: memory bounds are stated for the binary
// operators run (the race runtime multiplies memory use).
func buildPlainBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "elastickv")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// peakRSS returns a process's peak resident set (VmHWM), in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	defer func() { _ = f.Close() }() // read only: the scanner reports read errors
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// TestHostileAppendFloodOnABigValue is issue 13's reproduction: a value of
// 16 MiB minus 400 bytes, then 300 clients each sending one-byte APPENDs at
// once, to a follower (its forwarded writes pack into few log entries), to
// the leader, and pipelined. Each APPEND used to write the whole value into
// the apply batch again, and nodes grew past 8 GiB until one was
// OOM-killed. Now every node's peak RSS stays under 1 GiB, every
// acknowledged APPEND is in the value, the replicas agree and the cluster
// keeps serving.
func TestHostileAppendFloodOnABigValue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildPlainBinary(t)
	d := startDev(t, bin)
	leader := findLeader(t, d.clients)
	follower := (leader + 1) % 3
	addr := d.clients[follower].Options().Addr
	leaderAddr := d.clients[leader].Options().Addr

	const base = 16<<20 - 400
	ctx := context.Background()
	value := strings.Repeat("v", base)

	// flood resets the value, sends the APPENDs, and checks that every
	// acknowledged one is in the value on every node (a failed one may or
	// may not have applied; past 16 MiB, --max-value-bytes, APPEND is
	// refused before proposing, so each phase starts from the base value).
	flood := func(name, target string, clients, pipeline int) {
		require.NoError(t, d.clients[leader].Set(ctx, "big", value, 0).Err())
		var acked, unknown atomic.Int64
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := goredis.NewClient(&goredis.Options{Addr: target, PoolSize: 1, MaxRetries: -1,
					ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second})
				defer func() { _ = cl.Close() }() // a client per goroutine; its close error changes nothing
				c, cancel := context.WithTimeout(ctx, 60*time.Second)
				defer cancel()
				if pipeline <= 1 {
					if err := cl.Append(c, "big", "x").Err(); err != nil {
						unknown.Add(1)
						return
					}
					acked.Add(1)
					return
				}
				cmds, _ := cl.Pipelined(c, func(p goredis.Pipeliner) error {
					for range pipeline {
						p.Append(c, "big", "x")
					}
					return nil
				})
				for _, cmd := range cmds {
					if cmd.Err() != nil {
						unknown.Add(1)
						continue
					}
					acked.Add(1)
				}
			}()
		}
		wg.Wait()
		t.Logf("%s: APPENDs acknowledged %d, failed %d", name, acked.Load(), unknown.Load())
		require.Positive(t, acked.Load(), name)
		for i, cl := range d.clients {
			require.Eventually(t, func() bool {
				c, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				n, err := cl.StrLen(c, "big").Result()
				return err == nil && n >= base+acked.Load() && n <= base+acked.Load()+unknown.Load()
			}, 30*time.Second, 100*time.Millisecond, "%s: node %d holds every acknowledged APPEND", name, i+1)
		}
	}
	flood("follower", addr, 300, 1)           // as reported
	flood("leader", leaderAddr, 300, 1)       // straight to the leader
	flood("follower-pipelined", addr, 30, 10) // pipelined
	flood("leader-pipelined", leaderAddr, 30, 10)
	d.waitConverged(30 * time.Second)

	// The cluster keeps serving writes and reads on every node.
	for i, cl := range d.clients {
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		key := fmt.Sprintf("after-%d", i)
		require.NoError(t, cl.Set(c, key, "ok", 0).Err(), "node %d takes writes", i+1)
		got, err := cl.Get(c, key).Result()
		cancel()
		require.NoError(t, err)
		require.Equal(t, "ok", got)
	}

	for i := range 3 {
		pid := readPid(t, filepath.Join(d.dir, fmt.Sprintf("n%d.pid", i+1)))
		peak := peakRSS(t, pid)
		t.Logf("node %d peak RSS %d MiB", i+1, peak>>20)
		require.Less(t, peak, int64(1<<30), "node %d peak RSS", i+1)
	}
}
