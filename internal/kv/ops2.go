package kv

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// The remaining string and key commands of issue #14 section 4, all at
// format 2: SETRANGE, INCRBYFLOAT, MSETNX, RENAME/RENAMENX and COPY.

// OpRename and OpCopy flags (Command.Flags).
const (
	RenameNX    SetFlags = 1 << 0 // OpRename: only if the destination does not exist
	CopyReplace SetFlags = 1 << 0 // OpCopy: replace an existing destination
)

// Redis error texts of these commands.
const (
	ErrTextNotFloat  = "ERR value is not a valid float"
	ErrTextNaN       = "ERR increment would produce NaN or Infinity"
	ErrTextNoSuchKey = "ERR no such key"
)

// maxFloatChars is the longest text Redis parses as a float
// (MAX_LONG_DOUBLE_CHARS).
const maxFloatChars = 5 * 1024

// validateOps2 checks the shape of the ops of this file.
func (c *Command) validateOps2() error {
	switch c.Op {
	case OpSetRange:
		if len(c.Keys) != 1 || len(c.Values) != 1 || c.Flags != 0 {
			return fmt.Errorf("kv: SETRANGE needs one key and one value")
		}
		if c.Delta < 0 {
			return fmt.Errorf("kv: SETRANGE offset %d is negative", c.Delta)
		}
	case OpIncrByFloat:
		if len(c.Keys) != 1 || len(c.Values) != 1 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: INCRBYFLOAT needs one key and one increment")
		}
		// A malformed increment is not refused here: apply replies the
		// error after WRONGTYPE and the current value's check, in Redis's
		// order.
	case OpMSetNX:
		if len(c.Keys) == 0 || len(c.Keys) != len(c.Values) || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: MSETNX needs key/value pairs")
		}
	case OpRename, OpCopy:
		if len(c.Keys) != 2 || len(c.Values) != 0 || c.Delta != 0 || c.Flags&^RenameNX != 0 {
			return fmt.Errorf("kv: op %d needs a source and a destination key", c.Op)
		}
		if c.Op == OpCopy && bytes.Equal(c.Keys[0], c.Keys[1]) {
			return fmt.Errorf("kv: COPY needs two different keys")
		}
	default:
		return fmt.Errorf("kv: op %d is not validated here", c.Op)
	}
	return nil
}

// INCRBYFLOAT arithmetic. Redis computes in C long double, which on the
// x86-64 machines it is built for is the x87 80-bit format (a 64-bit
// mantissa), and replies %.17Lf with trailing zeros trimmed. We compute in
// math/big at the same 64-bit precision and print the same way, so the
// usual results match Redis's to the digit ("10.6" for 10.5+0.1, where
// float64 would give 10.600000000000001 or worse).
//
// Determinism: math/big is integer arithmetic in software, so every
// replica on every architecture computes the same bits; no hardware float
// operation (and so no fused multiply-add) is involved. The op carries
// the client's increment text and apply parses, adds and formats: the
// stored value is a pure function of the log.
const (
	longDoublePrec   = 64     // x87 extended mantissa bits
	longDoubleMaxExp = 16384  // |x| < 2^16384
	longDoubleMinExp = -16444 // the smallest denormal is 2^-16445
)

// ParseRedisFloat parses b as Redis parses a float argument or value
// (string2ld): no leading space, no trailing bytes, at most 5 KiB, not
// NaN, and within long double's range ("inf" parses; adding it fails).
func ParseRedisFloat(b []byte) (*big.Float, bool) {
	if len(b) == 0 || len(b) > maxFloatChars {
		return nil, false
	}
	switch b[0] {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return nil, false
	}
	f, _, err := big.ParseFloat(string(b), 10, longDoublePrec, big.ToNearestEven)
	if err != nil {
		return nil, false
	}
	if f.IsInf() || f.Sign() == 0 {
		return f, true
	}
	if e := f.MantExp(nil); e > longDoubleMaxExp || e < longDoubleMinExp {
		return nil, false // strtold's ERANGE
	}
	return f, true
}

// AddRedisFloats is INCRBYFLOAT's arithmetic: cur (nil for a missing key)
// plus incr, as the text Redis would store and reply, or Redis's error.
func AddRedisFloats(cur []byte, incr []byte) ([]byte, string) {
	a := new(big.Float).SetPrec(longDoublePrec)
	if cur != nil {
		var ok bool
		if a, ok = ParseRedisFloat(cur); !ok {
			return nil, ErrTextNotFloat
		}
	}
	b, ok := ParseRedisFloat(incr)
	if !ok {
		return nil, ErrTextNotFloat
	}
	if a.IsInf() || b.IsInf() {
		return nil, ErrTextNaN // inf + x is inf, inf - inf is NaN
	}
	sum := new(big.Float).SetPrec(longDoublePrec).SetMode(big.ToNearestEven).Add(a, b)
	if sum.Sign() != 0 && sum.MantExp(nil) > longDoubleMaxExp {
		return nil, ErrTextNaN // overflows long double to infinity
	}
	out := sum.Append(nil, 'f', 17)
	if bytes.IndexByte(out, '.') >= 0 {
		out = bytes.TrimRight(out, "0")
		out = bytes.TrimSuffix(out, []byte("."))
	}
	if string(out) == "-0" {
		// Redis prints no negative zero (nor a negative that rounds to it).
		out = []byte("0")
	}
	return out, ""
}

func applySetRange(w *writeSet, c *Command) (Result, error) {
	i, err := w.getString2(c.Keys[0])
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	s := &w.s2[i]
	v := c.Values[0]
	// Redis's order: an empty value changes nothing and replies the
	// current length, before any size check.
	if len(v) == 0 {
		if !s.exists {
			return Result{Kind: ResultInt, Int: 0}, nil
		}
		return Result{Kind: ResultInt, Int: int64(s.cur.Len)}, nil
	}
	if uint64(c.Delta) > MaxStringBytes-uint64(len(v)) || len(v) > MaxStringBytes {
		return Result{Kind: ResultError, Err: ErrTextTooLarge}, nil
	}
	n, err := w.setRange2(i, uint64(c.Delta), v)
	if err != nil {
		return Result{}, err
	}
	w.event(c.Keys[0], EventSetRange)
	return Result{Kind: ResultInt, Int: int64(n)}, nil
}

// applyIncrByFloat adds on apply with AddRedisFloats: deterministic on
// every replica and architecture (see there).
func applyIncrByFloat(w *writeSet, c *Command) (Result, error) {
	i, err := w.getString2(c.Keys[0])
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	var cur []byte
	exists := w.s2[i].exists
	if exists {
		if w.s2[i].cur.Len > maxFloatChars {
			return Result{Kind: ResultError, Err: ErrTextNotFloat}, nil
		}
		if cur, err = w.value(i); err != nil {
			return Result{}, err
		}
		if cur == nil {
			cur = []byte{}
		}
	}
	out, errText := AddRedisFloats(cur, c.Values[0])
	if errText != "" {
		return Result{Kind: ResultError, Err: errText}, nil
	}
	if exists {
		w.setValueKeep(i, out) // keeps the expiry, as in Redis
	} else {
		w.setStr2(i, out, true, 0)
	}
	w.event(c.Keys[0], EventIncrByFloat)
	return Result{Kind: ResultBytes, Bytes: bytes.Clone(out)}, nil
}

func applyMSetNX(w *writeSet, c *Command) (Result, error) {
	idx := make([]int, len(c.Keys))
	for k, key := range c.Keys {
		i, err := w.load(key)
		if err != nil {
			return Result{}, err
		}
		if w.s2[i].exists {
			return Result{Kind: ResultInt, Int: 0}, nil
		}
		idx[k] = i
	}
	for k, i := range idx {
		w.setStr2(i, c.Values[k], false, 0)
		w.event(c.Keys[k], EventSet)
	}
	return Result{Kind: ResultInt, Int: 1}, nil
}

// applyRename moves the source's metadata to the destination, O(1) in the
// value's size (docs/keyspace.md, RENAME): the element rows stay under
// their storage id and in their slot. When that slot is not the
// destination's own, the destination's record says so (Foreign, ElemSlot)
// and writeTo2 keeps a loan row in the elements slot naming the key.
//
// Invariants (checked by writeTo2 when a chunk renamed anything): an
// element set is dropped iff no key references its storage id at the end
// of the chunk, and a loan row exists iff the key that references the set
// is Foreign.
func applyRename(w *writeSet, c *Command) (Result, error) {
	src, dst := c.Keys[0], c.Keys[1]
	si, err := w.load(src)
	if err != nil {
		return Result{}, err
	}
	if !w.s2[si].exists {
		return Result{Kind: ResultError, Err: ErrTextNoSuchKey}, nil
	}
	nx := c.Flags&RenameNX != 0
	if bytes.Equal(src, dst) {
		if nx {
			return Result{Kind: ResultInt, Int: 0}, nil
		}
		return Result{Kind: ResultOK}, nil
	}
	di, err := w.load(dst)
	if err != nil {
		return Result{}, err
	}
	if nx && w.s2[di].exists {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	w.touch(si) // a v1 source gets its storage id here
	if w.s2[di].exists {
		w.del2(di)
	}
	st := w.stamp()
	s, d := &w.s2[si], &w.s2[di]
	m := s.cur
	m.Version, m.LastWrite = st, st
	if hasElems(&m) {
		// The elements stay where they are. (An element set created in
		// this very chunk could be written in the destination's slot
		// instead; it stays too, for one rule.)
		es := s.cur.ElementsSlot(keyspace.HashSlot(src))
		if es == keyspace.HashSlot(dst) {
			m.Foreign, m.ElemSlot = false, 0
		} else {
			m.Foreign, m.ElemSlot = true, es
		}
		w.renamed = true
	} else {
		m.StorageID = st
	}
	d.cur, d.exists, d.val, d.base, d.owned, d.patches, d.dirty, d.gone = m, true, s.val, s.base, s.owned, s.patches, true, false
	s.exists, s.val, s.base, s.owned, s.patches, s.dirty = false, nil, 0, false, nil, true
	w.event(src, EventRenameFrom)
	w.event(dst, EventRenameTo)
	if nx {
		return Result{Kind: ResultInt, Int: 1}, nil
	}
	return Result{Kind: ResultOK}, nil
}

// applyCopy duplicates the source's value and expiry under the
// destination: O(N) in the value, as in Redis; the chunk's apply budget
// counts the copy.
func applyCopy(w *writeSet, c *Command) (Result, error) {
	si, err := w.load(c.Keys[0])
	if err != nil {
		return Result{}, err
	}
	if !w.s2[si].exists {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	di, err := w.load(c.Keys[1])
	if err != nil {
		return Result{}, err
	}
	if w.s2[di].exists && c.Flags&CopyReplace == 0 {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	if w.s2[si].cur.Type != keyspace.TypeString {
		// A collection (format 3): its element rows are copied under the
		// new key's own storage id, O(elements).
		if err := w.copyColl(si, di); err != nil {
			return Result{}, err
		}
		w.event(c.Keys[1], EventCopyTo)
		return Result{Kind: ResultInt, Int: 1}, nil
	}
	v, err := w.value(si)
	if err != nil {
		return Result{}, err
	}
	exp := w.s2[si].cur.ExpireAt
	w.setStr2(di, bytes.Clone(v), true, exp)
	w.event(c.Keys[1], EventCopyTo)
	return Result{Kind: ResultInt, Int: 1}, nil
}
