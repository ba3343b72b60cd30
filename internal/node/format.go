package node

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
)

// The cluster format version and its raise (issue #14, section 6).
//
// The cluster format version is replicated state in kv (Store.FormatVersion)
// and only rises, through an OpRaiseFormat entry. This file owns the node's
// side of it:
//
//   - Refusal at start: a binary whose maximum (Config.MaxFormat, default
//     kv.MaxFormat) is below the format its data directory records refuses
//     to start before its Raft group opens: it would otherwise apply
//     entries it cannot decode. There is no downgrade after a raise.
//   - Advertisement: the node hands its maximum to the transport (every
//     stream advertises it) and to the Raft group (the leader's own
//     record); the leader keeps the members' records equal to their
//     adverts (internal/raft/format.go).
//   - The raise: a goroutine owned by the node proposes
//     kv.NewRaiseFormat(target) on the leader once the applied member
//     records (voters and learners) all reach target and the leader has
//     heard every member advertise what its record says; target is the
//     highest version every member and this binary support. It retries with
//     backoff (a raise is idempotent on apply: it never lowers the version)
//     and stops on Close.
//   - After a raise: the store reports the new version (OnFormatChange, at
//     open, and the same goroutine's poll, which covers a snapshot
//     installed past a raise); the node tells the transport, which from
//     then on refuses peers that advertise less, and turns on entry
//     stamps.

// errRaiseNotSeen: a raise applied without the store reporting it.
var errRaiseNotSeen = errors.New("raise not reflected in the store")

// Backoff of the raise loop between failed proposals.
const (
	raiseMinBackoff = 50 * time.Millisecond
	raiseMaxBackoff = 2 * time.Second
)

// maxFormat is the highest format version this binary (or this test node)
// supports.
func (n *Node) maxFormat() uint8 {
	if n.cfg.MaxFormat != 0 {
		return n.cfg.MaxFormat
	}
	return kv.MaxFormat
}

// checkFormat refuses to start a binary older than the cluster format its
// data directory records.
func (n *Node) checkFormat() error {
	if v := n.store.FormatVersion(); v > n.maxFormat() {
		return fmt.Errorf("the data directory %s is at cluster log format %d, but this binary supports at most %d: "+
			"a format is never lowered once raised, so run a binary that supports format %d", n.cfg.DataDir, v, n.maxFormat(), v)
	}
	return nil
}

// onFormatChange is kv's Config.OnFormatChange, and is called once at
// open with the stored version: tell the transport (refuse peers below
// it) and turn on stamps once the cluster is at 2 or above. It runs on the
// applier's goroutine under the store's apply lock, so it must not block:
// both calls only set state.
func (n *Node) onFormatChange(v uint8) {
	n.notifiedFormat.Store(uint32(v))
	if tr := n.tr; tr != nil {
		tr.SetClusterFormat(v)
	}
	if v >= kv.FormatV2 {
		n.enableStamps()
	}
}

// enableStamps turns on entry stamps in the group, once it is open.
func (n *Node) enableStamps() {
	g := n.served.Load()
	if g == nil {
		n.stampsDue.Store(true) // the group is not open yet: done after Open
		return
	}
	g.EnableStamps()
}

// checkJoinFormat refuses to add a member whose binary supports less than
// the cluster format: it could not apply the log (the transport would
// refuse it anyway, but then it would sit in the membership, a learner
// that never catches up).
func (n *Node) checkJoinFormat(r adminRequest) error {
	cluster, theirs := n.store.FormatVersion(), max(r.MaxFormat, 1)
	if theirs < cluster {
		return fmt.Errorf("add %s: this cluster is at log format %d and %s's binary supports at most %d; "+
			"start it with a binary that supports format %d (a format is never lowered)", r.Name, cluster, r.Name, theirs, cluster)
	}
	return nil
}

// FormatStatus reports the cluster format version as applied here, the
// highest version this binary supports, and the lowest maximum among the
// members' records (voters and learners), for INFO.
func (n *Node) FormatStatus() (cluster, binaryMax, minMember uint8) {
	cluster, binaryMax, minMember = n.store.FormatVersion(), n.maxFormat(), 1
	if g := n.served.Load(); g != nil {
		minMember = g.MinMemberFormat()
	}
	return cluster, binaryMax, minMember
}

// raiseTarget returns the version the leader may raise the cluster to, or
// 0 when no raise is due.
func (n *Node) raiseTarget() uint8 {
	cur := n.store.FormatVersion()
	target := min(n.maxFormat(), n.group.MinMemberFormat())
	if target <= cur || n.group.Status().State != raft.RoleLeader || !n.group.FormatSettled() {
		return 0
	}
	return target
}

// runRaise is the raise loop; it runs on its own goroutine from Start
// until stop closes. Once the cluster is at this binary's maximum it only
// watches the store's version: a snapshot installed past a raise changes
// the version without an OnFormatChange, and the transport and the stamps
// must still hear of it.
func (n *Node) runRaise(stop <-chan struct{}) {
	poll := max(n.cfg.HeartbeatInterval, 10*time.Millisecond)
	wait := poll
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		timer.Reset(poll)
		if v := n.store.FormatVersion(); uint32(v) > n.notifiedFormat.Load() {
			n.onFormatChange(v)
		}
		if n.store.FormatVersion() >= n.maxFormat() {
			continue
		}
		target := n.raiseTarget()
		if target == 0 {
			wait = poll
			continue
		}
		if err := n.proposeRaise(stop, target); err != nil {
			select {
			case <-stop:
				return // closing: the failure is the close's doing
			default:
			}
			wait = min(max(2*wait, raiseMinBackoff), raiseMaxBackoff)
			n.log.Warn("cluster format raise not applied; retrying", "target", target, "retry_in", wait, "err", err)
			timer.Reset(wait)
			continue
		}
		n.log.Info("cluster log format raised", "format", target)
		wait = poll
	}
}

// proposeRaise proposes the raise and waits for it to apply here.
func (n *Node) proposeRaise(stop <-chan struct{}, target uint8) error {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	cmd := kv.NewRaiseFormat(target)
	res, err := n.group.Propose(ctx, cmd.AppendEncode(make([]byte, 0, cmd.Size())))
	if err != nil {
		return fmt.Errorf("propose format raise to %d: %w", target, err)
	}
	if r, ok := res.(kv.Result); ok && r.Err != "" {
		return fmt.Errorf("apply format raise to %d: %s", target, r.Err)
	}
	if got := n.store.FormatVersion(); got < target {
		return fmt.Errorf("format raise to %d applied but the store is at %d: %w", target, got, errRaiseNotSeen)
	}
	return nil
}

// formatState is the node's part of the format machinery.
type formatState struct {
	// notifiedFormat is the version onFormatChange last acted on.
	notifiedFormat atomic.Uint32
	// stampsDue: the store reported format 2 before the group was open.
	stampsDue atomic.Bool
	// raiseStop ends the raise loop (Close).
	raiseStop chan struct{}
}
