package kv

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// hsModel is the reference the hash and set ops are checked against: a
// key holds a string, a hash or a set (exactly one of the three).
type hsModel struct {
	str  map[string]string
	hash map[string]map[string]string
	set  map[string]map[string]bool
}

func (m *hsModel) exists(k string) bool {
	_, s := m.str[k]
	_, h := m.hash[k]
	_, t := m.set[k]
	return s || h || t
}

func (m *hsModel) del(k string) {
	delete(m.str, k)
	delete(m.hash, k)
	delete(m.set, k)
}

// wrongFor reports whether k exists with a type other than want ("hash",
// "set").
func (m *hsModel) wrongFor(k, want string) bool {
	if _, ok := m.str[k]; ok {
		return true
	}
	if _, ok := m.hash[k]; ok && want != "hash" {
		return true
	}
	if _, ok := m.set[k]; ok && want != "set" {
		return true
	}
	return false
}

// apply computes c's reply on the model and changes it.
func (m *hsModel) apply(c Command) Result {
	key := func(i int) string { return string(c.Keys[i]) }
	switch c.Op {
	case OpSet:
		m.del(key(0))
		m.str[key(0)] = string(c.Values[0])
		return Result{Kind: ResultOK}
	case OpDel:
		n := int64(0)
		for i := range c.Keys {
			if m.exists(key(i)) {
				n++
				m.del(key(i))
			}
		}
		return intRes(n)
	case OpHSet:
		if m.wrongFor(key(0), "hash") {
			return wrongType()
		}
		h := m.hash[key(0)]
		if h == nil {
			h = map[string]string{}
			m.hash[key(0)] = h
		}
		n := int64(0)
		for p := 0; p < len(c.Values); p += 2 {
			f := string(c.Values[p])
			if _, ok := h[f]; !ok {
				n++
			}
			h[f] = string(c.Values[p+1])
		}
		return intRes(n)
	case OpHDel:
		if m.wrongFor(key(0), "hash") {
			return wrongType()
		}
		h := m.hash[key(0)]
		n := int64(0)
		for _, f := range c.Values {
			if _, ok := h[string(f)]; ok {
				n++
				delete(h, string(f))
			}
		}
		if h != nil && len(h) == 0 {
			delete(m.hash, key(0))
		}
		return intRes(n)
	case OpHIncrBy:
		if m.wrongFor(key(0), "hash") {
			return wrongType()
		}
		h := m.hash[key(0)]
		cur := int64(0)
		if v, ok := h[string(c.Values[0])]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Result{Kind: ResultError, Err: ErrTextHashNotInteger}
			}
			cur = n
		}
		if h == nil {
			h = map[string]string{}
			m.hash[key(0)] = h
		}
		cur += c.Delta
		h[string(c.Values[0])] = strconv.FormatInt(cur, 10)
		return intRes(cur)
	case OpSAdd, OpSRem:
		if m.wrongFor(key(0), "set") {
			return wrongType()
		}
		s := m.set[key(0)]
		if s == nil {
			if c.Op == OpSRem {
				return intRes(0)
			}
			s = map[string]bool{}
			m.set[key(0)] = s
		}
		n := int64(0)
		for _, v := range c.Values {
			if s[string(v)] == (c.Op == OpSRem) {
				n++
			}
			if c.Op == OpSAdd {
				s[string(v)] = true
			} else {
				delete(s, string(v))
			}
		}
		if len(s) == 0 {
			delete(m.set, key(0))
		}
		return intRes(n)
	case OpSMove:
		src, dst, mem := key(0), key(1), string(c.Values[0])
		if !m.exists(src) {
			return intRes(0)
		}
		if m.wrongFor(src, "set") || m.wrongFor(dst, "set") {
			return wrongType()
		}
		if src == dst {
			return intRes(boolInt(m.set[src][mem]))
		}
		if !m.set[src][mem] {
			return intRes(0)
		}
		delete(m.set[src], mem)
		if len(m.set[src]) == 0 {
			delete(m.set, src)
		}
		if m.set[dst] == nil {
			m.set[dst] = map[string]bool{}
		}
		m.set[dst][mem] = true
		return intRes(1)
	case OpSStore:
		for i := 1; i < len(c.Keys); i++ {
			if m.wrongFor(key(i), "set") {
				return wrongType()
			}
		}
		out := map[string]bool{}
		switch c.Flags {
		case SetUnion:
			for i := 1; i < len(c.Keys); i++ {
				for v := range m.set[key(i)] {
					out[v] = true
				}
			}
		case SetInter:
			for v := range m.set[key(1)] {
				in := true
				for i := 2; i < len(c.Keys); i++ {
					in = in && m.set[key(i)][v]
				}
				if in {
					out[v] = true
				}
			}
		case SetDiff:
			for v := range m.set[key(1)] {
				in := false
				for i := 2; i < len(c.Keys); i++ {
					in = in || m.set[key(i)][v]
				}
				if !in {
					out[v] = true
				}
			}
		default:
			panic(fmt.Sprintf("model: set operation %d", c.Flags))
		}
		m.del(key(0))
		if len(out) > 0 {
			m.set[key(0)] = out
		}
		return intRes(int64(len(out)))
	case OpRename:
		src, dst := key(0), key(1)
		if !m.exists(src) {
			return Result{Kind: ResultError, Err: ErrTextNoSuchKey}
		}
		if src == dst {
			return Result{Kind: ResultOK}
		}
		s, sok := m.str[src]
		h, hok := m.hash[src]
		t, tok := m.set[src]
		m.del(src)
		m.del(dst)
		switch {
		case sok:
			m.str[dst] = s
		case hok:
			m.hash[dst] = h
		case tok:
			m.set[dst] = t
		}
		return Result{Kind: ResultOK}
	case OpCopy:
		src, dst := key(0), key(1)
		if !m.exists(src) || (m.exists(dst) && c.Flags&CopyReplace == 0) {
			return intRes(0)
		}
		s, sok := m.str[src]
		h, hok := m.hash[src]
		t, tok := m.set[src]
		m.del(dst)
		switch {
		case sok:
			m.str[dst] = s
		case hok:
			m.hash[dst] = maps.Clone(h)
		case tok:
			m.set[dst] = maps.Clone(t)
		}
		return intRes(1)
	default:
		panic(fmt.Sprintf("model: op %d", c.Op))
	}
}

// TestHashSetOpsMatchModel applies random hash, set and key commands in
// random chunks (several entries per Apply, so ops meet rows their chunk
// wrote) and checks every reply and, after each chunk, every key's
// content against the model, and that the store holds exactly the
// element rows of the live collections (nothing leaked by a delete, an
// overwrite, a RENAME or a STORE into a source).
func TestHashSetOpsMatchModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(15, 0x5e7))
	d := newHS(t)
	m := &hsModel{str: map[string]string{}, hash: map[string]map[string]string{}, set: map[string]map[string]bool{}}
	keys := []string{"a", "b", "c", "{a}x", "d"}
	k := func() []byte { return []byte(keys[rnd.IntN(len(keys))]) }
	elem := func() []byte { return []byte(strconv.Itoa(rnd.IntN(8))) }
	val := func() []byte {
		if rnd.IntN(4) == 0 {
			return []byte("x")
		}
		return []byte(strconv.Itoa(rnd.IntN(100)))
	}
	elems := func() [][]byte {
		out := make([][]byte, 1+rnd.IntN(3))
		for i := range out {
			out[i] = elem()
		}
		return out
	}
	gen := func() Command {
		switch rnd.IntN(14) {
		case 0:
			return Command{Op: OpSet, Keys: [][]byte{k()}, Values: [][]byte{val()}}
		case 1:
			return Command{Op: OpDel, Keys: [][]byte{k(), k()}}
		case 2, 3:
			var fv [][]byte
			for range 1 + rnd.IntN(3) {
				fv = append(fv, elem(), val())
			}
			return Command{Op: OpHSet, Keys: [][]byte{k()}, Values: fv}
		case 4:
			return Command{Op: OpHDel, Keys: [][]byte{k()}, Values: elems()}
		case 5:
			return Command{Op: OpHIncrBy, Keys: [][]byte{k()}, Values: [][]byte{elem()}, Delta: int64(rnd.IntN(10)) - 5}
		case 6, 7:
			return Command{Op: OpSAdd, Keys: [][]byte{k()}, Values: elems()}
		case 8:
			return Command{Op: OpSRem, Keys: [][]byte{k()}, Values: elems()}
		case 9:
			return Command{Op: OpSMove, Keys: [][]byte{k(), k()}, Values: [][]byte{elem()}}
		case 10:
			op := []SetFlags{SetInter, SetUnion, SetDiff}[rnd.IntN(3)]
			return Command{Op: OpSStore, Flags: op, Keys: [][]byte{k(), k(), k()}}
		case 11:
			return Command{Op: OpRename, Keys: [][]byte{k(), k()}}
		default:
			src, dst := k(), k()
			for string(dst) == string(src) {
				dst = k()
			}
			return Command{Op: OpCopy, Flags: SetFlags(rnd.IntN(2)) * CopyReplace, Keys: [][]byte{src, dst}}
		}
	}
	for round := range 400 {
		cmds := make([]Command, 1+rnd.IntN(6))
		for i := range cmds {
			cmds[i] = gen()
		}
		got := d.chunk(cmds...)
		for i, c := range cmds {
			want := m.apply(c)
			require.Equal(t, want, got[i], "round %d, command %d: op %d keys %q values %q", round, i, c.Op, c.Keys, c.Values)
		}
		d.takeEvents()
		rows := 0
		for _, key := range keys {
			switch {
			case m.hash[key] != nil:
				require.Equal(t, m.hash[key], d.hash(key), "round %d: hash %s", round, key)
				rows += len(m.hash[key])
			case m.set[key] != nil:
				want := slices.Sorted(maps.Keys(m.set[key]))
				require.Equal(t, want, d.members(key), "round %d: set %s", round, key)
				rows += len(want)
			default:
				v, ok := m.str[key]
				ki, found := lookupV3(t, d.s, key)
				require.Equal(t, ok, found, "round %d: key %s", round, key)
				if ok {
					require.Equal(t, uint64(len(v)), ki.Len)
				}
			}
		}
		require.Equal(t, rows, countElementRows(t, d.s), "round %d: element rows", round)
		kc, _ := d.counts()
		require.Equal(t, uint64(len(m.str)+len(m.hash)+len(m.set)), kc, "round %d: key count", round)
	}
}
