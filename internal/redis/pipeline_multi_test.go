package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestPipelinedMultiQueuesEveryCommand: a client writes MULTI ... EXEC in
// one go (go-redis's TxPipelined does). The pipelined fast path must not
// run the batchable writes after MULTI at once: they are queued, and run
// in the EXEC.
func TestPipelinedMultiQueuesEveryCommand(t *testing.T) {
	f := newFixture(t)
	cmds, err := f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		p.Incr(f.ctx, "a")
		p.Incr(f.ctx, "b")
		p.Set(f.ctx, "c", "x", 0)
		p.Get(f.ctx, "a")
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 4)
	require.Equal(t, int64(1), cmds[0].(*goredis.IntCmd).Val())
	require.Equal(t, int64(1), cmds[1].(*goredis.IntCmd).Val())
	require.Equal(t, "OK", cmds[2].(*goredis.StatusCmd).Val())
	require.Equal(t, "1", cmds[3].(*goredis.StringCmd).Val())

	// By hand, with the replies checked one by one: every command after
	// MULTI answers QUEUED, and EXEC answers the array.
	r := dialRaw(t, f.srv)
	r.send("MULTI\r\nINCR a\r\nSET d y\r\nGET d\r\nEXEC\r\nGET a\r\n")
	for _, want := range []string{"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3", ":2", "+OK", "$1", "y", "$1", "2"} {
		require.Equal(t, want, r.line())
	}
}
