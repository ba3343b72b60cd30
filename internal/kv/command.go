package kv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Op names a state-machine write. The numeric values are part of the
// replicated log format: never renumber them, only append.
type Op uint8

// Write operations understood by the state machine.
const (
	OpInvalid  Op = 0
	OpSet      Op = 1 // Keys[0] = Values[0], governed by Flags (NX, XX, GET)
	OpGetDel   Op = 2 // delete Keys[0], return its old value or nil
	OpDel      Op = 3 // delete every key in Keys, return how many existed
	OpIncrBy   Op = 4 // Keys[0] += Delta, return the new value
	OpAppend   Op = 5 // Keys[0] += Values[0], return the new length
	OpMSet     Op = 6 // Keys[i] = Values[i] for every i
	OpFlushAll Op = 7 // delete every user key
	OpBatch    Op = 8 // Values are encoded commands, applied in order as one entry
	// OpRaiseFormat raises the cluster format version to Delta (format.go).
	// It is never batched.
	OpRaiseFormat Op = 9

	// Format 2 ops (Command.MinFormat is 2).

	// OpSetX is SET with expiry options: Keys[0] = Values[0], with Flags
	// SetNX, SetXX, SetGet and at most one of SetKeepTTL, SetPX (Delta =
	// relative ms > 0) and SetPXAT (Delta = absolute Unix ms > 0).
	OpSetX Op = 10
	// OpExpire sets Keys[0]'s expiry to Delta ms from the apply time, or
	// to Delta as Unix ms with ExpireAbs, under ExpireNX/XX/GT/LT; it
	// replies 1 if the expiry was set (or the key deleted), else 0.
	OpExpire Op = 11
	// OpPersist removes Keys[0]'s expiry; it replies 1 if there was one.
	OpPersist Op = 12
	// OpGetEx replies Keys[0]'s value (or nil) and changes its expiry:
	// SetPX or SetPXAT with Delta, or GetExPersist.
	OpGetEx Op = 13
	// OpExpireIf is the sweeper's conditional delete (NewExpireIf): key i
	// is deleted only if it still has the version and expiry in Values[i]
	// and that expiry is at or before the apply time. It replies the
	// number deleted.
	OpExpireIf Op = 14
	// OpSetRange writes Values[0] at byte offset Delta (>= 0) of Keys[0]'s
	// string, zero-padding; it replies the new length (ops2.go).
	OpSetRange Op = 15
	// OpIncrByFloat adds the decimal Values[0] to Keys[0]'s value and
	// replies the result as a bulk string (ops2.go).
	OpIncrByFloat Op = 16
	// OpMSetNX sets Keys[i] = Values[i] for every i, clearing their
	// expiry, only if none of the keys exists; it replies 1 or 0.
	OpMSetNX Op = 17
	// OpRename moves Keys[0] to Keys[1] with its expiry; with RenameNX
	// only if Keys[1] does not exist (reply 1 or 0, else OK).
	OpRename Op = 18
	// OpCopy copies Keys[0] to Keys[1] with its expiry; with CopyReplace
	// over an existing Keys[1]. It replies 1 or 0.
	OpCopy Op = 19

	// Format 3 ops: the collection families, each in its own range and
	// its own file, registered with registerOps: hashes 20..29 (hash.go),
	// sets 30..39 (set.go), sorted sets 40..59 (zset.go), lists 60..79
	// (list.go), blocking pops and SORT 80..89.
	opMax Op = 100
)

// firstFamilyOp is the first number of the collection families' ranges.
const firstFamilyOp Op = 20

// SetFlags modify OpSet.
type SetFlags uint8

// OpSet flags.
const (
	SetNX        SetFlags = 1 << iota // only if the key does not exist
	SetXX                             // only if the key exists
	SetGet                            // reply with the old value instead of OK
	SetKeepTTL                        // OpSetX: keep the key's expiry
	SetPX                             // OpSetX, OpGetEx: expire Delta ms after the apply time
	SetPXAT                           // OpSetX, OpGetEx: expire at Delta, Unix ms
	GetExPersist                      // OpGetEx: remove the expiry
)

// OpExpire flags (Command.Flags).
const (
	ExpireAbs SetFlags = 1 << iota // Delta is absolute Unix ms, not relative
	ExpireNX                       // only if the key has no expiry
	ExpireXX                       // only if the key has an expiry
	ExpireGT                       // only if the new expiry is later (no expiry counts as infinite)
	ExpireLT                       // only if the new expiry is earlier (no expiry counts as infinite)
)

// Command is one state-machine write, as proposed through Raft.
type Command struct {
	Op     Op
	Flags  SetFlags
	Delta  int64
	Keys   [][]byte
	Values [][]byte

	// checked marks a batch NewBatch built from commands it validated, so
	// Validate need not decode every command it has just encoded.
	checked bool
}

// Batchable reports whether a command of op may ride in an OpBatch: not a
// batch, a format raise or an EXEC, which apply must see alone in their
// chunk. Anything that builds a batch (NewBatch, the leader combining
// forwarded writes) must check it: apply refuses such a batch, which halts
// the group.
func Batchable(op Op) bool {
	return op != OpBatch && op != OpRaiseFormat && op != OpExec
}

// NewBatch returns an OpBatch command carrying cmds (1 to MaxBatch valid
// commands, none a batch itself) in order.
func NewBatch(cmds []*Command) (*Command, error) {
	if len(cmds) == 0 || len(cmds) > MaxBatch {
		return nil, fmt.Errorf("kv: a batch holds 1 to %d commands", MaxBatch)
	}
	bc := &Command{Op: OpBatch, Values: make([][]byte, len(cmds))}
	for i, c := range cmds {
		if !Batchable(c.Op) {
			return nil, fmt.Errorf("kv: batches do not nest or carry a format raise or an EXEC")
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("kv: batch command %d: %w", i, err)
		}
		bc.Values[i] = c.AppendEncode(make([]byte, 0, c.Size()))
	}
	bc.checked = true
	return bc, nil
}

// ResultKind says which field of a Result carries the reply.
type ResultKind uint8

// Result kinds.
const (
	ResultOK    ResultKind = 1 // +OK
	ResultNil   ResultKind = 2 // null bulk string
	ResultInt   ResultKind = 3 // Int
	ResultBytes ResultKind = 4 // Bytes (a bulk string)
	ResultError ResultKind = 5 // Err, the Redis error text without the leading '-'
	ResultBatch ResultKind = 6 // Batch, one result per command of an OpBatch
	// ResultArray is an array reply whose elements are in Batch: each a
	// ResultBytes, ResultNil, ResultInt or a nested ResultArray (LMPOP's
	// [key, [elements]]), at most maxArrayDepth deep. Format 3 ops use it.
	ResultArray ResultKind = 7
	// ResultRaw is a complete RESP reply in Bytes, written to the client
	// as it is: an EXEC's or a script's reply (format 4, exec.go).
	ResultRaw ResultKind = 8
)

// maxArrayDepth bounds the nesting of ResultArray, so a hostile encoding
// cannot recurse the decoder deep.
const maxArrayDepth = 4

// MaxBatch bounds the commands of one OpBatch.
const MaxBatch = 1024

// Result is what applying a Command produced. It travels back to the
// proposer, possibly over the network when a follower forwarded the write.
type Result struct {
	Kind  ResultKind
	Int   int64
	Bytes []byte
	Err   string
	Batch []Result
}

// Redis error texts produced by the state machine.
const (
	ErrTextNotInteger = "ERR value is not an integer or out of range"
	ErrTextOverflow   = "ERR increment or decrement would overflow"
	ErrTextWrongType  = "WRONGTYPE Operation against a key holding the wrong kind of value"
	ErrTextTooLarge   = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
)

// MaxStringBytes caps a stored string, as Redis's proto-max-bulk-len does.
// It is a constant, not configuration: apply must decide identically on
// every replica. The Redis layer enforces the (smaller) per-node argument
// cap before anything is proposed.
const MaxStringBytes = 512 << 20

// ErrMalformed reports bytes that do not decode as a command or result.
var ErrMalformed = errors.New("kv: malformed encoding")

// Validate checks the shape of a command before it is proposed, so that a
// bad command is refused at the door rather than replicated. Apply runs it
// again on every decoded entry.
func (c *Command) Validate() error {
	if c.Op == OpBatch {
		if c.checked {
			return nil
		}
		_, err := c.batchCommands()
		return err
	}
	spec := lookupOp(c.Op)
	if spec == nil {
		return fmt.Errorf("kv: unknown op %d", c.Op)
	}
	return spec.validate(c)
}

// batchCommands checks an OpBatch's shape and decodes and validates each of
// its commands, returning them decoded.
func (c *Command) batchCommands() ([]Command, error) {
	if len(c.Keys) != 0 || len(c.Values) == 0 || len(c.Values) > MaxBatch {
		return nil, fmt.Errorf("kv: a batch holds 1 to %d commands", MaxBatch)
	}
	subs := make([]Command, len(c.Values))
	// Most commands have one key and at most one value.
	arena := make([][]byte, 0, 2*len(c.Values))
	for i, v := range c.Values {
		var sub Command
		var err error
		sub, arena, err = decodeCommand(v, arena)
		if err != nil {
			return nil, fmt.Errorf("kv: batch command %d: %w", i, err)
		}
		if !Batchable(sub.Op) {
			return nil, fmt.Errorf("kv: batches do not nest or carry a format raise or an EXEC")
		}
		if err := sub.Validate(); err != nil {
			return nil, fmt.Errorf("kv: batch command %d: %w", i, err)
		}
		subs[i] = sub
	}
	return subs, nil
}

// Size is an upper bound of the command's encoded length.
func (c *Command) Size() int {
	n := 1 + 1 + binary.MaxVarintLen64 + 2*binary.MaxVarintLen64
	for _, k := range c.Keys {
		n += binary.MaxVarintLen64 + len(k)
	}
	for _, v := range c.Values {
		n += binary.MaxVarintLen64 + len(v)
	}
	return n
}

// AppendEncode appends the command's encoding to dst.
//
// Layout: op, flags, varint delta, uvarint nkeys, uvarint nvalues, then each
// key and each value as uvarint length + bytes.
func (c *Command) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(c.Op), byte(c.Flags))
	dst = binary.AppendVarint(dst, c.Delta)
	dst = binary.AppendUvarint(dst, uint64(len(c.Keys)))
	dst = binary.AppendUvarint(dst, uint64(len(c.Values)))
	for _, k := range c.Keys {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
	}
	for _, v := range c.Values {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// DecodeCommand parses an encoded command. The returned command aliases b.
func DecodeCommand(b []byte) (Command, error) {
	c, _, err := decodeCommand(b, nil)
	return c, err
}

// decodeCommand is DecodeCommand carving Keys and Values out of arena's
// spare capacity where it suffices (a batch decodes all its commands into
// one allocation); it returns arena extended by what it used.
func decodeCommand(b []byte, arena [][]byte) (Command, [][]byte, error) {
	var c Command
	if len(b) < 2 {
		return c, arena, ErrMalformed
	}
	c.Op, c.Flags = Op(b[0]), SetFlags(b[1])
	if c.Op != OpBatch && lookupOp(c.Op) == nil {
		// OpInvalid, and a number this binary does not know (a newer
		// binary's op, or an unused one of the family ranges).
		return c, arena, fmt.Errorf("%w: op %d", ErrMalformed, b[0])
	}
	d := decoder{b: b[2:]}
	c.Delta = d.varint()
	nk, nv := d.uvarint(), d.uvarint()
	if d.err != nil || nk > uint64(len(d.b)) || nv > uint64(len(d.b)) {
		return c, arena, ErrMalformed
	}
	if nk > 0 {
		c.Keys, arena = carve(arena, int(nk))
		for i := range c.Keys {
			c.Keys[i] = d.bytes()
		}
	}
	if nv > 0 {
		c.Values, arena = carve(arena, int(nv))
		for i := range c.Values {
			c.Values[i] = d.bytes()
		}
	}
	if d.err != nil || len(d.b) != 0 {
		return c, arena, ErrMalformed
	}
	return c, arena, nil
}

// carve returns n slots from arena's spare capacity (capped, so appending
// to them never reaches the next command's) and the extended arena, or
// fresh slots when the capacity is short.
func carve(arena [][]byte, n int) ([][]byte, [][]byte) {
	start := len(arena)
	if cap(arena)-start < n {
		return make([][]byte, n), arena
	}
	arena = arena[:start+n]
	return arena[start : start+n : start+n], arena
}

// AppendEncode appends the result's encoding to dst.
func (r *Result) AppendEncode(dst []byte) []byte {
	dst = append(dst, byte(r.Kind))
	switch r.Kind {
	case ResultOK, ResultNil:
		// The kind is the whole encoding.
	case ResultInt:
		dst = binary.AppendVarint(dst, r.Int)
	case ResultBytes, ResultRaw:
		dst = binary.AppendUvarint(dst, uint64(len(r.Bytes)))
		dst = append(dst, r.Bytes...)
	case ResultError:
		dst = binary.AppendUvarint(dst, uint64(len(r.Err)))
		dst = append(dst, r.Err...)
	case ResultBatch, ResultArray:
		dst = binary.AppendUvarint(dst, uint64(len(r.Batch)))
		for i := range r.Batch {
			sub := r.Batch[i].AppendEncode(nil)
			dst = binary.AppendUvarint(dst, uint64(len(sub)))
			dst = append(dst, sub...)
		}
	}
	return dst
}

// DecodeResult parses an encoded result. The returned result aliases b.
func DecodeResult(b []byte) (Result, error) {
	return decodeResult(b, 0)
}

// decodeResult decodes a result nested depth arrays deep.
func decodeResult(b []byte, depth int) (Result, error) {
	var r Result
	if len(b) < 1 {
		return r, ErrMalformed
	}
	r.Kind = ResultKind(b[0])
	d := decoder{b: b[1:]}
	switch r.Kind {
	case ResultOK, ResultNil:
	case ResultInt:
		r.Int = d.varint()
	case ResultBytes, ResultRaw:
		r.Bytes = d.bytes()
		if r.Bytes == nil && d.err == nil {
			r.Bytes = []byte{}
		}
	case ResultError:
		r.Err = string(d.bytes())
	case ResultBatch:
		// One result per command; a batch never nests.
		var err error
		r.Batch, err = d.results(depth, MaxBatch, func(k ResultKind) bool { return k != ResultBatch })
		if err != nil {
			return r, err
		}
	case ResultArray:
		if depth >= maxArrayDepth {
			return r, ErrMalformed
		}
		var err error
		r.Batch, err = d.results(depth+1, len(d.b), func(k ResultKind) bool {
			return k == ResultBytes || k == ResultNil || k == ResultInt || k == ResultArray
		})
		if err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("%w: result kind %d", ErrMalformed, b[0])
	}
	if d.err != nil || len(d.b) != 0 {
		return r, ErrMalformed
	}
	return r, nil
}

// results reads a count, then that many length-prefixed results, each at
// the given depth and of a kind ok accepts; at most limit of them.
func (d *decoder) results(depth, limit int, ok func(ResultKind) bool) ([]Result, error) {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) || n > uint64(limit) {
		return nil, ErrMalformed
	}
	out := make([]Result, n)
	for i := range out {
		sub := d.bytes()
		if d.err != nil {
			return nil, ErrMalformed
		}
		var err error
		if out[i], err = decodeResult(sub, depth); err != nil || !ok(out[i].Kind) {
			return nil, ErrMalformed
		}
	}
	return out, nil
}

// decoder reads varint-framed fields; the first failure sticks in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = ErrMalformed
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = ErrMalformed
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = ErrMalformed
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
