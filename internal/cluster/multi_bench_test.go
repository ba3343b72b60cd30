package cluster

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// BenchmarkMultiExec3 measures a 3-command transaction, MULTI; INCR a;
// INCR b; GET a; EXEC, sent by go-redis TxPipelined in one round trip: one
// proposal (forwarded when sent to a follower) whose commands run on
// apply.
func BenchmarkMultiExec3(b *testing.B) {
	c := New(b, 3)
	clients := benchClients(b, c)
	for _, tc := range clientBenchCases {
		b.Run(clientBenchName(tc.role, tc.parallel), func(b *testing.B) {
			cl := clients[tc.role]
			runClientBench(b, tc.parallel, func(ctx context.Context, _ int) error {
				var a *goredis.IntCmd
				var get *goredis.StringCmd
				_, err := cl.TxPipelined(ctx, func(p goredis.Pipeliner) error {
					a = p.Incr(ctx, "bench:tx:{a}")
					p.Incr(ctx, "bench:tx:{b}")
					get = p.Get(ctx, "bench:tx:{a}")
					return nil
				})
				if err != nil {
					return fmt.Errorf("MULTI/EXEC on the %s: %w", tc.role, err)
				}
				// Isolation: nothing ran between the INCR and the GET.
				if got := strconv.FormatInt(a.Val(), 10); get.Val() != got {
					return fmt.Errorf("MULTI/EXEC on the %s: GET a = %q after INCR a = %s", tc.role, get.Val(), got)
				}
				return nil
			})
		})
	}
}
