package upgrade

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/elastickv/elastickv/internal/kv"
)

// TestRollingUpgradeFromPreviousRelease builds the previous release from
// this repository's history, starts a 3-node cluster of it, and replaces
// its nodes one at a time with this tree's binary (same data directory,
// same command line) while clients write through every node. Once all
// three are new the cluster format version must rise to 2; then nothing
// acknowledged may be missing on any node, the replicas' DEBUG DIGESTs must
// agree, and a command that needs format 2 (SET PX, then PTTL) must work.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the previous release and runs a 3-node cluster of real processes; the README's test command runs it")
	}
	old := oldBinary(t)
	bin := newBinary(t)
	dir := t.TempDir()
	nodes := newNodes(t, dir, 3)
	ms := members(nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, n := range nodes {
		n.start(t, old, ms)
	}
	for _, n := range nodes {
		require.NoError(t, WaitServing(ctx, n.proc, n.cl), "old cluster, %s", n.ID)
	}

	l := startLoad(nodes, 4)
	defer l.stop()
	l.waitAcked(t, 50, 60*time.Second)
	// Followers first, the leader last, as scripts/rolling-update.sh does.
	leader := leaderOf(ctx, t, nodes)
	var order []*node
	for _, n := range nodes {
		if n.ID != leader {
			order = append(order, n)
		}
	}
	for _, n := range nodes {
		if n.ID == leader {
			order = append(order, n)
		}
	}
	for i, n := range order {
		n.stop(t)
		n.start(t, bin, ms) // the old command line, unchanged
		require.NoError(t, WaitServing(ctx, n.proc, n.cl), "%s restarted on the new binary", n.ID)
		l.waitAcked(t, l.ackedCount()+30, 60*time.Second) // the load goes on
		if i == 0 {
			// So far the old leader replicated to the new follower. Now
			// the new node leads and the two old ones apply what it
			// proposes.
			require.NotEqual(t, n.ID, leaderOf(ctx, t, nodes), "an old node still leads after follower %s's restart", n.ID)
			transferLeader(ctx, t, bin, n)
			l.waitAcked(t, l.ackedCount()+30, 60*time.Second)
		}
		if i < len(nodes)-1 {
			// An old member remains: the format must not have risen, and a
			// command that needs format 2 is refused rather than written in
			// a form the old member would apply differently.
			for _, m := range order[:i+1] {
				f, _, err := clusterFormat(ctx, m.cl)
				require.NoError(t, err)
				require.Contains(t, []string{"", "1"}, f, "%s reports cluster_format %s while an old member remains", m.ID, f)
			}
			err := n.cl.Set(ctx, "upgrade:px:early", "v", 100*time.Second).Err()
			require.Error(t, err, "SET PX must be refused while the cluster is at format 1")
			t.Logf("SET PX with an old member: %v", err)
		}
	}

	// Every member is new: the format rises (issue #14, section 6). The load
	// keeps running across the raise.
	raised := waitFormat(ctx, t, nodes, strconv.Itoa(int(kv.MaxFormat)), 30*time.Second)
	l.waitAcked(t, l.ackedCount()+30, 60*time.Second)
	l.stop()
	for _, n := range nodes {
		l.check(ctx, t, n)
	}
	waitConverged(ctx, t, nodes, 30*time.Second)
	if !raised {
		t.FailNow() // waitFormat reported why; the checks below need format 2
	}

	require.NoError(t, nodes[0].cl.Set(ctx, "upgrade:px", "v", 100*time.Second).Err(), "SET PX after the raise")
	for _, n := range nodes {
		ttl, err := n.cl.PTTL(ctx, "upgrade:px").Result()
		require.NoError(t, err, "PTTL on %s", n.ID)
		require.Greater(t, ttl, 90*time.Second, "PTTL on %s", n.ID)
		require.LessOrEqual(t, ttl, 100*time.Second, "PTTL on %s", n.ID)
	}
	checkOldBinaryRefused(ctx, t, old, bin, nodes)
	for _, n := range nodes {
		n.stop(t)
	}
}

// checkOldBinaryRefused restarts one member of a cluster at format 2 on the
// previous release (an attempted downgrade; issue #14, section 6: "a binary
// older than the cluster version is refused when it joins or restarts").
// The old binary may exit, or keep running cut off: the new members drop
// what it sends and send it nothing, so it never learns a leader and never
// acknowledges a write, while the others keep taking writes. Its data
// directory is then put back as the new binary left it (the old binary,
// replaying format-2 entries it cannot read, may have applied them
// wrongly: that is why it must be refused) and the member rejoins on the
// new binary.
func checkOldBinaryRefused(ctx context.Context, t *testing.T, old, bin string, nodes []*node) {
	t.Helper()
	leader := leaderOf(ctx, t, nodes)
	var victim, other *node
	for _, n := range nodes {
		switch {
		case n.ID == leader:
			other = n
		case victim == nil:
			victim = n
		}
	}
	victim.stop(t)
	backup := victim.dir + ".new-binary"
	require.NoError(t, CopyTree(victim.dir, backup))
	victim.start(t, old, members(nodes))

	op, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := victim.cl.Set(op, "upgrade:downgrade", "must not be acknowledged", 0).Err()
	cancel()
	require.Error(t, err, "a write through the previous release, restarted on a format-2 member, was acknowledged")
	for i := range 20 {
		if !victim.proc.Running() {
			t.Logf("the previous release exited on a format-2 member: %v", victim.proc.exitError())
			break
		}
		op, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := victim.cl.Info(op, "raft").Result()
		cancel()
		if err == nil {
			require.NotRegexp(t, `raft_leader_id:\S`, info, "the previous release learned a leader of a format-2 cluster")
		}
		require.NoError(t, other.cl.Set(ctx, fmt.Sprintf("upgrade:during-downgrade:%d", i), "v", 0).Err(), "the new members keep taking writes")
		time.Sleep(100 * time.Millisecond) // an invariant checked over 2 s, not a wait
	}
	if victim.proc.Running() {
		victim.stop(t)
	}
	require.NoError(t, os.RemoveAll(victim.dir))
	require.NoError(t, CopyTree(backup, victim.dir))
	victim.start(t, bin, members(nodes))
	require.NoError(t, WaitServing(ctx, victim.proc, victim.cl), "%s back on the new binary", victim.ID)
	waitConverged(ctx, t, nodes, 30*time.Second)
}

// leaderOf returns the id of the node that says it leads the highest term,
// waiting up to 10 s for one.
func leaderOf(ctx context.Context, t *testing.T, nodes []*node) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		best, bestTerm := "", uint64(0)
		for _, n := range nodes {
			op, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := n.cl.Info(op, "raft").Result()
			cancel()
			if err != nil {
				continue
			}
			var state string
			var term uint64
			for _, line := range strings.Split(info, "\n") {
				k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
				switch k {
				case "raft_state":
					state = v
				case "raft_term":
					term, _ = strconv.ParseUint(v, 10, 64)
				}
			}
			if state == "leader" && term >= bestTerm {
				best, bestTerm = n.ID, term
			}
		}
		if best != "" {
			return best
		}
		if time.Now().After(deadline) {
			t.Fatal("no node reports itself leader within 10s")
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// transferLeader moves leadership to n with `elastickv admin
// transfer-leader` (sent to n's peer address) and waits until n leads.
func transferLeader(ctx context.Context, t *testing.T, bin string, n *node) {
	t.Helper()
	op, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	out, err := exec.CommandContext(op, bin, "admin", "--endpoint", n.RaftAddr, "--timeout", "30s", "transfer-leader", n.ID).CombinedOutput()
	require.NoError(t, err, "elastickv admin transfer-leader %s: %s", n.ID, out)
	deadline := time.Now().Add(10 * time.Second)
	for {
		op, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := n.cl.Info(op, "raft").Result()
		cancel()
		if err == nil && strings.Contains(info, "raft_state:leader") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not lead 10s after transfer-leader: %s", n.ID, info)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition with a deadline
	}
}

// clusterFormat returns the cluster_format field of a node's INFO raft, or
// "" when the binary has no such field (the previous release), and the
// node's format fields (cluster_format, binary_max_format,
// min_member_format) as one line for a failure message.
func clusterFormat(ctx context.Context, cl *goredis.Client) (format, fields string, err error) {
	op, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := cl.Info(op, "raft").Result()
	if err != nil {
		return "", "", fmt.Errorf("INFO raft: %w", err)
	}
	var fs []string
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if strings.Contains(k, "format") {
			fs = append(fs, k+":"+v)
		}
		if k == "cluster_format" {
			format = v
		}
	}
	if len(fs) == 0 {
		return "", "(no format fields in INFO raft)", nil
	}
	return format, strings.Join(fs, ","), nil
}

// waitFormat polls every node's INFO raft until each reports
// cluster_format:want, for at most limit. On a timeout it fails the test
// with each node's format fields and reports false.
func waitFormat(ctx context.Context, t *testing.T, nodes []*node, want string, limit time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := make([]string, len(nodes))
		all := true
		for i, n := range nodes {
			f, fields, err := clusterFormat(ctx, n.cl)
			if err != nil {
				fields = "error: " + err.Error()
			}
			got[i] = n.ID + "=" + fields
			all = all && err == nil && f == want
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("the cluster format did not rise to %s within %v of every member running the new binary: %s", want, limit, strings.Join(got, " "))
			return false
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

// waitConverged waits until every node reports the same DEBUG DIGEST hash
// (chaos.SameDigests: at format 2 the applied indexes may differ by the
// leader's idle stamp entries). Writes must have stopped.
func waitConverged(ctx context.Context, t *testing.T, nodes []*node, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := make([]string, len(nodes))
		same := true
		for i, n := range nodes {
			op, cancel := context.WithTimeout(ctx, 2*time.Second)
			a, d, err := digestOf(op, n.cl)
			cancel()
			if err != nil {
				got[i] = "error: " + err.Error()
				same = false
				continue
			}
			got[i] = strconv.FormatUint(a, 10) + ":" + d
		}
		if same && chaos.SameDigests(got) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge within %v: %v", limit, got)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
}

// load writes SET, INCR and APPEND through every node from several
// workers and records what was acknowledged. Each worker owns its keys, so
// what it recorded fixes what every replica must hold:
//   - SET up:w:s:j to a value of its own: acknowledged means present.
//   - INCR up:w:c: the value is at least the largest acknowledged reply and
//     at most the number of attempts (an unanswered INCR may have applied).
//   - APPEND up:w:a with token "j;": every acknowledged token is present,
//     every token present was attempted, each once, in attempt order.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu      sync.Mutex
	acked   int
	sets    map[string]string
	workers []*workerLog
}

// workerLog is one worker's INCR and APPEND record.
type workerLog struct {
	incrMax, incrTries int64
	appendAcked        []int // token numbers, in order
	appendTries        int
}

func startLoad(nodes []*node, workers int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, sets: map[string]string{}}
	for w := range workers {
		wl := &workerLog{}
		l.workers = append(l.workers, wl)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for j := 0; ctx.Err() == nil; j++ {
				// Rotate through the nodes, so the load reaches followers
				// (forwarded writes) and goes on while one is down.
				cl := nodes[(w+j)%len(nodes)].cl
				op, opCancel := context.WithTimeout(ctx, 3*time.Second)
				var err error
				switch j % 3 {
				case 0:
					k, v := fmt.Sprintf("up:%d:s:%d", w, j), fmt.Sprintf("value %d of worker %d", j, w)
					if err = cl.Set(op, k, v, 0).Err(); err == nil {
						l.mu.Lock()
						l.sets[k] = v
						l.mu.Unlock()
					}
				case 1:
					l.mu.Lock()
					wl.incrTries++
					l.mu.Unlock()
					var n int64
					if n, err = cl.Incr(op, fmt.Sprintf("up:%d:c", w)).Result(); err == nil {
						l.mu.Lock()
						wl.incrMax = max(wl.incrMax, n)
						l.mu.Unlock()
					}
				default:
					l.mu.Lock()
					wl.appendTries++
					l.mu.Unlock()
					if err = cl.Append(op, fmt.Sprintf("up:%d:a", w), strconv.Itoa(j)+";").Err(); err == nil {
						l.mu.Lock()
						wl.appendAcked = append(wl.appendAcked, j)
						l.mu.Unlock()
					}
				}
				opCancel()
				if err == nil {
					l.mu.Lock()
					l.acked++
					l.mu.Unlock()
				} else if ctx.Err() == nil {
					// A stopped node refuses at once: do not spin on it.
					select {
					case <-ctx.Done():
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	return l
}

// stop ends the load and waits for its workers.
func (l *load) stop() {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}

func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

// waitAcked waits until at least n writes have been acknowledged.
func (l *load) waitAcked(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for l.ackedCount() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged within %v, want %d: the cluster stopped taking writes", l.ackedCount(), limit, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
}

// check reads every key of the load through n (linearizable reads) and
// checks it against what was acknowledged. The load must have stopped.
func (l *load) check(ctx context.Context, t *testing.T, n *node) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, v := range l.sets {
		got, err := n.cl.Get(ctx, k).Result()
		require.NoError(t, err, "GET %s on %s (an acknowledged SET)", k, n.ID)
		require.Equal(t, v, got, "GET %s on %s", k, n.ID)
	}
	for w, wl := range l.workers {
		c, err := n.cl.Get(ctx, fmt.Sprintf("up:%d:c", w)).Int64()
		if wl.incrMax == 0 && errors.Is(err, goredis.Nil) {
			c, err = 0, nil
		}
		require.NoError(t, err, "GET up:%d:c on %s", w, n.ID)
		require.GreaterOrEqual(t, c, wl.incrMax, "counter up:%d:c on %s lost an acknowledged INCR", w, n.ID)
		require.LessOrEqual(t, c, wl.incrTries, "counter up:%d:c on %s counts more INCRs than were sent", w, n.ID)

		s, err := n.cl.Get(ctx, fmt.Sprintf("up:%d:a", w)).Result()
		if len(wl.appendAcked) == 0 && errors.Is(err, goredis.Nil) {
			s, err = "", nil
		}
		require.NoError(t, err, "GET up:%d:a on %s", w, n.ID)
		present := map[int]bool{}
		last := -1
		for _, tok := range strings.Split(strings.TrimSuffix(s, ";"), ";") {
			if tok == "" {
				continue
			}
			j, err := strconv.Atoi(tok)
			require.NoError(t, err, "up:%d:a on %s holds %q", w, n.ID, s)
			require.Greater(t, j, last, "up:%d:a on %s: token %d out of order or repeated", w, n.ID, j)
			last = j
			present[j] = true
		}
		for _, j := range wl.appendAcked {
			require.True(t, present[j], "up:%d:a on %s lost the acknowledged APPEND of %d", w, n.ID, j)
		}
	}
}
