package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

var cdDomain, cdWidth = 8, 4

var cdKeys = []string{"a", "b", "{t}1", "{t}2", "c"}

func cdCmd(rng *rand.Rand) Command {
	fam := "hslzhslz"[rng.IntN(8)]
	key := func() []byte {
		if rng.IntN(12) == 0 {
			return []byte(cdKeys[rng.IntN(len(cdKeys))])
		}
		return []byte([]string{"%c1", "%c2", "{t}%c3", "{t}%c4"}[rng.IntN(4)][:0] + fmt.Sprintf([]string{"%c1", "%c2", "{t}%c3", "{t}%c4"}[rng.IntN(4)], fam))
	}
	el := func() []byte { return []byte(fmt.Sprint(rng.IntN(cdDomain))) }
	els := func() [][]byte {
		n := 1 + rng.IntN(cdWidth)
		out := make([][]byte, n)
		for i := range out {
			out[i] = el()
		}
		return out
	}
	score := func() []byte { return EncodeScore(float64(rng.IntN(5)) - 1) }
	op := rng.IntN(34)
	switch fam {
	case 'h':
		if op < 25 {
			op = []int{0, 1, 2, 32, 24}[rng.IntN(5)]
		}
	case 's':
		if op < 25 {
			op = []int{3, 4, 5, 6, 7, 8, 24, 23}[rng.IntN(8)]
		}
	case 'l':
		if op < 25 {
			op = []int{9, 10, 11, 12, 13, 14, 15, 16, 24, 33}[rng.IntN(10)]
		}
	case 'z':
		if op < 25 {
			op = []int{17, 18, 19, 20, 21, 22, 23, 24}[rng.IntN(8)]
		}
	}
	if op == 33 {
		op = 40
	}
	switch op {
	case 0:
		v := els()
		var kv [][]byte
		for _, x := range v {
			kv = append(kv, x, el())
		}
		return Command{Op: OpHSet, Keys: [][]byte{key()}, Values: kv}
	case 1:
		return Command{Op: OpHDel, Keys: [][]byte{key()}, Values: els()}
	case 2:
		return Command{Op: OpHIncrBy, Keys: [][]byte{key()}, Values: [][]byte{el()}, Delta: int64(rng.IntN(5))}
	case 3, 4:
		return Command{Op: OpSAdd, Keys: [][]byte{key()}, Values: els()}
	case 5:
		return Command{Op: OpSRem, Keys: [][]byte{key()}, Values: els()}
	case 6:
		seen := map[string]bool{}
		var ch [][]byte
		for _, m := range els() {
			if !seen[string(m)] {
				seen[string(m)] = true
				ch = append(ch, m)
			}
		}
		return Command{Op: OpSPop, Flags: SPopCount | SPopIfPresent, Delta: int64(len(ch) + rng.IntN(2)), Keys: [][]byte{key()},
			Values: append([][]byte{keyspace.AppendStamp(nil, keyspace.Stamp{})}, ch...)}
	case 7:
		return Command{Op: OpSMove, Keys: [][]byte{key(), key()}, Values: [][]byte{el()}}
	case 8:
		f := []SetFlags{SetInter, SetUnion, SetDiff}[rng.IntN(3)]
		return Command{Op: OpSStore, Flags: f, Keys: [][]byte{key(), key(), key()}}
	case 9, 10:
		f := SetFlags(0)
		if rng.IntN(2) == 0 {
			f |= ListLeft
		}
		return Command{Op: OpListPush, Flags: f, Keys: [][]byte{key()}, Values: els()}
	case 11:
		f := ListCount
		if rng.IntN(2) == 0 {
			f |= ListLeft
		}
		return Command{Op: OpListPop, Flags: f, Delta: int64(rng.IntN(4)), Keys: [][]byte{key()}}
	case 12:
		return Command{Op: OpListMove, Flags: SetFlags(rng.IntN(2)) | SetFlags(rng.IntN(2))*ListDstLeft, Keys: [][]byte{key(), key()}}
	case 13:
		return Command{Op: OpListSet, Delta: int64(rng.IntN(6)) - 3, Keys: [][]byte{key()}, Values: [][]byte{el()}}
	case 14:
		return Command{Op: OpListInsert, Flags: SetFlags(rng.IntN(2)), Keys: [][]byte{key()}, Values: [][]byte{el(), el()}}
	case 15:
		return Command{Op: OpListRem, Delta: int64(rng.IntN(5)) - 2, Keys: [][]byte{key()}, Values: [][]byte{el()}}
	case 16:
		return *NewListTrim(key(), int64(rng.IntN(5))-2, int64(rng.IntN(7))-3)
	case 17, 18:
		v := els()
		var kv [][]byte
		for _, x := range v {
			kv = append(kv, score(), x)
		}
		f := []SetFlags{0, ZAddNX, ZAddXX, ZAddGT, ZAddLT, ZAddCH, ZAddGT | ZAddCH}[rng.IntN(7)]
		if rng.IntN(5) == 0 {
			f = ZAddIncr
			kv = kv[:2]
		}
		return Command{Op: OpZAdd, Flags: f, Keys: [][]byte{key()}, Values: kv}
	case 19:
		return Command{Op: OpZRem, Keys: [][]byte{key()}, Values: els()}
	case 20:
		s := ZRangeSpec{Kind: ZByRank, Start: int64(rng.IntN(5)) - 2, Stop: int64(rng.IntN(5)) - 2, Count: -1}
		return Command{Op: OpZRemRange, Keys: [][]byte{key()}, Values: s.encode()}
	case 21:
		return Command{Op: OpZPop, Flags: SetFlags(rng.IntN(2)), Delta: int64(rng.IntN(3)), Keys: [][]byte{key(), key()}}
	case 22:
		s := ZRangeSpec{Kind: ZByRank, Rev: rng.IntN(2) == 0, Start: int64(rng.IntN(5)) - 2, Stop: int64(rng.IntN(5)) - 2, Count: -1}
		return Command{Op: OpZRangeStore, Keys: [][]byte{key(), key()}, Values: s.encode()}
	case 23:
		f := []SetFlags{ZStoreUnion, ZStoreInter, ZStoreDiff}[rng.IntN(3)] | []SetFlags{0, ZAggMin, ZAggMax}[rng.IntN(3)]
		return Command{Op: OpZStore, Flags: f, Keys: [][]byte{key(), key(), key()}}
	case 24:
		q := SortQuery{Alpha: true, Desc: rng.IntN(2) == 0}
		return *NewSortStore(key(), key(), q)
	case 25:
		return Command{Op: OpRename, Keys: [][]byte{key(), key()}}
	case 26:
		k1, k2 := key(), key()
		if bytes.Equal(k1, k2) {
			return Command{Op: OpDel, Keys: [][]byte{k1}}
		}
		return Command{Op: OpCopy, Flags: CopyReplace * SetFlags(rng.IntN(2)), Keys: [][]byte{k1, k2}}
	case 27:
		return Command{Op: OpDel, Keys: [][]byte{key()}}
	case 28:
		return Command{Op: OpExpire, Delta: int64(rng.IntN(200)), Keys: [][]byte{key()}}
	case 29:
		return Command{Op: OpSet, Keys: [][]byte{key()}, Values: [][]byte{el()}}
	case 30:
		if rng.IntN(10) == 0 {
			return Command{Op: OpFlushAll}
		}
		return Command{Op: OpPersist, Keys: [][]byte{key()}}
	case 31:
		return Command{Op: OpRename, Flags: RenameNX, Keys: [][]byte{key(), key()}}
	case 32:
		return Command{Op: OpHIncrByFloat, Keys: [][]byte{key()}, Values: [][]byte{el(), []byte("1.5")}}
	default:
		f := ListLeft * SetFlags(rng.IntN(2))
		return Command{Op: OpListPop, Flags: f | ListMulti, Delta: 1 + int64(rng.IntN(3)), Keys: [][]byte{key(), key()}}
	}
}

func cdOpen(t *testing.T, budget int, evs ...*[]string) *Store {
	cfg := DefaultConfig(t.TempDir())
	if len(evs) > 0 {
		p := evs[0]
		cfg.OnApplyEvents = func(es []ApplyEvent) {
			for _, e := range es {
				*p = append(*p, fmt.Sprintf("%d %s %s", e.Index, e.Event, e.Key))
			}
		}
	}
	cfg.CacheBytes, cfg.Sync, cfg.MaxBatchBytes = 4<<20, false, budget
	s, err := Open(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	_, err = s.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV3)), Stamp: 1000}})
	require.NoError(t, err)
	return s
}

func cdDump(t *testing.T, s *Store) [][2]string {
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	var out [][2]string
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, [2]string{fmt.Sprintf("%x", it.Key()), fmt.Sprintf("%x", it.Value())})
	}
	require.NoError(t, it.Close())
	return out
}

// cdCheckColls checks every collection's rows against its metadata.
func cdCheckColls(t *testing.T, s *Store) {
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, it.Close()) }()
	type meta struct {
		key string
		m   keyspace.Meta
		es  uint16
	}
	var metas []meta
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] >= 0x40 || k[2] != 0x01 {
			continue
		}
		m, err := keyspace.DecodeMeta(it.Value())
		require.NoError(t, err)
		if m.Type != keyspace.TypeString {
			metas = append(metas, meta{string(k[3:]), m, m.ElementsSlot(binaryBE16(k))})
		}
	}
	for _, mm := range metas {
		lo, hi := keyspace.ElementsRange(mm.es, mm.m.StorageID)
		var sufs, vals [][]byte
		for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
			sufs = append(sufs, bytes.Clone(it.Key()[len(lo):]))
			vals = append(vals, bytes.Clone(it.Value()))
		}
		switch mm.m.Type {
		case keyspace.TypeString:
			// Not collected above: strings are not collections.
		case keyspace.TypeHash, keyspace.TypeSet:
			require.Equal(t, int(mm.m.Len), len(sufs), "key %s", mm.key)
			require.NotZero(t, mm.m.Len, "empty coll %s", mm.key)
		case keyspace.TypeList:
			require.Less(t, mm.m.Head, mm.m.Tail, "empty list %s", mm.key)
			require.Equal(t, int(mm.m.Tail-mm.m.Head), len(sufs), "list %s", mm.key)
			for j, s := range sufs {
				require.Equal(t, mm.m.Head+uint64(j), binary.BigEndian.Uint64(s), "list %s", mm.key)
			}
		case keyspace.TypeZSet:
			var nm, no, nf, ns uint64
			var last, lastSuper []byte
			for j, s := range sufs {
				switch s[0] {
				case keyspace.ZSetMemberTag:
					nm++
				case keyspace.ZSetOrderTag:
					no++
				case keyspace.ZSetFenceTag:
					nf += binary.BigEndian.Uint64(vals[j])
					last = s[1:]
				default: // the supers over the fences
					ns += binary.BigEndian.Uint64(vals[j])
					lastSuper = s[1:]
				}
			}
			require.Equal(t, mm.m.Len, ns, "zset supers %s", mm.key)
			require.Equal(t, zMax, lastSuper, "zset last super %s", mm.key)
			require.NotZero(t, mm.m.Len, "empty zset %s", mm.key)
			require.Equal(t, mm.m.Len, nm, "zset members %s", mm.key)
			require.Equal(t, mm.m.Len, no, "zset order %s", mm.key)
			require.Equal(t, mm.m.Len, nf, "zset fences %s", mm.key)
			require.Equal(t, zMax, last, "zset last fence %s", mm.key)
			start := []byte{}
			for j, s := range sufs {
				if s[0] != keyspace.ZSetFenceTag {
					continue
				}
				end := s[1:]
				var got uint64
				for _, o := range sufs {
					if o[0] == keyspace.ZSetOrderTag && bytes.Compare(o[1:], start) >= 0 && bytes.Compare(o[1:], end) < 0 {
						got++
					}
				}
				require.Equal(t, binary.BigEndian.Uint64(vals[j]), got, "zset %s fence %x", mm.key, end)
				require.LessOrEqual(t, got, uint64(2*zsetBucket))
				start = end
			}
		}
	}
}

// TestCollectionsWhereverChunksEnd applies one random log of collection,
// key and string ops twice, an entry per Apply and in random groups with a
// small batch budget (so chunks also end early), and requires the same
// results, the same events, byte-identical rows, and collections whose
// Len, Head and Tail, density and rank-index fences match their rows.
// Where a chunk ends must change nothing (store.go's Apply).
func TestCollectionsWhereverChunksEnd(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			requireSameWhereverChunksEnd(t, rand.New(rand.NewPCG(seed, 99)), cdCmd, 1500, 4<<10)
		})
	}
}

// requireSameWhereverChunksEnd builds a log of n-2 commands from gen and
// applies it twice: an entry per Apply, and in random groups under a
// random batch budget below maxBudget. Replies, events, rows and the
// collection invariants must agree.
func requireSameWhereverChunksEnd(t *testing.T, rng *rand.Rand, gen func(*rand.Rand) Command, n uint64, maxBudget int) {
	t.Helper()
	var log []Entry
	clock := uint64(1000)
	for i := uint64(2); i < n; i++ {
		clock += uint64(rng.IntN(30))
		c := gen(rng)
		require.NoError(t, c.Validate(), "%+v", c)
		log = append(log, Entry{Index: i, Data: enc(c), Stamp: clock})
	}
	var ev1, ev2 []string
	one := cdOpen(t, 0, &ev1)
	var want []Result
	for _, e := range log {
		res, err := one.Apply([]Entry{e})
		require.NoError(t, err, "entry %d", e.Index)
		want = append(want, res[0])
	}
	grouped := cdOpen(t, 1+rng.IntN(maxBudget), &ev2)
	for at := 0; at < len(log); {
		end := min(at+1+rng.IntN(60), len(log))
		res, err := grouped.Apply(log[at:end])
		require.NoError(t, err)
		for j := range res {
			requireSameResult(t, want[at+j], res[j], "grouped entry %d %x", log[at+j].Index, log[at+j].Data)
		}
		at = end
	}
	requireCountsMatchRows(t, one)
	requireCountsMatchRows(t, grouped)
	cdCheckColls(t, one)
	cdCheckColls(t, grouped)
	require.Equal(t, cdDump(t, one), cdDump(t, grouped))
	require.Equal(t, ev1, ev2)
}

func cdCmd2(rng *rand.Rand) Command {
	anyKey := func() []byte {
		all := []string{"h1", "h2", "{t}h3", "s1", "{t}s3", "l1", "{t}l3", "z1", "{t}z3", "x1", "{t}x3", "a"}
		return []byte(all[rng.IntN(len(all))])
	}
	switch rng.IntN(16) {
	case 0:
		v := strings.Repeat("0", 1000+rng.IntN(200)) + "1.5"
		return Command{Op: OpSet, Keys: [][]byte{anyKey()}, Values: [][]byte{[]byte(v)}}
	case 1:
		return Command{Op: OpAppend, Keys: [][]byte{anyKey()}, Values: [][]byte{[]byte(strings.Repeat("7", rng.IntN(600)))}}
	case 2:
		return Command{Op: OpSetRange, Delta: int64(rng.IntN(3000)), Keys: [][]byte{anyKey()}, Values: [][]byte{[]byte("12")}}
	case 3:
		return Command{Op: OpIncrByFloat, Keys: [][]byte{anyKey()}, Values: [][]byte{[]byte([]string{"1", "1e4000", "-2.5"}[rng.IntN(3)])}}
	case 4:
		q := SortQuery{Alpha: rng.IntN(2) == 0, Desc: rng.IntN(2) == 0}
		if rng.IntN(2) == 0 {
			q.By = []byte([]string{"h*->f", "x*", "{t}h*->1"}[rng.IntN(3)])
		}
		if rng.IntN(2) == 0 {
			q.Get = [][]byte{[]byte("#"), []byte("h*->1"), []byte("x*")}
		}
		if rng.IntN(3) == 0 {
			q.Limit, q.Offset, q.Count = true, int64(rng.IntN(3))-1, int64(rng.IntN(4))-1
		}
		return *NewSortStore(anyKey(), anyKey(), q)
	case 5:
		z := []string{"z1", "z2", "{t}z3", "{t}z4"}
		s := ZRangeSpec{Kind: ZByScore, Min: ScoreBound{Value: float64(rng.IntN(4)) - 2, Excl: rng.IntN(2) == 0},
			Max: ScoreBound{Value: float64(rng.IntN(4)), Excl: rng.IntN(2) == 0}, Count: -1}
		if rng.IntN(2) == 0 {
			return Command{Op: OpZRemRange, Keys: [][]byte{[]byte(z[rng.IntN(4)])}, Values: s.encode()}
		}
		s.Rev = rng.IntN(2) == 0
		s.Offset, s.Count = int64(rng.IntN(3)), int64(rng.IntN(4))-1
		return Command{Op: OpZRangeStore, Keys: [][]byte{[]byte(z[rng.IntN(4)]), []byte(z[rng.IntN(4)])}, Values: s.encode()}
	case 6:
		z := []string{"z1", "z2", "{t}z3", "{t}z4"}
		sc := []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, 1}[rng.IntN(5)]
		f := []SetFlags{0, ZAddIncr, ZAddGT | ZAddCH}[rng.IntN(3)]
		return Command{Op: OpZAdd, Flags: f, Keys: [][]byte{[]byte(z[rng.IntN(4)])}, Values: [][]byte{EncodeScore(sc), []byte(fmt.Sprint(rng.IntN(8)))}}
	case 7:
		n := 2 + rng.IntN(3)
		cmds := make([]*Command, n)
		for i := range cmds {
			c := cdCmd(rng)
			cmds[i] = &c
		}
		b, err := NewBatch(cmds)
		if err != nil {
			panic(err)
		}
		return *b
	}
	return cdCmd(rng)
}

// TestMixedWhereverChunksEnd is TestCollectionsWhereverChunksEnd with
// chunked strings, cross-slot RENAMEs, SORT ... STORE, sorted-set range
// ops and batches in the mix.
func TestMixedWhereverChunksEnd(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			requireSameWhereverChunksEnd(t, rand.New(rand.NewPCG(seed, 77)), cdCmd2, 1200, 16<<10)
		})
	}
}

// TestMixedWhereverChunksEndLargeCollections widens the element domain, so
// collections grow past a rank-index bucket and fences split and merge.
func TestMixedWhereverChunksEndLargeCollections(t *testing.T) {
	cdDomain, cdWidth = 300, 40
	defer func() { cdDomain, cdWidth = 8, 4 }()
	TestMixedWhereverChunksEnd(t)
}
