package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/raft"
)

// waitStatus polls the admin status through node via until ok accepts it.
func waitStatus(t *testing.T, c *Cluster, via int, timeout time.Duration, ok func(*node.ClusterStatus) bool) *node.ClusterStatus {
	t.Helper()
	cl := c.Admin(via)
	deadline := time.Now().Add(timeout)
	var last *node.ClusterStatus
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.Status(ctx)
		cancel()
		if err == nil && !st.Local && ok(st) {
			return st
		}
		last, lastErr = st, err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("status never satisfied the condition within %v: last %+v, err %v", timeout, last, lastErr)
	return nil
}

// hasPeerLanes says whether node i's transport has lanes (metric series)
// for peer name.
func hasPeerLanes(t *testing.T, c *Cluster, i int, name string) bool {
	t.Helper()
	mfs, err := c.Node(i).Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "elastickv_raft_dispatch_queue_depth" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == name {
					return true
				}
			}
		}
	}
	return false
}

func roleOf(st *node.ClusterStatus, name string) string {
	m, ok := st.Member(name)
	if !ok {
		return ""
	}
	return m.Role
}

func TestAdminStatusThroughAnyNode(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(20 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(0).Set(ctx, "k", "v", 0).Err())
	for i := range c.Size() {
		st := waitStatus(t, c, i, 5*time.Second, func(st *node.ClusterStatus) bool {
			for _, m := range st.Members {
				if m.Lag != 0 {
					return false
				}
			}
			return true
		})
		require.Equal(t, c.Name(leader), st.Leader, "asked %s", c.Name(i))
		require.Equal(t, c.Name(leader), st.Node, "a follower forwards status to the leader")
		require.Len(t, st.Members, 3)
		for j := range c.Size() {
			m, ok := st.Member(c.Name(j))
			require.True(t, ok)
			require.Equal(t, c.RaftAddr(j), m.Addr)
			require.Equal(t, raft.NodeID(c.Name(j)), m.ID)
			require.True(t, m.Known)
			require.True(t, m.Active, "%s active (steady across Raft's quorum checks)", m.Name)
			require.GreaterOrEqual(t, m.Match, st.Commit, "match of %s", m.Name)
			want := raft.RoleFollower
			if j == leader {
				want = raft.RoleLeader
			}
			require.Equal(t, want, m.Role)
		}
	}
}

func TestAdminAddLearnerPromoteRemove(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % 3
	cl := c.Admin(follower)

	// A learner that never comes up: it must not count toward quorum.
	st, err := cl.AddMember(ctx, "n9", "127.0.0.1:1", true, false)
	require.NoError(t, err)
	require.Equal(t, raft.RoleLearner, roleOf(st, "n9"))
	require.NoError(t, c.Client(follower).Set(ctx, "after-learner", "1", 0).Err())
	require.True(t, hasPeerLanes(t, c, leader, "n9"), "the leader has lanes to the new member, named")

	_, err = cl.AddMember(ctx, "n9", "127.0.0.1:2", false, false)
	require.ErrorIs(t, err, raft.ErrMemberExists)
	_, err = cl.AddMember(ctx, c.Name(leader), c.RaftAddr(leader), true, false)
	require.ErrorIs(t, err, raft.ErrMemberExists)
	_, err = cl.PromoteMember(ctx, c.Name(follower))
	require.ErrorIs(t, err, raft.ErrNotLearner)
	_, err = cl.PromoteMember(ctx, "nosuch")
	require.ErrorIs(t, err, raft.ErrUnknownMember)
	_, err = cl.RemoveMember(ctx, "nosuch")
	require.ErrorIs(t, err, raft.ErrUnknownMember)
	_, err = cl.TransferLeader(ctx, "n9")
	require.Error(t, err, "a learner cannot lead")

	// Promoted, n9 is a voter that is down: 4 voters, 3 up, still a quorum.
	st, err = cl.PromoteMember(ctx, "n9")
	require.NoError(t, err)
	require.Equal(t, raft.RoleFollower, roleOf(st, "n9"))
	require.NoError(t, c.Client(leader).Set(ctx, "after-promote", "1", 0).Err())

	st, err = cl.RemoveMember(ctx, "n9")
	require.NoError(t, err)
	_, ok := st.Member("n9")
	require.False(t, ok)
	require.Len(t, st.Members, 3)
	for i := range c.Size() {
		require.Eventually(t, func() bool {
			_, ok := c.Node(i).Group().Members()[raft.NodeID("n9")]
			return !ok
		}, 5*time.Second, 10*time.Millisecond, "%s forgets n9", c.Name(i))
		require.False(t, hasPeerLanes(t, c, i, "n9"), "%s closed its lanes to n9", c.Name(i))
	}
	require.NoError(t, c.Client(follower).Set(ctx, "after-remove", "1", 0).Err())
	c.WaitConverged(10 * time.Second)
}

func TestAdminRefusesSecondChangeWhilePending(t *testing.T) {
	// A long election timeout keeps the leader in place (CheckQuorum acts
	// only after a full timeout without a quorum) while its change cannot
	// commit.
	c := New(t, 3, WithTimings(50*time.Millisecond, 5*time.Second))
	leader := c.WaitLeader(20 * time.Second)
	g := c.Node(leader).Group()
	// The leader's own changes (members' format records) are done, so
	// the first change below is the only one pending.
	require.Eventually(t, g.FormatSettled, 10*time.Second, 10*time.Millisecond)
	for i := range c.Size() {
		if i != leader {
			c.Stop(i)
		}
	}
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := g.AddMember(short, raft.Member{Name: "n8", Addr: "127.0.0.1:1"}, true)
	require.Error(t, err, "cannot commit without a quorum")
	require.NotErrorIs(t, err, raft.ErrConfChangePending)
	ctx := c.Ctx(5 * time.Second)
	err = g.AddMember(ctx, raft.Member{Name: "n9", Addr: "127.0.0.1:2"}, true)
	require.ErrorIs(t, err, raft.ErrConfChangePending)
	err = g.RemoveMember(ctx, c.Name((leader+1)%3))
	require.ErrorIs(t, err, raft.ErrConfChangePending)
	for i := range c.Size() {
		if i != leader {
			c.Restart(i)
		}
	}
	c.WaitLeader(30 * time.Second)
	// Once the first change is resolved, the next one is accepted.
	l := c.WaitLeader(10 * time.Second)
	require.Eventually(t, func() bool {
		cctx, cc := context.WithTimeout(context.Background(), 2*time.Second)
		defer cc()
		err := c.Node(l).Group().AddMember(cctx, raft.Member{Name: "n9", Addr: "127.0.0.1:2"}, true)
		return err == nil
	}, 20*time.Second, 100*time.Millisecond)
}

func TestAdminTransferLeader(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	target := (leader + 2) % 3
	// Through a node that is neither the leader nor the target.
	cl := c.Admin((leader + 1) % 3)
	_, err := cl.TransferLeader(ctx, c.Name(target))
	require.NoError(t, err)
	require.Equal(t, target, c.WaitLeader(5*time.Second))
	require.NoError(t, c.Client(leader).Set(ctx, "k", "v", 0).Err())

	// No name: the most caught-up other voter.
	_, err = cl.TransferLeader(ctx, "")
	require.NoError(t, err)
	nl := c.WaitLeader(5 * time.Second)
	require.NotEqual(t, target, nl)
	// To the current leader: nothing to do.
	_, err = cl.TransferLeader(ctx, c.Name(nl))
	require.NoError(t, err)
	require.Equal(t, nl, c.WaitLeader(5*time.Second))
	v, err := c.Client(target).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}

func TestAdminRemoveLeader(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "before", "1", 0).Err())
	via := (leader + 1) % 3
	st, err := c.Admin(via).RemoveMember(ctx, c.Name(leader))
	require.NoError(t, err)
	_, ok := st.Member(c.Name(leader))
	require.False(t, ok, "old leader removed: %+v", st)
	require.Len(t, st.Members, 2)
	require.NotEqual(t, c.Name(leader), st.Leader)
	c.Stop(leader)
	nl := c.WaitLeader(10 * time.Second)
	require.NotEqual(t, leader, nl)
	for i := range c.Size() {
		if i == leader {
			continue
		}
		require.NoError(t, c.Client(i).Set(ctx, fmt.Sprintf("after-%d", i), "1", 0).Err())
		_, ok := c.Node(i).Group().Members()[raft.NodeID(c.Name(leader))]
		require.False(t, ok)
	}
	c.WaitConverged(10 * time.Second)
	v, err := c.Client(nl).Get(ctx, "before").Result()
	require.NoError(t, err)
	require.Equal(t, "1", v)
}

func TestJoinCatchesUpBySnapshotAndIsPromoted(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(100))
	ctx := c.Ctx(90 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	for i := range 600 {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%04d", i), strings.Repeat("v", 100), 0).Err())
	}
	first, err := c.Node(leader).Group().FirstIndex()
	require.NoError(t, err)
	require.Greater(t, first, uint64(1), "the leader compacted its log, so a new node needs a snapshot")

	via := (leader + 1) % 3
	n4, err := c.Join(via)
	require.NoError(t, err)
	st := waitStatus(t, c, leader, 30*time.Second, func(st *node.ClusterStatus) bool {
		return roleOf(st, c.Name(n4)) == raft.RoleFollower
	})
	require.Len(t, st.Members, 4)
	require.Equal(t, 1.0, counter(t, c, n4, "elastickv_raft_snapshots_installed_total"), "n4 catches up by snapshot")

	// Linearizable reads on the new node see everything, including writes
	// made right before.
	require.NoError(t, c.Client(leader).Set(ctx, "fresh", "yes", 0).Err())
	v, err := c.Client(n4).Get(ctx, "fresh").Result()
	require.NoError(t, err)
	require.Equal(t, "yes", v)
	n, err := c.Client(n4).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(601), n)
	require.NoError(t, c.Client(n4).Incr(ctx, "through-n4").Err())
	c.WaitConverged(20 * time.Second)

	// As a voter n4 is part of the quorum: with one original node down,
	// 3 of 4 voters still commit.
	c.Stop(via)
	require.NoError(t, c.Client(n4).Set(ctx, "with-n4-voting", "1", 0).Err())
	c.Restart(via)

	// A restart of the joined node uses its disk: no second add.
	c.Stop(n4)
	require.NoError(t, c.Client(leader).Set(ctx, "while-n4-down", "1", 0).Err())
	c.Restart(n4)
	v, err = c.Client(n4).Get(ctx, "while-n4-down").Result()
	require.NoError(t, err)
	require.Equal(t, "1", v)
	c.WaitConverged(20 * time.Second)
}

func TestJoinByLogWithoutSnapshot(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	for i := range 50 {
		require.NoError(t, c.Client(i%3).Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err())
	}
	n4, err := c.Join(0)
	require.NoError(t, err)
	waitStatus(t, c, 0, 30*time.Second, func(st *node.ClusterStatus) bool {
		return roleOf(st, c.Name(n4)) == raft.RoleFollower
	})
	n, err := c.Client(n4).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(50), n)
	require.Equal(t, 0.0, counter(t, c, n4, "elastickv_raft_snapshots_installed_total"))
	c.WaitConverged(20 * time.Second)
}

func TestJoinRefusesExistingID(t *testing.T) {
	c := New(t, 3)
	c.WaitLeader(5 * time.Second)
	_, err := c.JoinAs(c.Name(1), 0)
	require.Error(t, err)
	require.ErrorContains(t, err, "already a member")
	require.ErrorContains(t, err, "new --id")
	st := waitStatus(t, c, 0, 5*time.Second, func(*node.ClusterStatus) bool { return true })
	require.Len(t, st.Members, 3)
}

func TestMetricsTokenRequired(t *testing.T) {
	const token = "0123456789abcdef-secret"
	c := New(t, 1, func(_ int, cfg *node.Config) {
		cfg.MetricsAddr = "127.0.0.1:0"
		cfg.MetricsToken = token
	})
	base := "http://" + c.Node(0).MetricsAddr()
	hc := &http.Client{Timeout: 5 * time.Second}
	get := func(path, auth string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	code, _ := get("/metrics", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get("/metrics", "Bearer wrong-token-wrong-token")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = get("/debug/pprof/", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := get("/metrics", "Bearer "+token)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "elastickv_raft_term")
	code, _ = get("/healthz", "")
	require.Equal(t, http.StatusOK, code)
	require.Eventually(t, func() bool {
		code, _ := get("/readyz", "")
		return code == http.StatusOK
	}, 5*time.Second, 20*time.Millisecond)

	// The start-up rule: off loopback, no token, no start.
	cfg := node.DefaultConfig()
	cfg.Name, cfg.DataDir, cfg.RaftAddr, cfg.RedisAddr = "n1", t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.MetricsAddr = "0.0.0.0:0"
	_, err := node.Start(cfg)
	require.ErrorContains(t, err, "--metrics-token")
	cfg.MetricsToken = "short"
	require.ErrorContains(t, cfg.Validate(), "at least")
	cfg.MetricsToken = token
	require.NoError(t, cfg.Validate())
}

// TestReplaceNodeThatLostItsDisk is the recovery procedure for a lost disk:
// the node may not come back under its old id; the operator removes the id
// and adds a replacement with a new id and an empty data dir, which catches
// up by snapshot.
func TestReplaceNodeThatLostItsDisk(t *testing.T) {
	c := New(t, 3, WithSnapshotCount(100))
	ctx := c.Ctx(90 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	for i := range 400 {
		require.NoError(t, c.Client(leader).Set(ctx, fmt.Sprintf("k%04d", i), "v", 0).Err())
	}
	victim := (leader + 1) % 3
	c.WaitConverged(20 * time.Second)
	c.LoseDisk(victim)
	require.ErrorIs(t, c.TryRestart(victim), node.ErrLostDisk)

	survivor := (leader + 2) % 3
	_, err := c.Admin(survivor).RemoveMember(ctx, c.Name(victim))
	require.NoError(t, err)
	repl, err := c.Join(survivor)
	require.NoError(t, err)
	st := waitStatus(t, c, leader, 30*time.Second, func(st *node.ClusterStatus) bool {
		return roleOf(st, c.Name(repl)) == raft.RoleFollower
	})
	require.Len(t, st.Members, 3)
	require.Equal(t, 1.0, counter(t, c, repl, "elastickv_raft_snapshots_installed_total"), "the replacement catches up by snapshot")
	n, err := c.Client(repl).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(400), n)
	c.WaitConverged(20 * time.Second)
}

// A node transferred leadership to right after its promotion must know it
// was promoted: the leader does not hold back the commit of a membership
// change (internal/raft/commitrelay.go). With a long heartbeat interval the
// new voter would otherwise learn of the commit only at the next tick, and
// refuse to campaign as a learner when the transfer reached it.
func TestTransferToANodeJustPromoted(t *testing.T) {
	c := New(t, 3, WithTimings(time.Second, 4*time.Second))
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(15 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "k", "v", 0).Err())
	cl := c.Admin(leader)

	n4, err := c.Join(leader)
	require.NoError(t, err)
	waitStatus(t, c, leader, 30*time.Second, func(st *node.ClusterStatus) bool {
		return roleOf(st, c.Name(n4)) == raft.RoleFollower
	})
	_, err = cl.TransferLeader(ctx, c.Name(n4))
	require.NoError(t, err)
	require.Equal(t, n4, c.WaitLeader(15*time.Second))
	v, err := c.Client(n4).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", v)
}
