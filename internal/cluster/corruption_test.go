package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// newestFile returns the lexically last file in dir with the suffix.
func newestFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), suffix) {
			names = append(names, e.Name())
		}
	}
	require.NotEmpty(t, names, "no %s file in %s", suffix, dir)
	sort.Strings(names)
	return filepath.Join(dir, names[len(names)-1])
}

// TestCorruptFilesRefuseToStart damages a stopped node's files and checks
// that it refuses to start with an error naming what is damaged, instead of
// serving wrong data.
func TestCorruptFilesRefuseToStart(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, raftDir string) string // returns the path it damaged
	}{
		{"snapshot-bitflip", func(t *testing.T, raftDir string) string {
			p := newestFile(t, filepath.Join(raftDir, "snap"), ".snap")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			b[len(b)/2] ^= 0x10
			require.NoError(t, os.WriteFile(p, b, 0o640))
			return p
		}},
		{"snapshot-truncated", func(t *testing.T, raftDir string) string {
			p := newestFile(t, filepath.Join(raftDir, "snap"), ".snap")
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(p, st.Size()*2/3))
			return p
		}},
		{"wal-bitflip-before-tail", func(t *testing.T, raftDir string) string {
			p := newestFile(t, filepath.Join(raftDir, "wal"), ".wal")
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			end := len(bytes.TrimRight(b, "\x00"))
			require.Greater(t, end, 4096)
			b[walRecordByteNear(t, b, end/2)] ^= 0x01
			require.NoError(t, os.WriteFile(p, b, 0o640))
			return filepath.Dir(p)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := New(t, 3, WithSnapshotCount(100))
			ctx := c.Ctx(30 * time.Second)
			for i := range 260 {
				require.NoError(t, c.Client(0).Set(ctx, fmt.Sprintf("k%d", i), strings.Repeat("v", 64), 0).Err())
			}
			c.WaitConverged(10 * time.Second)
			victim := 1
			c.Stop(victim)
			damaged := tc.damage(t, filepath.Join(c.Dir, c.Name(victim), "raft"))
			err := c.TryRestart(victim)
			require.Error(t, err, "node must refuse to start")
			require.Contains(t, err.Error(), damaged)
			t.Logf("refused as expected: %v", err)
		})
	}
}

// TestTornWALTailIsRepaired cuts the last WAL record short, as a crash in
// the middle of a write leaves it: the node repairs the tail the way the
// etcd WAL does, starts, and converges with the others.
func TestTornWALTailIsRepaired(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(30 * time.Second)
	for i := range 50 {
		require.NoError(t, c.Client(0).Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err())
	}
	c.WaitConverged(10 * time.Second)
	victim := 2
	c.Stop(victim)
	p := newestFile(t, filepath.Join(c.Dir, c.Name(victim), "raft", "wal"), ".wal")
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	end := len(bytes.TrimRight(b, "\x00"))
	require.NoError(t, os.Truncate(p, int64(end-5)))
	require.NoError(t, c.TryRestart(victim))
	require.NoError(t, c.Client(victim).Set(ctx, "after", "x", 0).Err())
	c.WaitConverged(10 * time.Second)
	n, err := c.Client(victim).DBSize(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, int64(51), n)
}

// walRecordByteNear returns the offset of a byte inside a WAL record (not
// its length field, nor the frame padding, which no checksum covers) at or
// after off. An etcd WAL frame is an 8-byte little-endian length field whose
// top byte may carry a padding count, then the record, then the padding.
// Flipping a padding byte changes nothing the WAL reads, and so made this
// test start the node now and then, depending on where records fell.
func walRecordByteNear(t *testing.T, b []byte, off int) int {
	t.Helper()
	for pos := 0; pos+8 <= len(b); {
		field := binary.LittleEndian.Uint64(b[pos:])
		rec, pad := int(field), 0
		if field>>63 == 1 {
			rec, pad = int(field&^(0xff<<56)), int((field>>56)&0x7)
		}
		if rec == 0 {
			break
		}
		start := pos + 8
		if start+rec > off {
			return start + rec/2
		}
		pos = start + rec + pad
	}
	t.Fatalf("no WAL record after offset %d", off)
	return 0
}
