package kv

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// newV3 is a v2 driver raised to format 3, where the list ops live.
func newV3(t *testing.T) *v2 {
	d := newV2(t)
	d.apply(*NewRaiseFormat(FormatV3))
	require.Equal(t, FormatV3, d.s.FormatVersion())
	return d
}

func (d *v2) list(k string) ([]string, bool) {
	d.t.Helper()
	var out []string
	var found bool
	require.NoError(d.t, d.s.Read(func(view View) error {
		out = nil
		var err error
		found, err = ListRange(view, []byte(k), 0, -1, func(e []byte) bool {
			out = append(out, string(e))
			return true
		})
		return err
	}))
	return out, found
}

func strs(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

// The list ops' encodings are part of the log format.
func TestListOpsGoldenEncoding(t *testing.T) {
	for _, tc := range []struct {
		c    Command
		want string
	}{
		{Command{Op: OpListPush, Flags: ListLeft, Keys: kvs("k"), Values: strs("a", "b")}, "3c01000102016b01610162"},
		{Command{Op: OpListPop, Flags: ListMulti, Delta: 2, Keys: strs("a", "b")}, "3d0804020001610162"},
		{Command{Op: OpListMove, Flags: ListLeft | ListDstLeft, Keys: strs("a", "b")}, "3e2100020001610162"},
		{*NewListTrim([]byte("k"), 1, -1), "4200020101016b08ffffffffffffffff"},
	} {
		require.NoError(t, tc.c.Validate())
		require.Equal(t, FormatV3, tc.c.MinFormat())
		got := tc.c.AppendEncode(nil)
		require.Equal(t, tc.want, hex.EncodeToString(got))
		back, err := DecodeCommand(got)
		require.NoError(t, err)
		require.Equal(t, got, back.AppendEncode(nil))
	}
	// The element suffix is AppendListElemKey's.
	p := keyspace.ElementsPrefix(nil, 7, keyspace.Stamp{Index: 9, Pos: 1})
	require.Equal(t, keyspace.AppendListElemKey(nil, 7, keyspace.Stamp{Index: 9, Pos: 1}, 42), append(p, listSeq(42)...))
}

func TestListValidateRefusesBadShapes(t *testing.T) {
	for _, c := range []Command{
		{Op: OpListPush, Keys: kvs("k")},
		{Op: OpListPush, Keys: kvs("k"), Values: kvs("v"), Flags: ListCount},
		{Op: OpListPop, Keys: strs("a", "b")},
		{Op: OpListPop, Keys: kvs("a"), Flags: ListCount, Delta: -1},
		{Op: OpListPop, Keys: kvs("a"), Flags: ListMulti},
		{Op: OpListPop, Keys: kvs("a"), Flags: ListMulti | ListKeyed, Delta: 1},
		{Op: OpListPop, Keys: kvs("a"), Flags: ListKeyed, Delta: 1},
		{Op: OpListPop, Keys: kvs("a"), Values: kvs("x")},
		{Op: OpListMove, Keys: kvs("a")},
		{Op: OpListMove, Keys: strs("a", "b"), Flags: ListXX},
		{Op: OpListSet, Keys: kvs("a")},
		{Op: OpListInsert, Keys: kvs("a"), Values: kvs("p")},
		{Op: OpListRem, Keys: kvs("a"), Values: kvs("p"), Flags: ListLeft},
		{Op: OpListTrim, Keys: kvs("a"), Values: kvs("1234567")},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
}

// listModel is the reference: a Go slice per key.
type listModel map[string][]string

func pushC(k string, left bool, vals ...string) Command {
	c := Command{Op: OpListPush, Keys: kvs(k), Values: strs(vals...)}
	if left {
		c.Flags = ListLeft
	}
	return c
}

func TestListOpsMatchAModel(t *testing.T) {
	d := newV3(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	m := listModel{}
	keys := []string{"a", "b", "{a}c", "fresh"}
	elems := []string{"x", "y", "z", "w"}
	// pending are entries applied together as one chunk, so the ops read
	// the rows earlier ops of the chunk wrote.
	type step struct {
		c    Command
		want Result
	}
	var pending []step
	flush := func() {
		if len(pending) == 0 {
			return
		}
		ents := make([]Entry, len(pending))
		for j, p := range pending {
			require.NoError(t, p.c.Validate())
			d.index++
			ents[j] = Entry{Index: d.index, Data: enc(p.c), Stamp: d.clock}
		}
		res, err := d.s.Apply(ents)
		require.NoError(t, err)
		for j, p := range pending {
			require.Equal(t, p.want, res[j], "op %+v", p.c)
		}
		pending = pending[:0]
		for _, k := range keys {
			got, found := d.list(k)
			require.Equal(t, len(m[k]) > 0, found, k)
			if len(m[k]) == 0 {
				require.Empty(t, got)
			} else {
				require.Equal(t, m[k], got, k)
			}
		}
		total := 0
		for _, k := range keys {
			total += len(m[k])
		}
		require.Equal(t, total, countElementRows(t, d.s), "the sequences stay dense, no stray rows")
	}
	arr := func(vals []string) Result {
		return Result{Kind: ResultArray, Batch: bytesResults(strs(vals...))}
	}
	for n := 0; n < 3000; n++ {
		k := keys[rnd.IntN(len(keys))]
		l := m[k]
		e := elems[rnd.IntN(len(elems))]
		var c Command
		var want Result
		switch rnd.IntN(11) {
		case 0, 1:
			left := rnd.IntN(2) == 0
			vals := make([]string, 1+rnd.IntN(4))
			for j := range vals {
				vals[j] = elems[rnd.IntN(len(elems))]
			}
			c = pushC(k, left, vals...)
			for _, v := range vals {
				if left {
					l = append([]string{v}, l...)
				} else {
					l = append(l, v)
				}
			}
			want = Result{Kind: ResultInt, Int: int64(len(l))}
		case 2:
			left := rnd.IntN(2) == 0
			cnt := rnd.IntN(4)
			c = Command{Op: OpListPop, Keys: kvs(k), Flags: ListCount, Delta: int64(cnt)}
			if left {
				c.Flags |= ListLeft
			}
			if len(l) == 0 {
				want = Result{Kind: ResultNil}
				break
			}
			cnt = min(cnt, len(l))
			var got []string
			if left {
				got, l = slices.Clone(l[:cnt]), l[cnt:]
			} else {
				got = slices.Clone(l[len(l)-cnt:])
				slices.Reverse(got)
				l = l[:len(l)-cnt]
			}
			want = arr(got)
			if cnt == 0 {
				want = Result{Kind: ResultArray}
			}
		case 3:
			dst := keys[rnd.IntN(len(keys))]
			fl, tl := rnd.IntN(2) == 0, rnd.IntN(2) == 0
			c = Command{Op: OpListMove, Keys: strs(k, dst)}
			if fl {
				c.Flags |= ListLeft
			}
			if tl {
				c.Flags |= ListDstLeft
			}
			if len(l) == 0 {
				want = Result{Kind: ResultNil}
				break
			}
			var v string
			if fl {
				v, l = l[0], l[1:]
			} else {
				v, l = l[len(l)-1], l[:len(l)-1]
			}
			m[k] = l
			dl := m[dst]
			if tl {
				dl = append([]string{v}, dl...)
			} else {
				dl = append(slices.Clone(dl), v)
			}
			m[dst] = dl
			l = m[k]
			if dst == k {
				l = dl
			}
			want = Result{Kind: ResultBytes, Bytes: []byte(v)}
		case 4:
			idx := int64(rnd.IntN(9) - 4)
			c = Command{Op: OpListSet, Keys: kvs(k), Delta: idx, Values: kvs(e)}
			off := idx
			if off < 0 {
				off += int64(len(l))
			}
			switch {
			case len(l) == 0:
				want = Result{Kind: ResultError, Err: ErrTextNoSuchKey}
			case off < 0 || off >= int64(len(l)):
				want = Result{Kind: ResultError, Err: ErrTextIndexRange}
			default:
				l = slices.Clone(l)
				l[off] = e
				want = Result{Kind: ResultOK}
			}
		case 5:
			before := rnd.IntN(2) == 0
			c = Command{Op: OpListInsert, Keys: kvs(k), Values: strs(elems[rnd.IntN(len(elems))], e)}
			if before {
				c.Flags = ListLeft
			}
			p := slices.Index(l, string(c.Values[0]))
			switch {
			case len(l) == 0:
				want = Result{Kind: ResultInt, Int: 0}
			case p < 0:
				want = Result{Kind: ResultInt, Int: -1}
			default:
				if !before {
					p++
				}
				l = slices.Insert(slices.Clone(l), p, e)
				want = Result{Kind: ResultInt, Int: int64(len(l))}
			}
		case 6:
			cnt := rnd.IntN(7) - 3
			c = Command{Op: OpListRem, Keys: kvs(k), Delta: int64(cnt), Values: kvs(e)}
			var out []string
			removed := 0
			if cnt >= 0 {
				for _, x := range l {
					if x == e && (cnt == 0 || removed < cnt) {
						removed++
						continue
					}
					out = append(out, x)
				}
			} else {
				for j := len(l) - 1; j >= 0; j-- {
					if l[j] == e && removed < -cnt {
						removed++
						continue
					}
					out = append(out, l[j])
				}
				slices.Reverse(out)
			}
			l = out
			want = Result{Kind: ResultInt, Int: int64(removed)}
		case 7:
			start, stop := int64(rnd.IntN(12)-6), int64(rnd.IntN(12)-6)
			c = *NewListTrim([]byte(k), start, stop)
			lo, hi := listTrimRange(start, stop, uint64(len(l)))
			if lo >= hi {
				l = nil
			} else {
				l = slices.Clone(l[lo:hi])
			}
			want = Result{Kind: ResultOK}
		case 8:
			ks := []string{keys[rnd.IntN(len(keys))], k}
			cnt := 1 + rnd.IntN(3)
			c = Command{Op: OpListPop, Keys: strs(ks...), Flags: ListMulti | ListLeft, Delta: int64(cnt)}
			want = Result{Kind: ResultNil}
			for _, kk := range ks {
				if ll := m[kk]; len(ll) > 0 {
					cnt = min(cnt, len(ll))
					want = Result{Kind: ResultArray, Batch: []Result{{Kind: ResultBytes, Bytes: []byte(kk)}, arr(ll[:cnt])}}
					m[kk] = ll[cnt:]
					break
				}
			}
			l = m[k]
		case 9:
			// DEL, so that a chunk may delete a list and make it again.
			c = Command{Op: OpDel, Keys: kvs(k)}
			want = Result{Kind: ResultInt, Int: int64(min(len(l), 1))}
			l = nil
		case 10:
			// COPY with REPLACE onto another key.
			dst := keys[rnd.IntN(len(keys))]
			for dst == k {
				dst = keys[rnd.IntN(len(keys))]
			}
			c = Command{Op: OpCopy, Flags: CopyReplace, Keys: strs(k, dst)}
			want = Result{Kind: ResultInt, Int: 0}
			if len(l) > 0 {
				want = Result{Kind: ResultInt, Int: 1}
				m[dst] = slices.Clone(l)
			}
		}
		m[k] = l
		pending = append(pending, step{c, want})
		if rnd.IntN(4) == 0 {
			flush()
		}
	}
	flush()
}

func TestListPopShapes(t *testing.T) {
	d := newV3(t)
	require.Equal(t, Result{Kind: ResultInt, Int: 3}, d.apply(pushC("l", false, "a", "b", "c")))
	require.Equal(t, Result{Kind: ResultBytes, Bytes: []byte("a")}, d.apply(Command{Op: OpListPop, Keys: kvs("l"), Flags: ListLeft}))
	require.Equal(t, Result{Kind: ResultArray, Batch: []Result{{Kind: ResultBytes, Bytes: []byte("l")}, {Kind: ResultBytes, Bytes: []byte("c")}}},
		d.apply(Command{Op: OpListPop, Keys: strs("none", "l"), Flags: ListKeyed}))
	require.Equal(t, Result{Kind: ResultNil}, d.apply(Command{Op: OpListPop, Keys: strs("none", "other"), Flags: ListKeyed}))
	// A string met before the list answers WRONGTYPE and pops nothing.
	d.apply(setC("s", "v"))
	require.Equal(t, wrongType(), d.apply(Command{Op: OpListPop, Keys: strs("s", "l"), Flags: ListMulti, Delta: 1}))
	require.Equal(t, wrongType(), d.apply(pushC("s", true, "x")))
	require.Equal(t, Result{Kind: ResultInt, Int: 0}, d.apply(Command{Op: OpListPush, Flags: ListXX, Keys: kvs("nx"), Values: kvs("v")}))
	got, _ := d.list("l")
	require.Equal(t, []string{"b"}, got)
	// Popping the last element deletes the key.
	d.apply(Command{Op: OpListPop, Keys: kvs("l")})
	_, found := d.lookup("l")
	require.False(t, found)
	keys, _ := d.counts()
	require.Equal(t, uint64(1), keys, "only the string is left")
}

func TestListMoveChecksTheDestinationOnlyWithASource(t *testing.T) {
	d := newV3(t)
	d.apply(setC("s", "v"))
	require.Equal(t, Result{Kind: ResultNil}, d.apply(Command{Op: OpListMove, Keys: strs("none", "s")}))
	d.apply(pushC("l", false, "a"))
	require.Equal(t, wrongType(), d.apply(Command{Op: OpListMove, Keys: strs("l", "s")}))
	got, _ := d.list("l")
	require.Equal(t, []string{"a"}, got, "a refused move changes nothing")
	// A one-element list rotated onto itself survives.
	require.Equal(t, Result{Kind: ResultBytes, Bytes: []byte("a")}, d.apply(Command{Op: OpListMove, Keys: strs("l", "l")}))
	got, _ = d.list("l")
	require.Equal(t, []string{"a"}, got)
}

func TestListInsertAndRemShiftTheShorterSide(t *testing.T) {
	d := newV3(t)
	var vals []string
	for j := range 100 {
		vals = append(vals, fmt.Sprint(j))
	}
	d.apply(pushC("l", false, vals...))
	bounds := func() (uint64, uint64) {
		var h, tl uint64
		require.NoError(t, d.s.Read(func(v View) error {
			c, _, err := v.Collection([]byte("l"), keyspace.TypeList)
			if err == nil {
				h, tl = c.Meta().Head, c.Meta().Tail
			}
			return err
		}))
		return h, tl
	}
	h0, t0 := bounds()
	d.apply(Command{Op: OpListInsert, Keys: kvs("l"), Values: strs("3", "new")}) // after 3: near the head
	h1, t1 := bounds()
	require.Equal(t, [2]uint64{h0 - 1, t0}, [2]uint64{h1, t1}, "the head side moved")
	d.apply(Command{Op: OpListInsert, Flags: ListLeft, Keys: kvs("l"), Values: strs("90", "new")})
	h2, t2 := bounds()
	require.Equal(t, [2]uint64{h1, t1 + 1}, [2]uint64{h2, t2}, "the tail side moved")
	require.Equal(t, Result{Kind: ResultInt, Int: 2}, d.apply(Command{Op: OpListRem, Keys: kvs("l"), Values: kvs("new")}))
	got, _ := d.list("l")
	require.Equal(t, vals, got)
	require.Equal(t, 100, countElementRows(t, d.s))
}

func TestListReads(t *testing.T) {
	d := newV3(t)
	d.apply(pushC("l", false, "a", "b", "c", "b", "c", "c"))
	var (
		n                int64
		last             []byte
		lastOK, beyondOK bool
		pos1, pos2       []int64
	)
	require.NoError(t, d.s.Read(func(v View) error {
		var err error
		if n, err = ListLen(v, []byte("l")); err != nil {
			return err
		}
		if last, lastOK, err = ListIndex(v, []byte("l"), -1); err != nil {
			return err
		}
		if _, beyondOK, err = ListIndex(v, []byte("l"), 6); err != nil {
			return err
		}
		if pos1, err = ListPos(v, []byte("l"), []byte("c"), ListPosQuery{Rank: -1, Count: 2}); err != nil {
			return err
		}
		pos2, err = ListPos(v, []byte("l"), []byte("c"), ListPosQuery{Rank: 2, MaxLen: 5})
		return err
	}))
	require.Equal(t, int64(6), n)
	require.True(t, lastOK)
	require.Equal(t, "c", string(last))
	require.False(t, beyondOK)
	require.Equal(t, []int64{5, 4}, pos1)
	require.Equal(t, []int64{4}, pos2)
	d.apply(setC("s", "x"))
	err := d.s.Read(func(v View) error {
		_, err := ListLen(v, []byte("s"))
		return err
	})
	require.ErrorIs(t, err, ErrWrongType)
}

// The list ops emit Redis's keyspace-notification names, and "del" when
// they empty a list.
func TestListEventsNameWhatEachOpDid(t *testing.T) {
	s, got := eventLog(t, 1<<20)
	_, err := s.Apply([]Entry{{Index: 2, Data: enc(*NewRaiseFormat(FormatV3)), Stamp: 1000}})
	require.NoError(t, err)
	cmds := []Command{
		pushC("l", false, "a", "b"),                                       // 3
		pushC("l", true, "z"),                                             // 4
		{Op: OpListSet, Keys: kvs("l"), Values: kvs("Z")},                 // 5
		{Op: OpListInsert, Keys: kvs("l"), Values: strs("a", "a2")},       // 6
		{Op: OpListRem, Keys: kvs("l"), Values: kvs("a2")},                // 7
		*NewListTrim([]byte("l"), 0, 1),                                   // 8
		{Op: OpListMove, Flags: ListDstLeft, Keys: strs("l", "m")},        // 9: rpop a, lpush m
		{Op: OpListPop, Flags: ListLeft, Keys: kvs("l")},                  // 10: empties l
		{Op: OpListPop, Flags: ListKeyed, Keys: strs("l", "m")},           // 11: empties m
		{Op: OpListPush, Flags: ListXX, Keys: kvs("m"), Values: kvs("x")}, // 12: no list, no event
		*NewSortStore([]byte("n"), []byte("o"), SortQuery{}),              // 13: nothing stored, nothing deleted
	}
	ents := make([]Entry, len(cmds))
	for i, c := range cmds {
		ents[i] = Entry{Index: uint64(i + 3), Data: enc(c), Stamp: 1000}
	}
	_, err = s.Apply(ents)
	require.NoError(t, err)
	require.Equal(t, []string{
		"3 l rpush", "4 l lpush", "5 l lset", "6 l linsert", "7 l lrem", "8 l ltrim",
		"9 m lpush", "9 l rpop", "10 l lpop", "10 l del", "11 m rpop", "11 m del",
	}, *got)
}
