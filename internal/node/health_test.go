package node

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/raft"
)

// TestReadinessIsAFunctionOfState: /readyz's answer depends only on the
// group's status, the sampled target and the failure, so asking again
// with the same inputs gives the same answer however often it is asked.
func TestReadinessIsAFunctionOfState(t *testing.T) {
	failed := errors.New("raft group 1 stopped serving: save to wal: no space left on device")
	for _, tc := range []struct {
		name    string
		st      raft.Status
		target  uint64
		failure error
		ready   bool
		says    string
	}{
		{"caught up leader", raft.Status{State: "leader", LeaderID: 1, Commit: 10, Applied: 10}, 8, nil, true, "ready: state=leader applied=10"},
		{"follower behind the live commit but past the sample", raft.Status{State: "follower", LeaderID: 1, Commit: 20, Applied: 12}, 12, nil, true, "ready: state=follower"},
		{"follower behind the sample", raft.Status{State: "follower", LeaderID: 1, Commit: 20, Applied: 11}, 12, nil, false, "applied=11 behind commit=12"},
		{"sample ahead of a restarted node's commit", raft.Status{State: "follower", LeaderID: 1, Commit: 5, Applied: 5}, 9, nil, true, "ready"},
		{"no leader", raft.Status{State: "candidate", Commit: 10, Applied: 10}, 10, nil, false, "no leader known (state=candidate)"},
		{"failed", raft.Status{State: raft.StateFailed, Commit: 10, Applied: 10}, 10, failed, false, "no space left on device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, msg := readiness(tc.st, tc.target, tc.failure)
			for range 100 {
				ok2, msg2 := readiness(tc.st, tc.target, tc.failure)
				require.Equal(t, ok, ok2)
				require.Equal(t, msg, msg2)
			}
			require.Equal(t, tc.ready, ok, msg)
			require.Contains(t, msg, tc.says)
		})
	}
}
