package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/raft"
)

// TestLeaseReadsSkipTheNetworkRound: with --read-mode lease, a leader that
// holds its lease answers GETs without a ReadIndex round, sees its own
// writes, and followers keep using ReadIndex.
func TestLeaseReadsSkipTheNetworkRound(t *testing.T) {
	c := New(t, 3, WithReadMode(raft.ReadModeLease))
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	lc := c.Client(leader)
	require.NoError(t, lc.Set(ctx, "k", "v0", 0).Err())
	// The first reads take rounds, which grant the lease; the lease reads
	// after that keep it renewed.
	require.Eventually(t, func() bool {
		_, err := lc.Get(ctx, "k").Result()
		return err == nil && c.Node(leader).Group().LeaseRemaining() > 0
	}, 5*time.Second, 10*time.Millisecond)

	leaseBefore := counter(t, c, leader, "elastickv_raft_lease_reads_total")
	roundsBefore := counter(t, c, leader, "elastickv_raft_read_index_reads_total")
	const n = 200
	for i := range n {
		if i%10 == 0 {
			require.NoError(t, lc.Set(ctx, "k", fmt.Sprint("v", i), 0).Err())
		}
		v, err := lc.Get(ctx, "k").Result()
		require.NoError(t, err)
		require.Equal(t, fmt.Sprint("v", i-i%10), v, "a lease read must see the leader's acknowledged write")
	}
	lease := counter(t, c, leader, "elastickv_raft_lease_reads_total") - leaseBefore
	rounds := counter(t, c, leader, "elastickv_raft_read_index_reads_total") - roundsBefore
	// The sequence takes well under a lease period per read and renewals
	// run every heartbeat, so nearly every read is a lease read.
	require.GreaterOrEqual(t, lease, float64(n-5), "lease reads (rounds: %v)", rounds)

	f := (leader + 1) % 3
	v, err := c.Client(f).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v190", v)
	require.Zero(t, counter(t, c, f, "elastickv_raft_lease_reads_total"), "followers never read under a lease")
	require.Zero(t, c.Node(f).Group().LeaseRemaining())
}

// TestLeaseEndsWithLeadershipTransfer: handing leadership over bypasses the
// vote rule the lease rests on, so the old leader must stop reading under
// its lease, and reads on it see the new leader's writes.
func TestLeaseEndsWithLeadershipTransfer(t *testing.T) {
	c := New(t, 3, WithReadMode(raft.ReadModeLease))
	ctx := c.Ctx(30 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "k", "old", 0).Err())
	require.Eventually(t, func() bool {
		_, err := c.Client(leader).Get(ctx, "k").Result()
		return err == nil && c.Node(leader).Group().LeaseRemaining() > 0
	}, 5*time.Second, 10*time.Millisecond)

	target := (leader + 1) % 3
	_, err := c.Admin(leader).TransferLeader(ctx, c.Name(target))
	require.NoError(t, err)
	require.Equal(t, target, c.WaitLeader(5*time.Second))
	require.Zero(t, c.Node(leader).Group().LeaseRemaining(), "the old leader still holds a lease")
	require.NoError(t, c.Client(target).Set(ctx, "k", "new", 0).Err())
	v, err := c.Client(leader).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "new", v)
}
