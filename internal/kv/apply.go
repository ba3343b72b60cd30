package kv

import (
	"errors"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// applyCommand executes one validated command against the batch. It returns
// the reply, and an error only when the batch itself failed (which stops the
// node).
//
// Plain SET and MSET write blindly: they do not look their keys up. The
// store therefore keeps no key count (DBSIZE counts keys when asked): the
// lookup a maintained count needs was half the apply cost of pipelined SETs.
func applyCommand(b *pebble.Batch, c *Command) (Result, error) {
	switch c.Op {
	case OpSet:
		return applySet(b, c)
	case OpGetDel:
		k := userKey(c.Keys[0])
		old, found, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), err
		}
		if !found {
			return Result{Kind: ResultNil}, nil
		}
		if err := b.Delete(k, nil); err != nil {
			return Result{}, err
		}
		return Result{Kind: ResultBytes, Bytes: old}, nil
	case OpDel:
		var n int64
		for _, key := range c.Keys {
			k := userKey(key)
			_, found, err := getRaw(b, k, func([]byte) {})
			if err != nil {
				return Result{}, err
			}
			if !found {
				continue
			}
			if err := b.Delete(k, nil); err != nil {
				return Result{}, err
			}
			n++
		}
		return Result{Kind: ResultInt, Int: n}, nil
	case OpIncrBy:
		k := userKey(c.Keys[0])
		old, found, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), err
		}
		var cur int64
		if found {
			cur, err = parseRedisInt(old)
			if err != nil {
				return Result{Kind: ResultError, Err: ErrTextNotInteger}, nil
			}
		}
		if (c.Delta > 0 && cur > math.MaxInt64-c.Delta) || (c.Delta < 0 && cur < math.MinInt64-c.Delta) {
			return Result{Kind: ResultError, Err: ErrTextOverflow}, nil
		}
		cur += c.Delta
		if err := setString(b, k, strconv.AppendInt(nil, cur, 10)); err != nil {
			return Result{}, err
		}
		return Result{Kind: ResultInt, Int: cur}, nil
	case OpAppend:
		k := userKey(c.Keys[0])
		old, _, reply, err := readString(b, k)
		if reply != nil || err != nil {
			return deref(reply), err
		}
		if len(old)+len(c.Values[0]) > MaxStringBytes {
			return Result{Kind: ResultError, Err: ErrTextTooLarge}, nil
		}
		nv := append(old, c.Values[0]...)
		if err := setString(b, k, nv); err != nil {
			return Result{}, err
		}
		return Result{Kind: ResultInt, Int: int64(len(nv))}, nil
	case OpMSet:
		for i, key := range c.Keys {
			if err := setString(b, userKey(key), c.Values[i]); err != nil {
				return Result{}, err
			}
		}
		return Result{Kind: ResultOK}, nil
	case OpFlushAll:
		if err := b.DeleteRange(userLower, userUpper, nil); err != nil {
			return Result{}, err
		}
		return Result{Kind: ResultOK}, nil
	}
	return Result{Kind: ResultError, Err: "ERR unknown operation"}, nil
}

func applySet(b *pebble.Batch, c *Command) (Result, error) {
	k := userKey(c.Keys[0])
	var (
		old   []byte
		found bool
		err   error
	)
	switch {
	case c.Flags&SetGet != 0:
		old, found, err = getString(b, k)
		if errors.Is(err, errWrongType) {
			return wrongType(), nil
		}
	case c.Flags&(SetNX|SetXX) != 0:
		_, found, err = getRaw(b, k, func([]byte) {})
	}
	if err != nil {
		return Result{}, err
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
		return reply, nil
	}
	if err := setString(b, k, c.Values[0]); err != nil {
		return Result{}, err
	}
	return reply, nil
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
