package kv

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func appendCmd(k, v string) []byte {
	return enc(Command{Op: OpAppend, Keys: [][]byte{[]byte(k)}, Values: [][]byte{[]byte(v)}})
}

func batchOf(t *testing.T, cmds ...Command) []byte {
	t.Helper()
	ptrs := make([]*Command, len(cmds))
	for i := range cmds {
		ptrs[i] = &cmds[i]
	}
	bc, err := NewBatch(ptrs)
	require.NoError(t, err)
	return enc(*bc)
}

// One entry of 1024 one-byte APPENDs to a large value must put the value
// into the Pebble batch once, not 1024 times: the batch stays near one
// value's size (the reproduction of issue 13 wrote 16 GiB per entry).
func TestAppendsToOneKeyAreWrittenOncePerBatch(t *testing.T) {
	s := openTest(t, t.TempDir())
	big := bytes.Repeat([]byte("v"), 1<<20)
	_, err := s.Apply([]Entry{{Index: 1, Data: enc(Command{Op: OpSet, Keys: [][]byte{[]byte("big")}, Values: [][]byte{big}})}})
	require.NoError(t, err)

	cmds := make([]Command, MaxBatch)
	for i := range cmds {
		cmds[i] = Command{Op: OpAppend, Keys: [][]byte{[]byte("big")}, Values: [][]byte{[]byte("x")}}
	}
	entries := []Entry{{Index: 2, Data: batchOf(t, cmds...)}, {Index: 3, Data: appendCmd("big", "y")}}
	res, err := s.Apply(entries)
	require.NoError(t, err)
	require.Equal(t, int64(len(big)+MaxBatch), res[0].Batch[MaxBatch-1].Int)
	require.Equal(t, int64(len(big)+MaxBatch+1), res[1].Int)
	last, _, _ := s.ApplyStats()
	require.Less(t, last, uint64(len(big)+64<<10), "the batch must hold the value once")

	require.NoError(t, s.Read(func(v View) error {
		got, _, err := v.Get([]byte("big"))
		require.Equal(t, len(big)+MaxBatch+1, len(got))
		require.Equal(t, "xy", string(got[len(got)-2:]))
		return err
	}))
}

// Folding must not change any reply or the final state: every op on the
// same keys, in one chunk, against the same ops one entry per Apply call.
func TestFoldedApplyMatchesOneByOne(t *testing.T) {
	script := []Command{
		{Op: OpSet, Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("1")}},
		{Op: OpAppend, Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("23")}},
		{Op: OpIncrBy, Keys: [][]byte{[]byte("a")}, Delta: 7},
		{Op: OpSet, Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("old")}, Flags: SetGet},
		{Op: OpAppend, Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("!")}},
		{Op: OpSet, Keys: [][]byte{[]byte("b")}, Values: [][]byte{[]byte("x")}, Flags: SetNX},
		{Op: OpSet, Keys: [][]byte{[]byte("b")}, Values: [][]byte{[]byte("y")}, Flags: SetNX},
		{Op: OpSet, Keys: [][]byte{[]byte("c")}, Values: [][]byte{[]byte("y")}, Flags: SetXX},
		{Op: OpGetDel, Keys: [][]byte{[]byte("a")}},
		{Op: OpGetDel, Keys: [][]byte{[]byte("a")}},
		{Op: OpAppend, Keys: [][]byte{[]byte("a")}, Values: [][]byte{[]byte("new")}},
		{Op: OpMSet, Keys: [][]byte{[]byte("m1"), []byte("m2")}, Values: [][]byte{[]byte("1"), []byte("2")}},
		{Op: OpDel, Keys: [][]byte{[]byte("m1"), []byte("m1"), []byte("zz")}},
		{Op: OpFlushAll},
		{Op: OpAppend, Keys: [][]byte{[]byte("m2")}, Values: [][]byte{[]byte("fresh")}},
		{Op: OpIncrBy, Keys: [][]byte{[]byte("n")}, Delta: -3},
		{Op: OpDel, Keys: [][]byte{[]byte("b"), []byte("n")}},
		{Op: OpSet, Keys: [][]byte{[]byte("b")}, Values: [][]byte{[]byte("after")}, Flags: SetGet},
	}
	seq := openTest(t, t.TempDir())
	var want []Result
	for i, c := range script {
		res, err := seq.Apply([]Entry{{Index: uint64(i + 1), Data: enc(c)}})
		require.NoError(t, err)
		want = append(want, res[0])
	}

	for _, budget := range []int{1, 64, 0} { // early commits after every entry, some, none
		t.Run(fmt.Sprintf("budget=%d", budget), func(t *testing.T) {
			dir := t.TempDir()
			cfg := DefaultConfig(dir)
			cfg.CacheBytes, cfg.Sync, cfg.MaxBatchBytes = 1<<20, false, budget
			folded, err := Open(cfg)
			require.NoError(t, err)
			defer func() { require.NoError(t, folded.Close()) }()
			ents := make([]Entry, len(script))
			for i, c := range script {
				ents[i] = Entry{Index: uint64(i + 1), Data: enc(c)}
			}
			got, err := folded.Apply(ents)
			require.NoError(t, err)
			require.Equal(t, want, got)
			_, h1, err := seq.Hash()
			require.NoError(t, err)
			_, h2, err := folded.Hash()
			require.NoError(t, err)
			require.Equal(t, h1, h2, "same state whether folded or not")
			_, early, _ := folded.ApplyStats()
			if budget == 1 {
				require.Equal(t, uint64(len(script)-1), early)
			}
			if budget == 0 {
				require.Zero(t, early)
			}
		})
	}
}

// Values read but not written (a failing INCR, an APPEND refused for size,
// WRONGTYPE) are kept for the rest of the chunk, so they count toward the
// apply-batch budget too: 64 failing INCRs on 1 MiB strings commit early
// instead of holding 64 MiB until the chunk ends.
func TestValuesReadButNotWrittenCountTowardTheBatchBudget(t *testing.T) {
	cfg := DefaultConfig(t.TempDir())
	cfg.CacheBytes, cfg.Sync, cfg.MaxBatchBytes = 1<<20, false, 4<<20
	s, err := Open(cfg)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	big := bytes.Repeat([]byte("v"), 1<<20)
	var ents []Entry
	for i := range 64 {
		ents = append(ents, Entry{Index: uint64(i + 1), Data: enc(Command{Op: OpSet, Keys: [][]byte{[]byte(fmt.Sprint("k", i))}, Values: [][]byte{big}})})
	}
	_, err = s.Apply(ents)
	require.NoError(t, err)
	_, before, _ := s.ApplyStats()
	ents = ents[:0]
	for i := range 64 {
		ents = append(ents, Entry{Index: uint64(65 + i), Data: incr(fmt.Sprint("k", i), 1)})
	}
	res, err := s.Apply(ents)
	require.NoError(t, err)
	require.Equal(t, ErrTextNotInteger, res[63].Err)
	_, after, _ := s.ApplyStats()
	require.GreaterOrEqual(t, after-before, uint64(64/4-1), "a commit about every 4 MiB of values read")
}
