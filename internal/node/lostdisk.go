package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/elastickv/elastickv/internal/grpcraw"
	"github.com/elastickv/elastickv/internal/raft"
)

// A node that lost its disk must never come back under its old id: Raft's
// safety rests on every voter remembering its vote and the entries it
// acknowledged. Before a node with an empty data directory bootstraps, it
// asks its peers whether the cluster already knows it: a peer that has
// applied the record naming this id as having acknowledged entries
// (raft.Group.Acknowledged), or a leader holding a non-zero match index for
// it, means the empty directory is lost data, and the node refuses to
// start. The record is replicated, so a leader change does not hide it.
//
// Limitation: a node that lost its disk before the leader's record naming
// it was committed (about a heartbeat interval after it first acknowledged
// entries) is caught only by the match index of a leader it answered.
const probeMethod = "/elastickv.node.Node/Probe"

// ErrLostDisk is returned when the cluster already holds acknowledged
// entries from this node id but its data directory is empty.
var ErrLostDisk = errors.New("data directory is empty but the cluster already knows this node id")

func (f *forwardServer) probe(ctx context.Context, req *grpcraw.Frame) *grpcraw.Frame {
	resp := make([]byte, 8)
	if len(req.Data) < 8 || binary.BigEndian.Uint64(req.Data) != groupID {
		return &grpcraw.Frame{Data: resp}
	}
	id := raft.NodeID(string(req.Data[8:]))
	g := f.n.served.Load()
	if g == nil {
		return &grpcraw.Frame{Data: resp}
	}
	// The applied record needs no round through the event loop; only
	// without it ask the leader's progress.
	var known uint64
	if g.Acknowledged(id) {
		known = 1 // acknowledged entries, index unknown here
	} else if match, err := g.MatchIndexes(ctx); err == nil {
		known = match[id]
	}
	binary.BigEndian.PutUint64(resp, known)
	return &grpcraw.Frame{Data: resp}
}

var probeMethodDesc = grpc.MethodDesc{
	MethodName: "Probe",
	Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		var req grpcraw.Frame
		if err := dec(&req); err != nil {
			return nil, err
		}
		return srv.(*forwardServer).probe(ctx, &req), nil
	},
}

// checkNotLostDisk runs before a node with an empty data directory
// bootstraps. Peers that cannot be reached are skipped: in a brand-new
// cluster they may simply not be up yet.
func (n *Node) checkNotLostDisk() error {
	if _, err := os.Stat(filepath.Join(n.cfg.DataDir, "raft", "wal")); err == nil || len(n.cfg.Peers) == 0 {
		return nil
	}
	for _, p := range n.cfg.Peers {
		if p.Name == n.cfg.Name {
			continue
		}
		cc, err := n.fwd.conn(n.dialAddr(p))
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req := &grpcraw.Frame{Data: binary.BigEndian.AppendUint64(nil, groupID)}
		req.Data = append(req.Data, n.cfg.Name...)
		var resp grpcraw.Frame
		err = cc.Invoke(ctx, probeMethod, req, &resp)
		cancel()
		if err != nil || len(resp.Data) != 8 {
			continue
		}
		if match := binary.BigEndian.Uint64(resp.Data); match > 0 {
			return fmt.Errorf("%w: %s knows that %s acknowledged log entries. "+
				"A node that lost its disk must not rejoin under its old id: remove %s from the cluster and add a replacement with a new id",
				ErrLostDisk, p.Name, n.cfg.Name, n.cfg.Name)
		}
	}
	return nil
}
