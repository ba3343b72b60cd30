package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
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

// release is a previous release a rolling upgrade starts from; its
// binary is built from this repository's history.
type release struct {
	// commit is the release's full hash.
	commit string
	// format is the log format its binaries run a cluster at (their
	// maximum): the cluster must stay at it while any of them remains.
	format uint8
	// reportsFormat: its INFO raft has cluster_format (format-2 binaries
	// on; the format-1 release predates format versions).
	reportsFormat bool
	// refusesNewer: it refuses to start on a data directory at a format
	// above its own (kv's open and node.checkFormat, format-2 binaries
	// on). The format-1 release may start, and must then be cut off by
	// the new members.
	refusesNewer bool
}

// TestRollingUpgradeFromPreviousRelease upgrades a cluster of the format-1
// release (OldRelease, before format versions) to this tree's binary:
// testRollingUpgrade says what is checked.
func TestRollingUpgradeFromPreviousRelease(t *testing.T) {
	testRollingUpgrade(t, release{commit: OldRelease, format: kv.FormatV1})
}

// TestRollingUpgradeFromFormat2Release upgrades a cluster of the format-2
// release (Format2Release: TTLs, no collections) to this tree's binary. On
// top of what testRollingUpgrade checks for every release: the old cluster
// starts at format 2, SET PX (format 2) keeps working through the upgrade,
// and the old binary refuses to start on a member's data directory once
// the cluster is at format 3.
func TestRollingUpgradeFromFormat2Release(t *testing.T) {
	testRollingUpgrade(t, release{commit: Format2Release, format: kv.FormatV2, reportsFormat: true, refusesNewer: true})
}

// TestRollingUpgradeFromFormat3Release upgrades a cluster of the format-3
// release (Format3Release: collections, no transactions) to this tree's
// binary: HSET (format 3) keeps working through the upgrade, MULTI/EXEC
// (format 4) is refused until the last member runs this binary, and the
// old binary refuses a member's directory once the cluster is at format 4.
func TestRollingUpgradeFromFormat3Release(t *testing.T) {
	testRollingUpgrade(t, release{commit: Format3Release, format: kv.FormatV3, reportsFormat: true, refusesNewer: true})
}

// testRollingUpgrade builds rel from this repository's history, starts a
// 3-node cluster of it, and replaces its nodes one at a time with this
// tree's binary (same data directory, same command line) while clients
// write through every node. While an old member remains, the cluster stays
// at rel's format: a write that needs more (gatedWrites) is refused with
// an error naming the format it needs and leaves nothing behind, and one
// that needs no more works and reads back on every node, old ones
// included. Once all three are new the format must rise to this binary's
// (kv.MaxFormat); then nothing acknowledged may be missing on any node, the
// replicas' DEBUG DIGESTs must agree, every gated write must work through
// every node, and rel's binary must be refused on a member's directory.
func testRollingUpgrade(t *testing.T, rel release) {
	if testing.Short() {
		t.Skip("builds a previous release and runs a 3-node cluster of real processes; the README's test command runs it")
	}
	old := oldBinary(t, rel.commit)
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
	if rel.reportsFormat {
		// A fresh cluster raises itself to its binaries' format within a
		// few round trips of its first election.
		require.True(t, waitFormat(ctx, t, nodes, strconv.Itoa(int(rel.format)), 30*time.Second),
			"a new cluster of %s starts at format %d", rel.commit[:7], rel.format)
	}

	l := startLoad(nodes, 4, rel.loadTTL())
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
			// command that needs more is refused rather than written in a
			// form the old members could not apply.
			requireFormatHeld(ctx, t, rel, nodes)
			checkGatedWrites(ctx, t, rel.format, n, nodes, fmt.Sprintf("step%d", i))
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
		t.FailNow() // waitFormat reported why; the checks below need the raise
	}
	for _, n := range nodes {
		checkGatedWrites(ctx, t, kv.MaxFormat, n, nodes, "raised-via-"+n.ID)
	}
	checkOldBinaryRefused(ctx, t, rel, old, bin, nodes)
	for _, n := range nodes {
		n.stop(t)
	}
}

// loadTTL is the TTL of the load's SETs: none on a format-1 cluster, which
// has no TTLs; an hour from format 2 on, so that SET PX runs all through
// the upgrade and no key expires before the load is checked.
func (r release) loadTTL() time.Duration {
	if r.format < kv.FormatV2 {
		return 0
	}
	return time.Hour
}

// requireFormatHeld checks, while an old member remains, that every node
// reports cluster_format rel.format ("" is allowed only from an old binary
// that predates the field).
func requireFormatHeld(ctx context.Context, t *testing.T, rel release, nodes []*node) {
	t.Helper()
	allowed := []string{strconv.Itoa(int(rel.format))}
	if !rel.reportsFormat {
		allowed = append(allowed, "")
	}
	for _, n := range nodes {
		// A node restarted a moment ago may still refuse the first
		// connection of a client whose pool met its downtime (go-redis
		// answers the last dial error until its background dial
		// succeeds; seen once in CI): only such errors are retried.
		var f, fields string
		var err error
		for deadline := time.Now().Add(10 * time.Second); ; {
			f, fields, err = clusterFormat(ctx, n.cl)
			if err == nil || !strings.Contains(err.Error(), "connection refused") || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "INFO raft of %s", n.ID)
		require.Contains(t, allowed, f, "%s reports cluster_format %q while an old member remains (%s)", n.ID, f, fields)
	}
}

// gatedWrite is a write that needs a given log format, and how to tell it
// took effect.
type gatedWrite struct {
	// format is the log format the write needs (its op's minFormat).
	format uint8
	// name labels the write in messages and keys.
	name string
	// write sends it through cl to key; an unexpected reply is an error.
	write func(ctx context.Context, cl *goredis.Client, key string) error
	// check verifies on n that the write to key took effect.
	check func(ctx context.Context, t *testing.T, n *node, key string)
}

// gatedWrites are the writes whose format a rolling upgrade checks: SET PX
// (format 2, TTLs), HSET (format 3, the collection ops) and MULTI/EXEC
// (format 4, kv.OpExec).
var gatedWrites = []gatedWrite{
	{
		format: kv.FormatV2, name: "setpx",
		write: func(ctx context.Context, cl *goredis.Client, key string) error {
			return cl.Set(ctx, key, "v", 100*time.Second).Err()
		},
		check: func(ctx context.Context, t *testing.T, n *node, key string) {
			t.Helper()
			ttl, err := n.cl.PTTL(ctx, key).Result()
			require.NoError(t, err, "PTTL %s on %s", key, n.ID)
			require.Greater(t, ttl, 80*time.Second, "PTTL %s on %s", key, n.ID)
			require.LessOrEqual(t, ttl, 100*time.Second, "PTTL %s on %s", key, n.ID)
		},
	},
	{
		format: kv.FormatV3, name: "hset",
		write: func(ctx context.Context, cl *goredis.Client, key string) error {
			added, err := cl.HSet(ctx, key, "field", "value").Result()
			if err == nil && added != 1 {
				err = fmt.Errorf("HSET %s field value replied %d, want 1 (a new field)", key, added)
			}
			return err
		},
		check: func(ctx context.Context, t *testing.T, n *node, key string) {
			t.Helper()
			typ, err := n.cl.Type(ctx, key).Result()
			require.NoError(t, err, "TYPE %s on %s", key, n.ID)
			require.Equal(t, "hash", typ, "TYPE %s on %s", key, n.ID)
			v, err := n.cl.HGet(ctx, key, "field").Result()
			require.NoError(t, err, "HGET %s field on %s", key, n.ID)
			require.Equal(t, "value", v, "HGET %s field on %s", key, n.ID)
		},
	},
	{
		format: kv.FormatV4, name: "exec",
		write: func(ctx context.Context, cl *goredis.Client, key string) error {
			_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, key, "one", 0)
				p.Append(ctx, key, "two")
				return nil
			})
			return err
		},
		check: func(ctx context.Context, t *testing.T, n *node, key string) {
			t.Helper()
			v, err := n.cl.Get(ctx, key).Result()
			require.NoError(t, err, "GET %s on %s", key, n.ID)
			require.Equal(t, "onetwo", v, "GET %s on %s", key, n.ID)
		},
	},
}

// checkGatedWrites sends every gated write through via, on a cluster at
// format have. One that needs more than have must be refused with an error
// that names the format it needs, and leave its key absent on every node;
// one that needs no more must work and read back on every node in nodes.
func checkGatedWrites(ctx context.Context, t *testing.T, have uint8, via *node, nodes []*node, tag string) {
	t.Helper()
	for _, w := range gatedWrites {
		key := "upgrade:" + w.name + ":" + tag
		err := w.write(ctx, via.cl, key)
		if w.format > have {
			require.Error(t, err, "%s through %s must be refused while the cluster is at format %d", w.name, via.ID, have)
			require.ErrorContains(t, err, fmt.Sprintf("needs log format %d", w.format), "%s through %s at format %d", w.name, via.ID, have)
			t.Logf("%s at format %d: %v", w.name, have, err)
			for _, n := range nodes {
				c, err := n.cl.Exists(ctx, key).Result()
				require.NoError(t, err, "EXISTS %s on %s", key, n.ID)
				require.Zero(t, c, "the refused %s wrote %s (seen on %s)", w.name, key, n.ID)
			}
			continue
		}
		require.NoError(t, err, "%s through %s at format %d", w.name, via.ID, have)
		for _, n := range nodes {
			w.check(ctx, t, n, key)
		}
	}
}

// checkOldBinaryRefused restarts one member of a cluster at this binary's
// format on rel's binary (an attempted downgrade; issue #14, section 6: "a
// binary older than the cluster version is refused when it joins or
// restarts"). A release that knows format versions (rel.refusesNewer) must
// exit with an error naming the directory's format. The format-1 release
// may exit, or keep running cut off: the new members drop what it sends
// and send it nothing, so it never learns a leader and never acknowledges
// a write. Either way the others keep taking writes. The member's data
// directory is then put back as the new binary left it (an old binary
// replaying entries it cannot read may have applied them wrongly: that is
// why it must be refused) and the member rejoins on the new binary.
func checkOldBinaryRefused(ctx context.Context, t *testing.T, rel release, old, bin string, nodes []*node) {
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

	if rel.refusesNewer {
		select {
		case <-victim.proc.Exited():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s's binary still runs 30s after it started on %s's directory at format %d", rel.commit[:7], victim.ID, kv.MaxFormat)
		}
		err := victim.proc.exitError()
		require.Error(t, err, "%s's binary must fail on a directory at format %d", rel.commit[:7], kv.MaxFormat)
		why := regexp.MustCompile(fmt.Sprintf(`[^\n]*format (version )?%d\b[^\n]*`, kv.MaxFormat)).FindString(lastRun(t, victim.logs))
		require.NotEmpty(t, why, "%s's binary must say in its log that it refuses a directory at format %d (see %s)", rel.commit[:7], kv.MaxFormat, victim.logs)
		t.Logf("%s refused a format-%d directory: %v: %s", rel.commit[:7], kv.MaxFormat, err, why)
		require.NoError(t, other.cl.Set(ctx, "upgrade:during-downgrade", "v", 0).Err(), "the new members keep taking writes")
	} else {
		checkOldBinaryCutOff(ctx, t, victim, other)
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

// checkOldBinaryCutOff checks, for 2 s or until it exits, that a binary
// that predates format versions, restarted on victim's directory, neither
// acknowledges a write nor learns a leader, while other keeps taking
// writes.
func checkOldBinaryCutOff(ctx context.Context, t *testing.T, victim, other *node) {
	t.Helper()
	op, cancel := context.WithTimeout(ctx, 3*time.Second)
	err := victim.cl.Set(op, "upgrade:downgrade", "must not be acknowledged", 0).Err()
	cancel()
	require.Error(t, err, "a write through the previous release, restarted on a member above its format, was acknowledged")
	for i := range 20 {
		if !victim.proc.Running() {
			t.Logf("the previous release exited on a member above its format: %v", victim.proc.exitError())
			return
		}
		op, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := victim.cl.Info(op, "raft").Result()
		cancel()
		if err == nil {
			require.NotRegexp(t, `raft_leader_id:\S`, info, "the previous release learned a leader of a cluster above its format")
		}
		require.NoError(t, other.cl.Set(ctx, fmt.Sprintf("upgrade:during-downgrade:%d", i), "v", 0).Err(), "the new members keep taking writes")
		time.Sleep(100 * time.Millisecond) // an invariant checked over 2 s, not a wait
	}
}

// lastRun returns what the last process started on a log file wrote: the
// text from the last header StartProcess wrote (logHeader) on.
func lastRun(t *testing.T, logPath string) string {
	t.Helper()
	b, err := os.ReadFile(logPath)
	require.NoError(t, err)
	s := string(b)
	if i := strings.LastIndex(s, logHeader); i >= 0 {
		s = s[i:]
	}
	return s
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
//   - SET up:w:s:j to a value of its own, with PX setTTL when setTTL is
//     not 0: acknowledged means present, with a TTL of at most setTTL.
//   - INCR up:w:c: the value is at least the largest acknowledged reply and
//     at most the number of attempts (an unanswered INCR may have applied).
//   - APPEND up:w:a with token "j;": every acknowledged token is present,
//     every token present was attempted, each once, in attempt order.
type load struct {
	setTTL time.Duration
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

// startLoad starts the load's workers; setTTL is the TTL of its SETs (0:
// none).
func startLoad(nodes []*node, workers int, setTTL time.Duration) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{setTTL: setTTL, cancel: cancel, sets: map[string]string{}}
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
					if err = cl.Set(op, k, v, l.setTTL).Err(); err == nil {
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
		if l.setTTL > 0 {
			ttl, err := n.cl.PTTL(ctx, k).Result()
			require.NoError(t, err, "PTTL %s on %s", k, n.ID)
			require.Greater(t, ttl, time.Duration(0), "PTTL %s on %s: the SET had PX %v", k, n.ID, l.setTTL)
			require.LessOrEqual(t, ttl, l.setTTL, "PTTL %s on %s", k, n.ID)
		}
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
