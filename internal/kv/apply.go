package kv

import (
	"errors"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// countChange is how a command changes the number of user keys: the new
// count is (0 if reset, else the old count) + delta.
type countChange struct {
	reset bool
	delta int64
}

// then composes two changes applied one after the other.
func (a countChange) then(b countChange) countChange {
	if b.reset {
		return b
	}
	return countChange{reset: a.reset, delta: a.delta + b.delta}
}

// applyCommand executes one validated command against the batch. It returns
// the reply, the change in the number of user keys, and an error only when
// the batch itself failed (which stops the node).
func applyCommand(b *pebble.Batch, c *Command) (Result, countChange, error) {
	r, d, err := applyOne(b, c)
	if d == flushDelta {
		return r, countChange{reset: true}, err
	}
	return r, countChange{delta: d}, err
}

func applyOne(b *pebble.Batch, c *Command) (Result, int64, error) {
	switch c.Op {
	case OpSet:
		return applySet(b, c)
	case OpGetDel:
		k := userKey(c.Keys[0])
		old, found, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), 0, err
		}
		if !found {
			return Result{Kind: ResultNil}, 0, nil
		}
		if err := b.Delete(k, nil); err != nil {
			return Result{}, 0, err
		}
		return Result{Kind: ResultBytes, Bytes: old}, -1, nil
	case OpDel:
		var n int64
		for _, key := range c.Keys {
			k := userKey(key)
			_, found, err := getRaw(b, k, func([]byte) {})
			if err != nil {
				return Result{}, 0, err
			}
			if !found {
				continue
			}
			if err := b.Delete(k, nil); err != nil {
				return Result{}, 0, err
			}
			n++
		}
		return Result{Kind: ResultInt, Int: n}, -n, nil
	case OpIncrBy:
		k := userKey(c.Keys[0])
		old, found, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), 0, err
		}
		var cur int64
		if found {
			cur, err = parseRedisInt(old)
			if err != nil {
				return Result{Kind: ResultError, Err: ErrTextNotInteger}, 0, nil
			}
		}
		if (c.Delta > 0 && cur > math.MaxInt64-c.Delta) || (c.Delta < 0 && cur < math.MinInt64-c.Delta) {
			return Result{Kind: ResultError, Err: ErrTextOverflow}, 0, nil
		}
		cur += c.Delta
		if err := setString(b, k, strconv.AppendInt(nil, cur, 10)); err != nil {
			return Result{}, 0, err
		}
		return Result{Kind: ResultInt, Int: cur}, boolInt(!found), nil
	case OpAppend:
		k := userKey(c.Keys[0])
		old, found, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), 0, err
		}
		if len(old)+len(c.Values[0]) > MaxStringBytes {
			return Result{Kind: ResultError, Err: ErrTextTooLarge}, 0, nil
		}
		nv := append(old, c.Values[0]...)
		if err := setString(b, k, nv); err != nil {
			return Result{}, 0, err
		}
		return Result{Kind: ResultInt, Int: int64(len(nv))}, boolInt(!found), nil
	case OpMSet:
		var delta int64
		for i, key := range c.Keys {
			k := userKey(key)
			_, found, err := getRaw(b, k, func([]byte) {})
			if err != nil {
				return Result{}, 0, err
			}
			if err := setString(b, k, c.Values[i]); err != nil {
				return Result{}, 0, err
			}
			if !found {
				delta++
			}
		}
		return Result{Kind: ResultOK}, delta, nil
	case OpFlushAll:
		if err := b.DeleteRange(userLower, userUpper, nil); err != nil {
			return Result{}, 0, err
		}
		// The caller adds delta to the current count; flushing zeroes it.
		return Result{Kind: ResultOK}, flushDelta, nil
	}
	return Result{Kind: ResultError, Err: "ERR unknown operation"}, 0, nil
}

// flushDelta is a sentinel delta meaning "the key count is now zero".
const flushDelta = math.MinInt64

func applySet(b *pebble.Batch, c *Command) (Result, int64, error) {
	k := userKey(c.Keys[0])
	var (
		old   []byte
		found bool
		err   error
	)
	if c.Flags&SetGet != 0 {
		old, found, err = getString(b, k)
		if errors.Is(err, errWrongType) {
			return wrongType(), 0, nil
		}
	} else {
		_, found, err = getRaw(b, k, func([]byte) {})
	}
	if err != nil {
		return Result{}, 0, err
	}
	reply := Result{Kind: ResultOK}
	if c.Flags&SetGet != 0 {
		reply = Result{Kind: ResultNil}
		if found {
			reply = Result{Kind: ResultBytes, Bytes: old}
		}
	}
	if (c.Flags&SetNX != 0 && found) || (c.Flags&SetXX != 0 && !found) {
		if c.Flags&SetGet == 0 {
			reply = Result{Kind: ResultNil}
		}
		return reply, 0, nil
	}
	if err := setString(b, k, c.Values[0]); err != nil {
		return Result{}, 0, err
	}
	return reply, boolInt(!found), nil
}

// readString loads the string at k for a command about to change it. A
// non-nil reply (WRONGTYPE) or err ends the command.
func readString(b *pebble.Batch, k []byte) ([]byte, bool, *Result, error) {
	old, found, err := getString(b, k)
	if errors.Is(err, errWrongType) {
		r := wrongType()
		return nil, true, &r, nil
	}
	return old, found, nil, err
}

func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}

func setString(b *pebble.Batch, k, v []byte) error {
	op := b.SetDeferred(len(k), len(v)+1)
	copy(op.Key, k)
	op.Value[0] = valString
	copy(op.Value[1:], v)
	return op.Finish()
}

func wrongType() Result { return Result{Kind: ResultError, Err: ErrTextWrongType} }

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// parseRedisInt accepts exactly what Redis accepts as an integer value: an
// optional minus sign and decimal digits, no leading zeros or plus sign, and
// within int64.
func parseRedisInt(b []byte) (int64, error) {
	if len(b) == 0 || len(b) > 20 {
		return 0, strconv.ErrSyntax
	}
	if b[0] == '+' || (len(b) > 1 && b[0] == '0') || (len(b) > 2 && b[0] == '-' && b[1] == '0') || string(b) == "-0" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseInt(string(b), 10, 64)
}

// ParseInt parses a Redis integer argument with the same rules as stored
// values, for the Redis layer.
func ParseInt(b []byte) (int64, error) { return parseRedisInt(b) }
