package kv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDamagedPebbleFileStopsServingAndStart flips bytes in a Pebble table:
// the first read that touches it fails with ErrCorrupt naming the file, the
// store refuses further reads and writes, and it refuses to open again.
func TestDamagedPebbleFileStopsServingAndStart(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	for i := uint64(1); i <= 2000; i++ {
		_, err := s.Apply([]Entry{{Index: i, Data: set(fmt.Sprintf("k%04d", i), strings.Repeat("v", 500))}})
		require.NoError(t, err)
	}
	require.NoError(t, s.db.Flush())
	require.NoError(t, s.Close())
	var sst string
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sst") {
			sst = filepath.Join(dir, e.Name())
		}
	}
	require.NotEmpty(t, sst)
	b, err := os.ReadFile(sst)
	require.NoError(t, err)
	for i := len(b) / 4; i < len(b)/2; i += 4096 {
		b[i] ^= 0xff
	}
	require.NoError(t, os.WriteFile(sst, b, 0o640))

	s = openTest(t, dir)
	_, _, err = s.Hash() // reads every block
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), sst)
	require.ErrorIs(t, s.Read(func(View) error { return nil }), ErrCorrupt)
	_, err = s.Apply([]Entry{{Index: 3000, Data: set("x", "y")}})
	require.ErrorIs(t, err, ErrCorrupt)
	require.NoError(t, s.Close())

	cfg := DefaultConfig(dir)
	_, err = Open(cfg)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), sst)
}
