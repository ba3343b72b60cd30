package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/chaos"
)

// server is the real binary the process tests start, built once.
var server chaos.ServerOnce

func TestMain(m *testing.M) {
	code := m.Run()
	server.Remove()
	os.Exit(code)
}

// buildBinary compiles the real elastickv binary once per test run, with
// -race when the test run has it (chaos.BuildServer): the servers the
// process tests start are then race-checked, and startDev fails the test
// on a race report in any node's log.
func buildBinary(t *testing.T) string {
	t.Helper()
	path, err := server.Path()
	require.NoError(t, err)
	return path
}

// freeOffset finds a port offset whose Redis, Raft and metrics ports for
// three nodes are all free right now.
func freeOffset(t *testing.T) int {
	t.Helper()
	// Every port stays below 32768, where Linux's ephemeral range begins:
	// outgoing connections could otherwise take a port a node is about to
	// bind.
	for off := 1000 + os.Getpid()%500*10; 9103+off < 32768; off += 37 {
		ok := true
		for i := 1; i <= 3 && ok; i++ {
			for _, base := range []int{6380, 7000, 9100} {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i+off))
				if err != nil {
					ok = false
					break
				}
				_ = ln.Close()
			}
		}
		if ok {
			return off
		}
	}
	t.Fatal("no free port offset")
	return 0
}

func TestCLIErrorsAndHelp(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"server", "--bogus"}, 2},
		{[]string{"dev", "--nodes", "x"}, 2},
		{[]string{"server", "--id", "n1"}, 2},
		{[]string{"nosuch"}, 2},
		{[]string{"server", "--help"}, 0},
		{[]string{"dev", "--help"}, 0},
		{[]string{"help"}, 0},
	} {
		runCLI(t, bin, tc.args, tc.code)
	}
}

// runCLI runs the binary with args and checks its exit code; a failing
// exit must come with exactly one line on stderr. It returns stdout.
func runCLI(t *testing.T, bin string, args []string, wantCode int) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	require.Equal(t, wantCode, code, "%v: stderr %q", args, stderr.String())
	if wantCode != 0 {
		require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one-line error for %v: %q", args, stderr.String())
	}
	return stdout.String()
}

// TestProcessLeaderKilledDuringWrites runs the real binary's dev cluster,
// SIGKILLs the leader while clients write, restarts it from its command
// line, and checks that no acknowledged write is lost and the node rejoins.
func TestProcessLeaderKilledDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	d := startDev(t, bin)
	clients := d.clients
	leader := findLeader(t, clients)

	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	acked := map[string]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w%3]
			for j := 0; ctx.Err() == nil; j++ {
				k, v := fmt.Sprintf("w%d-%d", w, j), strconv.Itoa(j)
				opCtx, opCancel := context.WithTimeout(ctx, 5*time.Second)
				err := cl.Set(opCtx, k, v, 0).Err()
				opCancel()
				if err == nil {
					mu.Lock()
					acked[k] = v
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let writes flow before the crash
	d.kill(leader)
	killed := time.Now()

	// The survivors elect a leader and take writes again.
	other := clients[(leader+1)%3]
	require.Eventually(t, func() bool {
		c, cc := context.WithTimeout(context.Background(), time.Second)
		defer cc()
		return other.Set(c, "probe", "x", 0).Err() == nil
	}, 15*time.Second, 50*time.Millisecond)
	t.Logf("writes accepted again %v after SIGKILL of the leader", time.Since(killed))

	// Restart the killed node with the command line dev wrote for it.
	d.restart(leader)
	time.Sleep(time.Second) // more writes while it catches up
	cancel()
	wg.Wait()

	// Every acknowledged write is readable through every node, including
	// the restarted one once it has caught up.
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, acked)
	for i, cl := range clients {
		require.Eventually(t, func() bool {
			c, cc := context.WithTimeout(context.Background(), 2*time.Second)
			defer cc()
			return cl.Ping(c).Err() == nil
		}, 30*time.Second, 100*time.Millisecond, "node %d answers", i+1)
		for k, v := range acked {
			c, cc := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := cl.Get(c, k).Result()
			cc()
			require.NoError(t, err, "node %d key %s", i+1, k)
			require.Equal(t, v, got, "node %d key %s", i+1, k)
		}
	}
	t.Logf("%d acknowledged writes verified on all 3 nodes", len(acked))
}

func findLeader(t *testing.T, clients []*goredis.Client) int {
	t.Helper()
	leader := -1
	require.Eventually(t, func() bool {
		for i, cl := range clients {
			c, cc := context.WithTimeout(context.Background(), time.Second)
			info, err := cl.Info(c, "replication").Result()
			cc()
			if err == nil && strings.Contains(info, "role:master") {
				leader = i
				return true
			}
		}
		return false
	}, 20*time.Second, 50*time.Millisecond)
	return leader
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	return pid
}
