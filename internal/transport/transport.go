// Package transport carries Raft messages between elastickv nodes over gRPC.
//
// Its job is to keep Raft's liveness traffic independent of its bulk
// traffic. Outbound, every peer node owns a small set of lanes (lanes.go);
// each lane is a bounded queue drained by its own goroutine into its own
// long-lived gRPC stream, so heartbeats never wait behind log replication
// or snapshot bytes. Routing is one exhaustive switch over
// raftpb.MessageType (routing.go). Lanes belong to the peer node, not to a
// Raft group: every message carries its group id, so many groups share one
// transport.
//
// Invariants:
//
//   - Send never blocks. A message whose lane is full is dropped, counted
//     and, where Raft needs to know, reported (see reportForLocalDrop).
//   - Per peer and per message type, order is preserved: one type maps to
//     one lane, one worker, one ordered stream.
//   - Every dispatch outcome reaches the group's Handler: send errors as
//     ReportUnreachable, every MsgSnap as exactly one ReportSnapshot, and
//     SnapshotFinish only after the receiver verified and accepted it.
//   - Heartbeat and snapshot lanes have TCP connections of their own.
//   - Every network call has a deadline; a peer that stops reading becomes
//     an error and ReportUnreachable, not a stuck goroutine.
//   - Nothing a peer sends can panic the transport: malformed input ends that
//     peer's stream with an error.
//   - Every goroutine belongs to a peer (RemovePeer waits for it) or to an
//     inbound stream (it ends with the stream); Close waits for all peers.
//
// Inbound, messages are handed to the Handler registered for their group;
// the group orders its own inbound queue (IsPriority says which types are
// heartbeat traffic). Snapshots arrive on a separate RPC, are spooled to
// disk, verified (CRC-32C) and then handed over (snapshot_stream.go).
//
// docs/transport.md explains the design and the BenchmarkHeartbeatIsolation
// numbers behind it.
package transport

import (
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Handler is implemented by a Raft group to receive what the transport
// delivers. Every method must return quickly and must never block on the
// group's event loop: the transport calls them from its own goroutines
// (lane workers, inbound streams). For the same reason they must not call
// RemovePeer or Close, which wait for those goroutines.
type Handler interface {
	// Step delivers an inbound message addressed to this group. An error
	// means the message was refused (e.g. the group is stopping).
	Step(m *raftpb.Message) error
	// ReportUnreachable tells Raft that a message to peer could not be sent.
	ReportUnreachable(peer uint64)
	// ReportSnapshot tells Raft how sending a MsgSnap to peer ended.
	ReportSnapshot(peer uint64, status raft.SnapshotStatus)
}

// SnapshotStore is an optional capability of a Handler whose snapshots carry
// state-machine data outside the Raft message (the message's Snapshot.Data
// then only describes it). The transport streams the payload in bounded
// chunks instead of holding it in memory.
type SnapshotStore interface {
	// OpenSnapshot returns the payload for an outbound MsgSnap and its size.
	// The transport closes the reader when done, and also to abandon the
	// transfer (peer removed, transport closed): Close must then unblock a
	// Read in progress. The payload must be exactly size bytes.
	OpenSnapshot(m *raftpb.Message) (io.ReadCloser, int64, error)
	// ReceiveSnapshot takes ownership of a fully received, checksum-verified
	// payload spooled at path, then steps m. It must move or delete the file.
	ReceiveSnapshot(m *raftpb.Message, path string) error
}

// Transport sends Raft messages to peer nodes.
type Transport interface {
	// Send queues msgs of group for delivery. It never blocks: a message that
	// does not fit its lane is dropped, counted and reported to the group.
	Send(group uint64, msgs []*raftpb.Message)
	// Register routes inbound messages of group to h.
	Register(group uint64, h Handler)
	// Unregister stops routing group's messages.
	Unregister(group uint64)
	// AddPeer makes peer id reachable at addr (host:port). Adding a known
	// peer with a new address updates it.
	AddPeer(id uint64, addr string)
	// RemovePeer closes every lane of peer id; later messages to it are
	// dropped and reported unreachable.
	RemovePeer(id uint64)
	// Close stops every lane and waits for their goroutines.
	Close() error
}
