package kv

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// appendToBigValue sets a 16 MiB value at format 2 and returns the store
// and the next index.
func appendToBigValue(tb testing.TB, s *Store) uint64 {
	tb.Helper()
	big := bytes.Repeat([]byte("x"), 16<<20)
	_, err := s.Apply([]Entry{{Index: 2, Data: enc(Command{Op: OpSet, Keys: kvs("big"), Values: [][]byte{big}}), Stamp: 1000}})
	require.NoError(tb, err)
	return 3
}

// An APPEND to a chunked string writes the chunk it extends, the new
// chunks and the metadata: its batch is O(appended bytes), not O(value)
// (at format 1 each APPEND rewrote the whole 16 MiB value).
func TestV2AppendToAChunkedStringCostsWhatItChanges(t *testing.T) {
	s := openV2(t)
	idx := appendToBigValue(t, s)
	for _, n := range []int{1, 100, 5000} {
		_, err := s.Apply([]Entry{{Index: idx, Data: enc(Command{Op: OpAppend, Keys: kvs("big"), Values: [][]byte{bytes.Repeat([]byte("y"), n)}}), Stamp: 1000}})
		require.NoError(t, err)
		idx++
		last, _, _ := s.ApplyStats()
		require.Less(t, last, uint64(2*4096+n+512), "APPEND of %d bytes wrote a %d-byte batch", n, last)
	}
	var l int
	require.NoError(t, s.Read(func(v View) error {
		var err error
		l, _, err = v.StrLen([]byte("big"))
		return err
	}))
	require.Equal(t, 16<<20+5101, l)
}

// BenchmarkV2AppendToBigValue reports the apply batch bytes per APPEND of
// 100 bytes to a 16 MiB string, one APPEND per entry and per Apply.
func BenchmarkV2AppendToBigValue(b *testing.B) {
	cfg := DefaultConfig(b.TempDir())
	cfg.Sync, cfg.CacheBytes = false, 64<<20
	s, err := Open(cfg)
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close()) }()
	_, err = s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}})
	require.NoError(b, err)
	idx := appendToBigValue(b, s)
	data := enc(Command{Op: OpAppend, Keys: kvs("big"), Values: [][]byte{bytes.Repeat([]byte("y"), 100)}})
	var total uint64
	b.ResetTimer()
	for range b.N {
		if _, err := s.Apply([]Entry{{Index: idx, Data: data, Stamp: 1000}}); err != nil {
			b.Fatal(err)
		}
		idx++
		last, _, _ := s.ApplyStats()
		total += last
	}
	b.ReportMetric(float64(total)/float64(b.N), "batch-bytes/append")
}
