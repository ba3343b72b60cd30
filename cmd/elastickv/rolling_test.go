package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func rollingScript(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "scripts", "rolling-update.sh"))
	require.NoError(t, err)
	return p
}

func TestRollingUpdateScriptOptions(t *testing.T) {
	script := rollingScript(t)
	run := func(env []string, args ...string) (int, string, string) {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return code, out.String(), errb.String()
	}
	code, out, _ := run(nil, "--help")
	require.Equal(t, 0, code)
	for _, want := range []string{"--dir", "--binary", "--env-file", "EXTRA_ENV", "MAX_LAG"} {
		require.Contains(t, out, want)
	}
	dir := t.TempDir()
	for _, bad := range []string{"1KEY=v", "KEY", "K-EY=v", "=v", "A=1 B"} {
		code, _, stderr := run([]string{"EXTRA_ENV=" + bad}, "--dir", dir)
		require.Equal(t, 2, code, "EXTRA_ENV=%q: %s", bad, stderr)
		require.Contains(t, stderr, "EXTRA_ENV")
	}
	code, _, _ = run(nil, "--bogus")
	require.Equal(t, 2, code)
	envFile := filepath.Join(dir, "rolling.env")
	require.NoError(t, os.WriteFile(envFile, []byte("# comment\nDIR=\"/nonexistent/dir\"\n\nMAX_LAG=7\n"), 0o600))
	code, _, stderr := run(nil, "--env-file", envFile)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "/nonexistent/dir", "DIR from the env file")
	require.NoError(t, os.WriteFile(envFile, []byte("DIR=/x\n$(touch pwned)=1\n"), 0o600))
	code, _, _ = run(nil, "--env-file", envFile)
	require.Equal(t, 2, code, "the env file is parsed, not executed")
	require.NoFileExists(t, "pwned")
}

func TestAdminCLIUsage(t *testing.T) {
	bin := buildBinary(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"admin", "--help"}, 0},
		{[]string{"admin", "status", "--help"}, 0},
		{[]string{"admin"}, 2},
		{[]string{"admin", "--bogus", "status"}, 2},
		{[]string{"admin", "frobnicate"}, 2},
		{[]string{"admin", "add-member", "n4"}, 2},
		{[]string{"admin", "promote"}, 2},
		{[]string{"admin", "transfer-leader", "n1", "n2"}, 2},
		{[]string{"admin", "remove-member", "n1", "--learner"}, 2},
		{[]string{"admin", "--timeout", "0s", "status"}, 2},
		// Nobody listens there: a plain failure, exit 1.
		{[]string{"admin", "--endpoint", "127.0.0.1:1", "--timeout", "2s", "status"}, 1},
	} {
		out := runCLI(t, bin, tc.args, tc.code)
		if tc.code == 0 {
			require.Contains(t, out, "transfer-leader")
		}
	}
}

// restartWindow is one node's restart as the script reported it.
type restartWindow struct {
	node              string
	start, stop, done time.Time // transfer (leader only) or stop; stopped; caught up
}

// TestProcessRollingUpdate runs scripts/rolling-update.sh against a dev
// cluster of the real binary under write load: every node is restarted,
// no acknowledged write is lost, and the client-visible unavailability of
// each restart is measured (see docs/operations.md).
func TestProcessRollingUpdate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	d := startDev(t, bin)
	// Nodes the script restarted run in their own sessions, outside dev:
	// stop them by the pids the script recorded (this runs before the dev
	// cleanup registered by startDev).
	t.Cleanup(func() {
		for i := 1; i <= 3; i++ {
			b, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("n%d.pid", i)))
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				continue
			}
			if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && bytes.Contains(cl, []byte(d.dir)) {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	acked := map[string]string{}
	okAt := make([][]time.Time, 3) // successful write times, per node written through
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := w % 3
			cl := d.clients[node]
			for j := 0; ctx.Err() == nil; j++ {
				k, v := fmt.Sprintf("w%d-%d", w, j), strconv.Itoa(j)
				op, opCancel := context.WithTimeout(ctx, 3*time.Second)
				err := cl.Set(op, k, v, 0).Err()
				opCancel()
				if err == nil {
					now := time.Now()
					mu.Lock()
					acked[k] = v
					okAt[node] = append(okAt[node], now)
					mu.Unlock()
				} else if ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond) // a down node refuses at once; do not spin
				}
			}
		}()
	}
	time.Sleep(time.Second) // load flowing before the first restart

	script := exec.Command("bash", rollingScript(t), "--dir", d.dir, "--binary", bin)
	script.Env = append(os.Environ(), "EXTRA_ENV=ELASTICKV_PEBBLE_CACHE_MB=64 ELASTICKV_ROLLING_TEST=1")
	stdout, err := script.StdoutPipe()
	require.NoError(t, err)
	var stderr bytes.Buffer
	script.Stderr = &stderr
	began := time.Now()
	require.NoError(t, script.Start())
	windows := map[string]*restartWindow{}
	var order []string
	var transcript strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line, now := sc.Text(), time.Now()
		transcript.WriteString(line + "\n")
		_, msg, ok := strings.Cut(line, "] ")
		if !ok {
			continue
		}
		name, event, ok := strings.Cut(msg, ": ")
		if !ok || !strings.HasPrefix(name, "n") {
			continue
		}
		w := windows[name]
		if w == nil {
			w = &restartWindow{node: name}
			windows[name] = w
			order = append(order, name)
		}
		switch {
		case strings.HasPrefix(event, "transferring leadership"):
			w.start = now
		case strings.HasPrefix(event, "stopping"):
			if w.start.IsZero() {
				w.start = now
			}
		case strings.HasPrefix(event, "stopped"):
			w.stop = now
		case strings.HasPrefix(event, "caught up"):
			w.done = now
		}
	}
	err = script.Wait()
	elapsed := time.Since(began)
	require.NoError(t, err, "rolling-update.sh failed:\n%s\n%s", transcript.String(), stderr.String())
	t.Logf("rolling update took %v:\n%s", elapsed.Round(time.Millisecond), transcript.String())
	time.Sleep(time.Second) // load after the last restart
	cancel()
	wg.Wait()

	require.Len(t, windows, 3, "every node restarted")
	for i := 1; i <= 3; i++ {
		logb, err := os.ReadFile(filepath.Join(d.dir, fmt.Sprintf("n%d.log", i)))
		require.NoError(t, err)
		for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
			if at := bytes.Index(logb, []byte(bad)); at >= 0 {
				t.Fatalf("n%d log shows %q:\n%s", i, bad, logb[max(0, at-2000):min(len(logb), at+6000)])
			}
		}
	}
	for i := 1; i <= 3; i++ {
		pid := readPid(t, filepath.Join(d.dir, fmt.Sprintf("n%d.pid", i)))
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		require.NoError(t, err)
		require.Contains(t, string(env), "ELASTICKV_PEBBLE_CACHE_MB=64\x00", "EXTRA_ENV reaches n%d", i)
		require.Contains(t, string(env), "ELASTICKV_ROLLING_TEST=1\x00")
	}

	// Unavailability: the longest stretch without a successful write,
	// through the restarted node itself and through the other nodes, that
	// overlaps the restart (stop to caught up; from the transfer for the
	// leader).
	mu.Lock()
	defer mu.Unlock()
	for i := range okAt {
		sort.Slice(okAt[i], func(a, b int) bool { return okAt[i][a].Before(okAt[i][b]) })
	}
	for _, name := range order {
		w := windows[name]
		require.False(t, w.done.IsZero(), "%s caught up", name)
		self := int(name[1] - '1')
		var others []time.Time
		for i := range 3 {
			if i != self {
				others = append(others, okAt[i]...)
			}
		}
		sort.Slice(others, func(i, j int) bool { return others[i].Before(others[j]) })
		own := longestGap(okAt[self], w.start, w.done)
		rest := longestGap(others, w.start, w.done)
		t.Logf("restart %s: down %v, stop→caught up %v; longest write gap through %s %v, through the other nodes %v",
			name, w.stop.Sub(w.start).Round(time.Millisecond), w.done.Sub(w.start).Round(time.Millisecond), name,
			own.Round(time.Millisecond), rest.Round(time.Millisecond))
		require.Less(t, rest, 5*time.Second, "writes through the other nodes stall during the restart of %s", name)
	}

	// No acknowledged write is lost: read everything back through every node.
	keys := make([]string, 0, len(acked))
	for k := range acked {
		keys = append(keys, k)
	}
	require.NotEmpty(t, keys)
	for i, cl := range d.clients {
		for off := 0; off < len(keys); off += 200 {
			batch := keys[off:min(off+200, len(keys))]
			c, cc := context.WithTimeout(context.Background(), 10*time.Second)
			vals, err := cl.MGet(c, batch...).Result()
			cc()
			require.NoError(t, err, "node %d", i+1)
			for j, v := range vals {
				require.Equal(t, acked[batch[j]], v, "node %d key %s", i+1, batch[j])
			}
		}
	}
	t.Logf("%d acknowledged writes verified on all 3 nodes", len(keys))
}

// longestGap is the longest interval between consecutive times in ts
// (sorted) that overlaps [from, to]; to bounds a gap still open at the end.
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	prev := from
	var longest time.Duration
	for _, at := range ts {
		if !at.After(from) {
			prev = at // the gap open at from began at the last success before it
			continue
		}
		longest = max(longest, at.Sub(prev))
		prev = at
		if at.After(to) {
			return longest
		}
	}
	return max(longest, to.Sub(prev))
}
