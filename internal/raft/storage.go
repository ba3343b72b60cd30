package raft

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// walMetadata is written at the head of every WAL segment; it pins the WAL
// to the node that created it.
type walMetadata struct {
	Name    string `json:"name"`
	GroupID uint64 `json:"group"`
}

// ErrWrongNode is returned when a data directory belongs to another node.
var ErrWrongNode = errors.New("data directory belongs to another node")

// diskState is what a node recovered from its data directory.
type diskState struct {
	wal     *wal.WAL
	storage *raft.MemoryStorage
	fresh   bool      // no WAL existed: the group must bootstrap
	snap    *snapFile // newest snapshot, or nil
}

func walDir(dir string) string { return filepath.Join(dir, "wal") }

// openDisk opens or creates the WAL in cfg.Dir and loads it into a
// MemoryStorage (the etcd pattern: the WAL is the durable copy, the memory
// storage the one Raft reads).
func openDisk(cfg *Config, log *slog.Logger) (*diskState, error) {
	dir := walDir(cfg.Dir)
	zl := zap.NewNop()
	sdir := snapDir(cfg.Dir)
	if err := os.MkdirAll(sdir, 0o750); err != nil {
		return nil, fmt.Errorf("create snapshot dir: %w", err)
	}
	if !wal.Exist(dir) {
		md, err := json.Marshal(walMetadata{Name: cfg.Self.Name, GroupID: cfg.GroupID})
		if err != nil {
			return nil, fmt.Errorf("encode wal metadata: %w", err)
		}
		w, err := wal.Create(zl, dir, md)
		if err != nil {
			return nil, fmt.Errorf("create wal %s: %w", dir, err)
		}
		return &diskState{wal: w, storage: raft.NewMemoryStorage(), fresh: true}, nil
	}

	snaps, err := wal.ValidSnapshotEntries(zl, dir)
	if err != nil {
		return nil, fmt.Errorf("list wal snapshots in %s: %w", dir, err)
	}
	// Start from the newest snapshot whose file is still here (older ones
	// are purged); without one, replay the WAL from the beginning.
	start := &walpb.Snapshot{}
	var sf *snapFile
	for i := len(snaps) - 1; i >= 0 && snaps[i].GetIndex() > 0; i-- {
		path := filepath.Join(sdir, snapName(snaps[i].GetIndex(), snaps[i].GetTerm()))
		if _, err := os.Stat(path); err != nil {
			continue
		}
		// A damaged newest snapshot stops the node: falling back to an
		// older one would need WAL segments that were purged with it.
		if sf, err = openSnapFile(path); err != nil {
			return nil, err
		}
		start = snaps[i]
		break
	}

	w, md, hs, ents, err := readWAL(dir, start, log)
	if err != nil {
		return nil, err
	}
	var meta walMetadata
	if err := json.Unmarshal(md, &meta); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("decode wal metadata in %s: %w", dir, err)
	}
	if meta.Name != cfg.Self.Name || meta.GroupID != cfg.GroupID {
		_ = w.Close()
		return nil, fmt.Errorf("%w: %s was created by node %q (group %d), this is %q (group %d)",
			ErrWrongNode, dir, meta.Name, meta.GroupID, cfg.Self.Name, cfg.GroupID)
	}

	ms := raft.NewMemoryStorage()
	if sf != nil {
		if err := restoreIfBehind(cfg.StateMachine, sf, log); err != nil {
			_ = w.Close()
			return nil, err
		}
		members, err := readMembers(cfg.StateMachine)
		if err != nil {
			_ = w.Close()
			return nil, err
		}
		desc, err := encodeDescriptor(snapDescriptor{File: filepath.Base(sf.path), Size: sf.size, Members: members, Stamp: smAppliedStamp(cfg.StateMachine)})
		if err != nil {
			_ = w.Close()
			return nil, err
		}
		if err := ms.ApplySnapshot(&raftpb.Snapshot{Metadata: sf.meta, Data: desc}); err != nil {
			_ = w.Close()
			return nil, fmt.Errorf("load snapshot %s: %w", sf.path, err)
		}
	}
	if err := ms.SetHardState(hs); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("load hard state: %w", err)
	}
	if err := ms.Append(ents); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("load %d wal entries: %w", len(ents), err)
	}
	log.Info("recovered raft log", "dir", dir, "entries", len(ents), "term", hs.GetTerm(), "commit", hs.GetCommit())
	return &diskState{wal: w, storage: ms, snap: sf}, nil
}

// readWAL opens the WAL at start and reads it whole. A torn final record,
// which a crash in the middle of a write leaves behind, is cut off with the
// etcd WAL's own repair; damage anywhere else is an error naming the
// directory, because silently dropping acknowledged entries would lose data.
func readWAL(dir string, start *walpb.Snapshot, log *slog.Logger) (*wal.WAL, []byte, *raftpb.HardState, []*raftpb.Entry, error) {
	zl := zap.NewNop()
	repaired := false
	for {
		w, err := wal.Open(zl, dir, start)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("open wal %s: %w", dir, err)
		}
		md, hs, ents, err := w.ReadAll()
		if err == nil {
			return w, md, hs, ents, nil
		}
		_ = w.Close()
		if repaired || !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, nil, nil, fmt.Errorf("read wal %s: %w", dir, err)
		}
		log.Warn("wal ends in a torn record; repairing", "dir", dir, "err", err)
		if !wal.Repair(zl, dir) {
			return nil, nil, nil, nil, fmt.Errorf("repair wal %s: %w", dir, err)
		}
		repaired = true
	}
}

// restoreIfBehind restores the state machine from sf when it holds less
// than the snapshot: after a crash during a restore, or in nosync mode after
// Pebble lost writes that the compacted log can no longer replay.
func restoreIfBehind(sm StateMachine, sf *snapFile, log *slog.Logger) error {
	idx := sf.meta.GetIndex()
	if sm.AppliedIndex() >= idx {
		return nil
	}
	log.Warn("state machine is behind the newest snapshot; restoring it", "applied", sm.AppliedIndex(), "snapshot", idx, "file", sf.path)
	img, err := sf.image()
	if err != nil {
		return err
	}
	defer func() { _ = img.Close() }() // read only: Restore reports read errors
	if err := sm.Restore(img, idx); err != nil {
		return fmt.Errorf("restore from snapshot %s: %w", sf.path, err)
	}
	return nil
}

func readMembers(sm StateMachine) ([]Member, error) {
	b, err := sm.Meta(MetaMembers)
	if err != nil {
		return nil, fmt.Errorf("load membership: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	var ms []Member
	if err := json.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("decode membership: %w", err)
	}
	return ms, nil
}
