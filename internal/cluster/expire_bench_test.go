package cluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/cluster"
	"github.com/elastickv/elastickv/internal/node"
)

// Mass expiry against client writes (issue 14: "SET p99 during a mass
// expiry, against idle").
//
// One 3-node cluster, one data set, three windows of the same SET load:
//
//  1. load N keys without a deadline (pipelined), then give all of them
//     one deadline D with pipelined PEXPIREATs, D far enough ahead that
//     the next window ends before it;
//  2. idle: SET load while the N keys are stored, carry a deadline and are
//     not yet due; the sweeper ticks but finds nothing to do;
//  3. sweep: from D, the same SET load while the leader's sweeper deletes
//     the N keys, until DBSIZE on the leader shows only the load's keys;
//  4. after: the same SET load once more, with the N keys gone.
//
// Why this baseline is the fair one: windows 2 and 3 see the same store
// (the same N keys, the same expiry-index rows, the same LSM shape), so
// the difference between them is the sweeper's work alone: its scans of
// the expiry index, its OpExpireIf entries through Raft, and the deletes
// they apply on every node. A baseline on an empty cluster would also
// credit the sweeper with the cost of a larger store. Window 4 brackets
// the sweep from the other side (tombstones, compaction after the delete).
//
// The SET load is a few go-redis clients, each one request at a time (no
// pipelining), over a bounded set of keys without deadlines, all sent to
// the leader (the node that sweeps).

const (
	// massSetClients is the number of concurrent, unpipelined SET clients.
	massSetClients = 4
	// massSetKeys is the number of distinct keys each SET client cycles
	// through; they carry no deadline, so they outlive the sweep.
	massSetKeys = 250
	// massLoadBatch is the pipeline depth of the load and PEXPIREAT passes.
	massLoadBatch = 500
	// massLoadWorkers is the number of concurrent loading pipelines.
	massLoadWorkers = 4
)

// massExpiryResult is what one run measured.
type massExpiryResult struct {
	idle, sweep, after latencies
	loadDur            time.Duration
	// sweepDur runs from the deadline D to the moment the leader's DBSIZE
	// showed only the SET load's keys.
	sweepDur time.Duration
	// proposed is the leader's elastickv_expire_sweep_keys_total at the end.
	proposed float64
}

// latencies is one window's SET latencies and its length.
type latencies struct {
	d   []time.Duration
	dur time.Duration
}

// quantile returns quantile q of the window's latencies (0 if none).
func (l latencies) quantile(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	i := int(q * float64(len(l.d)))
	if i >= len(l.d) {
		i = len(l.d) - 1
	}
	return l.d[i]
}

func (l latencies) opsPerSec() float64 {
	if l.dur <= 0 {
		return 0
	}
	return float64(len(l.d)) / l.dur.Seconds()
}

func (l latencies) String() string {
	return fmt.Sprintf("%d SETs in %v (%.0f/s) p50 %v p99 %v p999 %v max %v",
		len(l.d), l.dur.Round(time.Millisecond), l.opsPerSec(),
		l.quantile(0.5), l.quantile(0.99), l.quantile(0.999), l.quantile(1))
}

// setLoad runs the unpipelined SET clients against rdb until stop returns
// true (polled between requests) and returns their sorted latencies. Any
// failed SET fails tb: the sweep must not cost a client its write.
func setLoad(tb testing.TB, rdb *goredis.Client, stop func() bool) latencies {
	tb.Helper()
	start := time.Now()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		all    []time.Duration
		failed atomic.Value
	)
	val := strings.Repeat("v", 64)
	for w := range massSetClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := make([]time.Duration, 0, 4096)
			// At least one SET per client, even if stop is already true.
			for i := 0; ; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				err := rdb.Set(ctx, loadKey(w, i), val, 0).Err()
				own = append(own, time.Since(t0))
				cancel()
				if err != nil {
					failed.Store(fmt.Errorf("SET from client %d: %w", w, err))
					break
				}
				if stop() {
					break
				}
			}
			mu.Lock()
			all = append(all, own...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	slices.Sort(all)
	return latencies{d: all, dur: time.Since(start)}
}

// loadKey is SET client w's i-th key.
func loadKey(w, i int) string { return fmt.Sprintf("load:%d:%d", w, i%massSetKeys) }

// pipelined sends one command per key index in [0, n), massLoadBatch at a
// time on massLoadWorkers pipelines, and checks every reply with check.
func pipelined(tb testing.TB, rdb *goredis.Client, n int, add func(p goredis.Pipeliner, i int), check func(goredis.Cmder) error) {
	tb.Helper()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, massLoadWorkers)
	)
	for range massLoadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(massLoadBatch)) - massLoadBatch
				if from >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				p := rdb.Pipeline()
				for i := from; i < min(from+massLoadBatch, n); i++ {
					add(p, i)
				}
				cmds, err := p.Exec(ctx)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("pipeline at key %d: %w", from, err)
					return
				}
				for _, c := range cmds {
					if err := check(c); err != nil {
						errs <- fmt.Errorf("pipeline at key %d: %w", from, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// dbsize returns node i's DBSIZE.
func dbsize(tb testing.TB, c *cluster.Cluster, i int) int64 {
	tb.Helper()
	n, err := c.Client(i).DBSize(c.Ctx(10 * time.Second)).Result()
	require.NoError(tb, err)
	return n
}

// sweepProposed reads elastickv_expire_sweep_keys_total from node n.
func sweepProposed(tb testing.TB, n *node.Node) float64 {
	tb.Helper()
	mfs, err := n.Registry().Gather()
	require.NoError(tb, err)
	for _, mf := range mfs {
		if mf.GetName() == "elastickv_expire_sweep_keys_total" {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return 0
}

// runMassExpiry runs the scenario above with n expiring keys and the given
// sweep rate (0: the node default), each idle window lasting window.
func runMassExpiry(tb testing.TB, n, rate int, window time.Duration) massExpiryResult {
	tb.Helper()
	// The node's default block cache (256 MiB), not the harness's 8 MiB:
	// the sweep's apply reads each key's metadata, and with the smaller
	// cache most of its time went to reloading and decompressing index
	// blocks, which a deployed node would not.
	c := cluster.New(tb, 3, func(_ int, cfg *node.Config) {
		cfg.ExpireSweepRate = rate
		cfg.PebbleCacheBytes = node.DefaultConfig().PebbleCacheBytes
	})
	lead := c.WaitLeader(10 * time.Second)
	rdb := c.Client(lead)
	// The cluster must be at format 2 (the sweeper's) before the keys get
	// their deadlines; the first leader raises it within a round trip.
	deadline := time.Now().Add(10 * time.Second)
	for c.Node(lead).Store().FormatVersion() < 2 {
		if time.Now().After(deadline) {
			tb.Fatal("the cluster format did not rise to 2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var res massExpiryResult
	key := func(i int) string { return "exp:" + strconv.Itoa(i) }
	val := strings.Repeat("x", 32)

	t0 := time.Now()
	pipelined(tb, rdb, n, func(p goredis.Pipeliner, i int) { p.Set(context.Background(), key(i), val, 0) },
		func(c goredis.Cmder) error { return c.Err() })
	res.loadDur = time.Since(t0)

	// The PEXPIREAT pass writes as many entries as the load, so it should
	// take about as long; D leaves it twice that, plus the idle window.
	expStart := time.Now()
	due := expStart.Add(2*res.loadDur + window + 3*time.Second)
	pipelined(tb, rdb, n, func(p goredis.Pipeliner, i int) { p.PExpireAt(context.Background(), key(i), due) },
		func(c goredis.Cmder) error {
			if ok, err := c.(*goredis.BoolCmd).Result(); err != nil || !ok {
				return fmt.Errorf("PEXPIREAT %v: %v %w", c.Args()[1], ok, err)
			}
			return nil
		})
	idleEnd := time.Now().Add(window)
	if idleEnd.After(due.Add(-500 * time.Millisecond)) {
		tb.Fatalf("the PEXPIREAT pass took %v, leaving no idle window before the deadline", time.Since(expStart))
	}
	// The SET load's keys exist before the first window, so DBSIZE is
	// n + loadKeys throughout and loadKeys exactly once the sweep is done.
	const loadKeys = massSetClients * massSetKeys
	pipelined(tb, rdb, loadKeys, func(p goredis.Pipeliner, i int) {
		p.Set(context.Background(), loadKey(i/massSetKeys, i%massSetKeys), val, 0)
	}, func(c goredis.Cmder) error { return c.Err() })
	require.Equal(tb, int64(n+loadKeys), dbsize(tb, c, lead))

	res.idle = setLoad(tb, rdb, func() bool { return time.Now().After(idleEnd) })
	// The idle window must have seen no expiry at all.
	require.Equal(tb, int64(n+loadKeys), dbsize(tb, c, lead), "keys expired before their deadline")
	time.Sleep(time.Until(due)) // wait for the deadline itself, not a condition: D is a wall-clock instant
	stopProfile := sweepProfile(tb)

	// The sweep window ends when the leader counts only the load's keys;
	// a poller checks DBSIZE while the SET clients run.
	var swept atomic.Bool
	var sweptAt atomic.Int64
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		limit := time.Now().Add(time.Duration(n/max(rate, 1000))*time.Second*10 + time.Minute)
		for time.Now().Before(limit) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			k, err := rdb.DBSize(ctx).Result()
			cancel()
			if err == nil && k == loadKeys {
				sweptAt.Store(time.Now().UnixNano())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		swept.Store(true)
	}()
	res.sweep = setLoad(tb, rdb, swept.Load)
	<-pollDone
	stopProfile()
	if sweptAt.Load() == 0 {
		tb.Fatalf("the sweeper did not delete %d keys in time: DBSIZE %d", n, dbsize(tb, c, lead))
	}
	res.sweepDur = time.Unix(0, sweptAt.Load()).Sub(due)
	res.proposed = sweepProposed(tb, c.Node(lead))

	afterEnd := time.Now().Add(window)
	res.after = setLoad(tb, rdb, func() bool { return time.Now().After(afterEnd) })

	// Behaviour: every node deleted exactly the N keys, and nothing else.
	c.WaitConverged(2 * time.Minute)
	for i := range 3 {
		require.Equal(tb, int64(loadKeys), dbsize(tb, c, i), c.Name(i))
		info := c.Client(i).Info(c.Ctx(10*time.Second), "stats").Val()
		require.Contains(tb, info, fmt.Sprintf("expired_keys:%d\r\n", n), c.Name(i))
	}
	return res
}

// sweepProfile starts a CPU profile of the whole process (all three nodes
// and the clients) into $ELASTICKV_BENCH_SWEEP_PROFILE, if set, and returns
// the function that stops it: it covers the sweep window only, which
// go test -cpuprofile cannot isolate from the load passes.
func sweepProfile(tb testing.TB) func() {
	tb.Helper()
	path := os.Getenv("ELASTICKV_BENCH_SWEEP_PROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	require.NoError(tb, err, "create the sweep profile")
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		tb.Fatalf("start the sweep profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Errorf("write the sweep profile: %v", err)
		}
	}
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		tb.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return v
}

// BenchmarkSetDuringMassExpiry reports SET latency (µs) while the leader's
// sweeper deletes N keys that all expire at once, against the same load
// before (idle) and after the sweep, with the sweep's duration and rate.
//
// Run with -benchtime 1x. ELASTICKV_BENCH_EXPIRE_KEYS sets N (default
// 50,000; the documented run uses 1,000,000), ELASTICKV_BENCH_SWEEP_RATE the
// sweeper's keys/s (default: node.DefaultExpireSweepRate), and
// ELASTICKV_BENCH_IDLE_SECONDS each idle window (default 10);
// ELASTICKV_BENCH_SWEEP_PROFILE names a file for a CPU profile of the sweep
// window.
func BenchmarkSetDuringMassExpiry(b *testing.B) {
	n := envInt(b, "ELASTICKV_BENCH_EXPIRE_KEYS", 50000)
	rate := envInt(b, "ELASTICKV_BENCH_SWEEP_RATE", node.DefaultExpireSweepRate)
	window := time.Duration(envInt(b, "ELASTICKV_BENCH_IDLE_SECONDS", 10)) * time.Second
	for range b.N {
		r := runMassExpiry(b, n, rate, window)
		b.Logf("N=%d rate=%d load %v", n, rate, r.loadDur.Round(time.Millisecond))
		b.Logf("idle:  %v", r.idle)
		b.Logf("sweep: %v", r.sweep)
		b.Logf("after: %v", r.after)
		b.Logf("sweep took %v (%.0f keys/s), leader proposed %.0f", r.sweepDur.Round(time.Millisecond),
			float64(n)/r.sweepDur.Seconds(), r.proposed)
		for _, w := range []struct {
			name string
			l    latencies
		}{{"idle", r.idle}, {"sweep", r.sweep}, {"after", r.after}} {
			b.ReportMetric(float64(w.l.quantile(0.5).Microseconds()), w.name+"-p50-µs")
			b.ReportMetric(float64(w.l.quantile(0.99).Microseconds()), w.name+"-p99-µs")
			b.ReportMetric(float64(w.l.quantile(0.999).Microseconds()), w.name+"-p999-µs")
			b.ReportMetric(w.l.opsPerSec(), w.name+"-SET/s")
		}
		b.ReportMetric(r.sweepDur.Seconds(), "sweep-s")
		b.ReportMetric(float64(n)/r.sweepDur.Seconds(), "swept-keys/s")
	}
}

// TestMassExpiryLeavesSetsServedAndDeletesEveryKey is the benchmark's
// scenario at a small size, asserting behaviour only: every SET during the
// sweep succeeds, every node ends with exactly the SET load's keys, and
// each counts the N expired keys.
func TestMassExpiryLeavesSetsServedAndDeletesEveryKey(t *testing.T) {
	const n = 3000
	r := runMassExpiry(t, n, 0, 500*time.Millisecond)
	require.NotEmpty(t, r.sweep.d, "no SET ran during the sweep")
	require.GreaterOrEqual(t, r.proposed, float64(n), "the leader's sweeper proposed fewer deletions than keys expired")
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleSweeperCPU reports the CPU (percent of one core, all three
// nodes of the process) and allocations a second of an idle 3-node cluster
// holding ELASTICKV_BENCH_IDLE_KEYS keys (default 100,000) without
// deadlines, with the expiry sweeper off and on: what the sweeper's
// every-100-ms scan of the expiry index costs when nothing is due. Run with
// -benchtime 1x.
func BenchmarkIdleSweeperCPU(b *testing.B) {
	n := envInt(b, "ELASTICKV_BENCH_IDLE_KEYS", 100000)
	for _, rate := range []int{-1, node.DefaultExpireSweepRate} {
		name := "sweeper=on"
		if rate < 0 {
			name = "sweeper=off"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				c := cluster.New(b, 3, func(_ int, cfg *node.Config) {
					cfg.ExpireSweepRate = rate
					cfg.PebbleCacheBytes = node.DefaultConfig().PebbleCacheBytes
				})
				rdb := c.Client(c.WaitLeader(10 * time.Second))
				val := strings.Repeat("x", 32)
				pipelined(b, rdb, n, func(p goredis.Pipeliner, i int) {
					p.Set(context.Background(), "idle:"+strconv.Itoa(i), val, 0)
				}, func(c goredis.Cmder) error { return c.Err() })
				// Let the load's flushes and compactions finish first; the
				// window below measures a cluster nobody uses.
				time.Sleep(5 * time.Second)
				const window = 5 * time.Second
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				cpu0 := processCPU(b)
				time.Sleep(window)
				cpu := processCPU(b) - cpu0
				runtime.ReadMemStats(&m1)
				b.ReportMetric(100*cpu.Seconds()/window.Seconds(), "cpu-%")
				b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/window.Seconds(), "allocs/s")
				c.Close()
			}
		})
	}
}
