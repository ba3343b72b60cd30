package kv

import (
	"fmt"
	"testing"
)

// BenchmarkApply measures state-machine apply throughput in both sync
// modes: each op is one Raft Ready's worth of SET entries committed as one
// Pebble batch (with fsync in sync mode).
func BenchmarkApply(b *testing.B) {
	for _, sync := range []bool{true, false} {
		for _, batch := range []int{1, 64} {
			name := fmt.Sprintf("mode=%s/batch=%d", map[bool]string{true: "sync", false: "nosync"}[sync], batch)
			b.Run(name, func(b *testing.B) {
				cfg := DefaultConfig(b.TempDir())
				cfg.Sync, cfg.CacheBytes = sync, 64<<20
				s, err := Open(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := s.Close(); err != nil {
						b.Error(err)
					}
				}()
				val := make([]byte, 128)
				ents := make([]Entry, batch)
				idx := uint64(0)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					for j := range ents {
						idx++
						c := Command{Op: OpSet, Keys: [][]byte{[]byte(fmt.Sprintf("key%08d", idx%100000))}, Values: [][]byte{val}}
						ents[j] = Entry{Index: idx, Data: c.AppendEncode(nil)}
					}
					if _, err := s.Apply(ents); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
			})
		}
	}
}
