package kv

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The encodings of the section 4 ops are part of the log format: these
// bytes must never change.
func TestOps2GoldenEncoding(t *testing.T) {
	two := func(a, b string) [][]byte { return [][]byte{[]byte(a), []byte(b)} }
	for _, tc := range []struct {
		c    Command
		want string
	}{
		// op 15, flags 0, delta 5 (zigzag 0a), 1 key, 1 value, "k", "ab"
		{Command{Op: OpSetRange, Delta: 5, Keys: kvs("k"), Values: kvs("ab")}, "0f000a0101016b026162"},
		{Command{Op: OpIncrByFloat, Keys: kvs("k"), Values: kvs("1.5")}, "1000000101016b03312e35"},
		{Command{Op: OpMSetNX, Keys: two("a", "b"), Values: two("1", "2")}, "11000002020161016201310132"},
		{Command{Op: OpRename, Flags: RenameNX, Keys: two("a", "b")}, "120100020001610162"},
		{Command{Op: OpCopy, Flags: CopyReplace, Keys: two("a", "b")}, "130100020001610162"},
	} {
		require.NoError(t, tc.c.Validate())
		require.Equal(t, FormatV2, tc.c.MinFormat(), "op %d", tc.c.Op)
		got := tc.c.AppendEncode(nil)
		require.Equal(t, tc.want, hex.EncodeToString(got), "op %d", tc.c.Op)
		back, err := DecodeCommand(got)
		require.NoError(t, err)
		require.Equal(t, hex.EncodeToString(got), hex.EncodeToString(back.AppendEncode(nil)))
	}
}

func TestOps2ValidateRefusesBadShapes(t *testing.T) {
	for _, c := range []Command{
		{Op: OpSetRange, Delta: -1, Keys: kvs("k"), Values: kvs("x")},
		{Op: OpSetRange, Keys: kvs("k")},
		{Op: OpIncrByFloat, Keys: kvs("k")},
		{Op: OpIncrByFloat, Delta: 1, Keys: kvs("k"), Values: kvs("1")},
		{Op: OpMSetNX, Keys: [][]byte{[]byte("a")}},
		{Op: OpRename, Keys: kvs("a")},
		{Op: OpRename, Flags: 2, Keys: [][]byte{[]byte("a"), []byte("b")}},
		{Op: OpCopy, Keys: [][]byte{[]byte("a"), []byte("a")}},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
}

// INCRBYFLOAT's results are Redis 7.2's (x86-64, long double) to the
// digit.
func TestAddRedisFloatsMatchesRedis(t *testing.T) {
	for _, tc := range []struct {
		cur  any // nil: missing key
		incr string
		want string
	}{
		{nil, "10.5", "10.5"},
		{"10.5", "0.1", "10.6"},
		{"0", "5.0e3", "5000"},
		{"1.5", "1.5", "3"},
		{"17179869184", "1.5", "17179869185.5"},
		{"1", "-1.1", "-0.1"},
		{"3.0", "0", "3"},
		{"5", "-5", "0"},
		{nil, "0.1", "0.1"},
		{"0.1", "0.2", "0.3"},
		// The examples of Redis's INCRBYFLOAT page.
		{"10.6", "-5", "5.6"},
		{"5.0e3", "2.0e2", "5200"},
		// long double's rounding shows at 17 decimals, as in Redis.
		{"10.6", "5000", "5010.60000000000000009"},
		// Redis's "No negative zero": 1/41 then -1/41 (as Tcl prints them).
		{nil, "0.024390243902439025", "0.02439024390243902"},
		{"0.02439024390243902", "-0.024390243902439025", "0"},
		{"-0.0", "0", "0"},
		{"1e-30", "-2e-30", "0"},
	} {
		var cur []byte
		if tc.cur != nil {
			cur = []byte(tc.cur.(string))
		}
		got, errText := AddRedisFloats(cur, []byte(tc.incr))
		require.Empty(t, errText)
		require.Equal(t, tc.want, string(got), "%v + %s", tc.cur, tc.incr)
	}
	for _, tc := range []struct{ cur, incr, err string }{
		{"1", "inf", ErrTextNaN},
		{"inf", "-inf", ErrTextNaN},
		{"x", "1", ErrTextNotFloat},
		{"1", "1x", ErrTextNotFloat},
		{" 1", "1", ErrTextNotFloat},
		{"1 ", "1", ErrTextNotFloat},
		{"nan", "1", ErrTextNotFloat},
		{"1e99999", "1", ErrTextNotFloat},
		{strings.Repeat("1", 5121), "1", ErrTextNotFloat},
		{"", "1", ErrTextNotFloat},
	} {
		_, errText := AddRedisFloats([]byte(tc.cur), []byte(tc.incr))
		require.Equal(t, tc.err, errText, "%q + %q", tc.cur, tc.incr)
	}
}

// A sequence of the section 4 ops, with the replies Redis 7.2 gives.
func TestOps2Replies(t *testing.T) {
	d := newV2(t)
	two := func(a, b string) [][]byte { return [][]byte{[]byte(a), []byte(b)} }
	intR := func(n int64) Result { return Result{Kind: ResultInt, Int: n} }
	errR := func(s string) Result { return Result{Kind: ResultError, Err: s} }
	bulk := func(s string) Result { return Result{Kind: ResultBytes, Bytes: []byte(s)} }
	ok := Result{Kind: ResultOK}
	steps := []struct {
		c    Command
		want Result
		get  string // key to GET afterwards ("" none), and its value
		val  string
	}{
		{Command{Op: OpSetRange, Delta: 3, Keys: kvs("s"), Values: [][]byte{nil}}, intR(0), "", ""},
		{Command{Op: OpSetRange, Delta: 3, Keys: kvs("s"), Values: kvs("ab")}, intR(5), "s", "\x00\x00\x00ab"},
		{Command{Op: OpSetRange, Delta: 1, Keys: kvs("s"), Values: kvs("XYZW")}, intR(5), "s", "\x00XYZW"},
		{Command{Op: OpSetRange, Delta: 100, Keys: kvs("s"), Values: [][]byte{nil}}, intR(5), "s", "\x00XYZW"},
		{Command{Op: OpSetRange, Delta: MaxStringBytes, Keys: kvs("s"), Values: kvs("x")}, errR(ErrTextTooLarge), "", ""},
		{Command{Op: OpIncrByFloat, Keys: kvs("f"), Values: kvs("10.5")}, bulk("10.5"), "f", "10.5"},
		{Command{Op: OpIncrByFloat, Keys: kvs("f"), Values: kvs("0.1")}, bulk("10.6"), "f", "10.6"},
		{Command{Op: OpIncrByFloat, Keys: kvs("f"), Values: kvs("-5")}, bulk("5.6"), "f", "5.6"},
		{Command{Op: OpIncrByFloat, Keys: kvs("g"), Values: kvs("1e20")}, bulk("100000000000000000000"), "", ""},
		{Command{Op: OpIncrByFloat, Keys: kvs("g"), Values: kvs("inf")}, errR(ErrTextNaN), "", ""},
		{Command{Op: OpIncrByFloat, Keys: kvs("s"), Values: kvs("1")}, errR(ErrTextNotFloat), "", ""},
		{Command{Op: OpIncrByFloat, Keys: kvs("f"), Values: kvs("x")}, errR(ErrTextNotFloat), "f", "5.6"},
		{Command{Op: OpMSetNX, Keys: two("a", "b"), Values: two("1", "2")}, intR(1), "b", "2"},
		{Command{Op: OpMSetNX, Keys: two("c", "a"), Values: two("3", "4")}, intR(0), "a", "1"},
		{Command{Op: OpRename, Keys: two("nope", "x")}, errR(ErrTextNoSuchKey), "", ""},
		{Command{Op: OpRename, Keys: two("a", "a")}, ok, "a", "1"},
		{Command{Op: OpRename, Flags: RenameNX, Keys: two("a", "a")}, intR(0), "", ""},
		{Command{Op: OpRename, Flags: RenameNX, Keys: two("a", "b")}, intR(0), "", ""},
		{Command{Op: OpRename, Keys: two("a", "b")}, ok, "b", "1"},
		{Command{Op: OpRename, Flags: RenameNX, Keys: two("b", "z")}, intR(1), "z", "1"},
		{Command{Op: OpCopy, Keys: two("z", "s")}, intR(0), "s", "\x00XYZW"},
		{Command{Op: OpCopy, Flags: CopyReplace, Keys: two("z", "s")}, intR(1), "s", "1"},
		{Command{Op: OpCopy, Keys: two("nope", "q")}, intR(0), "", ""},
	}
	for i, st := range steps {
		got := d.apply(st.c)
		requireSameResult(t, st.want, got, "step %d", i)
		if st.get != "" {
			v, found := d.get(st.get)
			require.True(t, found, "step %d", i)
			require.Equal(t, st.val, v, "step %d", i)
		}
	}
	_, found := d.get("a")
	require.False(t, found)
	k, _ := d.counts()
	require.Equal(t, uint64(4), k) // s, f, g, z (a and b were renamed away)
	requireCountsMatchRows(t, d.s)
}

// SETRANGE, INCRBYFLOAT and RENAME keep or move the TTL; MSETNX and COPY
// set what they say.
func TestOps2Expiry(t *testing.T) {
	d := newV2(t)
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 500, Keys: kvs("a"), Values: kvs("1")})
	d.apply(Command{Op: OpSetRange, Delta: 1, Keys: kvs("a"), Values: kvs("2")})
	d.apply(Command{Op: OpIncrByFloat, Keys: kvs("a"), Values: kvs("0.5")})
	ki, ok := d.lookup("a")
	require.True(t, ok)
	require.Equal(t, uint64(1500), ki.ExpireAt)
	d.apply(Command{Op: OpCopy, Keys: [][]byte{[]byte("a"), []byte("c")}})
	d.apply(Command{Op: OpRename, Keys: [][]byte{[]byte("a"), []byte("b")}})
	for _, k := range []string{"b", "c"} {
		ki, ok = d.lookup(k)
		require.True(t, ok, k)
		require.Equal(t, uint64(1500), ki.ExpireAt, k)
	}
	_, e := d.counts()
	require.Equal(t, uint64(2), e)
	d.clock = 1500
	require.Equal(t, Result{Kind: ResultError, Err: ErrTextNoSuchKey}, d.apply(Command{Op: OpRename, Keys: [][]byte{[]byte("b"), []byte("x")}}))
	require.Equal(t, int64(1), d.apply(Command{Op: OpMSetNX, Keys: [][]byte{[]byte("c")}, Values: kvs("new")}).Int)
	ki, ok = d.lookup("c")
	require.True(t, ok)
	require.Equal(t, uint64(0), ki.ExpireAt)
	requireCountsMatchRows(t, d.s)
}

// A cross-slot RENAME of a chunked string moves only its metadata: the
// batch is O(1) in the value's size, the elements stay in the source's
// slot under a loan row, and renaming back home removes the loan.
func TestRenameOfAChunkedStringIsO1AcrossSlots(t *testing.T) {
	d := newV2(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: 256 chunks
	d.apply(setC("{a}big", big))
	d.apply(Command{Op: OpRename, Keys: [][]byte{[]byte("{a}big"), []byte("{b}big")}})
	last, _, _ := d.s.ApplyStats()
	require.Less(t, last, uint64(1024), "a RENAME wrote a %d-byte batch", last)
	require.NotEqual(t, keyspace.HashSlot([]byte("{a}big")), keyspace.HashSlot([]byte("{b}big")))
	v, ok := d.get("{b}big")
	require.True(t, ok)
	require.Equal(t, big, v)
	requireCountsMatchRows(t, d.s)
	// An APPEND and a SETRANGE to the renamed key write into the
	// elements' own slot.
	d.apply(Command{Op: OpAppend, Keys: kvs("{b}big"), Values: kvs("tail")})
	d.apply(Command{Op: OpSetRange, Delta: 5, Keys: kvs("{b}big"), Values: kvs("MID")})
	want := big[:5] + "MID" + big[8:] + "tail"
	d.apply(Command{Op: OpRename, Keys: [][]byte{[]byte("{b}big"), []byte("{a}other")}})
	v, _ = d.get("{a}other")
	require.Equal(t, want, v)
	requireCountsMatchRows(t, d.s) // the loan is gone: no Foreign key remains
	d.apply(Command{Op: OpDel, Keys: kvs("{a}other")})
	requireCountsMatchRows(t, d.s) // no orphan chunk rows
}

// A SETRANGE in the middle of a chunked string, or far past its end,
// writes only the chunks it touches (sparse chunks read as zeros).
func TestSetRangeOnAChunkedStringCostsWhatItChanges(t *testing.T) {
	s := openV2(t)
	idx := appendToBigValue(t, s)
	for _, tc := range []struct {
		off uint64
		n   int
	}{{8 << 20, 1}, {100, 5000}, {4095, 2}, {40 << 20, 10}} {
		_, err := s.Apply([]Entry{{Index: idx, Data: enc(Command{Op: OpSetRange, Delta: int64(tc.off), Keys: kvs("big"), Values: [][]byte{bytes.Repeat([]byte("y"), tc.n)}}), Stamp: 1000}})
		require.NoError(t, err)
		idx++
		last, _, _ := s.ApplyStats()
		require.Less(t, last, uint64(3*4096+tc.n+512), "SETRANGE of %d bytes at %d wrote a %d-byte batch", tc.n, tc.off, last)
	}
	var got []byte
	require.NoError(t, s.Read(func(v View) error {
		var err error
		got, _, err = v.Get([]byte("big"))
		return err
	}))
	want := bytes.Repeat([]byte("x"), 16<<20)
	for _, p := range []struct {
		off uint64
		n   int
	}{{8 << 20, 1}, {100, 5000}, {4095, 2}} {
		copy(want[p.off:], bytes.Repeat([]byte("y"), p.n))
	}
	want = append(want, make([]byte, 40<<20-len(want))...)
	want = append(want, bytes.Repeat([]byte("y"), 10)...)
	require.Equal(t, len(want), len(got))
	require.True(t, bytes.Equal(want, got))
	requireCountsMatchRows(t, s)
}

// Keys still in the v1 layout are converted by the section 4 ops like by
// any write: read in place, written in v2, the v1 row deleted.
func TestOps2OnKeysStillInTheV1Layout(t *testing.T) {
	s := openTest(t, t.TempDir())
	big := strings.Repeat("v1-value", 1000) // 8000 bytes: chunked once in v2
	_, err := s.Apply([]Entry{
		{Index: 1, Data: set("{a}big", big)},
		{Index: 2, Data: set("{a}small", "1.5")},
		{Index: 3, Data: set("{a}copy", "c")},
		{Index: 4, Data: set("{a}setr", big)},
		{Index: 5, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000},
	})
	require.NoError(t, err)
	two := func(a, b string) [][]byte { return [][]byte{[]byte(a), []byte(b)} }
	res, err := s.Apply([]Entry{
		{Index: 6, Data: enc(Command{Op: OpRename, Keys: two("{a}big", "{b}big")}), Stamp: 1000},
		{Index: 7, Data: enc(Command{Op: OpIncrByFloat, Keys: kvs("{a}small"), Values: kvs("1")}), Stamp: 1000},
		{Index: 8, Data: enc(Command{Op: OpCopy, Keys: two("{a}copy", "{b}copy")}), Stamp: 1000},
		{Index: 9, Data: enc(Command{Op: OpSetRange, Delta: 7000, Keys: kvs("{a}setr"), Values: kvs("XY")}), Stamp: 1000},
	})
	require.NoError(t, err)
	require.Equal(t, ResultOK, res[0].Kind)
	require.Equal(t, "2.5", string(res[1].Bytes))
	require.Equal(t, int64(1), res[2].Int)
	require.Equal(t, int64(8000), res[3].Int)
	want := map[string]string{
		"{b}big": big, "{a}small": "2.5", "{a}copy": "c", "{b}copy": "c",
		"{a}setr": big[:7000] + "XY" + big[7002:],
	}
	get := func(k string) (string, bool) {
		var got []byte
		var found bool
		require.NoError(t, s.Read(func(v View) error {
			var err error
			got, found, err = v.Get([]byte(k))
			return err
		}))
		return string(got), found
	}
	for k, w := range want {
		got, found := get(k)
		require.True(t, found, k)
		require.Equal(t, w, got, k)
	}
	_, found := get("{a}big")
	require.False(t, found)
	for _, k := range []string{"{a}big", "{a}small", "{a}setr"} {
		_, found, err := getRaw(s.db, keyspace.LegacyKey([]byte(k)), func([]byte) {})
		require.NoError(t, err)
		require.False(t, found, "v1 row of %s is still there", k)
	}
	requireCountsMatchRows(t, s)
}
