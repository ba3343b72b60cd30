package kv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// members reads key's set in byte order (nil when missing).
func (d *hsDriver) members(key string) []string {
	d.t.Helper()
	var out []string
	require.NoError(d.t, d.s.Read(func(v View) error {
		out = nil
		st, ok, err := OpenSet(v, []byte(key))
		if err != nil || !ok {
			return err
		}
		var got []string
		if err := st.Iter(nil, func(m []byte) bool { got = append(got, string(m)); return true }); err != nil {
			return err
		}
		require.Equal(d.t, uint64(len(got)), st.Len(), "Len agrees with the rows")
		out = got
		return nil
	}))
	return out
}

// lastWrite is key's LastWrite stamp.
func (d *hsDriver) lastWrite(key string) keyspace.Stamp {
	d.t.Helper()
	ki, ok := lookupV3(d.t, d.s, key)
	require.True(d.t, ok)
	return ki.LastWrite
}

func sadd(key string, ms ...string) Command {
	return Command{Op: OpSAdd, Keys: kvs(key), Values: bs(ms...)}
}

func spop(key string, count int64, flags SetFlags, stamp keyspace.Stamp, chosen ...string) Command {
	return Command{Op: OpSPop, Flags: flags, Delta: count, Keys: kvs(key), Values: append([][]byte{keyspace.AppendStamp(nil, stamp)}, bs(chosen...)...)}
}

func arrayRes(xs ...string) Result {
	r := Result{Kind: ResultArray, Batch: make([]Result, len(xs))}
	for i, x := range xs {
		r.Batch[i] = Result{Kind: ResultBytes, Bytes: []byte(x)}
	}
	return r
}

func TestSetOpsApply(t *testing.T) {
	d := newHS(t)
	require.Equal(t, intRes(3), d.apply(sadd("s", "b", "a", "c", "a")))
	require.Equal(t, intRes(0), d.apply(sadd("s", "a")))
	require.Equal(t, []string{"sadd s"}, d.takeEvents())
	require.Equal(t, []string{"a", "b", "c"}, d.members("s"))
	require.Equal(t, intRes(2), d.apply(Command{Op: OpSRem, Keys: kvs("s"), Values: bs("a", "a", "z", "b")}))
	require.Equal(t, intRes(1), d.apply(Command{Op: OpSRem, Keys: kvs("s"), Values: bs("c")}))
	require.Equal(t, []string{"srem s", "srem s", "del s"}, d.takeEvents())
	require.Nil(t, d.members("s"))
	require.Zero(t, countElementRows(t, d.s))

	d.apply(setC("str", "v"))
	for _, c := range []Command{sadd("str", "a"), {Op: OpSRem, Keys: kvs("str"), Values: bs("a")},
		spop("str", 1, 0, keyspace.Stamp{}), {Op: OpSStore, Flags: SetUnion, Keys: bs("d", "str")}} {
		require.Equal(t, wrongType(), d.apply(c), "op %d", c.Op)
	}
}

// TestSPopIsConditional: a pop of chosen members applies only if the set
// still has the stamp the chooser read (or, with SPopIfPresent, still has
// every chosen member); otherwise it changes nothing and asks for a
// retry. A pop of at least the whole set needs no condition.
func TestSPopIsConditional(t *testing.T) {
	d := newHS(t)
	d.apply(sadd("s", "a", "b", "c", "d"))
	read := d.lastWrite("s")
	d.apply(Command{Op: OpExpire, Keys: kvs("s"), Delta: 1 << 40}) // changes the stamp, not the members
	d.takeEvents()
	retry := Result{Kind: ResultError, Err: ErrTextSPopRetry}
	require.Equal(t, retry, d.apply(spop("s", 2, SPopCount, read, "a", "c")))
	require.Equal(t, []string{"a", "b", "c", "d"}, d.members("s"), "a refused pop changes nothing")
	require.Empty(t, d.takeEvents())

	now := d.lastWrite("s")
	require.Equal(t, arrayRes("c", "a"), d.apply(spop("s", 2, SPopCount, now, "c", "a")))
	require.Equal(t, []string{"b", "d"}, d.members("s"))
	require.Equal(t, []string{"spop s"}, d.takeEvents())

	require.Equal(t, retry, d.apply(spop("s", 1, SPopIfPresent, read, "a")), "a is gone")
	require.Equal(t, Result{Kind: ResultBytes, Bytes: []byte("d")}, d.apply(spop("s", 1, SPopIfPresent, read, "d")), "every chosen member is there: the stale stamp does not matter")
	require.Equal(t, []string{"b"}, d.members("s"))

	// The whole set: no choice, no condition; the key goes.
	d.apply(sadd("s", "x", "y"))
	d.takeEvents()
	require.Equal(t, arrayRes("b", "x", "y"), d.apply(spop("s", 10, SPopCount, read)))
	require.Equal(t, []string{"spop s", "del s"}, d.takeEvents())
	require.Nil(t, d.members("s"))
	require.Equal(t, Result{Kind: ResultNil}, d.apply(spop("s", 1, 0, read)))
	require.Equal(t, Result{Kind: ResultArray}, d.apply(spop("s", 3, SPopCount, read)))
	require.Zero(t, countElementRows(t, d.s))
}

// TestSetStoreAndMoveWithinOneChunk: the store forms and SMOVE read the
// rows the chunk wrote before them; a destination that is also a source
// is read before it is replaced.
func TestSetStoreAndMoveWithinOneChunk(t *testing.T) {
	d := newHS(t)
	res := d.chunk(
		sadd("a", "1", "2", "3"),
		sadd("b", "2", "3", "4"),
		Command{Op: OpSStore, Flags: SetInter, Keys: bs("i", "a", "b")},
		Command{Op: OpSStore, Flags: SetUnion, Keys: bs("a", "a", "b")},
		Command{Op: OpSStore, Flags: SetDiff, Keys: bs("df", "a", "b", "nokey")},
		Command{Op: OpSMove, Keys: bs("b", "m"), Values: bs("4")},
		Command{Op: OpSMove, Keys: bs("b", "a"), Values: bs("3")},
		Command{Op: OpSMove, Keys: bs("nokey", "a"), Values: bs("3")},
		Command{Op: OpCopy, Keys: bs("a", "acopy")},
	)
	require.Equal(t, []Result{intRes(3), intRes(3), intRes(2), intRes(4), intRes(1), intRes(1), intRes(1), intRes(0), intRes(1)}, res)
	require.Equal(t, []string{"2", "3"}, d.members("i"))
	require.Equal(t, []string{"1", "2", "3", "4"}, d.members("a"))
	require.Equal(t, []string{"1"}, d.members("df"))
	require.Equal(t, []string{"4"}, d.members("m"))
	require.Equal(t, []string{"2"}, d.members("b"))
	require.Equal(t, []string{"1", "2", "3", "4"}, d.members("acopy"))
	require.Equal(t, []string{
		"sadd a", "sadd b", "sinterstore i", "sunionstore a", "sdiffstore df",
		"srem b", "sadd m", "srem b", "copy_to acopy",
	}, d.takeEvents(), "moving 3 into a, which holds it, adds nothing")
	require.Equal(t, 2+4+1+1+1+4, countElementRows(t, d.s), "no row of a replaced set is left")

	// An empty result deletes the destination.
	d.apply(Command{Op: OpExpire, Keys: kvs("i"), Delta: 1 << 40})
	d.takeEvents()
	require.Equal(t, intRes(0), d.apply(Command{Op: OpSStore, Flags: SetInter, Keys: bs("i", "a", "nokey")}))
	require.Equal(t, []string{"del i"}, d.takeEvents())
	require.Nil(t, d.members("i"))
}

func TestSetValidateRefusesBadShapes(t *testing.T) {
	st := keyspace.AppendStamp(nil, keyspace.Stamp{Index: 1})
	for _, c := range []Command{
		{Op: OpSAdd, Keys: kvs("s")},
		{Op: OpSRem, Keys: bs("s", "t"), Values: bs("a")},
		{Op: OpSPop, Keys: kvs("s"), Delta: 1},
		{Op: OpSPop, Keys: kvs("s"), Delta: 1, Values: [][]byte{st[:11]}},
		{Op: OpSPop, Keys: kvs("s"), Delta: 0, Values: [][]byte{st}},
		{Op: OpSPop, Keys: kvs("s"), Delta: 2, Values: [][]byte{st}},
		{Op: OpSPop, Flags: SPopCount, Keys: kvs("s"), Delta: 1, Values: [][]byte{st, []byte("a"), []byte("b")}},
		{Op: OpSMove, Keys: kvs("s"), Values: bs("a")},
		{Op: OpSStore, Keys: bs("d", "s")},
		{Op: OpSStore, Flags: SetInter | SetUnion, Keys: bs("d", "s")},
		{Op: OpSStore, Flags: SetInter, Keys: bs("d")},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
}
