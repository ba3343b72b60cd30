package kv

import (
	"context"
	"fmt"
	"testing"

	"github.com/elastickv/elastickv/internal/raft"
)

// Benchmarks of the state machine's read path and of applying one SET, with
// allocations reported. BenchmarkApply (bench_test.go) measures apply
// throughput and fsync; BenchmarkApplySet isolates what one entry costs
// the store itself, with the entry encoded before the clock starts.

const (
	readBenchKeys     = 100_000
	readBenchValueLen = 128
)

func readBenchKey(i int) []byte { return fmt.Appendf(nil, "key%08d", i) }

// openBenchStore opens an empty nosync store with a 64 MiB cache, closed
// when the benchmark ends.
func openBenchStore(b *testing.B) *Store {
	cfg := DefaultConfig(b.TempDir())
	cfg.Sync, cfg.CacheBytes = false, 64<<20
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
	})
	return s
}

// openReadBenchStore returns a store holding readBenchKeys keys, flushed
// out of the memtable and compacted, so that reads go through sstables and
// the block cache as they do on a store that has been running for a while. The cache holds
// the whole data set: the figures are for warm reads.
func openReadBenchStore(b *testing.B) *Store {
	s := openBenchStore(b)
	val := make([]byte, readBenchValueLen)
	const perApply = 1000
	ents := make([]Entry, 0, perApply)
	for i := range readBenchKeys {
		c := Command{Op: OpSet, Keys: [][]byte{readBenchKey(i)}, Values: [][]byte{val}}
		ents = append(ents, Entry{Index: uint64(i + 1), Data: c.AppendEncode(nil)})
		if len(ents) == perApply || i == readBenchKeys-1 {
			if _, err := s.Apply(ents); err != nil {
				b.Fatal(err)
			}
			ents = ents[:0]
		}
	}
	if err := s.db.Flush(); err != nil {
		b.Fatal(err)
	}
	// Compact now, or background compactions of the fresh tables would run
	// during the first sub-benchmark and their allocations (counted
	// process-wide) would be charged to its reads.
	if err := s.db.Compact(context.Background(), userLower, userUpper, true); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkStoreGet measures Store.Read running one GET, as a linearizable
// read does once its barrier has passed: a Pebble snapshot, the lookup and
// the copy handed to the caller. Keys are visited in a scattered order;
// missing keys sort between existing ones, so only the bloom filter can
// rule them out.
func BenchmarkStoreGet(b *testing.B) {
	s := openReadBenchStore(b)
	hit := make([][]byte, readBenchKeys)
	miss := make([][]byte, readBenchKeys)
	for i := range hit {
		hit[i] = readBenchKey(i)
		miss[i] = append(readBenchKey(i), '-')
	}
	for _, tc := range []struct {
		name  string
		keys  [][]byte
		found bool
	}{
		{"hit", hit, true},
		{"miss", miss, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			g := newGetter()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := g.get(s, tc.keys[scatter(i)], tc.found); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				g := newGetter()
				for i := 0; pb.Next(); i++ {
					if err := g.get(s, tc.keys[scatter(i)], tc.found); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// scatter maps an op number to a key index, striding across the key space
// so consecutive ops touch different blocks.
func scatter(i int) int { return int(uint64(i) * 7919 % readBenchKeys) }

// getter runs one GET through Store.Read. Its callback is built once, so
// the benchmark loop allocates nothing of its own.
type getter struct {
	key   []byte
	val   []byte
	found bool
	read  func(v View) error
}

func newGetter() *getter {
	g := &getter{}
	g.read = func(v View) error {
		var err error
		g.val, g.found, err = v.Get(g.key)
		return err
	}
	return g
}

func (g *getter) get(s *Store, key []byte, wantFound bool) error {
	g.key = key
	if err := s.Read(g.read); err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	switch {
	case g.found != wantFound:
		return fmt.Errorf("get %s: found %v, want %v", key, g.found, wantFound)
	case wantFound && len(g.val) != readBenchValueLen:
		return fmt.Errorf("get %s: %d-byte value, want %d", key, len(g.val), readBenchValueLen)
	}
	return nil
}

// BenchmarkApplySet measures applying one committed SET entry that
// overwrites an existing key, nosync (fsync is BenchmarkApply's subject
// and does not change allocations): directly through Store.Apply, and
// through the raft.StateMachine adapter the Raft group calls.
func BenchmarkApplySet(b *testing.B) {
	const keys = 4096
	datas := make([][]byte, keys)
	val := make([]byte, readBenchValueLen)
	for i := range datas {
		c := Command{Op: OpSet, Keys: [][]byte{readBenchKey(i)}, Values: [][]byte{val}}
		datas[i] = c.AppendEncode(nil)
	}
	open := func(b *testing.B) *Store {
		s := openBenchStore(b)
		// Create every key first, so each op is an overwrite.
		ents := make([]Entry, keys)
		for i := range ents {
			ents[i] = Entry{Index: uint64(i + 1), Data: datas[i]}
		}
		if _, err := s.Apply(ents); err != nil {
			b.Fatal(err)
		}
		return s
	}

	b.Run("store", func(b *testing.B) {
		s := open(b)
		idx := s.AppliedIndex()
		ents := make([]Entry, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			idx++
			ents[0] = Entry{Index: idx, Data: datas[i%keys]}
			res, err := s.Apply(ents)
			if err != nil {
				b.Fatal(err)
			}
			if res[0].Kind != ResultOK {
				b.Fatalf("apply: %+v", res[0])
			}
		}
	})
	b.Run("raft-adapter", func(b *testing.B) {
		s := open(b)
		sm := s.StateMachine()
		idx := s.AppliedIndex()
		ents := make([]raft.ApplyEntry, 1)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			idx++
			ents[0] = raft.ApplyEntry{Index: idx, Data: datas[i%keys]}
			res, err := sm.Apply(ents)
			if err != nil {
				b.Fatal(err)
			}
			if r, ok := res[0].(Result); !ok || r.Kind != ResultOK {
				b.Fatalf("apply: %#v", res[0])
			}
		}
	})
}
