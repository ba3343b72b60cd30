package node

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// An EXEC cannot share a log entry with other writes: an OpBatch does not
// carry one, and a combined entry would stop every replica at apply.

func TestForwardedExecTravelsAlone(t *testing.T) {
	exec := kv.NewExec(nil, nil, [][][]byte{{[]byte("INCR"), []byte("a")}})
	subs, solo := forwardShape(exec)
	require.Equal(t, 1, subs)
	require.True(t, solo, "the follower never batches an EXEC with other writes")
	subs, solo = forwardShape(kv.NewBareExec([][]byte{[]byte("PING")}))
	require.Equal(t, 1, subs)
	require.True(t, solo)
}

func TestCombineForwardedRefusesAnExecAmongOthers(t *testing.T) {
	exec := encodeCmd(*kv.NewExec(nil, nil, [][][]byte{{[]byte("INCR"), []byte("a")}}))
	raise := encodeCmd(*kv.NewRaiseFormat(kv.MaxFormat))
	for name, payloads := range map[string][][]byte{
		"exec first":  {exec, setCmd("a", "1")},
		"exec last":   {setCmd("a", "1"), exec},
		"two execs":   {exec, exec},
		"format last": {incrCmd("n"), raise},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := combineForwarded(payloads)
			require.ErrorContains(t, err, "travels alone")
		})
	}
	// Alone, it is proposed as it came.
	e, err := combineForwarded([][]byte{exec})
	require.NoError(t, err)
	require.Equal(t, exec, e.payload)
}
