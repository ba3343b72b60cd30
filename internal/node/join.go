package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/elastickv/elastickv/internal/raft"
)

// Joining a running cluster. A node started with --join and an empty data
// directory asks a member (any member: followers forward to the leader) to
// add it as an auto-promote learner, then starts its Raft group blank: the
// leader sends it a snapshot or the log, and promotes it to voter once it
// has caught up. Adding it as a learner first means a slow or failed join
// never costs the cluster its quorum.
//
// The request is made before the node writes anything to its Raft
// directory, so a refused join leaves no state behind. With state on disk,
// --join is not asked again (the state wins); the members are only looked
// up to reach them.

// joinTimeout bounds the whole add-member request, retries included.
const joinTimeout = 30 * time.Second

func (c *Config) validateJoin() error {
	if c.Join == "" {
		return nil
	}
	if len(c.Peers) > 0 {
		return errors.New("--join and --peers are mutually exclusive: --peers bootstraps a new cluster, --join adds this node to a running one")
	}
	for _, a := range joinEndpoints(c.Join) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("--join %q: %w", a, err)
		}
	}
	if len(joinEndpoints(c.Join)) == 0 {
		return fmt.Errorf("--join %q lists no address", c.Join)
	}
	return nil
}

func joinEndpoints(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// joinCluster runs before the Raft group opens. It returns the cluster's
// members (to reach them), or nil when the node does not join.
func (n *Node) joinCluster() ([]raft.Member, error) {
	if n.cfg.Join == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(n.cfg.DataDir, "raft", "wal")); err == nil {
		return n.joinContacts(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	req := adminRequest{Name: n.cfg.Name, Addr: n.cfg.RaftAddr, Learner: true, AutoPromote: true, MaxFormat: n.maxFormat()}
	var errs []error
	for _, ep := range joinEndpoints(n.cfg.Join) {
		n.log.Info("asking the cluster to add this node", "endpoint", ep, "addr", req.Addr)
		resp, err := n.callAdmin(ctx, ep, opAddMember, req)
		switch {
		case err != nil && neverSent(err):
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue // never reached it: try the next endpoint
		case err != nil:
			return nil, fmt.Errorf("--join: asking %s to add %s: %w (it may have been added: check `elastickv admin --endpoint %s status`): %v",
				ep, n.cfg.Name, ErrOutcomeUnknown, ep, err)
		case resp.Code == codeExists:
			return nil, fmt.Errorf("--join: %s is already a member of the cluster (%s). A node id is never reused: "+
				"start this node with a new --id, or remove %s first (elastickv admin --endpoint %s remove-member %s)",
				n.cfg.Name, resp.Error, n.cfg.Name, ep, n.cfg.Name)
		case resp.Code != "":
			return nil, fmt.Errorf("--join: %s refused to add %s: %w", ep, n.cfg.Name, responseError(resp))
		case resp.Status == nil:
			return nil, fmt.Errorf("--join: %s: empty response", ep)
		}
		members := membersOf(resp.Status)
		n.log.Info("added to the cluster as a learner; waiting for the leader", "leader", resp.Status.Leader, "members", len(members))
		return members, nil
	}
	return nil, fmt.Errorf("--join: no member could be reached: %w", errors.Join(errs...))
}

// joinContacts looks up the members' addresses for a joined node restarting
// before it learned the membership; best effort, since the node's own
// state is what matters.
func (n *Node) joinContacts() []raft.Member {
	if b, err := n.store.StateMachine().Meta(raft.MetaMembers); err == nil && b != nil {
		return nil // the membership is on disk
	}
	for _, ep := range joinEndpoints(n.cfg.Join) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := n.callAdmin(ctx, ep, opStatus, adminRequest{})
		cancel()
		if err == nil && resp.Status != nil {
			return membersOf(resp.Status)
		}
	}
	n.log.Warn("no --join member answered; waiting for the leader to reach this node")
	return nil
}

func membersOf(st *ClusterStatus) []raft.Member {
	out := make([]raft.Member, 0, len(st.Members))
	for _, m := range st.Members {
		out = append(out, raft.Member{Name: m.Name, Addr: m.Addr})
	}
	return out
}

// NamePeer implements raft.PeerNamer: peers added by membership changes
// get their names in logs and metric labels.
func (o overrideTransport) NamePeer(id uint64, name string) { o.n.names.Store(id, name) }
