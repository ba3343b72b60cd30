package kv

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Hashes (issue #15), at cluster format 3. A hash is a collection whose
// element rows are its fields: the row suffix is the field itself and the
// row value is the field's value (docs/keyspace.md, "Elements, per
// type"), so fields iterate in byte order and one field is one point read
// or write. The metadata's Len is the number of fields, which HLEN reads
// in O(1).
//
// Invariants:
//   - Len equals the number of element rows under the hash's storage id;
//     every op that adds or removes a field adjusts it in the same apply.
//   - An op that removes fields calls collDone last, so a hash with no
//     field left is deleted (Redis deletes an emptied hash).

// Hash ops (range 20..29; numbers are part of the log format).
const (
	// OpHSet sets the field/value pairs in Values (at least one pair) of
	// the hash Keys[0], creating it; it replies the number of fields that
	// were new. With HSetNX (exactly one pair) it sets the field only if
	// it is absent and replies 1 or 0.
	OpHSet Op = 20
	// OpHDel deletes the fields in Values (at least one) from the hash
	// Keys[0]; it replies the number that existed.
	OpHDel Op = 21
	// OpHIncrBy adds Delta to the integer in field Values[0] of the hash
	// Keys[0] (a missing field counts as 0) and replies the result.
	OpHIncrBy Op = 22
	// OpHIncrByFloat adds the decimal text Values[1] to field Values[0]
	// of the hash Keys[0] and replies the result as a bulk string, with
	// INCRBYFLOAT's arithmetic (AddRedisFloats).
	OpHIncrByFloat Op = 23
)

// HSetNX is OpHSet's flag: set the one field only if it is absent.
const HSetNX SetFlags = 1 << 0

// Event names of the hash ops, as Redis's keyspace notifications name them.
const (
	EventHSet         = "hset"
	EventHDel         = "hdel"
	EventHIncrBy      = "hincrby"
	EventHIncrByFloat = "hincrbyfloat"
)

// Redis error texts of the hash ops.
const (
	ErrTextHashNotInteger = "ERR hash value is not an integer"
	ErrTextHashNotFloat   = "ERR hash value is not a float"
	ErrTextFloatNaNOrInf  = "ERR value is NaN or Infinity"
)

func init() {
	registerOps(map[Op]*opSpec{
		OpHSet: {name: "HSET", minFormat: FormatV3, replies: intReply, validate: validateHash,
			apply2: withoutBatch(applyHSet)},
		OpHDel: {name: "HDEL", minFormat: FormatV3, replies: intReply, validate: validateHash,
			apply2: withoutBatch(applyHDel)},
		OpHIncrBy: {name: "HINCRBY", minFormat: FormatV3, replies: intReply, validate: validateHash,
			apply2: withoutBatch(applyHIncrBy)},
		OpHIncrByFloat: {name: "HINCRBYFLOAT", minFormat: FormatV3, replies: bytesReply, validate: validateHash,
			apply2: withoutBatch(applyHIncrByFloat)},
	})
}

// validateHash checks the shape of the hash ops.
func validateHash(c *Command) error {
	if len(c.Keys) != 1 {
		return fmt.Errorf("kv: op %d needs exactly one key", c.Op)
	}
	switch c.Op {
	case OpHSet:
		if len(c.Values) < 2 || len(c.Values)%2 != 0 || c.Flags&^HSetNX != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: HSET needs field/value pairs")
		}
		if c.Flags&HSetNX != 0 && len(c.Values) != 2 {
			return fmt.Errorf("kv: HSETNX sets exactly one field")
		}
	case OpHDel:
		if len(c.Values) == 0 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: HDEL needs at least one field")
		}
	case OpHIncrBy:
		if len(c.Values) != 1 || c.Flags != 0 {
			return fmt.Errorf("kv: HINCRBY needs one field")
		}
	case OpHIncrByFloat:
		if len(c.Values) != 2 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: HINCRBYFLOAT needs a field and an increment")
		}
		// A malformed increment is not refused here: apply replies
		// Redis's error for it, as INCRBYFLOAT does.
	default:
		return fmt.Errorf("kv: op %d is not a hash op", c.Op)
	}
	return nil
}

// loadHash loads key as a hash (missing or a hash); ok is false, with
// the WRONGTYPE reply in r, for a key of another type.
func (w *writeSet) loadHash(key []byte) (i int, r Result, ok bool, err error) {
	i, err = w.loadColl(key, keyspace.TypeHash)
	if errors.Is(err, errWrongType) {
		return i, wrongType(), false, nil
	}
	if err != nil {
		return i, Result{}, false, err
	}
	return i, Result{}, true, nil
}

func applyHSet(w *writeSet, c *Command) (Result, error) {
	i, r, ok, err := w.loadHash(c.Keys[0])
	if !ok {
		return r, err
	}
	if !w.collExists(i) {
		w.createColl(i, keyspace.TypeHash)
	}
	var added uint64
	changed := false
	for p := 0; p+1 < len(c.Values); p += 2 {
		field, val := c.Values[p], c.Values[p+1]
		_, found, err := w.elemGet(i, field)
		if err != nil {
			return Result{}, err
		}
		if found && c.Flags&HSetNX != 0 {
			continue
		}
		if err := w.elemSet(i, field, val); err != nil {
			return Result{}, err
		}
		changed = true
		if !found {
			added++
		}
	}
	if changed {
		w.collSetLen(i, w.collMeta(i).Len+added)
		w.collTouch(i)
		w.event(c.Keys[0], EventHSet)
	}
	return Result{Kind: ResultInt, Int: int64(added)}, nil
}

func applyHDel(w *writeSet, c *Command) (Result, error) {
	i, r, ok, err := w.loadHash(c.Keys[0])
	if !ok {
		return r, err
	}
	if !w.collExists(i) {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	var removed uint64
	for _, field := range c.Values {
		_, found, err := w.elemGet(i, field)
		if err != nil {
			return Result{}, err
		}
		if !found {
			continue
		}
		if err := w.elemDel(i, field); err != nil {
			return Result{}, err
		}
		removed++
	}
	if removed > 0 {
		w.collSetLen(i, w.collMeta(i).Len-removed)
		w.collTouch(i)
		w.event(c.Keys[0], EventHDel)
		if w.collDone(i) {
			w.event(c.Keys[0], EventDel)
		}
	}
	return Result{Kind: ResultInt, Int: int64(removed)}, nil
}

// hashField loads key's hash for an increment of field and returns the
// field's current value (nil when the hash or the field is missing).
func (w *writeSet) hashField(key, field []byte) (i int, cur []byte, r Result, ok bool, err error) {
	i, r, ok, err = w.loadHash(key)
	if !ok {
		return i, nil, r, false, err
	}
	if w.collExists(i) {
		cur, _, err = w.elemGet(i, field)
		if err != nil {
			return i, nil, Result{}, false, err
		}
	}
	return i, cur, Result{}, true, nil
}

// setHashField writes field's new value after an increment, creating the
// hash or the field as needed.
func (w *writeSet) setHashField(i int, field, val []byte, existed bool) error {
	if !w.collExists(i) {
		w.createColl(i, keyspace.TypeHash)
	}
	if err := w.elemSet(i, field, val); err != nil {
		return err
	}
	if !existed {
		w.collSetLen(i, w.collMeta(i).Len+1)
	}
	w.collTouch(i)
	return nil
}

func applyHIncrBy(w *writeSet, c *Command) (Result, error) {
	i, cur, r, ok, err := w.hashField(c.Keys[0], c.Values[0])
	if !ok {
		return r, err
	}
	var n int64
	if cur != nil {
		if n, err = parseRedisInt(cur); err != nil {
			return Result{Kind: ResultError, Err: ErrTextHashNotInteger}, nil //nolint:nilerr // the client's error reply, not a failed apply
		}
	}
	if (c.Delta > 0 && n > math.MaxInt64-c.Delta) || (c.Delta < 0 && n < math.MinInt64-c.Delta) {
		return Result{Kind: ResultError, Err: ErrTextOverflow}, nil
	}
	n += c.Delta
	if err := w.setHashField(i, c.Values[0], strconv.AppendInt(nil, n, 10), cur != nil); err != nil {
		return Result{}, err
	}
	w.event(c.Keys[0], EventHIncrBy)
	return Result{Kind: ResultInt, Int: n}, nil
}

// applyHIncrByFloat checks in Redis's order: the increment's syntax and
// finiteness before the key's type, then the field's value, then the
// sum. The arithmetic is AddRedisFloats: deterministic on every replica.
func applyHIncrByFloat(w *writeSet, c *Command) (Result, error) {
	incr, ok := ParseRedisFloat(c.Values[1])
	if !ok {
		return Result{Kind: ResultError, Err: ErrTextNotFloat}, nil
	}
	if incr.IsInf() {
		return Result{Kind: ResultError, Err: ErrTextFloatNaNOrInf}, nil
	}
	i, cur, r, ok, err := w.hashField(c.Keys[0], c.Values[0])
	if !ok {
		return r, err
	}
	if cur != nil {
		if _, ok := ParseRedisFloat(cur); !ok {
			return Result{Kind: ResultError, Err: ErrTextHashNotFloat}, nil
		}
	}
	out, errText := AddRedisFloats(cur, c.Values[1])
	if errText != "" {
		return Result{Kind: ResultError, Err: errText}, nil
	}
	if err := w.setHashField(i, c.Values[0], out, cur != nil); err != nil {
		return Result{}, err
	}
	w.event(c.Keys[0], EventHIncrByFloat)
	return Result{Kind: ResultBytes, Bytes: bytes.Clone(out)}, nil
}

// Hash is a live hash read inside a View callback (OpenHash); like the
// View, it is valid only during that callback.
type Hash struct{ c Coll }

// OpenHash finds key as a hash: false if key is missing, an error that
// errors.Is ErrWrongType if it holds another type.
func OpenHash(v View, key []byte) (Hash, bool, error) {
	c, ok, err := v.Collection(key, keyspace.TypeHash)
	if err != nil || !ok {
		return Hash{}, false, err
	}
	return Hash{c: c}, true, nil
}

// Len is the number of fields, O(1) (metadata).
func (h Hash) Len() uint64 { return h.c.Meta().Len }

// Meta is the hash's metadata (expiry, stamps).
func (h Hash) Meta() keyspace.Meta { return h.c.Meta() }

// Get returns a copy of field's value and whether the field exists: one
// point read.
func (h Hash) Get(field []byte) ([]byte, bool, error) { return h.c.Get(field) }

// Iter calls fn with each field at or after from (nil: the first) and its
// value, in field byte order, until fn returns false. The slices are
// valid only during the call.
func (h Hash) Iter(from []byte, fn func(field, val []byte) bool) error {
	return h.c.Iter(from, nil, false, fn)
}
