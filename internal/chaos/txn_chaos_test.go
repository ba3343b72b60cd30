package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChaosTransactions runs the transaction workloads alone (issue #17):
// MULTI/INCR/INCR/EXEC on pairs of keys with MGET and MULTI/GET/GET/EXEC
// readers (CheckTxn: all-or-nothing, isolated, no increment lost or
// doubled), the WATCH check-and-set counter (CheckCAS: no lost increment,
// no spurious abort), and the Lua compare-and-delete lock released by EVAL
// and EVALSHA (CheckLock: mutual exclusion, fencing order, no NOSCRIPT),
// under node kills (the leader's too), a paused leader and a random
// partition.
func TestChaosTransactions(t *testing.T) {
	workloads := []string{WorkloadTxn, WorkloadCAS, WorkloadLock}
	rep := runChaosWith(t, 1717, 32*time.Second, func(cfg *Config) {
		cfg.Workloads = workloads
	}, "kill", "kill-leader", "pause-leader", "partition-random")
	// A checker that saw nothing proves nothing.
	require.NotNil(t, rep.Txn)
	require.Positive(t, rep.Txn.Execs, "no MULTI/EXEC was acknowledged")
	require.Positive(t, rep.Txn.Reads, "no read of a pair answered")
	require.NotNil(t, rep.CAS)
	require.Positive(t, rep.CAS.Commits, "no CAS commit")
	require.Positive(t, rep.CAS.Aborts, "no CAS EXEC was aborted by WATCH: the clients never contended")
	require.NotNil(t, rep.Lock)
	require.Positive(t, rep.Lock.Fenced, "no lock hold took a fencing value")
	require.Positive(t, rep.Lock.Refused, "no acquisition found the lock held: the clients never contended")
	require.Positive(t, rep.Lock.ByHash, "no release ran by EVALSHA")
}
