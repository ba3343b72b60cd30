package raft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"sync"
	"time"
)

// applyTask is one Ready's worth of committed entries, in log order.
type applyTask struct {
	// restore, when set, replaces the state with a received snapshot; the
	// other fields are then empty.
	restore *restoreTask
	entries []ApplyEntry
	// owners[i] is the (proposer, seq) of entries[i], or zero.
	owners []owner
	// confState, members and lastTerm describe the group as of the last
	// entry, for a snapshot taken right after this task.
	confState *raftpb.ConfState
	members   map[uint64]Member
	lastTerm  uint64
}

type owner struct{ proposer, seq uint64 }

// appliedWaiter lets goroutines wait until the applied index reaches a
// target. Broadcast is a closed channel swapped on every advance, so waking
// N waiters costs one close, and waiting needs no goroutine.
type appliedWaiter struct {
	mu      sync.Mutex
	applied uint64
	ch      chan struct{}
}

func newAppliedWaiter(applied uint64) *appliedWaiter {
	return &appliedWaiter{applied: applied, ch: make(chan struct{})}
}

func (w *appliedWaiter) advance(idx uint64) {
	w.mu.Lock()
	if idx > w.applied {
		w.applied = idx
		close(w.ch)
		w.ch = make(chan struct{})
	}
	w.mu.Unlock()
}

func (w *appliedWaiter) get() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.applied
}

// wait blocks until applied >= idx, ctx ends, or stop closes.
func (w *appliedWaiter) wait(ctx context.Context, idx uint64, stop <-chan struct{}) error {
	for {
		w.mu.Lock()
		if w.applied >= idx {
			w.mu.Unlock()
			return nil
		}
		ch := w.ch
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrStopped
		}
	}
}

// runApplier drains applyc until it is closed. It is the only caller of
// StateMachine.Apply.
func (g *Group) runApplier() {
	defer close(g.applierDone)
	var syncReq chan struct{}
	if g.cfg.StateMachineSync {
		syncReq = make(chan struct{}, 1)
		syncerDone := make(chan struct{})
		go g.runSyncer(syncReq, syncerDone)
		defer func() { close(syncReq); <-syncerDone }()
	}
	var held *applyTask
	for {
		var t applyTask
		if held != nil {
			t, held = *held, nil
		} else {
			var ok bool
			if t, ok = <-g.applyc; !ok {
				return
			}
		}
		if t.restore == nil {
			held = g.coalesceApply(&t)
		}
		if g.fatal() != nil {
			continue // keep draining so the event loop never blocks on us
		}
		if t.restore != nil {
			if err := g.restore(t.restore); err != nil {
				g.setFatal(err)
				g.pending.failAll(g.fatal())
			}
			g.logBytes = 0 // the log behind the received image is gone
			continue
		}
		start := time.Now()
		results, err := g.cfg.StateMachine.Apply(t.entries)
		if errors.Is(err, ErrUndecodable) {
			g.metrics.undecodableEntries.Inc()
		}
		if err != nil {
			g.setFatal(err)
			// The group's error (ErrFailed): the node reports such
			// writes as of unknown outcome, since earlier chunks of
			// this batch may have been committed.
			g.pending.failAll(g.fatal())
			continue
		}
		g.metrics.observeApply(time.Since(start), len(t.entries))
		g.noteAppliedStamps(t.entries)
		last := t.entries[len(t.entries)-1].Index
		for i, o := range t.owners {
			if o.proposer == g.id && o.seq != 0 {
				g.pending.complete(o.seq, proposalResult{value: results[i]})
			}
		}
		g.pending.failOverwritten(last)
		g.applied.advance(last)
		if syncReq != nil {
			select {
			case syncReq <- struct{}{}:
			default: // a sync is already requested; it will cover this batch
			}
		}
		g.maybeSnapshot(&t)
	}
}

// runSyncer makes applied batches durable in sync mode: after each request
// it syncs the state machine (at most once per StateMachineSyncInterval),
// covering every batch applied so far. It runs beside the applier, not in
// it: durability of an acknowledged write rests on the Raft WAL of a
// majority, and this sync only bounds what a restart must replay, so
// neither the replies nor the next batch wait for it, and the batches
// applied during one sync share the next. It exits when req is closed (by
// the applier, which owns it, before the state machine may be closed).
func (g *Group) runSyncer(req <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	var last time.Time
	for range req {
		if g.fatal() != nil {
			continue
		}
		if wait := g.cfg.StateMachineSyncInterval - time.Since(last); wait > 0 {
			// Batches applied meanwhile join this sync. Stopping cuts the
			// wait short: the last batches are synced before the state
			// machine closes.
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-g.stopc:
				t.Stop()
			}
		}
		applied := g.applied.get()
		start := time.Now()
		last = start
		if err := g.cfg.StateMachine.Sync(); err != nil {
			err = fmt.Errorf("sync state machine at %d: %w", applied, err)
			g.setFatal(err)
			// The group's error (ErrFailed): the node reports such
			// writes as of unknown outcome, since earlier chunks of
			// this batch may have been committed.
			g.pending.failAll(g.fatal())
			continue
		}
		g.metrics.fsmSync.Observe(time.Since(start).Seconds())
	}
}

// maxCoalescedEntries bounds one coalesced apply batch.
const maxCoalescedEntries = 8192

// coalesceApply appends the entry tasks already queued behind t to it, so
// one state machine commit covers every Ready that piled up while the
// previous one was applied: the applier's group commit. It stops at
// maxCoalescedEntries entries or Config.MaxApplyBatchBytes of entry data
// (a task already taken is never split). A queued restore is returned to
// be run next, after t.
func (g *Group) coalesceApply(t *applyTask) *applyTask {
	size := entriesBytes(t.entries)
	defer func() { g.metrics.applyBatchBytes.Observe(float64(size)) }()
	for len(t.entries) < maxCoalescedEntries {
		if size >= g.cfg.MaxApplyBatchBytes {
			g.metrics.applyCutByBytes.Inc()
			return nil
		}
		select {
		case n, ok := <-g.applyc:
			if !ok {
				return nil // closed: the outer receive sees it next
			}
			if n.restore != nil {
				return &n
			}
			t.entries = append(t.entries, n.entries...)
			t.owners = append(t.owners, n.owners...)
			t.confState, t.members, t.lastTerm = n.confState, n.members, n.lastTerm
			size += entriesBytes(n.entries)
		default:
			return nil
		}
	}
	return nil
}

func entriesBytes(ents []ApplyEntry) int {
	n := 0
	for i := range ents {
		n += len(ents[i].Data)
	}
	return n
}
