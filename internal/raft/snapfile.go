package raft

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A snapshot file holds one complete snapshot:
//
//	magic "EKVSNAP1"
//	uint32 BE length, then the marshalled raftpb.SnapshotMetadata
//	the state machine image
//	trailer: uint64 BE image length, uint32 BE CRC-32C of every byte before
//	the trailer
//
// Files are named %016x-%016x.snap (index, term), so lexical order is index
// order. A file is written to a .tmp name, fsynced, renamed and the
// directory fsynced before the WAL records the snapshot: a WAL snapshot
// record never points at a missing file.
const (
	snapMagic      = "EKVSNAP1"
	snapTrailerLen = 12
	snapSuffix     = ".snap"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot reports a snapshot file that fails verification.
var ErrCorruptSnapshot = errors.New("corrupt snapshot file")

// snapDescriptor is what a Raft snapshot's Data carries: where the image is
// and the membership (names and addresses) at the snapshot, so a follower
// installing it can reach its peers before the image is even restored.
//
// Stamp is the newest entry stamp the image covers (stamps.go), 0 when
// unknown or before stamps: a follower installing the snapshot counts it
// as in its log, so that should it lead, its first stamps are above every
// stamp committed. Binaries before stamps ignore the field.
type snapDescriptor struct {
	File    string   `json:"file"`
	Size    int64    `json:"size"`
	Members []Member `json:"members"`
	Stamp   uint64   `json:"stamp,omitempty"`
}

func snapName(index, term uint64) string {
	return fmt.Sprintf("%016x-%016x%s", index, term, snapSuffix)
}

func snapDir(dir string) string { return filepath.Join(dir, "snap") }

// writeSnapFile writes a snapshot file for meta with the image from img
// into dir, returning its name and size.
func writeSnapFile(dir string, meta *raftpb.SnapshotMetadata, img StateSnapshot) (string, int64, error) {
	name := snapName(meta.GetIndex(), meta.GetTerm())
	final := filepath.Join(dir, name)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return "", 0, fmt.Errorf("create snapshot %s: %w", tmp, err)
	}
	fail := func(err error) (string, int64, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return "", 0, err
	}
	mb, err := proto.Marshal(meta)
	if err != nil {
		return fail(fmt.Errorf("encode snapshot metadata: %w", err))
	}
	crc := crc32.New(crcTable)
	bw := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(mb)))
	_, _ = bw.WriteString(snapMagic)
	_, _ = bw.Write(hdr[:])
	_, _ = bw.Write(mb)
	n, err := img.WriteTo(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fail(fmt.Errorf("write snapshot %s: %w", tmp, err))
	}
	var tr [snapTrailerLen]byte
	binary.BigEndian.PutUint64(tr[:8], uint64(n))
	binary.BigEndian.PutUint32(tr[8:], crc.Sum32())
	if _, err := f.Write(tr[:]); err != nil {
		return fail(fmt.Errorf("write snapshot %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("sync snapshot %s: %w", tmp, err))
	}
	st, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("stat snapshot %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", 0, fmt.Errorf("close snapshot %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", 0, fmt.Errorf("install snapshot %s: %w", final, err)
	}
	if err := syncDir(dir); err != nil {
		return "", 0, err
	}
	return name, st.Size(), nil
}

// snapFile is an opened, verified snapshot file.
type snapFile struct {
	path     string
	meta     *raftpb.SnapshotMetadata
	imageOff int64
	imageLen int64
	size     int64
}

// openSnapFile reads and fully verifies the snapshot at path: magic, length
// fields and checksum. Every failure names the file.
func openSnapFile(path string) (*snapFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", path, err)
	}
	defer func() { _ = f.Close() }() // read only: every read was checked
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat snapshot %s: %w", path, err)
	}
	bad := func(why string) error { return fmt.Errorf("%w %s: %s", ErrCorruptSnapshot, path, why) }
	size := st.Size()
	if size < int64(len(snapMagic))+4+snapTrailerLen {
		return nil, bad("too short (truncated?)")
	}
	crc := crc32.New(crcTable)
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, size-snapTrailerLen), crc), 1<<20)
	head := make([]byte, len(snapMagic)+4)
	if _, err := io.ReadFull(br, head); err != nil || string(head[:len(snapMagic)]) != snapMagic {
		return nil, bad("bad header")
	}
	ml := int64(binary.BigEndian.Uint32(head[len(snapMagic):]))
	if ml > size {
		return nil, bad("metadata length out of range")
	}
	mb := make([]byte, ml)
	if _, err := io.ReadFull(br, mb); err != nil {
		return nil, bad("truncated metadata")
	}
	meta := &raftpb.SnapshotMetadata{}
	if err := proto.Unmarshal(mb, meta); err != nil {
		return nil, bad("undecodable metadata")
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	var tr [snapTrailerLen]byte
	if _, err := io.ReadFull(f, tr[:]); err != nil {
		return nil, bad("truncated trailer")
	}
	imgOff := int64(len(head)) + ml
	imgLen := int64(binary.BigEndian.Uint64(tr[:8]))
	if imgOff+imgLen+snapTrailerLen != size {
		return nil, bad("length mismatch (truncated?)")
	}
	if binary.BigEndian.Uint32(tr[8:]) != crc.Sum32() {
		return nil, bad("checksum mismatch")
	}
	return &snapFile{path: path, meta: meta, imageOff: imgOff, imageLen: imgLen, size: size}, nil
}

// image opens the file positioned at the state machine image.
func (s *snapFile) image() (io.ReadCloser, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", s.path, err)
	}
	if _, err := f.Seek(s.imageOff, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("seek snapshot %s: %w", s.path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, s.imageLen), f}, nil
}

func encodeDescriptor(d snapDescriptor) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode snapshot descriptor: %w", err)
	}
	return b, nil
}

func decodeDescriptor(b []byte) (snapDescriptor, error) {
	var d snapDescriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("decode snapshot descriptor: %w", err)
	}
	if d.File == "" || filepath.Base(d.File) != d.File || !strings.HasSuffix(d.File, snapSuffix) {
		return d, fmt.Errorf("snapshot descriptor names an invalid file %q", d.File)
	}
	return d, nil
}

// listSnapFiles returns the snapshot file names in dir, oldest first.
func listSnapFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list snapshots in %s: %w", dir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), snapSuffix) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer func() { _ = d.Close() }() // the Sync, checked below, is what counts
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

var _ hash.Hash32 = crc32.New(crcTable)
