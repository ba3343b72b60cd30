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

// BenchmarkApplyV2 is BenchmarkApply's nosync, batch=64 case at both
// cluster formats: at format 2 every SET reads the key's metadata (to drop
// an old value's elements and keep the counts), which format 1 did not.
func BenchmarkApplyV2(b *testing.B) {
	for _, format := range []uint8{FormatV1, FormatV2} {
		b.Run(fmt.Sprintf("format=%d", format), func(b *testing.B) {
			cfg := DefaultConfig(b.TempDir())
			cfg.Sync, cfg.CacheBytes = false, 64<<20
			s, err := Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					b.Error(err)
				}
			}()
			idx := uint64(1)
			if format == FormatV2 {
				if _, err := s.Apply([]Entry{{Index: 1, Data: NewRaiseFormat(FormatV2).AppendEncode(nil)}}); err != nil {
					b.Fatal(err)
				}
			}
			val := make([]byte, 128)
			ents := make([]Entry, 64)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for j := range ents {
					idx++
					c := Command{Op: OpSet, Keys: [][]byte{[]byte(fmt.Sprintf("key%08d", idx%100000))}, Values: [][]byte{val}}
					ents[j] = Entry{Index: idx, Data: c.AppendEncode(nil), Stamp: 1000}
				}
				if _, err := s.Apply(ents); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(ents))/b.Elapsed().Seconds(), "entries/s")
		})
	}
}
