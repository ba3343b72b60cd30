package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStringAndKeyCommandsAgreeOnEveryReplica runs a mix of SETRANGE,
// INCRBYFLOAT, MSETNX, RENAME, RENAMENX and COPY through the leader and a
// follower (whose writes are forwarded), with large values renamed across
// slots, then checks that every replica reads the same values and reports
// the same DEBUG DIGEST once it has applied them (the applied indexes may
// differ by the leader's idle stamp entries, which the digest leaves out).
func TestStringAndKeyCommandsAgreeOnEveryReplica(t *testing.T) {
	c := New(t, 3)
	ctx := c.Ctx(60 * time.Second)
	leader := c.WaitLeader(5 * time.Second)
	follower := (leader + 1) % c.Size()
	big := strings.Repeat("0123456789abcdef", 1024) // 16 KiB: chunked

	for round := range 4 {
		cl := c.Client(leader)
		if round%2 == 1 {
			cl = c.Client(follower)
		}
		k := func(name string) string { return fmt.Sprintf("{%s%d}", name, round) }
		require.NoError(t, cl.Set(ctx, k("big"), big, time.Hour).Err())
		require.Equal(t, int64(len(big)), cl.SetRange(ctx, k("big"), 5000, "MID").Val())
		require.Equal(t, int64(30004), cl.SetRange(ctx, k("big"), 30000, "tail").Val())
		require.Equal(t, "OK", cl.Rename(ctx, k("big"), k("moved")).Val(), "cross-slot rename")
		require.Equal(t, int64(1), cl.Copy(ctx, k("moved"), k("copy"), 0, false).Val())
		require.Equal(t, int64(30004), cl.SetRange(ctx, k("copy"), 0, "abc").Val())
		require.Equal(t, "10.6", cl.Do(ctx, "INCRBYFLOAT", k("f"), "10.6").Val())
		require.Equal(t, "5.6", cl.Do(ctx, "INCRBYFLOAT", k("f"), "-5").Val())
		require.True(t, cl.MSetNX(ctx, k("a"), "1", k("b"), "2").Val())
		require.False(t, cl.MSetNX(ctx, k("a"), "x", k("c"), "3").Val())
		require.True(t, cl.RenameNX(ctx, k("a"), k("c")).Val())
		require.False(t, cl.RenameNX(ctx, k("b"), k("c")).Val())
		require.Equal(t, "OK", cl.Rename(ctx, k("moved"), k("big")).Val(), "renamed back home")
	}

	idx := c.WaitConverged(20 * time.Second)
	var digest string
	for i := range c.Size() {
		v, err := c.Client(i).Do(ctx, "DEBUG", "DIGEST").Text()
		require.NoError(t, err)
		applied, d, ok := strings.Cut(v, ":")
		require.True(t, ok, "DEBUG DIGEST replied %q", v)
		n, err := strconv.ParseUint(applied, 10, 64)
		require.NoError(t, err)
		require.GreaterOrEqual(t, n, idx, "DEBUG DIGEST on %s", c.Name(i))
		if i == 0 {
			digest = d
		}
		require.Equal(t, digest, d, "DEBUG DIGEST on %s", c.Name(i))
		want := big[:5000] + "MID" + big[5003:] + strings.Repeat("\x00", 30000-len(big)) + "tail"
		for round := range 4 {
			cl := c.Client(i)
			require.Equal(t, want, cl.Get(ctx, fmt.Sprintf("{big%d}", round)).Val(), "on %s", c.Name(i))
			require.Equal(t, "abc"+want[3:], cl.Get(ctx, fmt.Sprintf("{copy%d}", round)).Val(), "on %s", c.Name(i))
			require.Equal(t, "5.6", cl.Get(ctx, fmt.Sprintf("{f%d}", round)).Val())
			require.Equal(t, "1", cl.Get(ctx, fmt.Sprintf("{c%d}", round)).Val())
			require.Greater(t, cl.PTTL(ctx, fmt.Sprintf("{big%d}", round)).Val(), 59*time.Minute, "the TTL moved with the key")
		}
	}
}
