// Package transport carries Raft messages between elastickv nodes over gRPC.
//
// Outbound, every peer node owns a small set of lanes (see lanes.go); each
// lane is a bounded queue drained by its own goroutine, so heartbeats never
// wait behind log replication or snapshot bytes. Lanes belong to the peer
// node, not to a Raft group: every message carries its group id, so many
// groups can share one transport.
//
// Inbound, messages are handed to the Handler registered for their group.
package transport

import (
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Handler is implemented by a Raft group to receive what the transport
// delivers. Every method must return quickly and must never block on the
// group's event loop: the transport calls them from its own goroutines.
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
