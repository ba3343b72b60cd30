package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Apply at cluster format 2: the keyspace v2 layout (writeset2.go), with
// expiry. Every decision about time uses w.now, the replicated apply
// time, and nothing else; a key whose expiry is at or before it reads as
// missing and is deleted by the write that meets it.

// validateV2 checks the shape of the format 2 ops.
func (c *Command) validateV2() error {
	one := len(c.Keys) == 1
	switch c.Op {
	case OpSetX:
		if !one || len(c.Values) != 1 {
			return fmt.Errorf("kv: SET needs one key and one value")
		}
		if c.Flags&^(SetNX|SetXX|SetGet|SetKeepTTL|SetPX|SetPXAT) != 0 || c.Flags&SetNX != 0 && c.Flags&SetXX != 0 {
			return fmt.Errorf("kv: SET flags %#x", c.Flags)
		}
		return c.validateTTLFlags(c.Flags & (SetKeepTTL | SetPX | SetPXAT))
	case OpGetEx:
		if !one || len(c.Values) != 0 || c.Flags&^(SetPX|SetPXAT|GetExPersist) != 0 {
			return fmt.Errorf("kv: GETEX needs one key and known flags")
		}
		return c.validateTTLFlags(c.Flags)
	case OpExpire:
		if !one || len(c.Values) != 0 || c.Flags&^(ExpireAbs|ExpireNX|ExpireXX|ExpireGT|ExpireLT) != 0 {
			return fmt.Errorf("kv: EXPIRE needs one key and known flags")
		}
		if c.Flags&ExpireNX != 0 && c.Flags&(ExpireXX|ExpireGT|ExpireLT) != 0 || c.Flags&ExpireGT != 0 && c.Flags&ExpireLT != 0 {
			return fmt.Errorf("kv: NX and XX, GT, LT options at the same time are not compatible")
		}
	case OpPersist:
		if !one || len(c.Values) != 0 || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: PERSIST needs exactly one key")
		}
	case OpExpireIf:
		if len(c.Keys) == 0 || len(c.Keys) != len(c.Values) || c.Flags != 0 || c.Delta != 0 {
			return fmt.Errorf("kv: a conditional expiry needs key/condition pairs")
		}
		for _, v := range c.Values {
			if len(v) != expireIfCondLen {
				return fmt.Errorf("kv: a conditional expiry's condition is %d bytes, want %d", len(v), expireIfCondLen)
			}
		}
	case OpSetRange, OpIncrByFloat, OpMSetNX, OpRename, OpCopy:
		return c.validateOps2()
	default:
		// Every other op has its own validator in the registry.
		return fmt.Errorf("kv: op %d is not a format 2 op", c.Op)
	}
	return nil
}

// validateTTLFlags checks that at most one expiry option is set, with a
// positive Delta when it needs one and none otherwise.
func (c *Command) validateTTLFlags(f SetFlags) error {
	n := 0
	for _, b := range []SetFlags{SetKeepTTL, SetPX, SetPXAT, GetExPersist} {
		if f&b != 0 {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("kv: more than one expiry option")
	}
	if f&(SetPX|SetPXAT) != 0 {
		if c.Delta <= 0 {
			return fmt.Errorf("kv: expiry %d must be positive", c.Delta)
		}
	} else if c.Delta != 0 {
		return fmt.Errorf("kv: a delta without an expiry option")
	}
	return nil
}

// expireIfCondLen is the length of one OpExpireIf condition: the
// version's index (8) and position (4), then expireAt (8), big-endian.
const expireIfCondLen = 20

// NewExpireIf returns the sweeper's conditional delete of keys[i], each
// only if it still has versions[i] and expireAts[i] and is due at apply.
func NewExpireIf(keys [][]byte, versions []keyspace.Stamp, expireAts []uint64) *Command {
	c := &Command{Op: OpExpireIf, Keys: keys, Values: make([][]byte, len(keys))}
	for i := range keys {
		v := keyspace.AppendStamp(make([]byte, 0, expireIfCondLen), versions[i])
		c.Values[i] = binary.BigEndian.AppendUint64(v, expireAts[i])
	}
	return c
}

// addTime returns now + d in milliseconds as a signed time, saturating:
// a relative expiry far in the future stays far in the future, one far in
// the past stays in the past.
func addTime(now uint64, d int64) int64 {
	n := int64(min(now, math.MaxInt64))
	switch {
	case d > 0 && n > math.MaxInt64-d:
		return math.MaxInt64
	case d < 0 && n < math.MinInt64-d:
		return math.MinInt64
	}
	return n + d
}

// ttlOf returns the expiry a SET or GETEX's flags ask for, as a signed
// time; ok is false when the flags ask for none.
func ttlOf(now uint64, c *Command) (at int64, ok bool) {
	switch {
	case c.Flags&SetPX != 0:
		return addTime(now, c.Delta), true
	case c.Flags&SetPXAT != 0:
		return c.Delta, true
	}
	return 0, false
}

// expireValue maps a signed expiry time to what is stored: a time at or
// before now becomes now (the key is due at once), so 0 keeps meaning
// "no expiry".
func expireValue(now uint64, at int64) uint64 {
	if at <= 0 || uint64(at) <= now {
		return max(now, 1)
	}
	return uint64(at)
}

// Format 2 applies, one per op (the registry in ops.go names them).

// stringValue2 loads key for a command that answers with a string's value.
// reply is set when the command has its answer already: WRONGTYPE, or nil
// for a missing key.
func (w *writeSet) stringValue2(key []byte) (i int, val []byte, reply *Result, err error) {
	i, err = w.getString2(key)
	if errors.Is(err, errWrongType) {
		r := wrongType()
		return i, nil, &r, nil
	}
	if err != nil {
		return i, nil, nil, err
	}
	if !w.s2[i].exists {
		return i, nil, &Result{Kind: ResultNil}, nil
	}
	val, err = w.value(i)
	return i, val, nil, err
}

func applyGetDel2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	i, old, reply, err := w.stringValue2(c.Keys[0])
	if reply != nil || err != nil {
		return deref(reply), err
	}
	w.del2(i)
	w.event(c.Keys[0], EventDel)
	return Result{Kind: ResultBytes, Bytes: old}, nil
}

func applyDel2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	var n int64
	for _, key := range c.Keys {
		i, err := w.load(key)
		if err != nil {
			return Result{}, err
		}
		if w.s2[i].exists {
			w.del2(i)
			w.event(key, EventDel)
			n++
		}
	}
	return Result{Kind: ResultInt, Int: n}, nil
}

func applyAppend2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	i, err := w.getString2(c.Keys[0])
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	cur := uint64(0)
	if w.s2[i].exists {
		cur = w.s2[i].cur.Len
	}
	if cur+uint64(len(c.Values[0])) > MaxStringBytes {
		return Result{Kind: ResultError, Err: ErrTextTooLarge}, nil
	}
	n, err := w.appendStr2(i, c.Values[0])
	if err != nil {
		return Result{}, err
	}
	w.event(c.Keys[0], EventAppend)
	return Result{Kind: ResultInt, Int: int64(n)}, nil
}

func applyMSet2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	for k, key := range c.Keys {
		i, err := w.load(key)
		if err != nil {
			return Result{}, err
		}
		w.setStr2(i, c.Values[k], false, 0)
		w.event(key, EventSet)
	}
	return Result{Kind: ResultOK}, nil
}

func applyPersist2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	i, err := w.load(c.Keys[0])
	if err != nil {
		return Result{}, err
	}
	if s := &w.s2[i]; !s.exists || s.cur.ExpireAt == 0 {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	w.setExpire(i, 0)
	w.event(c.Keys[0], EventPersist)
	return Result{Kind: ResultInt, Int: 1}, nil
}

func applyGetEx2(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) {
	i, val, reply, err := w.stringValue2(c.Keys[0])
	if reply != nil || err != nil {
		return deref(reply), err
	}
	if at, ok := ttlOf(w.now, c); ok {
		w.setExpire(i, expireValue(w.now, at))
		w.expireEvent(i, c.Keys[0])
	} else if c.Flags&GetExPersist != 0 && w.s2[i].cur.ExpireAt != 0 {
		w.setExpire(i, 0)
		w.event(c.Keys[0], EventPersist)
	}
	return Result{Kind: ResultBytes, Bytes: val}, nil
}

func applySet2(w *writeSet, c *Command) (Result, error) {
	if c.Op == OpSet {
		// The format 1 op means what it always meant: no TTL is set, and
		// bits other than NX, XX and GET are not read as TTL options, with
		// one exception. SetKeepTTL is kept, because a node that had not
		// yet applied the raise sends SET ... KEEPTTL as an OpSet with that
		// bit (node/format_gate.go, lowerForFormat), and the entry may be
		// applied after the raise, on a key that has a TTL by then. No
		// binary before that one ever set the bit on an OpSet, and at
		// format 1 applySet ignores it, so no entry changes meaning.
		cc := *c
		cc.Flags &= SetNX | SetXX | SetGet | SetKeepTTL
		cc.Delta = 0
		c = &cc
	}
	i, err := w.load(c.Keys[0])
	if err != nil {
		return Result{}, err
	}
	s := &w.s2[i]
	get := c.Flags&SetGet != 0
	if get && s.exists && s.cur.Type != keyspace.TypeString {
		return wrongType(), nil
	}
	found := s.exists
	reply := Result{Kind: ResultOK}
	if get {
		reply = Result{Kind: ResultNil}
		if found {
			old, err := w.value(i)
			if err != nil {
				return Result{}, err
			}
			reply = Result{Kind: ResultBytes, Bytes: old}
		}
	}
	if (c.Flags&SetNX != 0 && found) || (c.Flags&SetXX != 0 && !found) {
		if !get {
			reply = Result{Kind: ResultNil}
		}
		return reply, nil
	}
	var exp uint64
	if at, ok := ttlOf(w.now, c); ok {
		exp = expireValue(w.now, at)
	} else if c.Flags&SetKeepTTL != 0 && found {
		exp = s.cur.ExpireAt
	}
	w.setStr2(i, c.Values[0], false, exp)
	w.event(c.Keys[0], EventSet)
	if c.Flags&(SetPX|SetPXAT) != 0 {
		w.expireEvent(i, c.Keys[0])
	}
	return reply, nil
}

func applyIncr2(w *writeSet, c *Command) (Result, error) {
	i, err := w.getString2(c.Keys[0])
	if errors.Is(err, errWrongType) {
		return wrongType(), nil
	}
	if err != nil {
		return Result{}, err
	}
	var cur int64
	exists := w.s2[i].exists
	if exists {
		if w.s2[i].cur.Len > 20 {
			// No integer is longer: do not read a large value to find so.
			return Result{Kind: ResultError, Err: ErrTextNotInteger}, nil
		}
		v, err := w.value(i)
		if err != nil {
			return Result{}, err
		}
		if cur, err = parseRedisInt(v); err != nil {
			return Result{Kind: ResultError, Err: ErrTextNotInteger}, nil //nolint:nilerr // the client's error reply
		}
	}
	if (c.Delta > 0 && cur > math.MaxInt64-c.Delta) || (c.Delta < 0 && cur < math.MinInt64-c.Delta) {
		return Result{Kind: ResultError, Err: ErrTextOverflow}, nil
	}
	cur += c.Delta
	v := strconv.AppendInt(nil, cur, 10)
	if exists {
		w.setValueKeep(i, v) // INCR keeps the expiry, as in Redis
	} else {
		w.setStr2(i, v, true, 0)
	}
	w.event(c.Keys[0], EventIncrBy)
	return Result{Kind: ResultInt, Int: cur}, nil
}

func applyExpire2(w *writeSet, c *Command) (Result, error) {
	i, err := w.load(c.Keys[0])
	if err != nil {
		return Result{}, err
	}
	s := &w.s2[i]
	if !s.exists {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	at := c.Delta
	if c.Flags&ExpireAbs == 0 {
		at = addTime(w.now, c.Delta)
	}
	cur := s.cur.ExpireAt
	// GT and LT treat "no expiry" as infinite (Redis 7.2).
	curInf := cur == 0
	ok := true
	switch {
	case c.Flags&ExpireNX != 0:
		ok = curInf
	case c.Flags&ExpireXX != 0 && curInf:
		ok = false
	}
	if ok && c.Flags&ExpireGT != 0 {
		ok = !curInf && at > int64(min(cur, math.MaxInt64))
	}
	if ok && c.Flags&ExpireLT != 0 {
		ok = curInf || at < int64(min(cur, math.MaxInt64))
	}
	if !ok {
		return Result{Kind: ResultInt, Int: 0}, nil
	}
	w.setExpire(i, expireValue(w.now, at))
	w.expireEvent(i, c.Keys[0])
	return Result{Kind: ResultInt, Int: 1}, nil
}

func applyExpireIf(w *writeSet, c *Command) (Result, error) {
	var n int64
	for k, key := range c.Keys {
		cond := c.Values[k]
		ver := keyspace.Stamp{Index: binary.BigEndian.Uint64(cond), Pos: binary.BigEndian.Uint32(cond[8:])}
		at := binary.BigEndian.Uint64(cond[12:])
		i, err := w.load(key)
		if err != nil {
			return Result{}, err
		}
		s := &w.s2[i]
		// load deletes a due key itself; the condition is checked against
		// the record it deleted (gone), once.
		if !s.exists && s.gone && s.goneMeta.Version == ver && s.goneMeta.ExpireAt == at && at <= w.now {
			s.gone = false
			n++
		}
	}
	return Result{Kind: ResultInt, Int: n}, nil
}

// expireEvent reports an expiry set on slot i's key: "expire", or "del"
// when the time had already passed and the write deleted the key, as
// Redis reports it.
func (w *writeSet) expireEvent(i int, key []byte) {
	if w.s2[i].exists {
		w.event(key, EventExpire)
	} else {
		w.event(key, EventDel)
	}
}

// deref returns *r, or the zero Result for nil (with an error beside it).
func deref(r *Result) Result {
	if r == nil {
		return Result{}
	}
	return *r
}
