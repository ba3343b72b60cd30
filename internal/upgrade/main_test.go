package upgrade

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/elastickv/elastickv/internal/chaos"
)

// server is this tree's binary, built once per test binary (with -race when
// the tests have it, so the servers these tests start are race-checked).
var server chaos.ServerOnce

// TestMain removes the built binary and checks that the tests left no
// goroutine behind (each server process is reaped by a goroutine that ends
// with it; clients are closed by the tests' cleanups).
func TestMain(m *testing.M) {
	code := m.Run()
	server.Remove()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// newBinary returns the path of this tree's elastickv binary.
func newBinary(t *testing.T) string {
	t.Helper()
	p, err := server.Path()
	require.NoError(t, err, "build this tree's binary")
	return p
}

// oldBinary builds the binary of commit, a previous release, from this
// repository's history. A missing commit fails the test (issue #14: it
// never skips).
func oldBinary(t *testing.T, commit string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wd, err := os.Getwd()
	require.NoError(t, err)
	repo, err := RepoRoot(ctx, wd)
	require.NoError(t, err, "the upgrade tests need this repository's git history")
	out := filepath.Join(t.TempDir(), "elastickv-"+commit[:7])
	began := time.Now()
	require.NoError(t, BuildCommit(ctx, repo, commit, out),
		"building the previous release %s from history; a shallow clone lacks it: fetch the full history (git fetch --unshallow)", commit[:7])
	t.Logf("built %s in %v", commit[:7], time.Since(began).Round(time.Millisecond))
	return out
}

// node is one server process of a test, with a client of its own.
type node struct {
	Member
	dir  string
	logs string
	proc *Process
	cl   *goredis.Client
}

// start runs bin on the node's data dir with the given cluster and waits
// until it is running (not until it serves: a cluster needs a quorum).
func (n *node) start(t *testing.T, bin string, peers []Member) {
	t.Helper()
	p, err := StartProcess(bin, ServerArgs(n.Member, n.dir, peers), nil, n.logs)
	require.NoError(t, err)
	n.proc = p
}

// stop SIGTERMs the node; it must exit cleanly.
func (n *node) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, n.proc.Stop(30*time.Second), "%s must shut down cleanly on SIGTERM", n.ID)
}

// newNodes makes n nodes with fresh ports and data dirs under dir, and
// registers their cleanup: every process still running is killed, and the
// logs are searched for race reports (which fail the test).
func newNodes(t *testing.T, dir string, count int) []*node {
	t.Helper()
	ports, err := FreePorts(2 * count)
	require.NoError(t, err)
	var nodes []*node
	for i := range count {
		id := fmt.Sprintf("n%d", i+1)
		n := &node{
			Member: Member{ID: id, RaftAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i]), RedisAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1])},
			dir:    filepath.Join(dir, id),
			logs:   filepath.Join(dir, id+".log"),
		}
		n.cl = NewClient(n.RedisAddr)
		nodes = append(nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			_ = n.cl.Close()
			if n.proc != nil {
				n.proc.Kill()
			}
		}
		reports, err := chaos.RaceReports(filepath.Join(dir, "*.log"))
		if err != nil {
			t.Errorf("search node logs for race reports: %v", err)
		}
		for _, r := range reports {
			t.Error(r)
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("log of %s: %s", n.ID, tail(n.logs, 3000))
			}
		}
	})
	return nodes
}

// members lists the nodes' ids and addresses.
func members(nodes []*node) []Member {
	var ms []Member
	for _, n := range nodes {
		ms = append(ms, n.Member)
	}
	return ms
}

// tail returns the last n bytes of a file, for a failure message.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return "\n" + strings.TrimSpace(string(b))
}

// digestOf asks a node for DEBUG DIGEST ("applied:hex").
func digestOf(ctx context.Context, cl *goredis.Client) (applied uint64, digest string, err error) {
	d, err := cl.Do(ctx, "debug", "digest").Text()
	if err != nil {
		return 0, "", fmt.Errorf("DEBUG DIGEST: %w", err)
	}
	a, h, ok := strings.Cut(d, ":")
	if !ok {
		return 0, "", fmt.Errorf("DEBUG DIGEST answered %q, want applied:digest", d)
	}
	if _, err := fmt.Sscan(a, &applied); err != nil {
		return 0, "", fmt.Errorf("DEBUG DIGEST answered %q: %w", d, err)
	}
	return applied, h, nil
}
