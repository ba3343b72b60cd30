// Command txbench measures workloads redis-benchmark cannot express: a
// 3-command MULTI/EXEC and EVALSHA of a small script. It drives one
// address with -c clients (one request in flight each) for -n requests,
// and prints one line per workload as redis-benchmark's CSV does:
// "name","rps","avg_ms","min_ms","p50_ms","p95_ms","p99_ms","max_ms".
// scripts/bench.sh runs it against elastickv and redis-server in one run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// script is EVALSHA's script: one read-modify-write of a key.
const script = "return redis.call('INCR', KEYS[1])"

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "server address")
	clients := flag.Int("c", 50, "concurrent clients")
	requests := flag.Int("n", 10000, "requests per workload")
	keys := flag.Int("r", 100000, "keys the requests spread over")
	workloads := flag.String("t", "multi3,evalsha", "workloads: multi3, evalsha")
	flag.Parse()
	for _, w := range strings.Split(*workloads, ",") {
		line, err := run(w, *addr, *clients, *requests, *keys)
		if err != nil {
			fmt.Fprintf(os.Stderr, "txbench %s: %v\n", w, err)
			os.Exit(1)
		}
		fmt.Println(line)
	}
}

// run drives one workload and returns its CSV line.
func run(workload, addr string, clients, requests, keys int) (string, error) {
	cl := goredis.NewClient(&goredis.Options{Addr: addr, PoolSize: clients, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second})
	defer func() { _ = cl.Close() }()
	ctx := context.Background()
	var op func(ctx context.Context, n int) error
	switch workload {
	case "multi3":
		op = func(ctx context.Context, n int) error {
			a, b := fmt.Sprintf("tx:a:%d", n%keys), fmt.Sprintf("tx:b:%d", n%keys)
			_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Incr(ctx, a)
				p.Incr(ctx, b)
				p.Get(ctx, a)
				return nil
			})
			return err
		}
	case "evalsha":
		sha, err := cl.ScriptLoad(ctx, script).Result()
		if err != nil {
			return "", fmt.Errorf("script load: %w", err)
		}
		op = func(ctx context.Context, n int) error {
			return cl.EvalSha(ctx, sha, []string{fmt.Sprintf("ev:%d", n%keys)}).Err()
		}
	default:
		return "", errors.New("unknown workload")
	}
	lat := make([]time.Duration, requests)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				t0 := time.Now()
				err := op(rctx, i)
				lat[i] = time.Since(t0)
				cancel()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return "", firstErr
	}
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	return fmt.Sprintf("%q,%q,%q,%q,%q,%q,%q,%q", strings.ToUpper(workload),
		fmt.Sprintf("%.2f", float64(requests)/elapsed.Seconds()), ms(sum/time.Duration(len(lat))),
		ms(lat[0]), ms(q(0.50)), ms(q(0.95)), ms(q(0.99)), ms(lat[len(lat)-1])), nil
}
