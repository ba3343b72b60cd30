package kv

import (
	"errors"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
)

// applyCommand executes one validated command against the chunk's write
// set (and, for FLUSHALL, its batch). It returns the reply, and an error
// only when the store itself failed (which stops the node).
//
// Plain SET and MSET write blindly: they do not look their keys up. The
// store therefore keeps no key count (DBSIZE counts keys when asked): the
// lookup a maintained count needs was half the apply cost of pipelined SETs.
func applyCommand(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	spec := lookupOp(c.Op)
	if spec == nil {
		// Validate refuses unknown ops and an OpBatch is applied as its
		// sub-commands: none reaches here, but a bad entry must not stop
		// the node either.
		return Result{Kind: ResultError, Err: "ERR unknown operation"}, nil
	}
	apply := spec.apply1
	if w.format >= FormatV2 {
		apply = spec.apply2
	}
	if apply == nil || spec.minFormat > w.format {
		// The node never proposes an op above the cluster format; if one
		// is in the log anyway, every replica at that format answers this
		// alike.
		return Result{Kind: ResultError, Err: "ERR the cluster format version does not allow this command yet"}, nil
	}
	return apply(w, b, c)
}

// Format 1 applies, one per op (the registry in ops.go names them).

func applyGetDel1(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	k := userKey(c.Keys[0])
	s, err := w.getString(k)
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	if !s.exists {
		return Result{Kind: ResultNil}, nil
	}
	old := s.val[:len(s.val):len(s.val)]
	w.del(k)
	w.event(c.Keys[0], EventDel)
	return Result{Kind: ResultBytes, Bytes: old}, nil
}

func applyDel1(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	var n int64
	for _, key := range c.Keys {
		k := userKey(key)
		found, err := w.exists(k)
		if err != nil {
			return Result{}, err
		}
		if !found {
			continue
		}
		w.del(k)
		w.event(key, EventDel)
		n++
	}
	return Result{Kind: ResultInt, Int: n}, nil
}

func applyIncrBy1(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	k := userKey(c.Keys[0])
	s, err := w.getString(k)
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	var cur int64
	if s.exists {
		cur, err = parseRedisInt(s.val)
		if err != nil {
			return Result{Kind: ResultError, Err: ErrTextNotInteger}, nil //nolint:nilerr // a non-integer value is the client's error reply, not a failed apply
		}
	}
	if (c.Delta > 0 && cur > math.MaxInt64-c.Delta) || (c.Delta < 0 && cur < math.MinInt64-c.Delta) {
		return Result{Kind: ResultError, Err: ErrTextOverflow}, nil
	}
	cur += c.Delta
	w.setOwnedString(k, strconv.AppendInt(nil, cur, 10))
	w.event(c.Keys[0], EventIncrBy)
	return Result{Kind: ResultInt, Int: cur}, nil
}

func applyAppend1(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	k := userKey(c.Keys[0])
	s, err := w.getString(k)
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	cur := 0
	if s.exists {
		cur = len(s.val)
	}
	if cur+len(c.Values[0]) > MaxStringBytes {
		return Result{Kind: ResultError, Err: ErrTextTooLarge}, nil
	}
	n := w.appendString(k, s, c.Values[0])
	w.event(c.Keys[0], EventAppend)
	return Result{Kind: ResultInt, Int: int64(n)}, nil
}

func applyMSet1(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	for i, key := range c.Keys {
		w.setString(userKey(key), c.Values[i])
		w.event(key, EventSet)
	}
	return Result{Kind: ResultOK}, nil
}

func applyFlushAll(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	if err := w.flushAll(b); err != nil {
		return Result{}, err
	}
	return Result{Kind: ResultOK}, nil
}

func applySet(w *writeSet, c *Command) (Result, error) {
	k := userKey(c.Keys[0])
	var (
		old   []byte
		found bool
	)
	switch {
	case c.Flags&SetGet != 0:
		s, err := w.getString(k)
		if errors.Is(err, errWrongType) {
			return wrongType(), nil
		}
		if err != nil {
			return Result{}, err
		}
		found = s.exists
		old = s.val[:len(s.val):len(s.val)]
	case c.Flags&(SetNX|SetXX) != 0:
		var err error
		if found, err = w.exists(k); err != nil {
			return Result{}, err
		}
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
	w.setString(k, c.Values[0])
	w.event(c.Keys[0], EventSet)
	return reply, nil
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
