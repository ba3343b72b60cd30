package kv

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// eventLog opens a store at format 2 that records its apply events as
// "index key event" lines, with a small apply-batch budget so that some
// Apply calls commit in several chunks.
func eventLog(t *testing.T, maxBatch int) (*Store, *[]string) {
	t.Helper()
	var got []string
	cfg := DefaultConfig(t.TempDir())
	cfg.CacheBytes, cfg.MaxBatchBytes = 8<<20, maxBatch
	cfg.OnApplyEvents = func(evs []ApplyEvent) {
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%d %s %s", e.Index, e.Key, e.Event))
		}
	}
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}})
	require.NoError(t, err)
	return s, &got
}

func TestApplyEventsNameWhatEachOpDid(t *testing.T) {
	two := func(a, b string) [][]byte { return [][]byte{[]byte(a), []byte(b)} }
	cmds := []Command{
		setC("a", "1"), // 2
		{Op: OpSetX, Flags: SetPX, Delta: 100, Keys: kvs("b"), Values: kvs("2")}, // 3
		{Op: OpSet, Flags: SetNX, Keys: kvs("a"), Values: kvs("x")},              // 4: not set, no event
		{Op: OpIncrBy, Delta: 2, Keys: kvs("a")},                                 // 5
		{Op: OpIncrByFloat, Keys: kvs("a"), Values: kvs("0.5")},                  // 6
		{Op: OpAppend, Keys: kvs("a"), Values: kvs("z")},                         // 7
		{Op: OpSetRange, Delta: 1, Keys: kvs("a"), Values: kvs("y")},             // 8
		{Op: OpMSet, Keys: two("c", "d"), Values: two("3", "4")},                 // 9
		{Op: OpMSetNX, Keys: two("e", "f"), Values: two("5", "6")},               // 10
		{Op: OpExpire, Delta: 500, Keys: kvs("c")},                               // 11
		{Op: OpPersist, Keys: kvs("c")},                                          // 12
		{Op: OpExpire, Delta: -1, Keys: kvs("d")},                                // 13: in the past: deleted
		{Op: OpRename, Keys: two("e", "g")},                                      // 14
		{Op: OpCopy, Keys: two("g", "h")},                                        // 15
		{Op: OpDel, Keys: two("g", "nope")},                                      // 16
		{Op: OpGetDel, Keys: kvs("h")},                                           // 17
		{Op: OpGetEx, Flags: SetPX, Delta: 50, Keys: kvs("f")},                   // 18
		{Op: OpGetEx, Flags: GetExPersist, Keys: kvs("f")},                       // 19
		{Op: OpAppend, Keys: kvs("b"), Values: kvs("!")},                         // 20, at 1100: b has expired
	}
	want := []string{
		"2 a set",
		"3 b set", "3 b expire",
		"5 a incrby",
		"6 a incrbyfloat",
		"7 a append",
		"8 a setrange",
		"9 c set", "9 d set",
		"10 e set", "10 f set",
		"11 c expire",
		"12 c persist",
		"13 d del",
		"14 e rename_from", "14 g rename_to",
		"15 h copy_to",
		"16 g del",
		"17 h del",
		"18 f expire",
		"19 f persist",
		"20 b expired", "20 b append",
	}
	// Entry by entry, then all in one Apply split into tiny chunks: the
	// same events in the same order.
	for _, maxBatch := range []int{0, 1} {
		s, got := eventLog(t, maxBatch)
		var ents []Entry
		for i, c := range cmds {
			require.NoError(t, c.Validate())
			stamp := uint64(1000)
			if i == len(cmds)-1 {
				stamp = 1100
			}
			ents = append(ents, Entry{Index: uint64(i + 2), Data: enc(c), Stamp: stamp})
		}
		if maxBatch == 0 {
			for _, e := range ents {
				_, err := s.Apply([]Entry{e})
				require.NoError(t, err)
			}
		} else {
			_, err := s.Apply(ents)
			require.NoError(t, err)
		}
		require.Equal(t, want, *got, "budget %d", maxBatch)
	}
}

// The sweeper's conditional delete and a batch report their keys too.
func TestApplyEventsOfExpiryAndBatches(t *testing.T) {
	s, got := eventLog(t, 0)
	sub1 := Command{Op: OpSetX, Flags: SetPX, Delta: 10, Keys: kvs("x"), Values: kvs("1")}
	sub2 := setC("y", "2")
	bc, err := NewBatch([]*Command{&sub1, &sub2})
	require.NoError(t, err)
	_, err = s.Apply([]Entry{{Index: 2, Data: enc(*bc), Stamp: 1000}})
	require.NoError(t, err)
	var info KeyInfo
	require.NoError(t, s.Read(func(v View) error {
		var err error
		info, _, err = v.Lookup([]byte("x"))
		return err
	}))
	ei := NewExpireIf(kvs("x"), []keyspace.Stamp{info.Version}, []uint64{info.ExpireAt})
	_, err = s.Apply([]Entry{{Index: 3, Data: enc(*ei), Stamp: 2000}})
	require.NoError(t, err)
	require.Equal(t, []string{"2 x set", "2 x expire", "2 y set", "3 x expired"}, *got)
}

// BenchmarkApplyEvents measures a pipelined SET entry's apply with and
// without a listener: without one, events cost no allocation.
func BenchmarkApplyEvents(b *testing.B) {
	for _, listen := range []bool{false, true} {
		b.Run(fmt.Sprintf("listener=%v", listen), func(b *testing.B) {
			cfg := DefaultConfig(b.TempDir())
			cfg.Sync, cfg.CacheBytes = false, 8<<20
			n := 0
			if listen {
				cfg.OnApplyEvents = func(evs []ApplyEvent) { n += len(evs) }
			}
			s, err := Open(cfg)
			require.NoError(b, err)
			defer func() { require.NoError(b, s.Close()) }()
			_, err = s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}})
			require.NoError(b, err)
			data := enc(setC("key", "value"))
			ents := make([]Entry, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				ents[0] = Entry{Index: uint64(i + 2), Data: data, Stamp: 1000}
				if _, err := s.Apply(ents); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// With no listener an event costs a branch: no allocation, nothing kept.
func TestApplyEventsWithoutListenerAllocateNothing(t *testing.T) {
	w := newWriteSet(nil)
	key := []byte("k")
	allocs := testing.AllocsPerRun(100, func() { w.event(key, EventSet) })
	require.Zero(t, allocs)
	require.Empty(t, w.events)
}

// Below format 2 the original ops report their events too.
func TestApplyEventsAtFormat1(t *testing.T) {
	var got []string
	cfg := DefaultConfig(t.TempDir())
	cfg.CacheBytes = 8 << 20
	cfg.OnApplyEvents = func(evs []ApplyEvent) {
		for _, e := range evs {
			got = append(got, fmt.Sprintf("%d %s %s", e.Index, e.Key, e.Event))
		}
	}
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Apply([]Entry{
		{Index: 1, Data: set("a", "1")},
		{Index: 2, Data: enc(Command{Op: OpIncrBy, Delta: 1, Keys: kvs("a")})},
		{Index: 3, Data: enc(Command{Op: OpAppend, Keys: kvs("a"), Values: kvs("x")})},
		{Index: 4, Data: enc(Command{Op: OpMSet, Keys: [][]byte{[]byte("b"), []byte("c")}, Values: [][]byte{[]byte("1"), []byte("2")}})},
		{Index: 5, Data: enc(Command{Op: OpDel, Keys: [][]byte{[]byte("b"), []byte("z")}})},
		{Index: 6, Data: enc(Command{Op: OpGetDel, Keys: kvs("c")})},
		{Index: 7, Data: enc(Command{Op: OpSet, Flags: SetXX, Keys: kvs("q"), Values: kvs("1")})},
	})
	require.NoError(t, err)
	require.Equal(t, FormatV1, s.FormatVersion())
	require.Equal(t, []string{"1 a set", "2 a incrby", "3 a append", "4 b set", "4 c set", "5 b del", "6 c del"}, got)
}
