package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/raft"
	"github.com/elastickv/elastickv/internal/redis"
)

// backend implements redis.Backend on top of the node's Raft group.
type backend struct{ n *Node }

var (
	_ redis.Backend  = backend{}
	_ redis.Digester = backend{}
)

// Write proposes locally on the leader or forwards to it. While no leader is
// known it waits (bounded by ctx) and retries; it never resends a command
// whose delivery to the leader is uncertain.
func (b backend) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	if err := cmd.Validate(); err != nil {
		return kv.Result{}, err
	}
	n := b.n
	cmd = lowerForFormat(cmd, n.store.FormatVersion())
	if err := n.awaitFormat(ctx, cmd); err != nil {
		return kv.Result{}, err
	}
	payload := cmd.AppendEncode(make([]byte, 0, cmd.Size()))
	// Refused where it arrives, before it is forwarded or proposed: an
	// entry above the cap could not be replicated.
	if err := n.group.CheckPayloadSize(len(payload)); err != nil {
		return kv.Result{}, fmt.Errorf("%w: %v (--max-entry-bytes)", redis.ErrCommandTooLarge, err)
	}
	for {
		res, err := n.group.Propose(ctx, payload)
		if err == nil {
			r, ok := res.(kv.Result)
			if !ok {
				return kv.Result{}, fmt.Errorf("unexpected apply result %T", res)
			}
			return r, nil
		}
		if errors.Is(err, raft.ErrTooLarge) {
			return kv.Result{}, fmt.Errorf("%w: %v", redis.ErrCommandTooLarge, err)
		}
		var nl *raft.NotLeaderError
		if !errors.As(err, &nl) {
			return kv.Result{}, outcomeError(err)
		}
		leader := nl.LeaderID
		if leader != 0 {
			addr, ok := n.group.Members()[leader]
			if ok {
				// Batched with concurrent forwarded writes (forward_batch.go).
				r, err := n.fwd.forward(ctx, n.dialAddr(addr), cmd, payload)
				if err == nil {
					return r, nil
				}
				if !errors.Is(err, errNotProposed) {
					return kv.Result{}, outcomeError(err)
				}
				// Nothing was proposed. Our own view of the leader
				// converges through Raft; just retry.
			}
		}
		// No usable leader yet (election or leadership transfer under
		// way). Poll briefly: a transfer completes within a round trip or
		// two, an election within the election timeout.
		select {
		case <-ctx.Done():
			return kv.Result{}, fmt.Errorf("%w: no leader available", redis.ErrTryAgain)
		case <-time.After(min(n.cfg.HeartbeatInterval, 10*time.Millisecond)):
		}
	}
}

// outcomeError describes a failed write. Timeouts after the command may have
// been proposed are reported as "outcome unknown", not as TRYAGAIN: the
// write may still be applied, so a blind retry could apply it twice.
func outcomeError(err error) error {
	if errors.Is(err, raft.ErrFailed) {
		// A write in flight when the group failed may have been committed
		// by the other members all the same.
		return fmt.Errorf("this node stopped serving; the write may or may not have been applied, retry on another node: %w", err)
	}
	if errors.Is(err, errNotSent) {
		// Withdrawn from the forward queue before it was sent.
		return fmt.Errorf("%w: %v", redis.ErrTryAgain, err)
	}
	if errors.Is(err, errOutcomeUnknown) {
		// Already says so; keeps a wrapped context error for the caller.
		return err
	}
	if errors.Is(err, raft.ErrProposalLost) {
		return fmt.Errorf("%w: write lost to a leader change, not applied", redis.ErrTryAgain)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("write outcome unknown: %v", err)
	}
	return err
}

// Read waits for a linearizable read index, then reads the local store at
// the read time the leader handed out with it.
func (b backend) Read(ctx context.Context, fn func(v kv.View) error) error {
	now, err := b.Barrier(ctx)
	if err != nil {
		return err
	}
	return b.ReadLocal(now, fn)
}

// Status reports the group's state for INFO.
func (b backend) Status() redis.Status {
	st := b.n.group.Status()
	leader := ""
	if m, ok := st.Members[st.LeaderID]; ok {
		leader = m.Name
	}
	return redis.Status{
		NodeID:          st.Name,
		RaftState:       st.State,
		LeaderID:        leader,
		Term:            st.Term,
		CommitIndex:     st.Commit,
		AppliedIndex:    st.Applied,
		Failure:         errText(b.n.Err()),
		ClusterFormat:   b.n.store.FormatVersion(),
		BinaryMaxFormat: b.n.maxFormat(),
		MinMemberFormat: b.n.group.MinMemberFormat(),
		ExpiredKeys:     b.n.store.ExpiredKeys(),
	}
}

// Digest implements redis.Digester over the local state machine.
func (b backend) Digest(ctx context.Context) (uint64, uint64, error) {
	return b.n.store.HashContext(ctx)
}

// Barrier implements redis.LocalReader: one ReadIndex round for a run of
// pipelined reads, and the time at which they evaluate expiry.
func (b backend) Barrier(ctx context.Context) (uint64, error) {
	now, err := b.n.group.ReadAt(ctx)
	if err != nil {
		if errors.Is(err, raft.ErrNoLeader) || errors.Is(err, context.DeadlineExceeded) {
			return 0, fmt.Errorf("%w: %v", redis.ErrTryAgain, err)
		}
		return 0, err
	}
	return now, nil
}

// ReadNow implements redis.ImmediateReader: under the leader lease a read
// needs no wait, so it skips the request context altogether.
func (b backend) ReadNow(fn func(v kv.View) error) (bool, error) {
	now, ok := b.n.group.LeaseReadAt()
	if !ok {
		return false, nil
	}
	return true, b.n.store.ReadAt(now, fn)
}

// ReadLocal implements redis.LocalReader.
func (b backend) ReadLocal(now uint64, fn func(v kv.View) error) error {
	return b.n.store.ReadAt(now, fn)
}

// errText is err's message, or "" for nil.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
