package kv

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// A differential test of apply at format 2 against a plain in-memory
// model with expiry: random string commands, random apply times (stamps
// that sometimes go back), applied twice, once entry by entry and once in
// random groups with a random, small apply-batch budget (so chunks end in
// random places). Every reply must equal the model's, both stores must
// hash alike, and the counts must equal the rows they count.

type mval struct {
	v   string
	exp uint64
}

type model struct {
	m   map[string]mval
	now uint64
}

func (md *model) live(k string) (mval, bool) {
	e, ok := md.m[k]
	if ok && e.exp != 0 && e.exp <= md.now {
		delete(md.m, k)
		return mval{}, false
	}
	return e, ok
}

func (md *model) put(k string, e mval) {
	md.m[k] = e
	md.live(k) // an expiry at or before now deletes at once
}

func mExp(now uint64, at int64) uint64 { return expireValue(now, at) }

func (md *model) apply(c *Command) Result {
	ok := Result{Kind: ResultOK}
	k := ""
	if len(c.Keys) > 0 {
		k = string(c.Keys[0])
	}
	switch c.Op {
	case OpSet, OpSetX:
		old, found := md.live(k)
		r := ok
		if c.Flags&SetGet != 0 {
			r = Result{Kind: ResultNil}
			if found {
				r = Result{Kind: ResultBytes, Bytes: []byte(old.v)}
			}
		}
		if (c.Flags&SetNX != 0 && found) || (c.Flags&SetXX != 0 && !found) {
			if c.Flags&SetGet == 0 {
				r = Result{Kind: ResultNil}
			}
			return r
		}
		var exp uint64
		if at, has := ttlOf(md.now, c); has {
			exp = mExp(md.now, at)
		} else if c.Flags&SetKeepTTL != 0 && found {
			exp = old.exp
		}
		md.put(k, mval{string(c.Values[0]), exp})
		return r
	case OpGetDel:
		old, found := md.live(k)
		if !found {
			return Result{Kind: ResultNil}
		}
		delete(md.m, k)
		return Result{Kind: ResultBytes, Bytes: []byte(old.v)}
	case OpDel:
		n := int64(0)
		for _, key := range c.Keys {
			if _, found := md.live(string(key)); found {
				delete(md.m, string(key))
				n++
			}
		}
		return Result{Kind: ResultInt, Int: n}
	case OpIncrBy:
		old, found := md.live(k)
		var cur int64
		if found {
			var err error
			if cur, err = parseRedisInt([]byte(old.v)); err != nil {
				return Result{Kind: ResultError, Err: ErrTextNotInteger}
			}
		}
		if (c.Delta > 0 && cur > math.MaxInt64-c.Delta) || (c.Delta < 0 && cur < math.MinInt64-c.Delta) {
			return Result{Kind: ResultError, Err: ErrTextOverflow}
		}
		cur += c.Delta
		md.m[k] = mval{strconv.FormatInt(cur, 10), old.exp}
		return Result{Kind: ResultInt, Int: cur}
	case OpAppend:
		old, _ := md.live(k)
		old.v += string(c.Values[0])
		md.m[k] = old
		return Result{Kind: ResultInt, Int: int64(len(old.v))}
	case OpMSet:
		for i, key := range c.Keys {
			md.m[string(key)] = mval{v: string(c.Values[i])}
		}
		return ok
	case OpFlushAll:
		clear(md.m)
		return ok
	case OpExpire:
		old, found := md.live(k)
		if !found {
			return Result{Kind: ResultInt}
		}
		at := c.Delta
		if c.Flags&ExpireAbs == 0 {
			at = addTime(md.now, c.Delta)
		}
		inf := old.exp == 0
		switch {
		case c.Flags&ExpireNX != 0 && !inf,
			c.Flags&ExpireXX != 0 && inf,
			c.Flags&ExpireGT != 0 && (inf || at <= int64(old.exp)),
			c.Flags&ExpireLT != 0 && !inf && at >= int64(old.exp):
			return Result{Kind: ResultInt}
		}
		old.exp = mExp(md.now, at)
		md.put(k, old)
		return Result{Kind: ResultInt, Int: 1}
	case OpPersist:
		old, found := md.live(k)
		if !found || old.exp == 0 {
			return Result{Kind: ResultInt}
		}
		old.exp = 0
		md.m[k] = old
		return Result{Kind: ResultInt, Int: 1}
	case OpGetEx:
		old, found := md.live(k)
		if !found {
			return Result{Kind: ResultNil}
		}
		if at, has := ttlOf(md.now, c); has {
			old.exp = mExp(md.now, at)
		} else if c.Flags&GetExPersist != 0 {
			old.exp = 0
		}
		md.put(k, old)
		return Result{Kind: ResultBytes, Bytes: []byte(old.v)}
	case OpSetRange:
		old, found := md.live(k)
		v := c.Values[0]
		if len(v) == 0 {
			return Result{Kind: ResultInt, Int: int64(len(old.v))}
		}
		b := []byte(old.v)
		if end := int(c.Delta) + len(v); end > len(b) {
			b = append(b, make([]byte, end-len(b))...)
		}
		copy(b[c.Delta:], v)
		if !found {
			old = mval{}
		}
		old.v = string(b)
		md.m[k] = old
		return Result{Kind: ResultInt, Int: int64(len(b))}
	case OpIncrByFloat:
		old, found := md.live(k)
		var cur []byte
		if found {
			cur = []byte(old.v)
		}
		out, errText := AddRedisFloats(cur, c.Values[0])
		if errText != "" {
			return Result{Kind: ResultError, Err: errText}
		}
		old.v = string(out)
		md.m[k] = old
		return Result{Kind: ResultBytes, Bytes: out}
	case OpMSetNX:
		for _, key := range c.Keys {
			if _, found := md.live(string(key)); found {
				return Result{Kind: ResultInt, Int: 0}
			}
		}
		for i, key := range c.Keys {
			md.m[string(key)] = mval{v: string(c.Values[i])}
		}
		return Result{Kind: ResultInt, Int: 1}
	case OpRename:
		old, found := md.live(k)
		dst := string(c.Keys[1])
		nx := c.Flags&RenameNX != 0
		if !found {
			return Result{Kind: ResultError, Err: ErrTextNoSuchKey}
		}
		if _, exists := md.live(dst); (exists && nx) || (k == dst && nx) {
			return Result{Kind: ResultInt, Int: 0}
		}
		delete(md.m, k)
		md.m[dst] = old
		if nx {
			return Result{Kind: ResultInt, Int: 1}
		}
		return ok
	case OpCopy:
		old, found := md.live(k)
		dst := string(c.Keys[1])
		if !found {
			return Result{Kind: ResultInt, Int: 0}
		}
		if _, exists := md.live(dst); exists && c.Flags&CopyReplace == 0 {
			return Result{Kind: ResultInt, Int: 0}
		}
		md.m[dst] = old
		return Result{Kind: ResultInt, Int: 1}
	default:
	}
	panic(fmt.Sprintf("model: op %d", c.Op))
}

func randomV2Command(rng *rand.Rand, now uint64) Command {
	key := func() []byte { return []byte(fmt.Sprintf("k%d", rng.IntN(6))) }
	val := func() []byte {
		switch rng.IntN(4) {
		case 0:
			return []byte(strconv.Itoa(rng.IntN(100)))
		case 1:
			return bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, 900+rng.IntN(5000))
		}
		return []byte(fmt.Sprintf("v%d", rng.IntN(1000)))
	}
	ttl := func() (SetFlags, int64) {
		switch rng.IntN(4) {
		case 0:
			return SetPX, int64(1 + rng.IntN(300))
		case 1:
			return SetPXAT, int64(now) - 50 + int64(rng.IntN(300))
		case 2:
			return SetKeepTTL, 0
		}
		return 0, 0
	}
	switch rng.IntN(17) {
	case 11, 12:
		off := int64(rng.IntN(1500))
		if rng.IntN(4) == 0 {
			off = int64(rng.IntN(20000))
		}
		v := val()
		if rng.IntN(8) == 0 {
			v = nil
		}
		return Command{Op: OpSetRange, Delta: off, Keys: [][]byte{key()}, Values: [][]byte{v}}
	case 13:
		return Command{Op: OpIncrByFloat, Keys: [][]byte{key()}, Values: [][]byte{[]byte([]string{"1.5", "-0.25", "5.0e3", "3"}[rng.IntN(4)])}}
	case 14:
		return Command{Op: OpMSetNX, Keys: [][]byte{key(), key()}, Values: [][]byte{val(), val()}}
	case 15:
		return Command{Op: OpRename, Flags: []SetFlags{0, RenameNX}[rng.IntN(2)], Keys: [][]byte{key(), key()}}
	case 16:
		a, b := key(), key()
		if bytes.Equal(a, b) {
			b = append(b, 'c')
		}
		return Command{Op: OpCopy, Flags: []SetFlags{0, CopyReplace}[rng.IntN(2)], Keys: [][]byte{a, b}}
	case 0, 1:
		f, d := ttl()
		if f == SetPXAT && d <= 0 {
			f, d = 0, 0
		}
		f |= []SetFlags{0, SetNX, SetXX, SetGet}[rng.IntN(4)]
		return Command{Op: OpSetX, Flags: f, Delta: d, Keys: [][]byte{key()}, Values: [][]byte{val()}}
	case 2:
		return Command{Op: OpSet, Keys: [][]byte{key()}, Values: [][]byte{val()}}
	case 3:
		return Command{Op: OpAppend, Keys: [][]byte{key()}, Values: [][]byte{val()}}
	case 4:
		return Command{Op: OpIncrBy, Keys: [][]byte{key()}, Delta: int64(rng.IntN(10)) - 3}
	case 5:
		return Command{Op: OpDel, Keys: [][]byte{key(), key()}}
	case 6:
		return Command{Op: OpGetDel, Keys: [][]byte{key()}}
	case 7:
		return Command{Op: OpMSet, Keys: [][]byte{key(), key()}, Values: [][]byte{val(), val()}}
	case 8:
		f := []SetFlags{0, ExpireNX, ExpireXX, ExpireGT, ExpireLT, ExpireXX | ExpireGT}[rng.IntN(6)]
		d := int64(rng.IntN(400)) - 50
		if rng.IntN(2) == 0 {
			f |= ExpireAbs
			d += int64(now)
		}
		return Command{Op: OpExpire, Flags: f, Delta: d, Keys: [][]byte{key()}}
	case 9:
		return Command{Op: OpPersist, Keys: [][]byte{key()}}
	}
	if rng.IntN(30) == 0 {
		return Command{Op: OpFlushAll}
	}
	f, d := ttl()
	if f == SetKeepTTL || (f == SetPXAT && d <= 0) {
		f, d = GetExPersist, 0
	}
	return Command{Op: OpGetEx, Flags: f, Delta: d, Keys: [][]byte{key()}}
}

func TestV2MatchesModelWhereverChunksEnd(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			md := &model{m: map[string]mval{}}
			var log []Entry
			var want []Result
			clock := uint64(1000)
			applyTime := clock
			for i := uint64(2); i < 600; i++ {
				clock += uint64(rng.IntN(40))
				stamp := clock
				if rng.IntN(10) == 0 {
					stamp -= uint64(rng.IntN(100)) // a leader whose clock is behind
				}
				applyTime = max(applyTime, stamp)
				md.now = applyTime
				c := randomV2Command(rng, applyTime)
				require.NoError(t, c.Validate(), "%+v", c)
				want = append(want, md.apply(&c))
				log = append(log, Entry{Index: i, Data: enc(c), Stamp: stamp})
			}

			one := openV2(t)
			for i, e := range log {
				res, err := one.Apply([]Entry{e})
				require.NoError(t, err)
				requireSameResult(t, want[i], res[0], "entry %d", e.Index)
				requireDeclaredReply(t, e.Data, res[0])
			}

			cfg := DefaultConfig(t.TempDir())
			cfg.CacheBytes, cfg.MaxBatchBytes = 8<<20, 1+rng.IntN(64<<10)
			grouped, err := Open(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, grouped.Close()) })
			_, err = grouped.Apply([]Entry{{Index: 1, Data: enc(*NewRaiseFormat(FormatV2)), Stamp: 1000}})
			require.NoError(t, err)
			for at := 0; at < len(log); {
				n := 1 + rng.IntN(40)
				end := min(at+n, len(log))
				res, err := grouped.Apply(log[at:end])
				require.NoError(t, err)
				for j := range res {
					requireSameResult(t, want[at+j], res[j], "grouped entry %d", log[at+j].Index)
				}
				at = end
			}

			// The final contents equal the model's, at the apply time.
			var keys, vals [][]byte
			for k, e := range md.m {
				if _, ok := md.live(k); ok {
					keys, vals = append(keys, []byte(k)), append(vals, []byte(e.v))
				}
			}
			for _, s := range []*Store{one, grouped} {
				require.Equal(t, applyTime, s.ApplyTime())
				for i := range 12 {
					k := fmt.Sprintf("k%d", i%6)
					if i >= 6 {
						k += "c"
					}
					var got []byte
					var found bool
					require.NoError(t, s.Read(func(v View) error {
						var err error
						got, found, err = v.Get([]byte(k))
						return err
					}))
					e, ok := md.live(k)
					require.Equal(t, ok, found, "key %s", k)
					require.Equal(t, e.v, string(got), "key %s", k)
				}
				requireCountsMatchRows(t, s)
			}
			_, h1, err := one.Hash()
			require.NoError(t, err)
			_, h2, err := grouped.Hash()
			require.NoError(t, err)
			require.Equal(t, h1, h2)
			// The hash covers expiring keys too, so it equals DigestOf
			// only when none of the live keys has an expiry.
			noTTL := true
			for _, e := range md.m {
				noTTL = noTTL && e.exp == 0
			}
			if noTTL {
				require.Equal(t, DigestOf(FormatV2, keys, vals), h1)
			}
		})
	}
}

func requireSameResult(t *testing.T, want, got Result, msgAndArgs ...any) {
	t.Helper()
	if want.Kind == ResultBytes && len(want.Bytes) == 0 {
		want.Bytes = nil
	}
	if got.Kind == ResultBytes && len(got.Bytes) == 0 {
		got.Bytes = nil
	}
	require.Equal(t, want, got, msgAndArgs...)
}

// requireCountsMatchRows checks the count rows against the rows they
// count: metadata rows, and expiry-index rows each matching its key's
// metadata.
func requireCountsMatchRows(t *testing.T, s *Store) {
	t.Helper()
	keys, exps, err := readCounts(s.db)
	require.NoError(t, err)
	var metas, expRows uint64
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] >= 0x40 {
			continue
		}
		switch k[2] {
		case 0x01:
			metas++
			m, err := keyspace.DecodeMeta(it.Value())
			require.NoError(t, err)
			if m.ExpireAt != 0 {
				_, at, _, _ := keyspace.ParseExpiryKey(keyspace.AppendExpiryKey(nil, 0, m.ExpireAt, nil))
				require.Equal(t, m.ExpireAt, at)
				_, found, err := getRaw(s.db, keyspace.AppendExpiryKey(nil, binaryBE16(k), m.ExpireAt, k[3:]), func([]byte) {})
				require.NoError(t, err)
				require.True(t, found, "expiry row of %q", k[3:])
			}
		case 0x03:
			expRows++
		}
	}
	require.NoError(t, it.Close())
	requireElementsOwned(t, s)
	require.Equal(t, metas, keys, "key count")
	require.Equal(t, expRows, exps, "expire count")
}

// requireElementsOwned checks the element-row invariants RENAME relies
// on: every chunk row belongs to a key's storage id, in the slot its
// metadata says, and a loan row exists exactly for each Foreign key,
// naming it.
func requireElementsOwned(t *testing.T, s *Store) {
	t.Helper()
	type owner struct {
		slot uint16
		sid  keyspace.Stamp
	}
	owners := map[owner]string{}
	loans := map[owner]string{}
	it, err := s.db.NewIter(nil)
	require.NoError(t, err)
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] >= 0x40 || k[2] != 0x01 {
			continue
		}
		m, err := keyspace.DecodeMeta(it.Value())
		require.NoError(t, err)
		if hasElems(&m) {
			owners[owner{m.ElementsSlot(binaryBE16(k)), m.StorageID}] = string(k[3:])
			if m.Foreign {
				loans[owner{m.ElemSlot, m.StorageID}] = string(k[3:])
			}
		}
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if k[0] >= 0x40 {
			continue
		}
		switch k[2] {
		case 0x02:
			sid, err := keyspace.ParseStamp(k[3:15])
			require.NoError(t, err)
			_, found := owners[owner{binaryBE16(k), sid}]
			require.True(t, found, "orphan chunk row %x", k)
		case 0x04:
			sid, err := keyspace.ParseStamp(k[3:15])
			require.NoError(t, err)
			o := owner{binaryBE16(k), sid}
			require.Equal(t, loans[o], string(it.Value()), "loan row %x", k)
			delete(loans, o)
		}
	}
	require.NoError(t, it.Close())
	require.Empty(t, loans, "foreign keys without a loan row")
}

// requireDeclaredReply checks a result against its op's registry entry: an
// error reply, or one of the kinds the entry declares.
func requireDeclaredReply(t *testing.T, data []byte, r Result) {
	t.Helper()
	c, err := DecodeCommand(data)
	require.NoError(t, err)
	spec := lookupOp(c.Op)
	require.NotNil(t, spec, "op %d", c.Op)
	if r.Kind == ResultError {
		return
	}
	require.Contains(t, spec.replies, r.Kind, "%s answered kind %d", spec.name, r.Kind)
}

// TestOpRegistryRepliesAreDeclared: every op's registry entry is complete,
// apply1 is nil exactly above format 1, and the model test's results (every
// format 2 op, thousands of times) fall within each op's declared replies
// (requireDeclaredReply above).
func TestOpRegistryRepliesAreDeclared(t *testing.T) {
	for op := OpInvalid; op < opMax; op++ {
		spec := lookupOp(op)
		if op == OpInvalid || op == OpBatch {
			require.Nil(t, spec, "op %d", op)
			continue
		}
		if spec == nil && op >= firstFamilyOp {
			continue // a number the collection families have not used yet
		}
		require.NotNil(t, spec, "op %d has no registry entry", op)
		require.NotEmpty(t, spec.name)
		require.NotEmpty(t, spec.replies, spec.name)
		require.NotNil(t, spec.validate, spec.name)
		require.NotNil(t, spec.apply2, spec.name)
		require.Equal(t, spec.minFormat == FormatV1, spec.apply1 != nil, spec.name)
		require.Equal(t, spec.minFormat, (&Command{Op: op}).MinFormat(), spec.name)
	}
	require.Nil(t, lookupOp(opMax))
	require.Nil(t, lookupOp(255))
}
