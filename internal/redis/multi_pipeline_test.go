package redis

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// A MULTI pipelined with its commands and EXEC in one write (go-redis's
// TxPipelined does this) queues them like commands sent one at a time:
// the pipeline's batching must not run the writes or reads behind MULTI
// at once. Found by the chaos txn workload: MULTI; INCR a; INCR b; EXEC
// sent in one write answered +OK :1 :1 *0, the INCRs applied outside the
// transaction and EXEC empty.
func TestPipelinedMultiQueuesItsCommands(t *testing.T) {
	f := newFixture(t)
	execr, err := NewApplyExecutor()
	require.NoError(t, err)
	f.backend.store.SetExecutor(execr)

	raw := dialRaw(t, f.srv)
	raw.send(cmd("multi") + cmd("incr", "a") + cmd("incr", "b") + cmd("exec"))
	require.Equal(t, "+OK", raw.reply())
	require.Equal(t, "+QUEUED", raw.reply())
	require.Equal(t, "+QUEUED", raw.reply())
	require.Equal(t, []any{int64(1), int64(1)}, raw.reply())

	raw.send(cmd("multi") + cmd("get", "a") + cmd("get", "b") + cmd("exec") + cmd("incr", "a") + cmd("incr", "b"))
	require.Equal(t, "+OK", raw.reply())
	require.Equal(t, "+QUEUED", raw.reply())
	require.Equal(t, "+QUEUED", raw.reply())
	require.Equal(t, []any{"1", "1"}, raw.reply())
	// After EXEC, pipelined writes run (and batch) as before.
	require.Equal(t, int64(2), raw.reply())
	require.Equal(t, int64(2), raw.reply())

	cmds, err := f.rdb.TxPipelined(f.ctx, func(p goredis.Pipeliner) error {
		p.Incr(f.ctx, "a")
		p.Incr(f.ctx, "b")
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 2)
	require.Equal(t, int64(3), cmds[0].(*goredis.IntCmd).Val())
	require.Equal(t, int64(3), cmds[1].(*goredis.IntCmd).Val())
}
