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
	fresh   bool // no WAL existed: the group must bootstrap
}

func walDir(dir string) string { return filepath.Join(dir, "wal") }

// openDisk opens or creates the WAL in cfg.Dir and loads it into a
// MemoryStorage (the etcd pattern: the WAL is the durable copy, the memory
// storage the one Raft reads).
func openDisk(cfg *Config, log *slog.Logger) (*diskState, error) {
	dir := walDir(cfg.Dir)
	zl := zap.NewNop()
	if !wal.Exist(dir) {
		if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
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
	// Without snapshots yet, replay from the beginning of the WAL.
	start := &walpb.Snapshot{}
	if len(snaps) > 0 {
		start = snaps[len(snaps)-1]
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
	if err := ms.SetHardState(hs); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("load hard state: %w", err)
	}
	if err := ms.Append(ents); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("load %d wal entries: %w", len(ents), err)
	}
	log.Info("recovered raft log", "dir", dir, "entries", len(ents), "term", hs.GetTerm(), "commit", hs.GetCommit())
	return &diskState{wal: w, storage: ms}, nil
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
