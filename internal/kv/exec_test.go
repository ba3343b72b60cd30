package kv_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/redis"
)

// These tests drive OpExec entries through a store with the real executor
// (the Redis handlers), as a node applies them.

// execStore applies entries at increasing indexes, each stamped with the
// driver's clock (ms), to a store at the newest format.
type execStore struct {
	t     *testing.T
	s     *kv.Store
	index uint64
	clock uint64
}

func openExecStore(t *testing.T) *execStore {
	t.Helper()
	s, err := kv.Open(kv.DefaultConfig(t.TempDir()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	ex, err := redis.NewApplyExecutor(nil)
	require.NoError(t, err)
	s.SetExecutor(ex)
	d := &execStore{t: t, s: s, clock: 1_000_000}
	d.apply(kv.NewRaiseFormat(kv.MaxFormat))
	return d
}

func (d *execStore) entry(c *kv.Command) kv.Entry {
	d.t.Helper()
	require.NoError(d.t, c.Validate())
	d.index++
	return kv.Entry{Index: d.index, Data: c.AppendEncode(nil), Stamp: d.clock}
}

func (d *execStore) apply(c *kv.Command) kv.Result {
	d.t.Helper()
	res, err := d.s.Apply([]kv.Entry{d.entry(c)})
	require.NoError(d.t, err)
	return res[0]
}

func argv(args ...string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

// do runs one command through the executor, as a bare entry, and returns
// its RESP reply.
func (d *execStore) do(args ...string) string {
	d.t.Helper()
	r := d.apply(kv.NewBareExec(argv(args...)))
	require.Equal(d.t, kv.ResultRaw, r.Kind, "%v", args)
	return string(r.Bytes)
}

// exec runs cmds as one EXEC guarded by the watches and returns its RESP
// reply, or "nil" when a watch failed it.
func (d *execStore) exec(keys []string, recs []kv.WatchRecord, cmds ...[]string) string {
	d.t.Helper()
	bkeys := make([][]byte, len(keys))
	for i, k := range keys {
		bkeys[i] = []byte(k)
	}
	var argvs [][][]byte
	for _, c := range cmds {
		argvs = append(argvs, argv(c...))
	}
	r := d.apply(kv.NewExec(bkeys, recs, argvs))
	if r.Kind == kv.ResultNil {
		return "nil"
	}
	if r.Kind == kv.ResultError { // an aborted entry
		return "-" + r.Err + "\r\n"
	}
	require.Equal(d.t, kv.ResultRaw, r.Kind)
	return string(r.Bytes)
}

func (d *execStore) watch(key string) kv.WatchRecord {
	d.t.Helper()
	var rec kv.WatchRecord
	// A node reads at its read time (lease or read index), not only at
	// the store's apply time: the driver's clock.
	require.NoError(d.t, d.s.ReadAt(d.clock, func(v kv.View) error {
		var err error
		rec, err = kv.Watch(v, []byte(key))
		return err
	}))
	return rec
}

func TestExecRunsCommandsInOrderSeeingItsOwnWrites(t *testing.T) {
	d := openExecStore(t)
	require.Equal(t, "+OK\r\n", d.do("SET", "a", "1"))
	got := d.exec(nil, nil,
		[]string{"INCR", "a"},
		[]string{"GET", "a"},
		[]string{"RPUSH", "l", "x", "y"},
		[]string{"LRANGE", "l", "0", "-1"},
		[]string{"LPUSH", "a", "z"}, // a runtime error stays per command
		[]string{"DBSIZE"},
		[]string{"KEYS", "*"},
	)
	want := "*7\r\n:2\r\n$1\r\n2\r\n:2\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n" +
		"-" + kv.ErrTextWrongType + "\r\n:2\r\n"
	require.True(t, strings.HasPrefix(got, want), "got %q", got)
	// KEYS comes in scan order: both keys, either order.
	tail := got[len(want):]
	require.Contains(t, []string{"*2\r\n$1\r\na\r\n$1\r\nl\r\n", "*2\r\n$1\r\nl\r\n$1\r\na\r\n"}, tail)
	require.Equal(t, "$1\r\n2\r\n", d.do("GET", "a"))
	require.Equal(t, ":2\r\n", d.do("DBSIZE"))
}

func TestExecEmptyAndRefusedCommands(t *testing.T) {
	d := openExecStore(t)
	require.Equal(t, "*0\r\n", d.exec(nil, nil))
	// A command that cannot run on apply (a peer's entry checked nothing)
	// answers an error in its place; the others run.
	got := d.exec(nil, nil, []string{"CONFIG", "SET", "maxclients", "1"}, []string{"SET", "k", "v"}, []string{"NOSUCH"})
	require.Regexp(t, `^\*3\r\n-ERR [^\r]*\r\n\+OK\r\n-ERR unknown command [^\r]*\r\n$`, got)
	require.Equal(t, "$1\r\nv\r\n", d.do("GET", "k"))
}

// TestExecWatch checks each case of the list against the apply-side
// check: what counts as a change, and what does not.
func TestExecWatch(t *testing.T) {
	ping := []string{"PING"}
	t.Run("unchanged key runs", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1")
		rec := d.watch("k")
		require.True(t, rec.Live)
		d.do("SET", "other", "x")
		require.Equal(t, "*1\r\n+PONG\r\n", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("written key fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1")
		rec := d.watch("k")
		d.do("SET", "k", "1") // the same value still counts
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, []string{"SET", "after", "x"}))
		require.Equal(t, "$-1\r\n", d.do("GET", "after"), "nothing of a failed EXEC runs")
	})
	t.Run("expiry change fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1")
		rec := d.watch("k")
		d.do("EXPIRE", "k", "100")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("deleted key fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1")
		rec := d.watch("k")
		d.do("DEL", "k")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("key expiring by the entry's time fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1", "PX", "500")
		rec := d.watch("k")
		require.True(t, rec.Live)
		d.clock += 1000
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key created fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		require.False(t, rec.Live)
		d.do("SET", "k", "1")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key created and deleted again fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		d.do("SET", "k", "1")
		d.do("DEL", "k")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key created and deleted in one entry fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		d.exec(nil, nil, []string{"SET", "k", "1"}, []string{"DEL", "k"})
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key created and expired fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		d.do("SET", "k", "1", "PX", "10")
		d.clock += 1000
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key created, expired and swept fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		d.do("SET", "k", "1", "PX", "10")
		d.clock += 1000
		// DEL of an expired key deletes its record (replying 0), as the
		// sweeper would.
		require.Equal(t, ":0\r\n", d.do("DEL", "k"))
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("stale key stays absent: runs", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1", "PX", "10")
		d.clock += 1000
		rec := d.watch("k")
		require.False(t, rec.Live, "an expired key reads as absent")
		d.do("SET", "other", "x")
		require.Equal(t, "*1\r\n+PONG\r\n", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("stale key deleted after WATCH: runs", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1", "PX", "10")
		d.clock += 1000
		rec := d.watch("k")
		require.Equal(t, ":0\r\n", d.do("DEL", "k"))
		require.Equal(t, "*1\r\n+PONG\r\n", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("FLUSHALL removing a watched key fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "k", "1")
		rec := d.watch("k")
		d.do("FLUSHALL")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("FLUSHALL removing nothing watched runs", func(t *testing.T) {
		d := openExecStore(t)
		d.do("SET", "other", "1")
		d.do("DEL", "k")
		rec := d.watch("k")
		d.do("FLUSHALL")
		require.Equal(t, "*1\r\n+PONG\r\n", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("absent key written then flushed fails", func(t *testing.T) {
		d := openExecStore(t)
		rec := d.watch("k")
		d.do("SET", "k", "1")
		d.do("FLUSHALL")
		require.Equal(t, "nil", d.exec([]string{"k"}, []kv.WatchRecord{rec}, ping))
	})
	t.Run("one changed key among several fails", func(t *testing.T) {
		d := openExecStore(t)
		d.do("MSET", "a", "1", "b", "2")
		ra, rb, rc := d.watch("a"), d.watch("b"), d.watch("c")
		d.do("HSET", "b", "f", "v") // WRONGTYPE: b is unchanged
		require.Equal(t, "*1\r\n+PONG\r\n", d.exec([]string{"a", "b", "c"}, []kv.WatchRecord{ra, rb, rc}, ping))
		d.do("APPEND", "b", "x")
		require.Equal(t, "nil", d.exec([]string{"a", "b", "c"}, []kv.WatchRecord{ra, rb, rc}, ping))
	})
}

// TestExecIsDeterministicAcrossReplicas applies the same log to two
// stores, one entry per Apply call and all entries in one call (where the
// chunks end differs), with commands that draw random numbers, and
// requires the same replies and the same state.
func TestExecIsDeterministicAcrossReplicas(t *testing.T) {
	build := func(d *execStore) []kv.Entry {
		var es []kv.Entry
		es = append(es, d.entry(kv.NewBareExec(argv("SADD", "s", "a", "b", "c", "d", "e", "f", "g", "h"))))
		es = append(es, d.entry(kv.NewBareExec(argv("MSET", "k1", "1", "k2", "2", "k3", "3"))))
		for i := range 20 {
			es = append(es, d.entry(kv.NewExec(nil, nil, [][][]byte{
				argv("SPOP", "s"),
				argv("SRANDMEMBER", "s", "-3"),
				argv("RANDOMKEY"),
				argv("SADD", "s", fmt.Sprint(i)),
				argv("INCR", "k1"),
			})))
		}
		return es
	}
	a, b := openExecStore(t), openExecStore(t)
	ea, eb := build(a), build(b)
	var ra []kv.Result
	for _, e := range ea {
		r, err := a.s.Apply([]kv.Entry{e})
		require.NoError(t, err)
		ra = append(ra, r...)
	}
	rb, err := b.s.Apply(eb)
	require.NoError(t, err)
	require.Equal(t, ra, rb)
	ha, _, err := a.s.Hash()
	require.NoError(t, err)
	hb, _, err := b.s.Hash()
	require.NoError(t, err)
	require.Equal(t, ha, hb)
}

// TestExecAmongOtherEntries applies an EXEC between plain writes in one
// Apply call: it is alone in its chunk, and the entries around it see its
// effects and it theirs.
func TestExecAmongOtherEntries(t *testing.T) {
	d := openExecStore(t)
	es := []kv.Entry{
		d.entry(&kv.Command{Op: kv.OpSet, Keys: argv("a"), Values: argv("1")}),
		d.entry(kv.NewExec(nil, nil, [][][]byte{argv("INCR", "a"), argv("SET", "b", "x")})),
		d.entry(&kv.Command{Op: kv.OpIncrBy, Keys: argv("a"), Delta: 10}),
		d.entry(&kv.Command{Op: kv.OpAppend, Keys: argv("b"), Values: argv("y")}),
	}
	rs, err := d.s.Apply(es)
	require.NoError(t, err)
	require.Equal(t, "*2\r\n:2\r\n+OK\r\n", string(rs[1].Bytes))
	require.Equal(t, int64(12), rs[2].Int)
	require.Equal(t, int64(2), rs[3].Int)
	require.Equal(t, ":2\r\n", d.do("DBSIZE"))
}

// TestExecWithoutExecutorStops: a store that cannot run an EXEC stops
// rather than skip it.
func TestExecWithoutExecutorStops(t *testing.T) {
	s, err := kv.Open(kv.DefaultConfig(t.TempDir()))
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	raise := kv.NewRaiseFormat(kv.MaxFormat)
	_, err = s.Apply([]kv.Entry{{Index: 1, Data: raise.AppendEncode(nil), Stamp: 1}})
	require.NoError(t, err)
	c := kv.NewExec(nil, nil, [][][]byte{argv("SET", "a", "1")})
	_, err = s.Apply([]kv.Entry{{Index: 2, Data: c.AppendEncode(nil), Stamp: 2}})
	require.ErrorIs(t, err, kv.ErrNoExecutor)
	require.Equal(t, uint64(1), s.AppliedIndex())
}

// TestExecShapeIsValidated: what a peer could send that apply cannot run
// is refused before it is proposed, and an EXEC never rides in a batch.
func TestExecShapeIsValidated(t *testing.T) {
	_, err := kv.NewBatch([]*kv.Command{kv.NewExec(nil, nil, [][][]byte{argv("PING")})})
	require.Error(t, err)
	bad := []*kv.Command{
		{Op: kv.OpExec}, // no watch records
		{Op: kv.OpExec, Keys: argv("k"), Values: [][]byte{nil}}, // a key without its record
		{Op: kv.OpExec, Values: [][]byte{nil, nil}},             // an empty argv
		{Op: kv.OpExec, Values: [][]byte{nil, {5, 1, 'a'}}},     // a short argv
		{Op: kv.OpExec, Flags: kv.ExecBare, Values: [][]byte{nil}},
		{Op: kv.OpExec, Flags: 2, Values: [][]byte{nil}},
		{Op: kv.OpExec, Delta: 1, Values: [][]byte{nil}},
	}
	for i, c := range bad {
		require.Error(t, c.Validate(), "case %d", i)
	}
	rec := kv.WatchRecord{Live: true, Applied: 7}
	good := kv.NewExec(argv("k"), []kv.WatchRecord{rec}, [][][]byte{argv("GET", "k")})
	require.NoError(t, good.Validate())
	dec, err := kv.DecodeCommand(good.AppendEncode(nil))
	require.NoError(t, err)
	require.NoError(t, dec.Validate())
	require.Equal(t, kv.FormatV4, good.MinFormat())
}

// TestExecPastItsBoundsIsRolledBackWhole: an entry whose reply or work
// passes the format's bounds answers an error, and nothing it wrote is
// kept, on every replica alike.
func TestExecPastItsBoundsIsRolledBackWhole(t *testing.T) {
	d := openExecStore(t)
	d.do("SET", "big", strings.Repeat("x", 1<<20))
	cmds := [][]string{{"SET", "first", "1"}, {"DEL", "big"}, {"SET", "big", strings.Repeat("y", 1<<20)}}
	for range kv.MaxExecReplyBytes>>20 + 1 {
		cmds = append(cmds, []string{"GET", "big"})
	}
	got := d.exec(nil, nil, cmds...)
	require.Equal(t, fmt.Sprintf("-ERR the transaction's reply passed %d bytes; nothing of it was applied\r\n", kv.MaxExecReplyBytes), got)
	require.Equal(t, ":0\r\n", d.do("EXISTS", "first"), "a write before the bound was rolled back")
	require.Equal(t, "x", d.do("GETRANGE", "big", "0", "0")[4:5], "the overwrite was rolled back")
	require.Equal(t, ":1\r\n", d.do("DBSIZE"), "the key counts were rolled back")

	// Work: LCS tables count toward the entry's bound.
	a, b := strings.Repeat("ab", 2000), strings.Repeat("ba", 2000)
	d.do("MSET", "a", a, "b", b)
	cmds = [][]string{{"SET", "second", "1"}}
	for range 12 {
		cmds = append(cmds, []string{"LCS", "a", "b", "LEN"})
	}
	got = d.exec(nil, nil, cmds...)
	require.Contains(t, got, "on apply; nothing of it was applied")
	require.Equal(t, ":0\r\n", d.do("EXISTS", "second"))
	// Below the bounds the same commands run.
	require.Equal(t, "*2\r\n+OK\r\n:3999\r\n", d.exec(nil, nil, []string{"SET", "second", "1"}, []string{"LCS", "a", "b", "LEN"}))
}

// TestExecScanOnApplyKeepsNoCursor: SCAN on apply must not depend on node
// memory (a cursor table a restarted replica does not have), or a later
// random draw of the same entry would differ between replicas.
func TestExecScanOnApplyKeepsNoCursor(t *testing.T) {
	a, b := openExecStore(t), openExecStore(t)
	var cursor string
	for _, d := range []*execStore{a, b} {
		d.do("SADD", "s", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j")
		d.do("MSET", "k1", "1", "k2", "2", "k3", "3")
		reply := d.exec(nil, nil, []string{"SCAN", "0", "COUNT", "1"})
		c := strings.Split(reply, "\r\n")[2] // *1, *2, $N, cursor
		if cursor != "" {
			require.Equal(t, cursor, c, "replicas reply the same cursor")
		}
		cursor = c
	}
	// b restarts: a fresh executor, with no node memory.
	ex, err := redis.NewApplyExecutor(nil)
	require.NoError(t, err)
	b.s.SetExecutor(ex)
	ra := a.exec(nil, nil, []string{"SCAN", cursor}, []string{"SPOP", "s"})
	rb := b.exec(nil, nil, []string{"SCAN", cursor}, []string{"SPOP", "s"})
	require.Equal(t, ra, rb)
	require.Contains(t, ra, "-ERR invalid cursor")
	ha, _, err := a.s.Hash()
	require.NoError(t, err)
	hb, _, err := b.s.Hash()
	require.NoError(t, err)
	require.Equal(t, ha, hb)
}

// TestWatchNeedsFormat4: below format 4 no deletion rows are written, so
// a WATCH record taken then could miss a key written and deleted since.
func TestWatchNeedsFormat4(t *testing.T) {
	s, err := kv.Open(kv.DefaultConfig(t.TempDir()))
	require.NoError(t, err)
	defer func() { _ = s.Close() }()
	raise := kv.NewRaiseFormat(kv.FormatV3)
	_, err = s.Apply([]kv.Entry{{Index: 1, Data: raise.AppendEncode(nil), Stamp: 1}})
	require.NoError(t, err)
	require.ErrorIs(t, s.Read(func(v kv.View) error {
		_, err := kv.Watch(v, []byte("k"))
		return err
	}), kv.ErrWatchFormat)
}
