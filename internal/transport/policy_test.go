package transport

import (
	"io"
	"log"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// TestLaneUnreachableThrottlesReplication measures the cost behind the
// drop-reporting policy (reportForLocalDrop): one ReportUnreachable moves a
// healthy follower from StateReplicate to StateProbe, where the leader sends
// a single MsgApp and then waits for the follower's next heartbeat
// response. Reporting every locally dropped heartbeat would inflict this on
// followers whose only fault is our full queue.
func TestLaneUnreachableThrottlesReplication(t *testing.T) {
	nodes := map[uint64]*raft.RawNode{}
	stores := map[uint64]*raft.MemoryStorage{}
	for _, id := range []uint64{1, 2} {
		st := raft.NewMemoryStorage()
		require.NoError(t, st.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
			Index: new(uint64(1)), Term: new(uint64(1)), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}},
		}}))
		rn, err := raft.NewRawNode(&raft.Config{
			ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: st, Applied: 1,
			MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256, CheckQuorum: true, PreVote: true,
			Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
		})
		require.NoError(t, err)
		nodes[id], stores[id] = rn, st
	}
	// pump runs both nodes to quiescence, delivering messages unless hold
	// says to keep them; it returns the MsgApps sent to node 2.
	pump := func(hold bool) (apps int) {
		for progress := true; progress; {
			progress = false
			for id, rn := range nodes {
				for rn.HasReady() {
					progress = true
					rd := rn.Ready()
					require.NoError(t, stores[id].Append(rd.Entries))
					if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
						require.NoError(t, stores[id].SetHardState(rd.HardState))
					}
					for _, m := range rd.Messages {
						if m.GetType() == raftpb.MsgApp && m.GetTo() == 2 {
							apps++
						}
						if !hold {
							_ = nodes[m.GetTo()].Step(m)
						}
					}
					rn.Advance(rd)
				}
			}
		}
		return apps
	}
	require.NoError(t, nodes[1].Campaign())
	pump(false)
	require.NoError(t, nodes[1].Propose([]byte("warm")))
	pump(false)
	state := func() tracker.StateType { return nodes[1].Status().Progress[2].State }
	require.Equal(t, tracker.StateReplicate, state())

	const proposals = 10
	propose := func() int {
		for i := 0; i < proposals; i++ {
			require.NoError(t, nodes[1].Propose([]byte("x")))
		}
		return pump(true) // responses held back: count what the leader sends
	}
	healthy := propose()
	nodes[1].ReportUnreachable(2)
	require.Equal(t, tracker.StateProbe, state())
	throttled := propose()
	t.Logf("MsgApp to the follower for %d proposals: %d in StateReplicate, %d after one ReportUnreachable", proposals, healthy, throttled)
	require.Equal(t, proposals, healthy)
	require.LessOrEqual(t, throttled, 1, "a probing follower gets one MsgApp per heartbeat round trip")
}
