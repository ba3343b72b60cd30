package cluster

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/elastickv/elastickv/internal/node"
)

// histogramBuckets returns the cumulative buckets of a histogram family.
func histogramBuckets(n *node.Node, name string) map[float64]uint64 {
	out := map[float64]uint64{}
	mfs, err := n.Registry().Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			addBuckets(out, m.GetHistogram())
		}
	}
	return out
}

func addBuckets(out map[float64]uint64, h *dto.Histogram) {
	for _, b := range h.GetBucket() {
		out[b.GetUpperBound()] += b.GetCumulativeCount()
	}
	out[math.Inf(1)] += h.GetSampleCount()
}

// quantileBound returns the upper bound of the bucket holding quantile q of
// the observations made between before and after.
func quantileBound(before, after map[float64]uint64, q float64) float64 {
	var bounds []float64
	for b := range after {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := after[math.Inf(1)] - before[math.Inf(1)]
	if total == 0 {
		return 0
	}
	for _, b := range bounds {
		if float64(after[b]-before[b]) >= q*float64(total) {
			return b
		}
	}
	return math.Inf(1)
}

func writeBulk(b *testing.B, c *Cluster, leader, count, size int) {
	val := strings.Repeat("x", size)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < count; i += 8 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := c.Client(leader).Set(ctx, fmt.Sprintf("big%06d", i), val, 0).Err()
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// BenchmarkSnapshotTransfer sends a 256 MiB state to a follower that fell
// behind the compacted log and reports the transfer rate and the heartbeat
// delivery delay the followers saw meanwhile. Run with -benchtime 1x.
func BenchmarkSnapshotTransfer(b *testing.B) {
	for range b.N {
		c := New(b, 3, WithSnapshotCount(400), WithTimings(100*time.Millisecond, time.Second))
		leader := c.WaitLeader(5 * time.Second)
		lag := (leader + 1) % 3
		other := (leader + 2) % 3
		c.Stop(lag)
		writeBulk(b, c, leader, 1300, 256<<10)
		c.WaitConverged(60 * time.Second) // the two live nodes
		// Wait until the leader's newest snapshot covers (almost) everything.
		target := c.Node(leader).Group().AppliedIndex()
		for c.Node(leader).Group().Status().Commit < target {
			time.Sleep(10 * time.Millisecond)
		}
		snapDir := filepath.Join(c.Dir, c.Name(leader), "raft", "snap")
		hbBefore := histogramBuckets(c.Node(other), "elastickv_raft_heartbeat_delivery_delay_seconds")
		start := time.Now()
		c.Restart(lag)
		c.WaitApplied(target, 120*time.Second)
		elapsed := time.Since(start)
		hbAfter := histogramBuckets(c.Node(other), "elastickv_raft_heartbeat_delivery_delay_seconds")
		hbLag := histogramBuckets(c.Node(lag), "elastickv_raft_heartbeat_delivery_delay_seconds")
		var size int64
		if ents, err := os.ReadDir(snapDir); err == nil {
			for _, e := range ents {
				if fi, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".snap") && fi.Size() > size {
					size = fi.Size()
				}
			}
		}
		b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
		b.ReportMetric(float64(size)/(1<<20)/elapsed.Seconds(), "MiB/s")
		b.ReportMetric(float64(elapsed.Milliseconds()), "catchup-ms")
		b.ReportMetric(quantileBound(hbBefore, hbAfter, 0.99)*1000, "hb-p99-le-ms(other)")
		b.ReportMetric(quantileBound(map[float64]uint64{}, hbLag, 0.99)*1000, "hb-p99-le-ms(lagging)")
		c.Close()
	}
}

// BenchmarkRestartWithData measures how long a node holding 1 GiB takes to
// restart and serve a linearizable read. Run with -benchtime 1x.
func BenchmarkRestartWithData(b *testing.B) {
	for range b.N {
		c := New(b, 1, WithSnapshotCount(2000))
		writeBulk(b, c, 0, 4096, 256<<10)
		c.Stop(0)
		start := time.Now()
		c.Restart(0)
		c.WaitLeader(60 * time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := c.Client(0).Get(ctx, "big000001").Err(); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "restart-ms")
		c.Close()
	}
}
