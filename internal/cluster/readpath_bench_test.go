package cluster

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/elastickv/elastickv/internal/raft"
)

// End-to-end benchmarks of one command through a real 3-node in-process
// cluster: go-redis client, RESP server, Raft (ReadIndex or proposal over
// the gRPC transport), Pebble. allocs/op counts the whole process, client
// and all three nodes, so it is a trend to watch rather than one
// component's cost; the package benchmarks below it attribute it.

// benchParallelism is the number of concurrent clients in the parallel
// variants: enough to show batching of reads and proposals.
const benchParallelism = 32

// benchValue is the value every benchmark key holds.
var benchValue = strings.Repeat("v", 64)

// benchClients returns go-redis clients of the cluster's leader and of one
// follower, with pools large enough that no parallel client waits for a
// connection. They close before the cluster does.
func benchClients(b *testing.B, c *Cluster) map[string]*goredis.Client {
	leader := c.WaitLeader(10 * time.Second)
	out := make(map[string]*goredis.Client)
	for role, i := range map[string]int{"leader": leader, "follower": (leader + 1) % c.Size()} {
		cl := goredis.NewClient(&goredis.Options{
			Addr:         c.Node(i).RedisAddr(),
			PoolSize:     2 * benchParallelism,
			ReadTimeout:  10 * time.Second,
			WriteTimeout: 10 * time.Second,
			MaxRetries:   -1, // a retried command would hide a failure
		})
		b.Cleanup(func() { _ = cl.Close() })
		out[role] = cl
	}
	return out
}

// runClientBench runs op b.N times, on one goroutine or spread over
// benchParallelism goroutines with b.RunParallel, and reports the rate.
func runClientBench(b *testing.B, parallel bool, op func(ctx context.Context, i int) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	if !parallel {
		b.ResetTimer()
		for i := range b.N {
			if err := op(ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		return
	}
	// RunParallel starts parallelism × GOMAXPROCS goroutines.
	b.SetParallelism(max(1, benchParallelism/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if err := op(ctx, i); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// clientBenchCases are the sub-benchmarks of both path benchmarks: which
// node the client talks to, and how many clients run at once.
var clientBenchCases = []struct {
	role     string
	parallel bool
}{
	{"leader", false},
	{"leader", true},
	{"follower", false},
	{"follower", true},
}

func clientBenchName(role string, parallel bool) string {
	if parallel {
		return fmt.Sprintf("%s/parallel=%d", role, benchParallelism)
	}
	return role + "/sequential"
}

// BenchmarkReadPath measures a GET of an existing key: a linearizable
// barrier (a ReadIndex round, forwarded to the leader when served by a
// follower, or on the leader in lease mode usually none), then a local read.
func BenchmarkReadPath(b *testing.B) {
	for _, mode := range []raft.ReadMode{raft.ReadModeReadIndex, raft.ReadModeLease} {
		b.Run("mode="+mode.String(), func(b *testing.B) {
			c := New(b, 3, WithReadMode(mode))
			clients := benchClients(b, c)
			const key = "bench:read"
			ctx := c.Ctx(10 * time.Second)
			if err := clients["leader"].Set(ctx, key, benchValue, 0).Err(); err != nil {
				b.Fatal(err)
			}
			for _, tc := range clientBenchCases {
				b.Run(clientBenchName(tc.role, tc.parallel), func(b *testing.B) {
					cl := clients[tc.role]
					runClientBench(b, tc.parallel, func(ctx context.Context, _ int) error {
						got, err := cl.Get(ctx, key).Result()
						if err != nil {
							return fmt.Errorf("GET %s on the %s: %w", key, tc.role, err)
						}
						if got != benchValue {
							return fmt.Errorf("GET %s on the %s: %q, want %q", key, tc.role, got, benchValue)
						}
						return nil
					})
				})
			}
		})
	}
}

// BenchmarkWritePath measures a SET: a proposal on the leader (forwarded to
// it over gRPC when sent to a follower), committed by a quorum, applied and
// fsynced, as the node's defaults do. Keys cycle through a small set.
func BenchmarkWritePath(b *testing.B) {
	c := New(b, 3)
	clients := benchClients(b, c)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:write:%04d", i)
	}
	for _, tc := range clientBenchCases {
		b.Run(clientBenchName(tc.role, tc.parallel), func(b *testing.B) {
			cl := clients[tc.role]
			runClientBench(b, tc.parallel, func(ctx context.Context, i int) error {
				key := keys[i%len(keys)]
				got, err := cl.Set(ctx, key, benchValue, 0).Result()
				if err != nil {
					return fmt.Errorf("SET %s on the %s: %w", key, tc.role, err)
				}
				if got != "OK" {
					return fmt.Errorf("SET %s on the %s: %q, want OK", key, tc.role, got)
				}
				return nil
			})
		})
	}
}
