package node

import (
	"context"
	"fmt"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
)

// formatRaiseWait bounds how long a write that needs a newer log format
// waits for the cluster to rise to it. A fresh cluster rises within a few
// round trips of its first election (its leader first rewrites each
// member's record with what the member's binary advertises, then raises:
// raft/format.go), and a client should not see an error in that window. In
// a cluster that keeps an older member, such a write waits this long and
// is then refused.
const formatRaiseWait = 2 * time.Second

// awaitFormat refuses, before anything is proposed or forwarded, a command
// the cluster's log format cannot carry yet: an older member would not
// decode it. It first waits up to formatRaiseWait for a raise.
//
// The check uses this node's applied view of the cluster version, which may
// be ahead of the leader's (a follower can apply the raise first), so the
// leader checks again before it proposes a forwarded command
// (checkForwardFormat). Between that check and the entry's commit the
// version cannot fall: it only rises.
func (n *Node) awaitFormat(ctx context.Context, cmd *kv.Command) error {
	need := cmd.MinFormat()
	if need <= n.store.FormatVersion() {
		return nil
	}
	if need > n.maxFormat() {
		return fmt.Errorf("command needs log format %d; this binary supports up to %d", need, n.maxFormat())
	}
	deadline := time.NewTimer(formatRaiseWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n.store.FormatVersion() < need {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the log format to rise to %d: %w", need, ctx.Err())
		case <-deadline.C:
			return formatError(need, n.store.FormatVersion())
		case <-tick.C:
		}
	}
	return nil
}

func formatError(need, have uint8) error {
	return fmt.Errorf("this command needs log format %d and the cluster is at %d: it rises once every member runs a binary that supports it (INFO raft: min_member_format)", need, have)
}

// checkForwardFormat is the leader's check of a forwarded command, which the
// sender already waited for: no second wait.
func (n *Node) checkForwardFormat(need uint8) error {
	if n.store == nil {
		return nil // not serving yet: the proposal is refused as "not leader"
	}
	if have := n.store.FormatVersion(); need > have {
		return formatError(need, have)
	}
	return nil
}

// lowerForFormat returns the command an older log format can carry with the
// same effect, or cmd itself. In format 1 no key has a TTL, so SET ...
// KEEPTTL is a plain SET there: a client using it during a rolling upgrade
// keeps working. The KEEPTTL bit stays on the OpSet: this node's view of
// the format may lag a raise already committed, and if the entry applies
// at format 2 the key may have a TTL to keep by then (kv's applySet2 reads
// the bit; applySet, at format 1, ignores it).
func lowerForFormat(cmd *kv.Command, have uint8) *kv.Command {
	if have >= 2 || cmd.Op != kv.OpSetX || cmd.Flags&(kv.SetPX|kv.SetPXAT) != 0 {
		return cmd
	}
	low := *cmd
	low.Op, low.Flags, low.Delta = kv.OpSet, cmd.Flags&(kv.SetNX|kv.SetXX|kv.SetGet|kv.SetKeepTTL), 0
	return &low
}
