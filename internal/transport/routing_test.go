package transport

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// fourLaneTable pins the four-lane layout for every peer-bound type. Local
// types are absent on purpose: they never reach routing.
var fourLaneTable = map[raftpb.MessageType]Lane{
	raftpb.MsgHeartbeat:      LaneHeartbeat,
	raftpb.MsgHeartbeatResp:  LaneHeartbeat,
	raftpb.MsgVote:           LaneHeartbeat,
	raftpb.MsgVoteResp:       LaneHeartbeat,
	raftpb.MsgPreVote:        LaneHeartbeat,
	raftpb.MsgPreVoteResp:    LaneHeartbeat,
	raftpb.MsgReadIndex:      LaneHeartbeat,
	raftpb.MsgReadIndexResp:  LaneHeartbeat,
	raftpb.MsgTimeoutNow:     LaneHeartbeat,
	raftpb.MsgApp:            LaneReplication,
	raftpb.MsgAppResp:        LaneReplication,
	raftpb.MsgSnap:           LaneSnapshot,
	raftpb.MsgProp:           LaneOther,
	raftpb.MsgTransferLeader: LaneOther,
	raftpb.MsgForgetLeader:   LaneOther,
}

// allTypes lists every type raftpb knows, from the generated name table, so
// a type added to Raft later shows up here without editing the test.
func allTypes() []raftpb.MessageType {
	var ts []raftpb.MessageType
	for v := range raftpb.MessageType_name {
		ts = append(ts, raftpb.MessageType(v))
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

func TestLaneRoutingIsExhaustive(t *testing.T) {
	for _, typ := range allTypes() {
		c := classify(typ)
		require.Truef(t, c.known, "%s is not listed in classify: decide its lane", typ)
		require.Equalf(t, raft.IsLocalMsg(typ), c.local, "%s: classify disagrees with raft.IsLocalMsg", typ)
		_, pinned := fourLaneTable[typ]
		require.Equalf(t, !c.local, pinned, "%s: the routing table in this test must list exactly the peer-bound types", typ)
	}
	require.False(t, classify(raftpb.MessageType(1000)).known, "an unlisted type must be reported as unknown")
	require.Equal(t, LaneOther, laneFor(FourLanes, raftpb.MessageType(1000)), "unknown types go to the other lane")
}

func TestLaneRoutingFourLanes(t *testing.T) {
	for _, typ := range allTypes() {
		if raft.IsLocalMsg(typ) {
			continue
		}
		require.Equalf(t, fourLaneTable[typ], laneFor(FourLanes, typ), "%s", typ)
	}
}

func TestLaneRoutingTwoLanes(t *testing.T) {
	for _, typ := range allTypes() {
		if raft.IsLocalMsg(typ) {
			continue
		}
		want := LaneNormal
		if fourLaneTable[typ] == LaneHeartbeat {
			want = LaneHeartbeat
		}
		require.Equalf(t, want, laneFor(TwoLanes, typ), "%s", typ)
	}
}

func TestLaneRoutingSingleLane(t *testing.T) {
	for _, typ := range allTypes() {
		if raft.IsLocalMsg(typ) {
			continue
		}
		require.Equalf(t, LaneSingle, laneFor(laneModeSingle, typ), "%s", typ)
	}
}

func TestLaneLayouts(t *testing.T) {
	require.Equal(t, []Lane{LaneHeartbeat, LaneReplication, LaneSnapshot, LaneOther}, FourLanes.Lanes())
	require.Equal(t, []Lane{LaneHeartbeat, LaneNormal}, TwoLanes.Lanes())
	require.Equal(t, []Lane{LaneSingle}, laneModeSingle.Lanes())
	// Every lane a type routes to exists in the layout.
	for _, mode := range []LaneMode{FourLanes, TwoLanes, laneModeSingle} {
		for _, typ := range allTypes() {
			if raft.IsLocalMsg(typ) {
				continue
			}
			require.Contains(t, mode.Lanes(), laneFor(mode, typ), "%s in %s", typ, mode)
		}
	}
	// Wire isolation: heartbeat and snapshot lanes have connections of
	// their own; replication and other share one.
	require.Equal(t, connHeartbeat, connFor(LaneHeartbeat))
	require.Equal(t, connSnapshot, connFor(LaneSnapshot))
	require.Equal(t, connData, connFor(LaneReplication))
	require.Equal(t, connData, connFor(LaneOther))
	require.Equal(t, connData, connFor(LaneNormal))
	require.Equal(t, connData, connFor(LaneSingle))
}

func TestLaneIsPriority(t *testing.T) {
	for _, typ := range allTypes() {
		want := !raft.IsLocalMsg(typ) && fourLaneTable[typ] == LaneHeartbeat
		require.Equalf(t, want, IsPriority(typ), "%s", typ)
	}
}

func TestLaneDropReportPolicy(t *testing.T) {
	for _, typ := range allTypes() {
		switch typ {
		case raftpb.MsgSnap:
			require.Equal(t, reportSnapshotFailure, reportForLocalDrop(typ))
			require.Equal(t, reportSnapshotFailure, reportForUnknownPeer(typ))
		case raftpb.MsgApp:
			require.Equal(t, reportUnreachable, reportForLocalDrop(typ))
			require.Equal(t, reportUnreachable, reportForUnknownPeer(typ))
		default:
			require.Equalf(t, reportNothing, reportForLocalDrop(typ), "%s: a local drop is not evidence the peer is down", typ)
			require.Equal(t, reportUnreachable, reportForUnknownPeer(typ))
		}
	}
}
