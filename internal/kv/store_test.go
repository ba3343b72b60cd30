package kv

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/raft"
)

func enc(c Command) []byte { return c.AppendEncode(nil) }

func set(k, v string) []byte {
	return enc(Command{Op: OpSet, Keys: [][]byte{[]byte(k)}, Values: [][]byte{[]byte(v)}})
}

func incr(k string, d int64) []byte {
	return enc(Command{Op: OpIncrBy, Keys: [][]byte{[]byte(k)}, Delta: d})
}

func openTest(t *testing.T, dir string) *Store {
	t.Helper()
	cfg := DefaultConfig(dir)
	cfg.CacheBytes = 8 << 20
	s, err := Open(cfg)
	require.NoError(t, err)
	// Close is idempotent, so a test may also close (and reopen) early;
	// a failure to close pebble fails the test.
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestEntriesInOneBatchSeeEachOther(t *testing.T) {
	s := openTest(t, t.TempDir())
	res, err := s.Apply([]Entry{{Index: 1, Data: incr("c", 1)}, {Index: 2, Data: incr("c", 1)}, {Index: 3, Data: set("a", "x")}})
	require.NoError(t, err)
	require.Equal(t, int64(1), res[0].Int)
	require.Equal(t, int64(2), res[1].Int)
	require.Equal(t, ResultOK, res[2].Kind)
	require.Equal(t, uint64(3), s.AppliedIndex())
}

func TestReplayIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	_, err := s.Apply([]Entry{{Index: 1, Data: incr("c", 5)}, {Index: 2, Data: set("k", "v")}})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openTest(t, dir)
	require.Equal(t, uint64(2), s.AppliedIndex())
	// Replaying 1..3 must apply only 3.
	res, err := s.Apply([]Entry{{Index: 1, Data: incr("c", 5)}, {Index: 2, Data: set("k", "v")}, {Index: 3, Data: incr("c", 1)}})
	require.NoError(t, err)
	require.Equal(t, int64(6), res[2].Int)
	require.NoError(t, s.Read(func(v View) error {
		n, err := v.DBSize()
		require.Equal(t, int64(2), n)
		return err
	}))
}

func TestCommandRoundTripAndMalformed(t *testing.T) {
	c := Command{Op: OpMSet, Keys: [][]byte{[]byte("a"), {}}, Values: [][]byte{[]byte("1"), []byte("22")}}
	got, err := DecodeCommand(c.AppendEncode(nil))
	require.NoError(t, err)
	require.Equal(t, c.Keys, got.Keys)
	require.Equal(t, c.Values, got.Values)
	for _, bad := range [][]byte{nil, {1}, {99, 0, 0, 0, 0}, {1, 0, 0, 5, 0}} {
		_, err := DecodeCommand(bad)
		require.Error(t, err)
	}
}

// An entry this binary cannot decode stops Apply: nothing of its chunk is
// committed, the applied index stays before it, and a retry fails again.
func TestUndecodableEntryStopsApplyWithoutSkippingIt(t *testing.T) {
	s := openTest(t, t.TempDir())
	for _, bad := range [][]byte{
		{1, 0, 0, 9},              // truncated SET
		{byte(opMax), 0, 0, 0, 0}, // an op from a newer binary
		enc(Command{Op: OpSet, Keys: [][]byte{[]byte("k")}}), // decodes, but not a valid SET
	} {
		_, err := s.Apply([]Entry{{Index: 1, Data: set("before", "1")}, {Index: 2, Data: bad}, {Index: 3, Data: set("after", "1")}})
		require.ErrorIs(t, err, ErrUndecodable)
		require.Equal(t, uint64(0), s.AppliedIndex())
		require.NoError(t, s.Read(func(v View) error {
			_, found, err := v.Get([]byte("before"))
			require.False(t, found, "the chunk holding the bad entry must not be committed")
			return err
		}))
	}
	_, _, undecodable := s.ApplyStats()
	require.Equal(t, uint64(3), undecodable)
}

func TestIncrErrors(t *testing.T) {
	s := openTest(t, t.TempDir())
	res, err := s.Apply([]Entry{
		{Index: 1, Data: set("s", "abc")},
		{Index: 2, Data: incr("s", 1)},
		{Index: 3, Data: set("m", "9223372036854775807")},
		{Index: 4, Data: incr("m", 1)},
		{Index: 5, Data: set("z", "007")},
		{Index: 6, Data: incr("z", 1)},
	})
	require.NoError(t, err)
	require.Equal(t, ErrTextNotInteger, res[1].Err)
	require.Equal(t, ErrTextOverflow, res[3].Err)
	require.Equal(t, ErrTextNotInteger, res[5].Err)
}

func TestFlushAllResetsCount(t *testing.T) {
	s := openTest(t, t.TempDir())
	_, err := s.Apply([]Entry{
		{Index: 1, Data: set("a", "1")},
		{Index: 2, Data: set("b", "1")},
		{Index: 3, Data: enc(Command{Op: OpFlushAll})},
		{Index: 4, Data: set("c", "1")},
	})
	require.NoError(t, err)
	var (
		n     int64
		keys  []string
		found bool
	)
	require.NoError(t, s.Read(func(v View) error {
		keys = nil
		var err error
		if n, err = v.DBSize(); err != nil {
			return err
		}
		if err := v.ScanKeys(nil, func(k []byte) bool { keys = append(keys, string(k)); return true }); err != nil {
			return err
		}
		_, found, err = v.Get([]byte("a"))
		return err
	}))
	require.Equal(t, int64(1), n)
	require.Equal(t, []string{"c"}, keys)
	require.False(t, found)
}

func TestBatchEntryAppliesInOrderAndRoundTrips(t *testing.T) {
	s := openTest(t, t.TempDir())
	batch := Command{Op: OpBatch, Values: [][]byte{
		set("a", "1"), incr("n", 1), incr("n", 1), enc(Command{Op: OpFlushAll}), set("b", "2"), incr("a", 1),
	}}
	require.NoError(t, batch.Validate())
	res, err := s.Apply([]Entry{{Index: 1, Data: set("x", "0")}, {Index: 2, Data: enc(batch)}})
	require.NoError(t, err)
	r := res[1]
	require.Equal(t, ResultBatch, r.Kind)
	require.Len(t, r.Batch, 6)
	require.Equal(t, int64(1), r.Batch[1].Int)
	require.Equal(t, int64(2), r.Batch[2].Int)
	require.Equal(t, ResultOK, r.Batch[3].Kind)
	require.Equal(t, int64(1), r.Batch[5].Int, "a was flushed, so INCR starts from 0")
	require.NoError(t, s.Read(func(v View) error {
		n, err := v.DBSize()
		require.Equal(t, int64(2), n, "b and a survive the flush")
		return err
	}))
	got, err := DecodeResult(r.AppendEncode(nil))
	require.NoError(t, err)
	require.Equal(t, r.Batch[2].Int, got.Batch[2].Int)
	require.Len(t, got.Batch, 6)

	nested := Command{Op: OpBatch, Values: [][]byte{enc(batch)}}
	require.Error(t, nested.Validate())
	require.Error(t, (&Command{Op: OpBatch}).Validate())
}

func TestReadWithSeveralLookupsSeesOneState(t *testing.T) {
	s := openTest(t, t.TempDir())
	mset := func(idx uint64, v string) {
		_, err := s.Apply([]Entry{{Index: idx, Data: enc(Command{Op: OpMSet, Keys: [][]byte{[]byte("a"), []byte("b")}, Values: [][]byte{[]byte(v), []byte(v)}})}})
		require.NoError(t, err)
	}
	mset(1, "1")

	// One lookup: one run, on the live database.
	runs := 0
	require.NoError(t, s.Read(func(v View) error {
		runs++
		_, _, err := v.Get([]byte("a"))
		return err
	}))
	require.Equal(t, 1, runs)

	// Two lookups with a write landing between them: the answer must not
	// mix the states before and after the write.
	runs = 0
	var a, b []byte
	require.NoError(t, s.Read(func(v View) error {
		runs++
		var err error
		if a, _, err = v.Get([]byte("a")); err != nil {
			return err
		}
		if runs == 1 {
			mset(2, "2")
		}
		b, _, err = v.Get([]byte("b"))
		return err
	}))
	require.Equal(t, 2, runs, "the second lookup moves the read onto a snapshot")
	require.Equal(t, string(a), string(b), "MGET-style reads see one state")
	require.Equal(t, "2", string(a))
}

func TestDBSizeCountsKeysAfterBlindWrites(t *testing.T) {
	s := openTest(t, t.TempDir())
	del := func(keys ...string) []byte {
		c := Command{Op: OpDel}
		for _, k := range keys {
			c.Keys = append(c.Keys, []byte(k))
		}
		return enc(c)
	}
	mset := enc(Command{Op: OpMSet, Keys: [][]byte{[]byte("a"), []byte("z")}, Values: [][]byte{[]byte("1"), []byte("2")}})
	_, err := s.Apply([]Entry{
		{Index: 1, Data: set("a", "1")},
		{Index: 2, Data: set("a", "2")}, // overwrite: still one key
		{Index: 3, Data: mset},          // a again, z new
		{Index: 4, Data: incr("c", 1)},
		{Index: 5, Data: del("c", "missing")},
		{Index: 6, Data: set("b", "x")},
	})
	require.NoError(t, err)
	var n int64
	require.NoError(t, s.Read(func(v View) error {
		var err error
		n, err = v.DBSize()
		return err
	}))
	require.Equal(t, int64(3), n, "a, b and z")
}

func TestDecodeEntryAgreesWithValidate(t *testing.T) {
	batch := func(subs ...[]byte) []byte { return enc(Command{Op: OpBatch, Values: subs}) }
	for name, data := range map[string][]byte{
		"set":          set("a", "1"),
		"batch":        batch(set("a", "1"), incr("a", 2)),
		"empty batch":  batch(),
		"nested":       batch(batch(set("a", "1"))),
		"garbage sub":  batch(set("a", "1"), []byte{0xff, 0x01}),
		"invalid sub":  batch(enc(Command{Op: OpSet})),
		"garbage":      {0xff},
		"keyed batch":  enc(Command{Op: OpBatch, Keys: [][]byte{[]byte("k")}, Values: [][]byte{set("a", "1")}}),
		"invalid cmd":  enc(Command{Op: OpIncrBy}),
		"two sub sets": batch(set("a", "1"), set("b", "2")),
	} {
		cmd, err := DecodeCommand(data)
		if err == nil {
			err = cmd.Validate()
		}
		_, subs, derr := decodeEntry(data)
		require.Equal(t, err == nil, derr == nil, "%s: Validate says %v, decodeEntry %v", name, err, derr)
		if derr == nil && cmd.Op == OpBatch {
			require.Len(t, subs, len(cmd.Values), name)
		}
	}
}

func TestNewBatchValidatesAndEncodesWhatDecodeReads(t *testing.T) {
	setCmd := func(k, v string) *Command {
		return &Command{Op: OpSet, Keys: [][]byte{[]byte(k)}, Values: [][]byte{[]byte(v)}}
	}
	cmds := []*Command{
		setCmd("a", "1"),
		{Op: OpDel, Keys: [][]byte{[]byte("x"), []byte("y"), []byte("z")}},
		{Op: OpMSet, Keys: [][]byte{[]byte("p"), []byte("q")}, Values: [][]byte{[]byte("1"), []byte("2")}},
		{Op: OpIncrBy, Keys: [][]byte{[]byte("n")}, Delta: -3},
		{Op: OpFlushAll},
		setCmd("b", "2"),
	}
	bc, err := NewBatch(cmds)
	require.NoError(t, err)
	require.NoError(t, bc.Validate())

	// What crosses the log decodes, with every command's slots its own.
	dec, err := DecodeCommand(enc(*bc))
	require.NoError(t, err)
	require.NoError(t, dec.Validate())
	subs, err := dec.batchCommands()
	require.NoError(t, err)
	require.Len(t, subs, len(cmds))
	for i, c := range cmds {
		require.Equal(t, c.Op, subs[i].Op, "command %d", i)
		require.Equal(t, c.Delta, subs[i].Delta, "command %d", i)
		require.Equal(t, len(c.Keys), len(subs[i].Keys), "command %d", i)
		for j := range c.Keys {
			require.Equal(t, c.Keys[j], subs[i].Keys[j], "command %d key %d", i, j)
		}
		require.Equal(t, len(c.Values), len(subs[i].Values), "command %d", i)
		for j := range c.Values {
			require.Equal(t, c.Values[j], subs[i].Values[j], "command %d value %d", i, j)
		}
	}
	// Slots carved from one arena are capped: growing one command's keys
	// must not overwrite the next command's.
	subs[1].Keys = append(subs[1].Keys, []byte("extra"))
	require.Equal(t, []byte("p"), subs[2].Keys[0])

	_, err = NewBatch(nil)
	require.Error(t, err)
	_, err = NewBatch([]*Command{setCmd("a", "1"), {Op: OpSet}})
	require.Error(t, err, "an invalid command")
	_, err = NewBatch([]*Command{bc})
	require.Error(t, err, "batches do not nest")
	_, err = NewBatch(make([]*Command, MaxBatch+1))
	require.Error(t, err)
}

// A replica that applied the Raft group's acknowledgement records as a
// binary predating them (as empty entries) holds the same data: its hash
// must match; a difference in data must still show.
func TestHashLeavesOutAcknowledgementRecords(t *testing.T) {
	withRecord := openTest(t, t.TempDir())
	without := openTest(t, t.TempDir())
	_, err := withRecord.Apply([]Entry{{Index: 1, Data: set("k", "v")}, {Index: 2, Meta: []MetaRecord{{Name: raft.MetaAckedPrefix + "1", Value: []byte{1}}}}})
	require.NoError(t, err)
	_, err = without.Apply([]Entry{{Index: 1, Data: set("k", "v")}, {Index: 2}})
	require.NoError(t, err)
	ia, ha, err := withRecord.Hash()
	require.NoError(t, err)
	ib, hb, err := without.Hash()
	require.NoError(t, err)
	require.Equal(t, ia, ib)
	require.Equal(t, ha, hb)

	_, err = without.Apply([]Entry{{Index: 3, Data: set("k", "w")}})
	require.NoError(t, err)
	_, err = withRecord.Apply([]Entry{{Index: 3, Data: set("k", "x")}})
	require.NoError(t, err)
	_, ha, err = withRecord.Hash()
	require.NoError(t, err)
	_, hb, err = without.Hash()
	require.NoError(t, err)
	require.NotEqual(t, ha, hb)
}
