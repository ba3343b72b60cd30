package transport

import (
	"go.etcd.io/raft/v3/raftpb"
)

// Lane names one outbound queue of a peer. Which lanes a peer has depends on
// the LaneMode; every lane has its own goroutine and gRPC stream, so messages
// in one lane never wait behind messages in another.
type Lane uint8

// Lanes of the four-lane layout (the default), then the legacy two-lane
// layout's catch-all lane, then the benchmark-only single lane.
const (
	// LaneHeartbeat carries liveness and election traffic (see IsPriority).
	LaneHeartbeat Lane = iota
	// LaneReplication carries MsgApp and MsgAppResp.
	LaneReplication
	// LaneSnapshot carries MsgSnap, streamed in chunks.
	LaneSnapshot
	// LaneOther carries the remaining peer-bound types (MsgProp,
	// MsgTransferLeader, MsgForgetLeader, ...).
	LaneOther
	// LaneNormal is the legacy layout's lane for everything that is not
	// heartbeat traffic, snapshots included.
	LaneNormal
	// LaneSingle is the benchmark-only lane that carries every type.
	LaneSingle

	numLanes
)

// String returns the lane's name as used in metric labels and logs.
func (l Lane) String() string {
	switch l {
	case LaneHeartbeat:
		return "heartbeat"
	case LaneReplication:
		return "replication"
	case LaneSnapshot:
		return "snapshot"
	case LaneOther:
		return "other"
	case LaneNormal:
		return "normal"
	case LaneSingle:
		return "single"
	default:
		return "unknown"
	}
}

// Lanes returns the lanes every peer gets in mode m, in a fixed order.
func (m LaneMode) Lanes() []Lane {
	switch m {
	case TwoLanes:
		return []Lane{LaneHeartbeat, LaneNormal}
	case laneModeSingle:
		return []Lane{LaneSingle}
	default:
		return []Lane{LaneHeartbeat, LaneReplication, LaneSnapshot, LaneOther}
	}
}

// classification is what classify knows about a message type.
type classification struct {
	// lane is the type's lane in the four-lane layout; meaningless if local.
	lane Lane
	// local types never leave the node (raft.IsLocalMsg).
	local bool
	// known is false for a type this switch does not list, i.e. one added to
	// raftpb after this code was written. It is routed to LaneOther.
	known bool
}

// classify is the single, exhaustive routing decision over
// raftpb.MessageType. Every other routing question (two-lane and one-lane
// layouts, IsPriority) is derived from it, so adding a type to Raft means
// editing exactly this switch; TestLaneRouting* iterates
// raftpb.MessageType_name and fails until that is done.
func classify(t raftpb.MessageType) classification {
	switch t {
	// Liveness and elections: tiny, latency-critical, and what decides
	// whether a follower campaigns. They must never queue behind bulk data.
	// Reordering them against MsgApp is safe: a heartbeat only carries
	// min(match, commit), and MsgTimeoutNow is sent once the transferee's
	// log is already up to date.
	case raftpb.MsgHeartbeat, raftpb.MsgHeartbeatResp,
		raftpb.MsgVote, raftpb.MsgVoteResp,
		raftpb.MsgPreVote, raftpb.MsgPreVoteResp,
		raftpb.MsgReadIndex, raftpb.MsgReadIndexResp,
		raftpb.MsgTimeoutNow:
		return classification{lane: LaneHeartbeat, known: true}

	// Log replication: the bulk of the traffic, bounded by Raft's own
	// MaxInflightMsgs window.
	case raftpb.MsgApp, raftpb.MsgAppResp:
		return classification{lane: LaneReplication, known: true}

	// Snapshots: potentially huge, streamed by a dedicated RPC.
	case raftpb.MsgSnap:
		return classification{lane: LaneSnapshot, known: true}

	// Rare control traffic. MsgProp only travels when proposal forwarding
	// is enabled; elastickv forwards writes itself, so Send logs it.
	case raftpb.MsgProp, raftpb.MsgTransferLeader, raftpb.MsgForgetLeader:
		return classification{lane: LaneOther, known: true}

	// Local messages: ticks, storage-thread and self-reports. They have no
	// peer; Send drops them before routing.
	case raftpb.MsgHup, raftpb.MsgBeat, raftpb.MsgUnreachable,
		raftpb.MsgSnapStatus, raftpb.MsgCheckQuorum,
		raftpb.MsgStorageAppend, raftpb.MsgStorageAppendResp,
		raftpb.MsgStorageApply, raftpb.MsgStorageApplyResp:
		return classification{local: true, known: true}

	default:
		return classification{lane: LaneOther}
	}
}

// laneFor maps a peer-bound message type to its lane in mode.
func laneFor(mode LaneMode, t raftpb.MessageType) Lane {
	four := classify(t).lane
	switch mode {
	case TwoLanes:
		if four == LaneHeartbeat {
			return LaneHeartbeat
		}
		return LaneNormal
	case laneModeSingle:
		return LaneSingle
	default:
		return four
	}
}

// IsPriority reports whether t is heartbeat-lane traffic: liveness,
// elections, read-index and leadership hand-off. A Raft group should step
// these ahead of queued replication traffic, because a late heartbeat or
// vote is what turns load into a spurious election.
func IsPriority(t raftpb.MessageType) bool {
	c := classify(t)
	return !c.local && c.lane == LaneHeartbeat
}

// dropReport says what a group hears when its message is dropped before it
// reached the wire (full lane, unknown or removed peer, oversize).
type dropReport uint8

const (
	reportNothing dropReport = iota
	reportUnreachable
	reportSnapshotFailure
)

// reportForLocalDrop decides what a locally dropped message of type t is
// reported as. See docs/transport.md ("Reporting local drops"):
//
//   - MsgSnap: SnapshotFailure, always. Raft keeps the follower in
//     StateSnapshot until it hears an outcome; silence would stall it.
//   - MsgApp: ReportUnreachable, so the leader drops the follower to
//     StateProbe and resends from its match index at once instead of waiting
//     for the follower's reject to come back.
//   - everything else, heartbeats included: nothing. A full local queue says
//     our sender is behind, not that the peer is unhealthy; reporting it
//     would push a healthy follower to StateProbe and throttle its
//     replication to one message per heartbeat. Raft re-sends heartbeats
//     and votes on its own timers anyway.
func reportForLocalDrop(t raftpb.MessageType) dropReport {
	switch t {
	case raftpb.MsgSnap:
		return reportSnapshotFailure
	case raftpb.MsgApp:
		return reportUnreachable
	default:
		return reportNothing
	}
}

// reportForUnknownPeer decides what a message to a peer the transport does
// not know is reported as: the peer is unreachable by definition.
func reportForUnknownPeer(t raftpb.MessageType) dropReport {
	if t == raftpb.MsgSnap {
		return reportSnapshotFailure
	}
	return reportUnreachable
}

// isHeartbeat reports whether t is measured by the heartbeat latency
// histograms.
func isHeartbeat(t raftpb.MessageType) bool {
	return t == raftpb.MsgHeartbeat || t == raftpb.MsgHeartbeatResp
}
