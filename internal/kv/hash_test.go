package kv

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// hsDriver is a test driver of a store at format 3 that records apply events.
type hsDriver struct {
	t      *testing.T
	s      *Store
	index  uint64
	clock  uint64
	events []string // "event key", in order
}

func newHS(t *testing.T) *hsDriver {
	t.Helper()
	d := &hsDriver{t: t, index: 1, clock: 1000}
	cfg := DefaultConfig(t.TempDir())
	cfg.CacheBytes = 8 << 20
	cfg.OnApplyEvents = func(evs []ApplyEvent) {
		for _, e := range evs {
			d.events = append(d.events, e.Event+" "+string(e.Key))
		}
	}
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV3)), Stamp: d.clock}})
	require.NoError(t, err)
	require.Equal(t, FormatV3, s.FormatVersion())
	d.s = s
	return d
}

// chunk applies cmds as consecutive entries of one Apply call (one chunk,
// one batch) and returns their results.
func (d *hsDriver) chunk(cmds ...Command) []Result {
	d.t.Helper()
	entries := make([]Entry, len(cmds))
	for i, c := range cmds {
		require.NoError(d.t, c.Validate(), "%v", c.Op)
		d.index++
		entries[i] = Entry{Index: d.index, Data: enc(c), Stamp: d.clock}
	}
	res, err := d.s.Apply(entries)
	require.NoError(d.t, err)
	return res
}

func (d *hsDriver) apply(c Command) Result {
	d.t.Helper()
	return d.chunk(c)[0]
}

// takeEvents returns and forgets the events recorded so far.
func (d *hsDriver) takeEvents() []string {
	e := d.events
	d.events = nil
	return e
}

// hash reads key's hash as a map (nil when missing).
func (d *hsDriver) hash(key string) map[string]string {
	d.t.Helper()
	var out map[string]string
	require.NoError(d.t, d.s.Read(func(v View) error {
		out = nil
		h, ok, err := OpenHash(v, []byte(key))
		if err != nil || !ok {
			return err
		}
		out = map[string]string{}
		n := 0
		err = h.Iter(nil, func(f, val []byte) bool {
			out[string(f)] = string(val)
			n++
			return true
		})
		if err != nil {
			return err // a live read asked to start again on a snapshot
		}
		require.Equal(d.t, uint64(n), h.Len(), "Len agrees with the rows")
		return nil
	}))
	return out
}

func bs(xs ...string) [][]byte {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		out[i] = []byte(x)
	}
	return out
}

func hset(key string, fv ...string) Command {
	return Command{Op: OpHSet, Keys: kvs(key), Values: bs(fv...)}
}

func intRes(n int64) Result { return Result{Kind: ResultInt, Int: n} }

func TestHashOpsApply(t *testing.T) {
	d := newHS(t)
	require.Equal(t, intRes(2), d.apply(hset("h", "a", "1", "b", "2", "a", "3")))
	require.Equal(t, map[string]string{"a": "3", "b": "2"}, d.hash("h"))
	require.Equal(t, []string{"hset h"}, d.takeEvents())
	ki, ok := lookupV3(t, d.s, "h")
	require.True(t, ok)
	require.Equal(t, keyspace.TypeHash, ki.Type)
	require.Equal(t, uint64(2), ki.Len)

	require.Equal(t, intRes(0), d.apply(Command{Op: OpHSet, Flags: HSetNX, Keys: kvs("h"), Values: bs("a", "x")}))
	require.Empty(t, d.takeEvents(), "a HSETNX that changes nothing emits nothing")
	require.Equal(t, intRes(1), d.apply(Command{Op: OpHSet, Flags: HSetNX, Keys: kvs("h"), Values: bs("c", "x")}))

	require.Equal(t, intRes(7), d.apply(Command{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("n"), Delta: 7}))
	require.Equal(t, intRes(10), d.apply(Command{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("a"), Delta: 7}))
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextHashNotInteger}, d.apply(Command{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("c"), Delta: 1}))
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextOverflow}, d.apply(Command{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("a"), Delta: 1<<63 - 1}))
	require.Equal(t, Result{Kind: ResultBytes, Bytes: []byte("10.6")}, d.apply(Command{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("a", "0.6")}))
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextHashNotFloat}, d.apply(Command{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("c", "1")}))
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextNotFloat}, d.apply(Command{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("c", "abc")}))
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextFloatNaNOrInf}, d.apply(Command{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("c", "inf")}))
	require.Equal(t, map[string]string{"a": "10.6", "b": "2", "c": "x", "n": "7"}, d.hash("h"))
	d.takeEvents()

	d.apply(setC("str", "v"))
	for _, c := range []Command{hset("str", "a", "1"), {Op: OpHDel, Keys: kvs("str"), Values: bs("a")},
		{Op: OpHIncrBy, Keys: kvs("str"), Values: bs("a"), Delta: 1}, {Op: OpHIncrByFloat, Keys: kvs("str"), Values: bs("a", "1")}} {
		require.Equal(t, wrongType(), d.apply(c), "op %d", c.Op)
	}
	d.takeEvents()

	require.Equal(t, intRes(2), d.apply(Command{Op: OpHDel, Keys: kvs("h"), Values: bs("a", "a", "zz", "b")}))
	require.Equal(t, []string{"hdel h"}, d.takeEvents())
	require.Equal(t, intRes(2), d.apply(Command{Op: OpHDel, Keys: kvs("h"), Values: bs("c", "n")}))
	require.Equal(t, []string{"hdel h", "del h"}, d.takeEvents(), "the last field's removal deletes the hash")
	require.Nil(t, d.hash("h"))
	require.Zero(t, countElementRows(t, d.s), "no row of the hash is left")
	k, _ := d.counts()
	require.Equal(t, uint64(1), k, "only str is left")
}

func (d *hsDriver) counts() (uint64, uint64) {
	d.t.Helper()
	var k, e uint64
	require.NoError(d.t, d.s.Read(func(v View) error {
		var err error
		k, e, err = v.Counts()
		return err
	}))
	return k, e
}

// TestHashOpsWithinOneChunk: ops of one Apply call see each other's
// element rows (the indexed batch): an HINCRBY after an HSET of the same
// field, a hash deleted and made again (its new rows under a new storage
// id, the old ones dropped), a COPY of a hash written in the same chunk.
func TestHashOpsWithinOneChunk(t *testing.T) {
	d := newHS(t)
	res := d.chunk(
		hset("h", "n", "5", "x", "1"),
		Command{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("n"), Delta: 10},
		Command{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("n", "0.5")},
		Command{Op: OpCopy, Keys: bs("h", "h2")},
		Command{Op: OpDel, Keys: kvs("h")},
		hset("h", "y", "2"),
		Command{Op: OpHDel, Keys: kvs("h2"), Values: bs("x")},
	)
	require.Equal(t, []Result{intRes(2), intRes(15), {Kind: ResultBytes, Bytes: []byte("15.5")}, intRes(1), intRes(1), intRes(1), intRes(1)}, res)
	require.Equal(t, map[string]string{"y": "2"}, d.hash("h"), "the recreated hash holds only its new field")
	require.Equal(t, map[string]string{"n": "15.5"}, d.hash("h2"), "COPY copied the rows as the chunk had written them")
	require.Equal(t, 2, countElementRows(t, d.s), "the first h's rows were dropped")

	// Created and deleted within one chunk: nothing remains.
	d.chunk(hset("tmp", "a", "1", "b", "2"), Command{Op: OpHDel, Keys: kvs("tmp"), Values: bs("a", "b")}, hset("tmp2", "a", "1"), Command{Op: OpDel, Keys: kvs("tmp2")})
	require.Nil(t, d.hash("tmp"))
	require.Nil(t, d.hash("tmp2"))
	require.Equal(t, 2, countElementRows(t, d.s))
}

// TestHashOneFieldCostsOneRow: HSET, HINCRBY and HDEL of one field of a
// large hash write a batch of one element row and the metadata, whatever
// the hash's size; DEL of the whole hash is O(1) too (one range
// deletion).
func TestHashOneFieldCostsOneRow(t *testing.T) {
	d := newHS(t)
	var fv []string
	for i := range 2000 {
		fv = append(fv, fmt.Sprintf("field-%04d", i), string(bytes.Repeat([]byte("v"), 100)))
	}
	d.apply(hset("big", fv...))
	require.Equal(t, 2000, countElementRows(t, d.s))
	for _, c := range []Command{
		hset("big", "new", "v"),
		hset("big", "field-0007", "w"),
		{Op: OpHIncrBy, Keys: kvs("big"), Values: bs("n"), Delta: 3},
		{Op: OpHDel, Keys: kvs("big"), Values: bs("field-0100")},
		{Op: OpDel, Keys: kvs("big")},
	} {
		d.apply(c)
		last, _, _ := d.s.ApplyStats()
		require.Less(t, last, uint64(256), "op %d wrote a %d-byte batch", c.Op, last)
	}
	require.Zero(t, countElementRows(t, d.s))
}

func lookupV3(t *testing.T, s *Store, key string) (KeyInfo, bool) {
	t.Helper()
	var ki KeyInfo
	var ok bool
	require.NoError(t, s.Read(func(v View) error {
		var err error
		ki, ok, err = v.Lookup([]byte(key))
		return err
	}))
	return ki, ok
}

// TestHashExpiryDropsRows: an expired hash reads as missing and the write
// that meets it drops its rows with the key.
func TestHashExpiryDropsRows(t *testing.T) {
	d := newHS(t)
	d.apply(hset("h", "a", "1", "b", "2"))
	d.apply(Command{Op: OpExpire, Keys: kvs("h"), Delta: 100})
	d.clock += 200
	d.apply(setC("other", "x")) // moves the apply time
	require.Nil(t, d.hash("h"))
	require.Equal(t, intRes(1), d.apply(hset("h", "c", "3")), "a write meets the expired hash as missing")
	require.Equal(t, map[string]string{"c": "3"}, d.hash("h"))
	require.Equal(t, 1, countElementRows(t, d.s))
}

func TestHashValidateRefusesBadShapes(t *testing.T) {
	for _, c := range []Command{
		{Op: OpHSet, Keys: kvs("h"), Values: bs("a")},
		{Op: OpHSet, Keys: kvs("h")},
		{Op: OpHSet, Keys: bs("h", "i"), Values: bs("a", "1")},
		{Op: OpHSet, Flags: HSetNX, Keys: kvs("h"), Values: bs("a", "1", "b", "2")},
		{Op: OpHSet, Flags: 2, Keys: kvs("h"), Values: bs("a", "1")},
		{Op: OpHDel, Keys: kvs("h")},
		{Op: OpHIncrBy, Keys: kvs("h"), Values: bs("a", "b")},
		{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("a")},
		{Op: OpHIncrByFloat, Keys: kvs("h"), Values: bs("a", "1"), Delta: 1},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
	require.NoError(t, (&Command{Op: OpHSet, Keys: kvs("h"), Values: bs("", "")}).Validate())
	require.Equal(t, FormatV3, (&Command{Op: OpHSet}).MinFormat())
	require.True(t, bytes.Equal(enc(hset("h", "f", "v")), []byte{20, 0, 0, 1, 2, 1, 'h', 1, 'f', 1, 'v'}), "the encoding is the log format")
}
