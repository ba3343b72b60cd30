package cluster

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkBlockingPushToPop is the producer/consumer pattern of a job
// queue: BLPOP consumers on both followers, a producer RPUSHing on the
// leader one job at a time. It reports the latency from the start of
// each RPUSH to the BLPOP reply that carries its job (p50, p99), which
// covers the push's commit, its apply on the consumer's node, the wake,
// the pop's forwarding to the leader and its commit. empty-pops/op counts
// the pops that lost the race to a waiter on the other follower (each
// wakes on every push: FIFO holds per node only).
//
//	go test -run XXX -bench BlockingPushToPop -benchtime 2000x ./internal/cluster/
func BenchmarkBlockingPushToPop(b *testing.B) {
	c := New(b, 3)
	ctx := context.Background()
	leader := c.Leader()
	f1, f2 := followers(c)
	const consumersPerNode = 2
	var (
		mu   sync.Mutex
		lats []time.Duration
		got  = make(chan struct{}, b.N)
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	for _, node := range []int{f1, f2} {
		for range consumersPerNode {
			cl := blockingClient(b, c, node)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					v, err := cl.BLPop(ctx, time.Second, "jobs").Result()
					if errors.Is(err, goredis.Nil) {
						continue
					}
					if err != nil {
						b.Errorf("BLPOP: %v", err)
						return
					}
					sent, _ := strconv.ParseInt(v[1], 10, 64)
					mu.Lock()
					lats = append(lats, time.Since(time.Unix(0, sent)))
					mu.Unlock()
					got <- struct{}{}
				}
			}()
		}
	}
	for _, node := range []int{f1, f2} {
		c.waitBlocked(ctx, node, consumersPerNode)
	}
	producer := c.Client(leader)
	empty := func() float64 {
		return counterValue(b, c, f1, "elastickv_redis_blocked_empty_pops_total") + counterValue(b, c, f2, "elastickv_redis_blocked_empty_pops_total")
	}
	empty0 := empty()
	b.ResetTimer()
	for range b.N {
		if err := producer.RPush(ctx, "jobs", strconv.FormatInt(time.Now().UnixNano(), 10)).Err(); err != nil {
			b.Fatalf("RPUSH: %v", err)
		}
	}
	deadline := time.After(30 * time.Second)
	for range b.N {
		select {
		case <-got:
		case <-deadline:
			b.Fatal("jobs were pushed and never popped")
		}
	}
	b.StopTimer()
	// Pops that lost the race to a waiter on the other follower: each
	// cost a log entry and found nothing.
	b.ReportMetric((empty()-empty0)/float64(b.N), "empty-pops/op")
	close(stop)
	wg.Wait()
	slices.Sort(lats)
	q := func(p float64) float64 { return float64(lats[int(p*float64(len(lats)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
