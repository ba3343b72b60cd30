package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/node"
)

// BenchmarkSetFormat measures the whole cost of keyspace v2 to a plain SET,
// end to end: the same concurrent SET load on a 3-node cluster held at log
// format 1 (node.Config.MaxFormat = 1: the v1 layout, proposal header v1,
// no stamps) and on one raised to format 2 (stamped proposals, and on apply
// one metadata read per written key, to keep counts and elements right).
//
// The middle case, format 2 with the expiry sweeper off, separates the
// write path's own cost from the sweeper's: at format 2 the leader's
// sweeper scans the expiry index every 100 ms even when nothing is due
// (the sweeper does nothing at format 1).
//
// The keys cycle through benchFormatKeys distinct names, more than the
// memtable holds once written, so that at format 2 the metadata read
// reaches the sstables as it would on a store with real data; the cluster
// is filled with them before timing starts.
func BenchmarkSetFormat(b *testing.B) {
	const benchFormatKeys = 100000
	for _, tc := range []struct {
		format  uint8
		sweeper bool
	}{{kv.FormatV1, true}, {kv.FormatV2, false}, {kv.FormatV2, true}} {
		format := tc.format
		name := fmt.Sprintf("format=%d", format)
		if format >= kv.FormatV2 && !tc.sweeper {
			name += "/sweeper=off"
		}
		b.Run(name, func(b *testing.B) {
			c := New(b, 3, func(_ int, cfg *node.Config) {
				cfg.MaxFormat = format
				cfg.PebbleCacheBytes = node.DefaultConfig().PebbleCacheBytes
				if !tc.sweeper {
					cfg.ExpireSweepRate = -1
				}
			})
			lead := c.WaitLeader(10 * time.Second)
			// A fresh cluster at MaxFormat 2 is raised within a round trip
			// of its first election; one held at 1 must stay there.
			deadline := time.Now().Add(10 * time.Second)
			for c.Node(lead).Store().FormatVersion() != format {
				if time.Now().After(deadline) {
					b.Fatalf("cluster format %d, want %d", c.Node(lead).Store().FormatVersion(), format)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cl := benchClients(b, c)["leader"]
			key := func(i int) string { return fmt.Sprintf("bench:fmt:%07d", i%benchFormatKeys) }
			ctx := c.Ctx(5 * time.Minute)
			for from := 0; from < benchFormatKeys; from += 1000 {
				p := cl.Pipeline()
				for i := from; i < from+1000; i++ {
					p.Set(ctx, key(i), benchValue, 0)
				}
				if _, err := p.Exec(ctx); err != nil {
					b.Fatalf("fill at key %d: %v", from, err)
				}
			}
			if got := c.Node(lead).Store().FormatVersion(); got != format {
				b.Fatalf("cluster format moved to %d during the fill", got)
			}
			// A sub-benchmark, so that the cluster and its fill serve every
			// b.N the benchmark runs with.
			b.Run(fmt.Sprintf("parallel=%d", benchParallelism), func(b *testing.B) {
				runClientBench(b, true, func(ctx context.Context, _ int) error {
					k := key(rand.IntN(benchFormatKeys)) // spread the clients over the key set
					got, err := cl.Set(ctx, k, benchValue, 0).Result()
					if err != nil {
						return fmt.Errorf("SET %s: %w", k, err)
					}
					if got != "OK" {
						return fmt.Errorf("SET %s: %q, want OK", k, got)
					}
					return nil
				})
			})
		})
	}
}
