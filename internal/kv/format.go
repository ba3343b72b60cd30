package kv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Cluster format versions.
//
// The cluster format version is replicated state: a metadata row written
// only by OpRaiseFormat's apply. Version 1 is the original layout ('u' +
// key -> 's' + value), ops 1..8 and no entry stamps; version 2 is keyspace
// v2 (internal/kv/keyspace), stamped entries and ops 10 and up. A store
// without the row is at version 1, so a directory written by an older
// binary reads as what it is.
//
// Invariant: the version never goes down. A raise to a version this
// binary does not know fails the apply with ErrUndecodable, which halts
// the group rather than let this replica write the old layout while the
// others write the new one.
const (
	// FormatV1 is the original layout.
	FormatV1 uint8 = 1
	// FormatV2 is keyspace v2.
	FormatV2 uint8 = 2
	// FormatV3 adds the collection ops (hashes, sets, sorted sets,
	// lists; ops 20 and up) and ResultArray replies, on the v2 layout.
	FormatV3 uint8 = 3
	// MaxFormat is the highest cluster format version this binary can
	// apply; the node advertises it to the leader.
	MaxFormat uint8 = FormatV4
)

var (
	// metaApplyTime holds the replicated apply time (Unix ms, 8 bytes
	// big-endian), written in the same batch as metaApplied. Absent means
	// 0: no stamped entry has been applied.
	metaApplyTime = []byte("mapplytime")
	// metaFormat holds the cluster format version (one byte). Absent
	// means FormatV1.
	metaFormat = []byte("mformat")
)

// ApplyTime returns the store's apply time: the largest entry stamp
// applied so far (Unix ms), 0 before the first stamped entry. Expiry
// decisions on apply use it and nothing else.
func (s *Store) ApplyTime() uint64 { return s.applyTime.Load() }

// FormatVersion returns the cluster format version as of the applied
// index: FormatV1 until an OpRaiseFormat has applied.
func (s *Store) FormatVersion() uint8 { return uint8(s.format.Load()) }

// ExpiredKeys returns how many keys this node's apply has deleted because
// they had expired (INFO expired_keys). It is node-local, like Redis's:
// it restarts at 0 and is not part of the replicated state.
func (s *Store) ExpiredKeys() uint64 { return s.expiredKeys.Load() }

// NewRaiseFormat returns the command that raises the cluster format
// version to v. The node proposes it once every member advertises v.
func NewRaiseFormat(v uint8) *Command {
	return &Command{Op: OpRaiseFormat, Delta: int64(v)}
}

// MinFormat returns the cluster format version the command needs: the
// node must not propose it while the cluster is below that version, since
// a replica at a lower version (or an older binary) cannot apply it.
func (c *Command) MinFormat() uint8 {
	switch {
	case c.Op == OpBatch:
		// A batch needs what its most demanding command needs.
		need := FormatV1
		for _, v := range c.Values {
			sub, err := DecodeCommand(v)
			if err == nil {
				need = max(need, sub.MinFormat())
			}
		}
		return need
	default:
		if spec := lookupOp(c.Op); spec != nil {
			return spec.minFormat
		}
		// Validate refuses an unknown op before anything asks.
		return MaxFormat
	}
}

// loadFormatState reads the replicated apply time, format version and
// v1-rows flag into the store's cached copies (at Open and after Restore).
func (s *Store) loadFormatState() error {
	at, err := readCountRow(s.db, metaApplyTime)
	if err != nil {
		return err
	}
	f := FormatV1
	v, closer, err := s.db.Get(metaFormat)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read format version: %w", err)
	default:
		if len(v) != 1 {
			_ = closer.Close()
			return fmt.Errorf("format version row has %d bytes, want 1", len(v))
		}
		f = v[0]
		_ = closer.Close()
	}
	if f > MaxFormat || f < FormatV1 {
		return fmt.Errorf("%w: the store is at cluster format version %d; this binary knows up to %d", ErrUndecodable, f, MaxFormat)
	}
	legacy := false
	if _, closer, err := s.db.Get(keyspace.LegacyPresentRow); err == nil {
		legacy = true
		_ = closer.Close()
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return fmt.Errorf("read v1 marker: %w", err)
	}
	s.applyTime.Store(at)
	s.format.Store(uint32(f))
	s.legacy.Store(legacy)
	return nil
}

// applyRaise applies OpRaiseFormat: it never lowers the version, and a
// target this binary does not know halts the group. The chunk holding a
// raise holds nothing else (Apply commits around it), so the v1-row check
// reads the committed store.
func applyRaise(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	target := c.Delta
	if target > int64(MaxFormat) || target < int64(FormatV2) {
		return Result{}, fmt.Errorf("%w: raise to format %d (this binary knows up to %d)", ErrUndecodable, target, MaxFormat)
	}
	if uint8(target) <= w.format {
		return Result{Kind: ResultOK}, nil
	}
	if w.format == FormatV1 {
		// The marker makes reads fall back to the v1 row on a miss. It is
		// written only when some v1 row exists, so a fresh cluster never
		// pays the fallback read. Every replica holds the same rows at
		// this index, so every replica decides alike.
		lo, hi := keyspace.LegacyRange()
		it, err := w.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return Result{}, fmt.Errorf("raise format: %w", err)
		}
		any := it.First()
		if err := it.Close(); err != nil {
			return Result{}, fmt.Errorf("raise format: %w", err)
		}
		if any {
			if err := b.Set(keyspace.LegacyPresentRow, nil, nil); err != nil {
				return Result{}, fmt.Errorf("raise format: %w", err)
			}
			w.legacy = true
		}
	}
	w.format = uint8(target)
	return Result{Kind: ResultOK}, nil
}

// putFormatState writes the chunk's apply time and format version next to
// the applied index. At format 1 with no stamp yet nothing new is written,
// so the store's bytes stay exactly what an older binary writes.
func putFormatState(b *pebble.Batch, w *writeSet, prevFormat uint8) error {
	if w.now != 0 {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], w.now)
		if err := b.Set(metaApplyTime, buf[:], nil); err != nil {
			return fmt.Errorf("write apply time: %w", err)
		}
	}
	if w.format != prevFormat {
		if err := b.Set(metaFormat, []byte{w.format}, nil); err != nil {
			return fmt.Errorf("write format version: %w", err)
		}
	}
	return nil
}
