package upgrade

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// TestTrimWALSegmentsKeepsEveryRecord writes a WAL with etcd's own writer
// (entries of many sizes, so every padding width occurs), trims it, and
// reads it back with etcd's reader: the same metadata, hard state and
// entries, a segment far below etcd's 64 MiB preallocation, no N.tmp
// left, and a writer that appends after the last record.
func TestTrimWALSegmentsKeepsEveryRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	zl := zap.NewNop()
	w, err := wal.Create(zl, dir, []byte("metadata"))
	require.NoError(t, err)
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 40; i++ {
		ents = append(ents, &raftpb.Entry{Term: new(uint64(1)), Index: new(i), Data: bytes.Repeat([]byte{byte(i)}, int(i*7))})
	}
	hs := &raftpb.HardState{Term: new(uint64(1)), Vote: new(uint64(1)), Commit: new(uint64(40))}
	require.NoError(t, w.Save(hs, ents))
	require.NoError(t, w.Close())
	segs, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	require.NoError(t, err)
	require.Len(t, segs, 1)
	st, err := os.Stat(segs[0])
	require.NoError(t, err)
	require.Equal(t, wal.SegmentSizeBytes, st.Size(), "etcd preallocates the segment")

	require.NoError(t, TrimWALSegments(dir))
	st, err = os.Stat(segs[0])
	require.NoError(t, err)
	require.Less(t, st.Size(), int64(8<<10))
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	require.Empty(t, tmps)

	w, err = wal.Open(zl, dir, &walpb.Snapshot{})
	require.NoError(t, err)
	md, gotHS, gotEnts, err := w.ReadAll()
	require.NoError(t, err)
	require.Equal(t, "metadata", string(md))
	require.True(t, proto.Equal(hs, gotHS), "hard state %v, want %v", gotHS, hs)
	requireEntries(t, ents, gotEnts)
	more := &raftpb.Entry{Term: new(uint64(2)), Index: new(uint64(41)), Data: []byte("after the trim")}
	require.NoError(t, w.Save(&raftpb.HardState{Term: new(uint64(2)), Vote: new(uint64(1)), Commit: new(uint64(41))}, []*raftpb.Entry{more}))
	require.NoError(t, w.Close())
	w, err = wal.Open(zl, dir, &walpb.Snapshot{})
	require.NoError(t, err)
	_, _, gotEnts, err = w.ReadAll()
	require.NoError(t, err)
	require.NoError(t, w.Close())
	requireEntries(t, append(ents, more), gotEnts)
}

func requireEntries(t *testing.T, want, got []*raftpb.Entry) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		require.True(t, proto.Equal(want[i], got[i]), "entry %d: %v, want %v", i, got[i], want[i])
	}
}

// TestTrimWALSegmentsRefusesATornRecord: a record running past the end
// of the file is an error, not a cut in the middle of it.
func TestTrimWALSegmentsRefusesATornRecord(t *testing.T) {
	dir := t.TempDir()
	torn := make([]byte, 16)
	torn[0] = 100 // a 100-byte record in a 16-byte file
	require.NoError(t, os.WriteFile(filepath.Join(dir, "0000000000000000-0000000000000000.wal"), torn, 0o600))
	require.ErrorContains(t, TrimWALSegments(dir), "runs past the end")
}

func TestGoldenRoundTrip(t *testing.T) {
	g := &Golden{
		OldDigest:     "203:3e4780ab5bc34698",
		PebbleApplied: 148,
		WALLast:       202,
		Keys: []KV{
			{Key: []byte("b\x00\xff"), Value: []byte("\x00\xff")},
			{Key: []byte("a"), Value: []byte{}, FromWAL: true},
		},
		Absent: [][]byte{[]byte("gone")},
	}
	var b bytes.Buffer
	_, err := g.WriteTo(&b)
	require.NoError(t, err)
	got, err := ParseGolden(&b)
	require.NoError(t, err)
	require.Equal(t, g.OldDigest, got.OldDigest)
	require.Equal(t, g.PebbleApplied, got.PebbleApplied)
	require.Equal(t, g.WALLast, got.WALLast)
	require.Equal(t, []KV{g.Keys[1], g.Keys[0]}, got.Keys, "sorted by key, the empty value and FromWAL kept")
	require.Equal(t, g.Absent, got.Absent)
}

func TestParseGoldenRefusesWhatItCannotRead(t *testing.T) {
	for _, text := range []string{
		"digest 1:2\nkey 61\n",            // a key without a value
		"digest 1:2\nkey zz 61\n",         // not hex
		"digest 1:2\nkey 61 62\nfrob 1\n", // an unknown record
		"digest 1:2\nwal-last x\nkey 61 62\n",
		"key 61 62\n",  // no digest
		"digest 1:2\n", // no keys
	} {
		_, err := ParseGolden(strings.NewReader(text))
		require.Error(t, err, "%q", text)
	}
}

// TestExtractTarRefusesEscapingNames: a name that would land outside the
// target directory stops the extraction.
func TestExtractTarRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"../evil", "a/../../evil", "/abs/evil"} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}))
		_, err := tw.Write([]byte("x"))
		require.NoError(t, err)
		require.NoError(t, tw.Close())
		dir := t.TempDir()
		require.ErrorContains(t, extractTar(&b, filepath.Join(dir, "out")), "escapes", name)
		_, err = os.Stat(filepath.Join(dir, "evil"))
		require.True(t, os.IsNotExist(err), "%s was written", name)
	}
}
