package kv

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// v2 is a test driver of a store at format 2: it applies commands as
// single entries at increasing indexes, each stamped with the driver's
// clock.
type v2 struct {
	t     *testing.T
	s     *Store
	index uint64
	clock uint64
}

func newV2(t *testing.T) *v2 {
	s := openV2(t)
	return &v2{t: t, s: s, index: 1, clock: 1000}
}

func (d *v2) apply(c Command) Result {
	d.t.Helper()
	require.NoError(d.t, c.Validate())
	d.index++
	res, err := d.s.Apply([]Entry{{Index: d.index, Data: enc(c), Stamp: d.clock}})
	require.NoError(d.t, err)
	return res[0]
}

func (d *v2) get(k string) (string, bool) {
	d.t.Helper()
	var v []byte
	var found bool
	require.NoError(d.t, d.s.Read(func(view View) error {
		var err error
		v, found, err = view.Get([]byte(k))
		return err
	}))
	return string(v), found
}

func (d *v2) lookup(k string) (KeyInfo, bool) {
	d.t.Helper()
	var ki KeyInfo
	var found bool
	require.NoError(d.t, d.s.Read(func(view View) error {
		var err error
		ki, found, err = view.Lookup([]byte(k))
		return err
	}))
	return ki, found
}

func (d *v2) counts() (uint64, uint64) {
	d.t.Helper()
	var k, e uint64
	require.NoError(d.t, d.s.Read(func(view View) error {
		var err error
		k, e, err = view.Counts()
		return err
	}))
	return k, e
}

func kvs(k string) [][]byte { return [][]byte{[]byte(k)} }

func setC(k, v string) Command { return Command{Op: OpSet, Keys: kvs(k), Values: kvs(v)} }

func TestV2StringOps(t *testing.T) {
	d := newV2(t)
	require.Equal(t, ResultOK, d.apply(setC("a", "1")).Kind)
	v, ok := d.get("a")
	require.True(t, ok)
	require.Equal(t, "1", v)
	require.Equal(t, int64(6), d.apply(Command{Op: OpIncrBy, Keys: kvs("a"), Delta: 5}).Int)
	require.Equal(t, int64(3), d.apply(Command{Op: OpAppend, Keys: kvs("a"), Values: kvs("xy")}).Int)
	v, _ = d.get("a")
	require.Equal(t, "6xy", v)
	require.Equal(t, ResultError, d.apply(Command{Op: OpIncrBy, Keys: kvs("a"), Delta: 1}).Kind)
	r := d.apply(Command{Op: OpSet, Flags: SetGet | SetNX, Keys: kvs("a"), Values: kvs("z")})
	require.Equal(t, "6xy", string(r.Bytes))
	require.Equal(t, ResultOK, d.apply(Command{Op: OpMSet, Keys: [][]byte{[]byte("b"), []byte("c")}, Values: [][]byte{[]byte("B"), []byte("C")}}).Kind)
	k, e := d.counts()
	require.Equal(t, uint64(3), k)
	require.Equal(t, uint64(0), e)
	require.Equal(t, int64(2), d.apply(Command{Op: OpDel, Keys: [][]byte{[]byte("b"), []byte("c"), []byte("nope")}}).Int)
	r = d.apply(Command{Op: OpGetDel, Keys: kvs("a")})
	require.Equal(t, "6xy", string(r.Bytes))
	k, _ = d.counts()
	require.Equal(t, uint64(0), k)
	_, ok = d.get("a")
	require.False(t, ok)
}

func TestV2ChunkedStrings(t *testing.T) {
	d := newV2(t)
	big := strings.Repeat("0123456789", 1000) // 10000 bytes: 3 chunks
	d.apply(setC("big", big))
	v, ok := d.get("big")
	require.True(t, ok)
	require.Equal(t, big, v)
	ki, _ := d.lookup("big")
	require.Equal(t, "raw", ki.Encoding)
	require.Equal(t, uint64(len(big)), ki.Len)

	// APPEND across a chunk boundary, then in a later entry again.
	want := big
	for i := range 5 {
		suffix := strings.Repeat(string(rune('a'+i)), 3000)
		want += suffix
		require.Equal(t, int64(len(want)), d.apply(Command{Op: OpAppend, Keys: kvs("big"), Values: kvs(suffix)}).Int)
		v, _ = d.get("big")
		require.Equal(t, want, v)
	}
	// An inline string crossing InlineMax becomes chunked.
	d.apply(setC("grow", strings.Repeat("x", 1000)))
	d.apply(Command{Op: OpAppend, Keys: kvs("grow"), Values: kvs(strings.Repeat("y", 100))})
	v, _ = d.get("grow")
	require.Equal(t, strings.Repeat("x", 1000)+strings.Repeat("y", 100), v)

	// Overwrite and delete drop the chunks: no element rows remain.
	d.apply(setC("big", "small"))
	v, _ = d.get("big")
	require.Equal(t, "small", v)
	d.apply(Command{Op: OpDel, Keys: [][]byte{[]byte("big"), []byte("grow")}})
	require.Equal(t, 0, countElementRows(t, d.s))
	k, _ := d.counts()
	require.Equal(t, uint64(0), k)
}

// countElementRows counts the rows with the elements tag in every slot.
func countElementRows(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); k[0] < 0x40 && len(k) > 2 && k[2] == 0x02 {
			n++
		}
	}
	require.NoError(t, it.Close())
	return n
}

func TestV2Expiry(t *testing.T) {
	d := newV2(t)
	d.apply(Command{Op: OpSetX, Flags: SetPX, Keys: kvs("e"), Values: kvs("v"), Delta: 100})
	ki, ok := d.lookup("e")
	require.True(t, ok)
	require.Equal(t, d.clock+100, ki.ExpireAt)
	_, e := d.counts()
	require.Equal(t, uint64(1), e)

	// A read at a later time misses it before any write deletes it.
	require.NoError(t, d.s.ReadAt(d.clock+100, func(v View) error {
		_, found, err := v.Get([]byte("e"))
		require.False(t, found)
		require.Equal(t, d.clock+100, v.Now())
		return err
	}))
	// The sweeper sees it as due, and its conditional delete removes it.
	var due [][]byte
	var vers []keyspace.Stamp
	var ats []uint64
	require.NoError(t, d.s.ReadAt(d.clock+100, func(v View) error {
		due, vers, ats = nil, nil, nil
		return v.DueKeys(10, func(k []byte, ver keyspace.Stamp, at uint64) bool {
			due, vers, ats = append(due, bytes.Clone(k)), append(vers, ver), append(ats, at)
			return true
		})
	}))
	require.Equal(t, [][]byte{[]byte("e")}, due)
	// Not yet due at apply time: nothing deleted.
	require.Equal(t, int64(0), d.apply(*NewExpireIf(due, vers, ats)).Int)
	d.clock += 100
	require.Equal(t, int64(1), d.apply(*NewExpireIf(due, vers, ats)).Int)
	k, e := d.counts()
	require.Equal(t, [2]uint64{0, 0}, [2]uint64{k, e})
	require.Equal(t, uint64(1), d.s.ExpiredKeys())

	// EXPIRE, the NX/XX/GT/LT rules, PERSIST, GETEX.
	d.apply(setC("k", "v"))
	require.Equal(t, int64(0), d.apply(Command{Op: OpExpire, Flags: ExpireXX, Keys: kvs("k"), Delta: 50}).Int)
	require.Equal(t, int64(0), d.apply(Command{Op: OpExpire, Flags: ExpireGT, Keys: kvs("k"), Delta: 50}).Int, "GT: no TTL is infinite")
	require.Equal(t, int64(1), d.apply(Command{Op: OpExpire, Flags: ExpireLT, Keys: kvs("k"), Delta: 500}).Int)
	require.Equal(t, int64(0), d.apply(Command{Op: OpExpire, Flags: ExpireNX, Keys: kvs("k"), Delta: 50}).Int)
	require.Equal(t, int64(1), d.apply(Command{Op: OpExpire, Flags: ExpireGT, Keys: kvs("k"), Delta: 900}).Int)
	ki, _ = d.lookup("k")
	require.Equal(t, d.clock+900, ki.ExpireAt)
	// SET without KEEPTTL clears the TTL; with it, keeps it.
	d.apply(Command{Op: OpSetX, Flags: SetKeepTTL, Keys: kvs("k"), Values: kvs("w")})
	ki, _ = d.lookup("k")
	require.Equal(t, d.clock+900, ki.ExpireAt)
	require.Equal(t, int64(1), d.apply(Command{Op: OpPersist, Keys: kvs("k")}).Int)
	require.Equal(t, int64(0), d.apply(Command{Op: OpPersist, Keys: kvs("k")}).Int)
	r := d.apply(Command{Op: OpGetEx, Flags: SetPXAT, Keys: kvs("k"), Delta: int64(d.clock + 10)})
	require.Equal(t, "w", string(r.Bytes))
	ki, _ = d.lookup("k")
	require.Equal(t, d.clock+10, ki.ExpireAt)
	// A write at a later apply time finds it expired: INCR starts at 0.
	d.clock += 10
	require.Equal(t, int64(1), d.apply(Command{Op: OpIncrBy, Keys: kvs("k"), Delta: 1}).Int)
	// EXPIRE in the past deletes, replying 1.
	require.Equal(t, int64(1), d.apply(Command{Op: OpExpire, Keys: kvs("k"), Delta: -1}).Int)
	_, ok = d.get("k")
	require.False(t, ok)
	// SET with an expiry already past: OK, and the key is gone.
	require.Equal(t, ResultOK, d.apply(Command{Op: OpSetX, Flags: SetPXAT, Keys: kvs("p"), Values: kvs("v"), Delta: 5}).Kind)
	_, ok = d.get("p")
	require.False(t, ok)
	k, e = d.counts()
	require.Equal(t, [2]uint64{0, 0}, [2]uint64{k, e})
	require.Equal(t, 0, countRows(t, d.s, 0x03), "no expiry-index row left behind")
}

func countRows(t *testing.T, s *Store, tag byte) int {
	t.Helper()
	n := 0
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); k[0] < 0x40 && len(k) > 2 && k[2] == tag {
			n++
		}
	}
	require.NoError(t, it.Close())
	return n
}

func TestV1DataReadAndConvertedAfterRaise(t *testing.T) {
	s := openTest(t, t.TempDir())
	big := strings.Repeat("b", 5000)
	_, err := s.Apply([]Entry{{Index: 1, Data: set("a", "1")}, {Index: 2, Data: set("big", big)}, {Index: 3, Data: set("c", "3")}})
	require.NoError(t, err)
	_, before, err := s.Hash()
	require.NoError(t, err)
	keys := [][]byte{[]byte("a"), []byte("big"), []byte("c")}
	vals := [][]byte{[]byte("1"), []byte(big), []byte("3")}
	require.Equal(t, DigestOf(FormatV1, keys, vals), before)

	_, err = s.Apply([]Entry{{Index: 4, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}})
	require.NoError(t, err)
	d := &v2{t: t, s: s, index: 4, clock: 1000}
	_, after, err := s.Hash()
	require.NoError(t, err)
	require.Equal(t, DigestOf(FormatV2, keys, vals), after)

	v, ok := d.get("big")
	require.True(t, ok)
	require.Equal(t, big, v)
	k, _ := d.counts()
	require.Equal(t, uint64(3), k, "v1 rows counted while they remain")

	// RANDOMKEY finds the v1 keys whichever half of the space it draws
	// first (the v2 half is empty here).
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		require.NoError(t, s.Read(func(v View) error {
			key, found, err := v.RandomKey(rnd)
			if err != nil {
				return err // a live view's second lookup: Read retries on a snapshot
			}
			require.True(t, found)
			require.Contains(t, []string{"a", "big", "c"}, string(key))
			return nil
		}))
	}

	// Writes convert: APPEND to the v1 big value, EXPIRE on a v1 key.
	d.apply(Command{Op: OpAppend, Keys: kvs("big"), Values: kvs("!")})
	require.Equal(t, int64(1), d.apply(Command{Op: OpExpire, Keys: kvs("a"), Delta: 1000}).Int)
	v, _ = d.get("big")
	require.Equal(t, big+"!", v)
	v, _ = d.get("a")
	require.Equal(t, "1", v)
	k, e := d.counts()
	require.Equal(t, [2]uint64{3, 1}, [2]uint64{k, e})
	_, has, err := getRaw(s.db, keyspace.LegacyKey([]byte("big")), func([]byte) {})
	require.NoError(t, err)
	require.False(t, has, "the v1 row was deleted on conversion")

	// Hash is logical: a v1 row and its converted v2 record hash alike.
	d.apply(Command{Op: OpPersist, Keys: kvs("a")})
	d.apply(setC("big", big))
	_, conv, err := s.Hash()
	require.NoError(t, err)
	require.Equal(t, DigestOf(FormatV2, keys, vals), conv)

	// Scan sees each key once across both layouts, with a cursor.
	var seen []string
	var cur []byte
	for {
		var next []byte
		var page []string
		require.NoError(t, s.Read(func(v View) error {
			var err error
			page = page[:0] // fn may run twice (Read)
			next, err = v.Scan(cur, nil, func(k []byte) bool {
				if len(page) == 1 {
					return false
				}
				page = append(page, string(k))
				return true
			})
			return err
		}))
		seen = append(seen, page...)
		if next == nil {
			break
		}
		cur = next
	}
	require.ElementsMatch(t, []string{"a", "big", "c"}, seen)

	// FLUSHALL drops both layouts and the counts.
	d.apply(Command{Op: OpFlushAll})
	k, e = d.counts()
	require.Equal(t, [2]uint64{0, 0}, [2]uint64{k, e})
	_, ok = d.get("c")
	require.False(t, ok)
	require.False(t, s.legacy.Load())
}

func TestV2ScanWithPrefixAndHashTag(t *testing.T) {
	d := newV2(t)
	for i := range 50 {
		d.apply(setC(fmt.Sprintf("user:%02d", i), "v"))
		d.apply(setC(fmt.Sprintf("{tag}:%02d", i), "v"))
		d.apply(setC(fmt.Sprintf("other%02d", i), "v"))
	}
	scanAll := func(prefix string) []string {
		var out []string
		var cur []byte
		for {
			var next []byte
			var page []string
			require.NoError(t, d.s.Read(func(v View) error {
				page = page[:0] // fn may run twice (Read)
				var err error
				next, err = v.Scan(cur, []byte(prefix), func(k []byte) bool {
					if len(page) == 7 {
						return false
					}
					page = append(page, string(k))
					return true
				})
				return err
			}))
			out = append(out, page...)
			if next == nil {
				return out
			}
			cur = next
		}
	}
	require.Len(t, scanAll(""), 150)
	u := scanAll("user:")
	require.Len(t, u, 50)
	for _, k := range u {
		require.True(t, strings.HasPrefix(k, "user:"))
	}
	require.Len(t, scanAll("{tag}:"), 50)
	require.Len(t, scanAll("{tag}:1"), 10)
	require.NoError(t, d.s.Read(func(v View) error {
		_, err := v.Scan([]byte("x"), nil, func([]byte) bool { return true })
		require.ErrorIs(t, err, ErrBadCursor)
		return nil
	}))
}

func TestV2ObjectEncoding(t *testing.T) {
	d := newV2(t)
	for _, c := range []struct{ v, enc string }{
		{"12345", "int"}, {"-7", "int"}, {"007", "embstr"}, {strings.Repeat("x", 44), "embstr"},
		{strings.Repeat("x", 45), "raw"}, {strings.Repeat("x", 5000), "raw"},
	} {
		d.apply(setC("k", c.v))
		ki, ok := d.lookup("k")
		require.True(t, ok)
		require.Equal(t, c.enc, ki.Encoding, "value %q", c.v)
		require.Equal(t, keyspace.TypeString, ki.Type)
	}
}

// The encodings of the format 2 ops are part of the log format: pinned
// as hex, so a change to any of them fails here first.
func TestV2OpEncodingsAreStable(t *testing.T) {
	k, v := []byte("k"), []byte("v")
	for _, c := range []struct {
		cmd *Command
		hex string
	}{
		{NewRaiseFormat(FormatV2), "0900040000"},
		{&Command{Op: OpSetX, Flags: SetNX | SetPX, Delta: 1000, Keys: [][]byte{k}, Values: [][]byte{v}}, "0a11d00f0101016b0176"},
		{&Command{Op: OpSetX, Flags: SetKeepTTL | SetGet, Keys: [][]byte{k}, Values: [][]byte{v}}, "0a0c000101016b0176"},
		{&Command{Op: OpExpire, Flags: ExpireAbs | ExpireLT, Delta: 5, Keys: [][]byte{k}}, "0b110a0100016b"},
		{&Command{Op: OpPersist, Keys: [][]byte{k}}, "0c00000100016b"},
		{&Command{Op: OpGetEx, Flags: SetPXAT, Delta: 2, Keys: [][]byte{k}}, "0d20040100016b"},
		{NewExpireIf([][]byte{k}, []keyspace.Stamp{{Index: 1, Pos: 2}}, []uint64{3}), "0e0000010101" + "6b14" + "0000000000000001" + "00000002" + "0000000000000003"},
	} {
		require.NoError(t, c.cmd.Validate())
		require.Equal(t, c.hex, fmt.Sprintf("%x", c.cmd.AppendEncode(nil)), "op %d", c.cmd.Op)
		want := FormatV2
		if c.cmd.Op == OpRaiseFormat {
			want = FormatV1 // proposed while the cluster is still at 1
		}
		require.Equal(t, want, c.cmd.MinFormat(), "op %d", c.cmd.Op)
	}
}

func TestV2OpValidation(t *testing.T) {
	k, v := [][]byte{[]byte("k")}, [][]byte{[]byte("v")}
	for _, c := range []Command{
		{Op: OpSetX, Flags: SetPX, Keys: k, Values: v},                          // PX needs a positive delta
		{Op: OpSetX, Flags: SetPX | SetKeepTTL, Delta: 5, Keys: k, Values: v},   // two expiry options
		{Op: OpSetX, Flags: SetNX | SetXX, Keys: k, Values: v},                  // NX and XX
		{Op: OpSetX, Delta: 5, Keys: k, Values: v},                              // a delta without an option
		{Op: OpExpire, Flags: ExpireNX | ExpireGT, Keys: k},                     // NX with GT
		{Op: OpExpire, Flags: ExpireGT | ExpireLT, Keys: k},                     // GT with LT
		{Op: OpPersist, Keys: k, Delta: 1},                                      // no delta
		{Op: OpGetEx, Flags: SetPX | GetExPersist, Delta: 1, Keys: k},           // two options
		{Op: OpExpireIf, Keys: k, Values: [][]byte{make([]byte, 19)}},           // short condition
		{Op: OpExpireIf, Keys: [][]byte{[]byte("a"), []byte("b")}, Values: nil}, // no conditions
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
	require.NoError(t, (&Command{Op: OpExpire, Flags: ExpireXX | ExpireGT, Delta: -5, Keys: k}).Validate())
}

// Snapshot and restore at format 2: chunked values, expiries, counts, the
// format version and the apply time all survive, and the hash matches.
func TestV2SnapshotRoundTrip(t *testing.T) {
	d := newV2(t)
	d.apply(setC("small", "v"))
	d.apply(setC("big", strings.Repeat("z", 9000)))
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 5000, Keys: kvs("ttl"), Values: kvs("t")})
	img := snapshotBytes(t, d.s)
	_, want, err := d.s.Hash()
	require.NoError(t, err)

	dst := openTest(t, t.TempDir())
	require.NoError(t, dst.Restore(bytes.NewReader(img), d.index))
	_, got, err := dst.Hash()
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, d.s.ApplyTime(), dst.ApplyTime())
	require.Equal(t, FormatV2, dst.FormatVersion())
	requireCountsMatchRows(t, dst)
	e := &v2{t: t, s: dst, index: d.index, clock: d.clock}
	k, x := e.counts()
	require.Equal(t, [2]uint64{3, 1}, [2]uint64{k, x})
	v, ok := e.get("big")
	require.True(t, ok)
	require.Equal(t, strings.Repeat("z", 9000), v)
}

// Stamps are unique within an entry: the writes of one batch entry, and
// the keys of one MSET, each take their own position.
func TestV2StampsWithinAnEntry(t *testing.T) {
	d := newV2(t)
	b, err := NewBatch([]*Command{
		{Op: OpMSet, Keys: [][]byte{[]byte("a"), []byte("b")}, Values: [][]byte{[]byte("1"), []byte("2")}},
		{Op: OpSet, Keys: kvs("c"), Values: kvs("3")},
	})
	require.NoError(t, err)
	d.apply(*b)
	seen := map[keyspace.Stamp]string{}
	for _, k := range []string{"a", "b", "c"} {
		ki, ok := d.lookup(k)
		require.True(t, ok)
		require.Equal(t, d.index, ki.Version.Index)
		require.Equal(t, ki.Version, ki.LastWrite)
		require.NotContains(t, seen, ki.Version, "key %s", k)
		seen[ki.Version] = k
	}
	// A later change moves LastWrite only.
	before, _ := d.lookup("a")
	d.apply(Command{Op: OpAppend, Keys: kvs("a"), Values: kvs("x")})
	after, _ := d.lookup("a")
	require.Equal(t, before.Version, after.Version)
	require.Equal(t, d.index, after.LastWrite.Index)
}

// Every View method treats a key expired at the view's time as missing,
// and RandomKey and Scan skip it.
func TestV2ViewHonoursExpiry(t *testing.T) {
	d := newV2(t)
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 50, Keys: kvs("soon"), Values: kvs("s")})
	d.apply(setC("stays", "x"))
	at := d.clock + 50
	var exists, strlen, read, looked bool
	var n int64
	require.NoError(t, d.s.ReadAt(at, func(v View) error {
		// fn may run twice (Read): every result is overwritten.
		var err error
		if exists, err = v.Exists([]byte("soon")); err != nil {
			return err
		}
		if _, strlen, err = v.StrLen([]byte("soon")); err != nil {
			return err
		}
		if read, err = v.ReadString([]byte("soon"), func([]byte) { t.Error("called for an expired key") }); err != nil {
			return err
		}
		if _, looked, err = v.Lookup([]byte("soon")); err != nil {
			return err
		}
		n, err = v.DBSize()
		return err
	}))
	require.False(t, exists || strlen || read || looked)
	require.Equal(t, int64(2), n, "DBSize counts it still, as Redis does until it is deleted")
	rnd := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		require.NoError(t, d.s.ReadAt(at, func(v View) error {
			k, ok, err := v.RandomKey(rnd)
			require.True(t, ok)
			require.Equal(t, "stays", string(k))
			return err
		}))
	}
	var keys []string
	require.NoError(t, d.s.ReadAt(at, func(v View) error {
		keys = keys[:0]
		_, err := v.Scan(nil, nil, func(k []byte) bool { keys = append(keys, string(k)); return true })
		return err
	}))
	require.Equal(t, []string{"stays"}, keys)
	// Before its time it is there.
	require.NoError(t, d.s.ReadAt(at-1, func(v View) error {
		ok, err := v.Exists([]byte("soon"))
		require.True(t, ok)
		return err
	}))
}

func TestV2DueKeysHonoursLimitAndTime(t *testing.T) {
	d := newV2(t)
	for i := range 20 {
		d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: int64(10 + i), Keys: kvs(fmt.Sprintf("k%02d", i)), Values: kvs("v")})
	}
	due := func(at uint64, limit int) []string {
		var out []string
		require.NoError(t, d.s.ReadAt(at, func(v View) error {
			out = out[:0]
			return v.DueKeys(limit, func(k []byte, _ keyspace.Stamp, exp uint64) bool {
				require.LessOrEqual(t, exp, at)
				out = append(out, string(k))
				return true
			})
		}))
		return out
	}
	require.Empty(t, due(d.clock+9, 100))
	require.Len(t, due(d.clock+14, 100), 5)
	require.Len(t, due(d.clock+100, 7), 7)
	require.Len(t, due(d.clock+100, 100), 20)
}

// TestV2DueInSlotResumesWhereItStopped: one slot's due keys in expiry
// order, bounded by limit and the view's time, from a given expiry, with
// the expiry of the first row not handed out.
func TestV2DueInSlotResumesWhereItStopped(t *testing.T) {
	d := newV2(t)
	keys := []string{"{s}a", "{s}b", "{s}c", "{s}d"}
	for i, k := range keys {
		d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: int64(10 * (i + 1)), Keys: kvs(k), Values: kvs("v")})
	}
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 5, Keys: kvs("other"), Values: kvs("v")})
	slot := keyspace.HashSlot([]byte("{s}"))
	base := d.clock
	due := func(at, from uint64, limit int) ([]string, uint64) {
		var out []string
		var next uint64
		require.NoError(t, d.s.ReadAt(at, func(v View) error {
			out = out[:0]
			var err error
			next, err = v.DueInSlot(slot, from, limit, func(k []byte, ver keyspace.Stamp, exp uint64) bool {
				require.LessOrEqual(t, exp, at)
				require.NotZero(t, ver.Index, "the version the conditional delete checks")
				out = append(out, string(k))
				return true
			})
			return err
		}))
		return out, next
	}
	got, next := due(base+25, 0, 10)
	require.Equal(t, []string{"{s}a", "{s}b"}, got, "only this slot, only what is due")
	require.Equal(t, base+30, next)
	got, next = due(base+25, 0, 1)
	require.Equal(t, []string{"{s}a"}, got)
	require.Equal(t, base+20, next, "stopped by the limit at a due row")
	got, next = due(base+100, base+20, 10)
	require.Equal(t, []string{"{s}b", "{s}c", "{s}d"}, got, "from skips the earlier rows")
	require.Equal(t, uint64(math.MaxUint64), next, "no rows left")
	got, next = due(base+5, 0, 10)
	require.Empty(t, got)
	require.Equal(t, base+10, next)
}

// Deleting a key whose elements live in another slot (after a cross-slot
// RENAME, which later issues add) drops the elements and the loan row.
func TestV2DeleteDropsForeignElementsAndLoan(t *testing.T) {
	d := newV2(t)
	key := []byte("h")
	other := (keyspace.HashSlot(key) + 1) % keyspace.SlotCount
	sid := keyspace.Stamp{Index: 1, Pos: 7}
	m := keyspace.Meta{Type: keyspace.TypeHash, Version: sid, LastWrite: sid, StorageID: sid, Foreign: true, ElemSlot: other, Len: 1}
	rec, err := keyspace.EncodeMeta(&m)
	require.NoError(t, err)
	b := d.s.db.NewBatch()
	require.NoError(t, b.Set(keyspace.MetaKey(key), rec, nil))
	require.NoError(t, b.Set(keyspace.AppendHashFieldKey(nil, other, sid, []byte("f")), []byte("v"), nil))
	require.NoError(t, b.Set(keyspace.AppendLoanKey(nil, other, sid), key, nil))
	require.NoError(t, b.Set(keyspace.KeyCountRow, keyspace.EncodeCount(1), nil))
	require.NoError(t, b.Commit(nil))

	r := d.apply(Command{Op: OpGetDel, Keys: [][]byte{key}})
	require.Equal(t, ResultError, r.Kind, "GETDEL of a hash is WRONGTYPE")
	require.Equal(t, int64(1), d.apply(Command{Op: OpDel, Keys: [][]byte{key}}).Int)
	require.Equal(t, 0, countElementRows(t, d.s))
	require.Equal(t, 0, countRows(t, d.s, 0x04), "loan row dropped")
	requireCountsMatchRows(t, d.s)
}

// TestV2LoweredKeepTTLSetKeepsTheTTL: a node that has not applied the raise
// yet sends SET ... KEEPTTL as an OpSet with the KEEPTTL bit; applied after
// the raise, it keeps the key's TTL. Without the bit an OpSet clears it.
func TestV2LoweredKeepTTLSetKeepsTheTTL(t *testing.T) {
	d := newV2(t)
	d.apply(Command{Op: OpSetX, Flags: SetPX, Delta: 60000, Keys: kvs("k"), Values: kvs("v")})
	d.apply(Command{Op: OpSet, Flags: SetKeepTTL, Keys: kvs("k"), Values: kvs("w")})
	info, ok := d.lookup("k")
	require.True(t, ok)
	require.NotZero(t, info.ExpireAt, "KEEPTTL kept the TTL")
	v, _ := d.get("k")
	require.Equal(t, "w", v)
	d.apply(Command{Op: OpSet, Keys: kvs("k"), Values: kvs("x")})
	info, ok = d.lookup("k")
	require.True(t, ok)
	require.Zero(t, info.ExpireAt, "a plain SET clears it")
}
