package node

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
)

// An EXEC forwarded by a follower while other writes are forwarded must
// not be combined with them: the leader would commit an OpBatch holding an
// OpExec, which every replica refuses to apply, stopping them all (found by
// the chaos txn workload: `elastickv chaos --workload txn --nemesis kill`).
func TestForwardedExecTravelsAlone(t *testing.T) {
	exec := kv.NewExec(nil, nil, [][][]byte{{[]byte("incr"), []byte("a")}, {[]byte("incr"), []byte("b")}})
	subs, solo := forwardShape(exec)
	require.Equal(t, 1, subs)
	require.True(t, solo, "an EXEC is never batched with other forwarded writes")

	bare := kv.NewBareExec([][]byte{[]byte("eval"), []byte("return 1"), []byte("0")})
	_, solo = forwardShape(bare)
	require.True(t, solo)

	// A leader refuses a batch request that combines one anyway (a peer
	// running an older build), instead of committing an entry nobody can
	// apply; alone, it is proposed as it came.
	payload := encodeCmd(*exec)
	_, err := combineForwarded([][]byte{setCmd("k", "v"), payload})
	require.ErrorContains(t, err, "an EXEC cannot share a batch")
	e, err := combineForwarded([][]byte{payload})
	require.NoError(t, err)
	require.Equal(t, payload, e.payload)
}
