package raft

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAckedRecordRoundTripAndIsNotAProposal(t *testing.T) {
	b := encodeAckedRecord(0x0102030405060708)
	id, ok := decodeAckedRecord(b)
	require.True(t, ok)
	require.Equal(t, uint64(0x0102030405060708), id)
	_, _, _, _, ok = decodeProposal(b)
	require.False(t, ok, "a binary without records applies one as an entry without payload")
	_, ok = decodeAckedRecord(encodeProposal(1, 2, []byte("x")))
	require.False(t, ok)
	_, ok = decodeAckedRecord(b[:ackedRecordLen-1])
	require.False(t, ok)
}

// TestAcknowledgedMembersAreRecordedAndSurviveARestart: the leader records
// every member with a match index above zero (itself included) in the
// replicated state, and a restarted node knows the set from its state
// machine before it hears from anyone.
func TestAcknowledgedMembersAreRecordedAndSurviveARestart(t *testing.T) {
	sm := newBenchMachine()
	dir := t.TempDir()
	g := openSoloLeader(t, sm, func(c *Config) { c.Dir = dir })
	require.Eventually(t, func() bool { return g.Acknowledged(g.ID()) }, 10*time.Second, 5*time.Millisecond)
	require.False(t, g.Acknowledged(g.ID()+1), "only members that acknowledged entries")
	b, err := sm.Meta(MetaAckedPrefix + strconv.FormatUint(g.ID(), 16))
	require.NoError(t, err)
	require.Equal(t, []byte{1}, b, "a record of the member's own, the same on every replica")
	require.NoError(t, g.Close())

	g2, err := Open(g.cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, g2.Close()) }()
	require.True(t, g2.Acknowledged(g2.ID()), "kept in the state machine across the restart")
}
