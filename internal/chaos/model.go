package chaos

import (
	"fmt"
	"hash/fnv"
	"math"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// OpKind names a workload operation. The values are the Redis commands the
// clients send, so histories read naturally.
type OpKind string

// The operations of the workload.
const (
	OpGet    OpKind = "get"
	OpSet    OpKind = "set"
	OpSetNX  OpKind = "setnx" // SET key value NX
	OpIncr   OpKind = "incr"
	OpAppend OpKind = "append"
	OpDel    OpKind = "del"
	// OpPExpire is PEXPIRE key Input.TTL; it replies 1 when the key
	// exists (and now has that TTL), 0 when it does not.
	OpPExpire OpKind = "pexpire"
	// OpPersist is PERSIST key; it replies 1 when it removed a TTL, 0 when
	// the key is missing or has none.
	OpPersist OpKind = "persist"
	// OpPTTL is PTTL key: -2 for a missing key, -1 for a key without a
	// TTL, otherwise the milliseconds left.
	OpPTTL OpKind = "pttl"
)

// isWrite reports whether an operation changes state when it succeeds.
func (k OpKind) isWrite() bool {
	switch k {
	case OpGet, OpPTTL, OpHGet, OpHGetAll, OpSMembers, OpLRange, OpZScore, OpZRange:
		return false
	case OpSet, OpSetNX, OpIncr, OpAppend, OpDel, OpPExpire, OpPersist,
		OpHSet, OpHDel, OpSAdd, OpSRem, OpSPop, OpLPush, OpRPop, OpZAdd, OpZRem, OpZPopMin, OpQPush, OpBLPop, OpBLMove:
		return true
	}
	return true
}

// Input is one operation's request, as the linearizability model sees it.
type Input struct {
	Op  OpKind `json:"op"`
	Key string `json:"key"`
	// Arg is SET's, SET NX's and APPEND's value; empty otherwise.
	Arg string `json:"arg,omitempty"`
	// TTL is in milliseconds: for SET, the PX argument (0: a plain SET);
	// for PEXPIRE, its argument; for PTTL on a register key, the largest
	// TTL the workload ever sets there, which no reply may exceed.
	TTL int64 `json:"ttl,omitempty"`
	// Field is the hash field of HSET, HGET and HDEL, and the set member
	// of SADD and SREM (collections.go). HSET's value is Arg, as is
	// LPUSH's element and a queue push's.
	Field string `json:"field,omitempty"`
	// Start and Stop are LRANGE's indexes.
	Start int64 `json:"start,omitempty"`
	Stop  int64 `json:"stop,omitempty"`
}

// OutKind classifies a reply.
type OutKind string

// Reply kinds. OutUnknown marks a write whose outcome the client never
// learned (timeout, dropped connection, "may or may not have been
// applied"): the model accepts any reply for it, and the history gives it
// an infinite return time so it may also never take effect.
const (
	OutOK      OutKind = "ok"
	OutNil     OutKind = "nil"
	OutInt     OutKind = "int"
	OutStr     OutKind = "str"
	OutErr     OutKind = "err"
	OutUnknown OutKind = "unknown"
)

// Output is one operation's reply. It is a comparable value so histories
// can be compared and hashed directly.
type Output struct {
	Kind OutKind `json:"kind"`
	Str  string  `json:"str,omitempty"` // OutStr: the value; OutErr: the error text
	Int  int64   `json:"int,omitempty"`
}

// The state-machine error replies the model produces. They must match what
// the server answers byte for byte: an INCR refused for these reasons is a
// definite, observed outcome, not a failure.
const (
	errNotInteger = "ERR value is not an integer or out of range"
	errOverflow   = "ERR increment or decrement would overflow"
)

// register is the model's state for one key: a Redis string that may be
// absent, and whether it has a TTL. Comparable, so porcupine's default
// equality works.
//
// The TTL is only a flag: on the register keys the workload sets TTLs far
// longer than the run (Config.longTTL), so no TTL fires while the history
// is recorded and the key stays a plain register. What the flag buys is
// that PERSIST's 1/0 and PTTL's -1 versus "some time left" are checked
// linearizably like every other reply; PTTL's exact value is not, beyond
// being positive and at most the TTL set. Real expiry is checked on the
// separate expiry keys (expiry.go).
type register struct {
	Exists bool
	Val    string
	HasTTL bool
}

func (r register) String() string {
	if !r.Exists {
		return "(nil)"
	}
	if r.HasTTL {
		return strconv.Quote(r.Val) + " (ttl)"
	}
	return strconv.Quote(r.Val)
}

// pttlPositive is the model's reply to PTTL on a key with a TTL: the
// recorded reply, a number of milliseconds, is folded into it by
// normalize when it lies in (0, Input.TTL].
const pttlPositive = -100

// apply is the sequential specification: the state after in and the reply
// a correct single-copy Redis would give. It never mutates its arguments.
func apply(s register, in Input) (register, Output) {
	switch in.Op {
	case OpGet:
		if !s.Exists {
			return s, Output{Kind: OutNil}
		}
		return s, Output{Kind: OutStr, Str: s.Val}
	case OpSet:
		// A SET replaces the TTL too: PX sets one, a plain SET clears it.
		return register{Exists: true, Val: in.Arg, HasTTL: in.TTL > 0}, Output{Kind: OutOK}
	case OpSetNX:
		if s.Exists {
			return s, Output{Kind: OutNil}
		}
		return register{Exists: true, Val: in.Arg}, Output{Kind: OutOK}
	case OpIncr:
		var cur int64
		if s.Exists {
			v, ok := parseRedisInt(s.Val)
			if !ok {
				return s, Output{Kind: OutErr, Str: errNotInteger}
			}
			cur = v
		}
		if cur == math.MaxInt64 {
			return s, Output{Kind: OutErr, Str: errOverflow}
		}
		cur++
		// INCR and APPEND change the value in place and keep the TTL, as
		// in Redis.
		return register{Exists: true, Val: strconv.FormatInt(cur, 10), HasTTL: s.HasTTL}, Output{Kind: OutInt, Int: cur}
	case OpAppend:
		nv := s.Val + in.Arg
		return register{Exists: true, Val: nv, HasTTL: s.HasTTL}, Output{Kind: OutInt, Int: int64(len(nv))}
	case OpDel:
		if !s.Exists {
			return s, Output{Kind: OutInt, Int: 0}
		}
		return register{}, Output{Kind: OutInt, Int: 1}
	case OpPExpire:
		if !s.Exists {
			return s, Output{Kind: OutInt, Int: 0}
		}
		s.HasTTL = true
		return s, Output{Kind: OutInt, Int: 1}
	case OpPersist:
		if !s.Exists || !s.HasTTL {
			return s, Output{Kind: OutInt, Int: 0}
		}
		s.HasTTL = false
		return s, Output{Kind: OutInt, Int: 1}
	case OpPTTL:
		switch {
		case !s.Exists:
			return s, Output{Kind: OutInt, Int: -2}
		case !s.HasTTL:
			return s, Output{Kind: OutInt, Int: -1}
		}
		return s, Output{Kind: OutInt, Int: pttlPositive}
	case OpHSet, OpHGet, OpHDel, OpHGetAll, OpSAdd, OpSRem, OpSMembers, OpSPop, OpLPush, OpRPop, OpLRange, OpZAdd, OpZRem, OpZScore, OpZRange, OpZPopMin,
		OpQPush, OpBLPop, OpBLMove:
		// Not register commands: step sends collection keys to applyColl,
		// and the queue's keys are not in the model.
	}
	panic(fmt.Sprintf("chaos: unknown op %q", in.Op))
}

// parseRedisInt accepts what Redis accepts as a stored integer: an optional
// minus sign, decimal digits without leading zeros, within int64. It is
// written independently of the server's parser on purpose, so the model
// does not inherit a server bug.
func parseRedisInt(s string) (int64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	digits := s
	if s[0] == '-' {
		digits = s[1:]
	}
	if digits == "" || (digits[0] == '0' && (len(digits) > 1 || s[0] == '-')) {
		return 0, false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// step is the model's porcupine Step: the states the model may be in after
// in replied out from state, none when the reply is not allowed. Every
// command has one next state, except SPOP, whose member is random
// (stepColl).
func step(state, input, output any) []any {
	in := input.(Input)
	out := output.(Output)
	if IsCollectionKey(in.Key) {
		return stepColl(state, in, out)
	}
	s := state.(register)
	next, want := apply(s, in)
	if out.Kind != OutUnknown && want != normalize(in, out) {
		return nil
	}
	return []any{next}
}

// normalize folds a PTTL reply that shows time left into pttlPositive, the
// one reply the model gives for every key with a TTL. A positive reply
// above the largest TTL the workload sets is left alone, so it matches no
// state and fails the check.
func normalize(in Input, out Output) Output {
	if in.Op == OpPTTL && out.Kind == OutInt && out.Int > 0 && out.Int <= in.TTL {
		return Output{Kind: OutInt, Int: pttlPositive}
	}
	return out
}

// Model returns the porcupine model of the workload: one Redis string
// register per register key, and one hash, set, list or sorted set per
// collection key (collections.go), with histories partitioned by key
// (operations on different keys commute, so each key is checked on its
// own). Every partition starts from register{}, which the collection model
// reads as the missing key. It is a nondeterministic model (a set of
// possible states) because SPOP's member is random: an SPOP whose reply
// was lost may have removed any member.
func Model() porcupine.Model {
	nm := &porcupine.NondeterministicModel{
		Partition: partitionByKey,
		Init:      func() []any { return []any{register{}} },
		Step:      step,
		Hash: func(state any) uint64 {
			if c, ok := state.(coll); ok {
				return hashColl64(c)
			}
			r := state.(register)
			h := fnv.New64a()
			_, _ = h.Write([]byte{b2u(r.Exists), b2u(r.HasTTL)})
			_, _ = h.Write([]byte(r.Val))
			return h.Sum64()
		},
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string { return fmt.Sprint(state) },
		DescribeOperationMetadata: func(info any) string {
			if info == nil {
				return ""
			}
			return fmt.Sprint(info)
		},
	}
	return nm.ToModel()
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	idx := map[string]int{}
	var out [][]porcupine.Operation
	for _, op := range history {
		k := op.Input.(Input).Key
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, nil)
		}
		out[i] = append(out[i], op)
	}
	return out
}

func describeOp(in Input, out Output) string {
	call := fmt.Sprintf("%s(%s)", in.Op, in.Key)
	switch {
	case in.Field != "" && in.Arg != "":
		call = fmt.Sprintf("%s(%s, %s, %q)", in.Op, in.Key, in.Field, in.Arg)
	case in.Field != "":
		call = fmt.Sprintf("%s(%s, %s)", in.Op, in.Key, in.Field)
	case in.Arg != "" && in.TTL > 0:
		call = fmt.Sprintf("%s(%s, %q, px %d)", in.Op, in.Key, in.Arg, in.TTL)
	case in.Arg != "":
		call = fmt.Sprintf("%s(%s, %q)", in.Op, in.Key, in.Arg)
	case in.Op == OpPExpire:
		call = fmt.Sprintf("%s(%s, %d)", in.Op, in.Key, in.TTL)
	case in.Op == OpLRange:
		call = fmt.Sprintf("%s(%s, %d, %d)", in.Op, in.Key, in.Start, in.Stop)
	}
	return call + " -> " + out.String()
}

// String renders a reply the way the visualisation and failure messages
// show it.
func (o Output) String() string {
	switch o.Kind {
	case OutOK:
		return "OK"
	case OutNil:
		return "nil"
	case OutInt:
		return strconv.FormatInt(o.Int, 10)
	case OutStr:
		return strconv.Quote(o.Str)
	case OutErr:
		return "error " + strconv.Quote(o.Str)
	case OutArr:
		return "[" + o.Str + "]"
	case OutUnknown:
		return "unknown"
	}
	return string(o.Kind)
}
