package kv

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot data format: a sequence of records (uvarint key length, key,
// uvarint value length, value) covering every Pebble key, metadata
// included, ending with a zero key length. Keys are never empty (they all
// carry a family prefix), so the terminator is unambiguous. Integrity is
// checked by the Raft layer's file checksum around this stream.
//
// Image versions. Version 0 is the records alone, as older binaries write
// and read them; a store at cluster format 1 still writes it, so a
// snapshot can reach a member running an older binary during a rolling
// upgrade. From cluster format 2 on, the records follow a header:
//
//	0x00 'E' 'K' 'V' 'S' imageVersion(1) clusterFormat(1)
//
// Its first byte is an empty key, which an older binary reads as the
// terminator of an empty image: it then finds no applied index and
// refuses the image rather than load it. Restore refuses an image version
// it does not know, or a cluster format above MaxFormat, with
// ErrUndecodable, before it wipes anything.
var snapshotMagic = []byte{0, 'E', 'K', 'V', 'S'}

// snapshotImageVersion is the version of the header this binary writes.
const snapshotImageVersion = 1

// Snapshot is a point-in-time image of the store at Index, readable while
// Apply continues.
type Snapshot struct {
	snap   *pebble.Snapshot
	index  uint64
	format uint8 // cluster format version at index: decides the image version
}

// Snapshot captures the store as of its current applied index. It must be
// called between Apply calls (the Raft applier does), so the image matches
// the index exactly.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	return &Snapshot{snap: s.db.NewSnapshot(), index: s.applied.Load(), format: s.FormatVersion()}, nil
}

// Index is the applied index the image reflects.
func (sn *Snapshot) Index() uint64 { return sn.index }

// WriteTo streams the image to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	it, err := sn.snap.NewIter(&pebble.IterOptions{})
	if err != nil {
		return 0, fmt.Errorf("snapshot iterator: %w", err)
	}
	defer func() { _ = it.Close() }() // its error is it.Error(), checked below
	bw := bufio.NewWriterSize(w, 1<<20)
	var n int64
	var hdr [binary.MaxVarintLen64]byte
	put := func(b []byte) error {
		k := binary.PutUvarint(hdr[:], uint64(len(b)))
		if _, err := bw.Write(hdr[:k]); err != nil {
			return err
		}
		_, err := bw.Write(b)
		n += int64(k + len(b))
		return err
	}
	if sn.format >= FormatV2 {
		h := append(append([]byte(nil), snapshotMagic...), snapshotImageVersion, sn.format)
		if _, err := bw.Write(h); err != nil {
			return n, fmt.Errorf("snapshot write: %w", err)
		}
		n += int64(len(h))
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return n, fmt.Errorf("snapshot read: %w", err)
		}
		if err := put(it.Key()); err != nil {
			return n, fmt.Errorf("snapshot write: %w", err)
		}
		if err := put(v); err != nil {
			return n, fmt.Errorf("snapshot write: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return n, fmt.Errorf("snapshot read: %w", err)
	}
	if err := bw.WriteByte(0); err != nil {
		return n, fmt.Errorf("snapshot write: %w", err)
	}
	n++
	if err := bw.Flush(); err != nil {
		return n, fmt.Errorf("snapshot write: %w", err)
	}
	return n, nil
}

// Close releases the image.
func (sn *Snapshot) Close() error { return sn.snap.Close() }

// Restore replaces the whole store with the image read from r, which must
// reflect index.
//
// Crash safety: the first committed batch deletes everything (applied index
// included, so it reads as 0); the image is then loaded in bounded batches,
// and only the last batch sets the applied index. A crash midway leaves an
// applied index below the snapshot's, and the Raft layer restores again.
func (s *Store) Restore(r io.Reader, index uint64) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	br := bufio.NewReaderSize(r, 1<<20)
	if err := readSnapshotHeader(br); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	wipe := s.db.NewBatch()
	if err := wipe.DeleteRange([]byte{0}, []byte{0xff, 0xff, 0xff, 0xff}, nil); err != nil {
		_ = wipe.Close()
		return fmt.Errorf("restore: %w", err)
	}
	if err := wipe.Commit(pebble.Sync); err != nil {
		_ = wipe.Close()
		return fmt.Errorf("restore: wipe: %w", err)
	}
	// Closing a batch only recycles it: Commit's error is the one that counts.
	_ = wipe.Close()
	s.applied.Store(0)

	b := s.db.NewBatch()
	defer func() { _ = b.Close() }()
	var applied uint64
	for {
		k, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if k == nil {
			break
		}
		v, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if v == nil {
			v = []byte{}
		}
		switch string(k) {
		case string(metaApplied):
			if len(v) == 8 {
				applied = binary.BigEndian.Uint64(v)
			}
			continue // written last
		case string(legacyMetaKeyCount):
			continue // see legacyMetaKeyCount
		}
		if err := b.Set(k, v, nil); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		if b.Len() >= 4<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			_ = b.Close()
			b = s.db.NewBatch()
		}
	}
	if applied != index {
		return fmt.Errorf("restore: image holds applied index %d, snapshot says %d", applied, index)
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], applied)
	if err := b.Set(metaApplied, buf[:], nil); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	prevFormat := s.FormatVersion()
	if err := s.loadFormatState(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.applied.Store(applied)
	if f := s.FormatVersion(); f != prevFormat && s.cfg.OnFormatChange != nil {
		// A member that missed the raise entry learns it from the image.
		s.cfg.OnFormatChange(f)
	}
	return nil
}

// readSnapshotHeader consumes the image header, if any: an image without
// one (version 0) starts with a non-empty key's length.
func readSnapshotHeader(br *bufio.Reader) error {
	first, err := br.Peek(1)
	if err != nil {
		return errTruncated
	}
	if first[0] != 0 {
		return nil // version 0: records from the first byte
	}
	h := make([]byte, len(snapshotMagic)+2)
	if _, err := io.ReadFull(br, h); err != nil {
		return errTruncated
	}
	if string(h[:len(snapshotMagic)]) != string(snapshotMagic) {
		return fmt.Errorf("%w: snapshot image starts with %x, not a known header", ErrUndecodable, h)
	}
	if v := h[len(snapshotMagic)]; v != snapshotImageVersion {
		return fmt.Errorf("%w: snapshot image version %d (this binary reads up to %d)", ErrUndecodable, v, snapshotImageVersion)
	}
	if f := h[len(snapshotMagic)+1]; f > MaxFormat || f < FormatV2 {
		return fmt.Errorf("%w: snapshot image at cluster format %d (this binary knows up to %d)", ErrUndecodable, f, MaxFormat)
	}
	return nil
}

var errTruncated = errors.New("snapshot image truncated")

// readChunk reads one length-prefixed field; nil at the terminator.
func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, errTruncated
	}
	if n == 0 {
		return nil, nil
	}
	if n > 1<<31 {
		return nil, fmt.Errorf("snapshot record of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, errTruncated
	}
	return b, nil
}
