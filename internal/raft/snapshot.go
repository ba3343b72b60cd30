package raft

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Snapshots and log compaction.
//
// Every SnapshotCount applied entries the applier captures the state
// machine (cheap: a Pebble snapshot) and a background goroutine writes it
// to a snapshot file. When the file is durable, the event loop records it in
// Raft's storage and the WAL, compacts the in-memory log behind it (keeping
// SnapshotCatchUpEntries so slightly-behind followers catch up by log), and
// purges old WAL segments and snapshot files.
//
// Invariant (nosync mode): the log is never compacted past what the state
// machine has durably synced. The snapshot writer syncs the state machine
// before reporting, and a restart restores from the snapshot file whenever
// the state machine reads behind it.

// localSnap is a finished snapshot file, reported to the event loop.
type localSnap struct {
	meta *raftpb.SnapshotMetadata
	desc []byte
	err  error
}

// restoreTask asks the applier to replace the state with a received
// snapshot.
type restoreTask struct {
	path  string
	index uint64
	stamp uint64 // the descriptor's: newest stamp the image covers
}

// maybeSnapshot starts a snapshot after t was applied if enough entries
// accumulated; applier goroutine only.
func (g *Group) maybeSnapshot(t *applyTask) {
	last := t.entries[len(t.entries)-1]
	for _, e := range t.entries {
		g.logBytes += uint64(len(e.Data))
	}
	due := last.Index >= g.snapIndex.Load()+g.cfg.SnapshotCount ||
		(g.cfg.SnapshotLogBytes > 0 && g.logBytes >= g.cfg.SnapshotLogBytes) ||
		g.confSnapshotDue(last.Index)
	if g.cfg.SnapshotCount == 0 || !due || !g.snapshotting.CompareAndSwap(false, true) {
		return
	}
	img, err := g.cfg.StateMachine.Snapshot()
	if err != nil {
		// The state machine cannot open a consistent view of itself: it
		// is failing, and the log can never be compacted again.
		g.snapshotting.Store(false)
		g.setFatal(fmt.Errorf("capture snapshot at %d: %w", last.Index, err))
		return
	}
	if img.Index() != last.Index {
		// The state machine is ahead of this task (replay after a restart
		// skips what it already holds), so this task's membership and term
		// do not describe the image. Try again at a later task.
		_ = img.Close()
		g.snapshotting.Store(false)
		return
	}
	// Counted from this image on. Should writing it fail, the next byte
	// trigger waits for as many bytes again; the count trigger and the
	// following image still bound the log.
	g.logBytes = 0
	meta := &raftpb.SnapshotMetadata{ConfState: t.confState, Index: proto.Uint64(img.Index()), Term: proto.Uint64(t.lastTerm)}
	members := sortedMembers(t.members)
	stamp := g.appliedStamp.Load() // the applier's, as of the image's index
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		defer func() { _ = img.Close() }() // releases a read-only image
		res := localSnap{meta: meta}
		name, size, err := writeSnapFile(snapDir(g.cfg.Dir), meta, img)
		if err == nil {
			// Make the state durable up to the snapshot before the log
			// behind it can be compacted (in sync mode the applier may
			// not have synced the snapshot's last batch yet).
			err = g.cfg.StateMachine.Sync()
		}
		if err == nil {
			res.desc, err = encodeDescriptor(snapDescriptor{File: name, Size: size, Members: members, Stamp: stamp})
		}
		res.err = err
		select {
		case g.snapDone <- res:
		case <-g.stopc:
		}
	}()
}

// installLocalSnapshot records a finished snapshot and compacts; loop only.
func (g *Group) installLocalSnapshot(s localSnap) error {
	defer g.snapshotting.Store(false)
	if s.err != nil {
		// A failed snapshot write or fsync (ENOSPC, EIO) is a storage
		// failure like a failed WAL write: retrying later would leave the
		// node serving on a disk that is failing and a log that can no
		// longer be compacted, and a failed fsync leaves unknown what
		// reached the disk. The caller stops the group.
		return fmt.Errorf("write snapshot at %d: %w", s.meta.GetIndex(), s.err)
	}
	idx := s.meta.GetIndex()
	snap, err := g.storage.CreateSnapshot(idx, s.meta.GetConfState(), s.desc)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		return nil // a received snapshot overtook it
	}
	if err != nil {
		return fmt.Errorf("record snapshot at %d: %w", idx, err)
	}
	if err := g.wal.SaveSnapshot(&walpb.Snapshot{Index: proto.Uint64(idx), Term: proto.Uint64(snap.GetMetadata().GetTerm()), ConfState: s.meta.GetConfState()}); err != nil {
		return fmt.Errorf("save snapshot %d to wal: %w", idx, err)
	}
	g.snapIndex.Store(idx)
	var compact uint64
	if idx > g.cfg.SnapshotCatchUpEntries {
		compact = idx - g.cfg.SnapshotCatchUpEntries
	}
	first, _ := g.storage.FirstIndex()
	if compact = g.catchUpStart(compact, first, idx); compact > first {
		if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("compact log to %d: %w", compact, err)
		}
	}
	if err := g.wal.ReleaseLockTo(idx); err != nil {
		return fmt.Errorf("release wal segments before %d: %w", idx, err)
	}
	g.metrics.snapshots.Inc()
	g.log.Info("snapshot taken", "index", idx)
	g.purge()
	return nil
}

// catchUpStart is where to compact the log (whose first index is first)
// behind a snapshot at idx so that the entries kept for followers slightly
// behind, (compact, idx], are at most SnapshotCatchUpEntries (compact is
// idx minus that) and hold at most half of SnapshotLogBytes: with large
// values the catch-up tail would otherwise keep far more in memory than
// the log the byte trigger bounds.
func (g *Group) catchUpStart(compact, first, idx uint64) uint64 {
	if g.cfg.SnapshotLogBytes == 0 {
		return compact
	}
	lo := max(compact+1, first)
	if lo > idx {
		return compact
	}
	ents, err := g.storage.Entries(lo, idx+1, math.MaxUint64)
	if err != nil {
		return compact
	}
	budget := g.cfg.SnapshotLogBytes / 2
	var kept uint64
	for i := len(ents) - 1; i >= 0; i-- {
		kept += uint64(len(ents[i].GetData()))
		if kept > budget {
			return max(compact, ents[i].GetIndex())
		}
	}
	return compact
}

// purge removes snapshot files beyond MaxSnapshots and WAL segments beyond
// MaxWALFiles that the WAL no longer holds locked (the WAL keeps every
// segment it may still need locked).
func (g *Group) purge() {
	sdir := snapDir(g.cfg.Dir)
	if names, err := listSnapFiles(sdir); err == nil && len(names) > g.cfg.MaxSnapshots {
		for _, n := range names[:len(names)-g.cfg.MaxSnapshots] {
			if err := os.Remove(filepath.Join(sdir, n)); err != nil {
				g.log.Warn("purge snapshot", "file", n, "err", err)
			}
		}
	}
	wdir := walDir(g.cfg.Dir)
	ents, err := os.ReadDir(wdir)
	if err != nil {
		return
	}
	var wals []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal") {
			wals = append(wals, e.Name())
		}
	}
	sort.Strings(wals)
	for len(wals) > g.cfg.MaxWALFiles {
		p := filepath.Join(wdir, wals[0])
		l, err := fileutil.TryLockFile(p, os.O_WRONLY, fileutil.PrivateFileMode)
		if err != nil {
			break // still in use by the WAL
		}
		if err := os.Remove(p); err != nil {
			g.log.Warn("purge wal segment", "file", p, "err", err)
		}
		_ = l.Close()
		wals = wals[1:]
	}
}

// installReceivedSnapshot persists a snapshot Raft handed over in a Ready
// and queues the state machine restore; loop only. The file is already in
// the snapshot directory (ReceiveSnapshot put it there).
func (g *Group) installReceivedSnapshot(snap *raftpb.Snapshot) (*restoreTask, error) {
	d, err := decodeDescriptor(snap.GetData())
	if err != nil {
		return nil, err
	}
	idx := snap.GetMetadata().GetIndex()
	// The file is found by index and term, as a restart finds it; the
	// descriptor's name is only what ReceiveSnapshot wrote there.
	path := filepath.Join(snapDir(g.cfg.Dir), snapName(idx, snap.GetMetadata().GetTerm()))
	if err := g.wal.SaveSnapshot(&walpb.Snapshot{Index: proto.Uint64(idx), Term: proto.Uint64(snap.GetMetadata().GetTerm()), ConfState: snap.GetMetadata().GetConfState()}); err != nil {
		return nil, fmt.Errorf("save received snapshot %d to wal: %w", idx, err)
	}
	if err := g.storage.ApplySnapshot(snap); err != nil {
		return nil, fmt.Errorf("apply received snapshot %d: %w", idx, err)
	}
	g.snapIndex.Store(idx)
	// Adopt the snapshot's membership: peers to reach from now on.
	want := make(map[uint64]Member, len(d.Members))
	for _, m := range d.Members {
		want[m.ID()] = m
	}
	for id := range g.members {
		if _, ok := want[id]; !ok {
			g.removeMember(id)
		}
	}
	for _, m := range d.Members {
		if old, ok := g.members[m.ID()]; !ok || old != m {
			g.addMember(m)
		}
	}
	g.isLearner = false
	for _, l := range snap.GetMetadata().GetConfState().GetLearners() {
		g.isLearner = g.isLearner || l == g.id
	}
	// Every entry the image covers is now in this node's log as far as
	// its floor and committed stamp are concerned.
	g.stamps.noteCovered(idx, d.Stamp)
	g.log.Info("installing snapshot from leader", "index", idx, "file", d.File)
	return &restoreTask{path: path, index: idx, stamp: d.Stamp}, nil
}

// restore runs a restore task; applier only.
func (g *Group) restore(rt *restoreTask) error {
	sf, err := openSnapFile(rt.path)
	if err != nil {
		return err
	}
	img, err := sf.image()
	if err != nil {
		return err
	}
	defer func() { _ = img.Close() }() // read only: Restore reports read errors
	if err := g.cfg.StateMachine.Restore(img, rt.index); err != nil {
		return fmt.Errorf("restore snapshot %s: %w", rt.path, err)
	}
	// A proposal placed at or below the snapshot may be inside it or may
	// have been overwritten: this node cannot tell which.
	g.pending.failPlacedUpTo(rt.index, ErrProposalUnknown)
	g.appliedStamp.Store(max(rt.stamp, smAppliedStamp(g.cfg.StateMachine)))
	g.applied.advance(rt.index)
	g.metrics.snapshotsInstalled.Inc()
	return nil
}

// OpenSnapshot implements transport.SnapshotStore: the payload of an
// outbound MsgSnap is the whole snapshot file.
func (g *Group) OpenSnapshot(m *raftpb.Message) (io.ReadCloser, int64, error) {
	if _, err := decodeDescriptor(m.GetSnapshot().GetData()); err != nil {
		return nil, 0, err
	}
	meta := m.GetSnapshot().GetMetadata()
	f, err := os.Open(filepath.Join(snapDir(g.cfg.Dir), snapName(meta.GetIndex(), meta.GetTerm())))
	if err != nil {
		return nil, 0, fmt.Errorf("open snapshot for sending: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("stat snapshot for sending: %w", err)
	}
	return f, st.Size(), nil
}

// ReceiveSnapshot implements transport.SnapshotStore: verify the spooled
// file, move it into the snapshot directory, then step the message.
func (g *Group) ReceiveSnapshot(m *raftpb.Message, path string) error {
	d, err := decodeDescriptor(m.GetSnapshot().GetData())
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	sf, err := openSnapFile(path)
	if err != nil {
		_ = os.Remove(path)
		return err
	}
	want := m.GetSnapshot().GetMetadata()
	if sf.meta.GetIndex() != want.GetIndex() || sf.meta.GetTerm() != want.GetTerm() {
		_ = os.Remove(path)
		return fmt.Errorf("received snapshot file is for %d/%d, message says %d/%d",
			sf.meta.GetIndex(), sf.meta.GetTerm(), want.GetIndex(), want.GetTerm())
	}
	// The name is this node's own, from the verified index and term, never
	// the sender's: a name of the sender's choosing could replace one of
	// this node's snapshots, or sort after them so that purge deletes
	// them instead, and a restart looks the file up by index and term.
	sdir := snapDir(g.cfg.Dir)
	name := snapName(want.GetIndex(), want.GetTerm())
	final := filepath.Join(sdir, name)
	if have, err := openSnapFile(final); err == nil && have.meta.GetIndex() == want.GetIndex() && have.meta.GetTerm() == want.GetTerm() {
		// This node already holds this snapshot (it made or received it):
		// keep its own copy, which a restore or a send may be reading.
		_ = os.Remove(path)
		sf = have
	} else if err := os.Rename(path, final); err != nil {
		_ = os.Remove(path)
		err = fmt.Errorf("install received snapshot %s: %w", final, err)
		if isDiskError(err) {
			// This node cannot take a snapshot in, so it can never catch
			// up: stop rather than look healthy while falling behind.
			g.setFatal(err)
		}
		return err
	}
	if err := syncDir(sdir); err != nil {
		// The file is in place but its name may not be durable, and a
		// failed directory fsync says the disk is failing.
		g.setFatal(fmt.Errorf("install received snapshot %s: %w", final, err))
		return err
	}
	d.File, d.Size = name, sf.size
	data, err := encodeDescriptor(d)
	if err != nil {
		return err
	}
	m.Snapshot.Data = data // what Raft stores, and sends on, names the local file
	return g.Step(m)
}
