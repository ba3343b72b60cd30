package kv

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The op registry: everything the store knows about an op, in one entry.
// Validate, MinFormat and both apply paths read it, so a new op (the
// collection ops of the issues after #14) is one entry here plus its
// functions, never an edit to several switches that must agree.
//
// Invariants:
//   - An op's number, minFormat, encoding (Command's fields as the op uses
//     them) and apply are part of the replicated log format: an existing
//     entry never changes meaning. New behaviour is a new op, appended,
//     with the format version that introduces it.
//   - apply1 is nil exactly for ops whose minFormat is above 1: the node
//     never proposes them below their format, and a replica that meets one
//     anyway answers an error, the same on every replica.
//   - validate accepts exactly the commands apply can apply: apply may
//     index Keys and Values as validate checked them.
//   - replies lists every Result kind a successful apply may answer
//     besides ResultError (WRONGTYPE and Redis's other error replies),
//     which every op may answer. TestOpRegistryRepliesAreDeclared checks
//     it against the differential model's results.

// applyFunc applies one validated command against the chunk's write set;
// b receives what cannot be folded per key (FLUSHALL's range deletion,
// the format rows). An error means the store failed and stops the node;
// the client's errors are Results.
type applyFunc func(w *writeSet, b *pebble.Batch, c *Command) (Result, error)

// opSpec is one op's registry entry.
type opSpec struct {
	// name is the op's name in logs and errors.
	name string
	// minFormat is the cluster format the op needs (Command.MinFormat).
	minFormat uint8
	// replies are the Result kinds a successful apply answers.
	replies []ResultKind
	// validate checks the command's shape.
	validate func(c *Command) error
	// apply1 applies at format 1 (the v1 layout); nil for format 2 ops.
	apply1 applyFunc
	// apply2 applies at format 2 (keyspace v2).
	apply2 applyFunc
}

// withoutBatch adapts an apply that needs no batch.
func withoutBatch(f func(w *writeSet, c *Command) (Result, error)) applyFunc {
	return func(w *writeSet, _ *pebble.Batch, c *Command) (Result, error) { return f(w, c) }
}

var (
	okReply        = []ResultKind{ResultOK}
	intReply       = []ResultKind{ResultInt}
	bytesOrNil     = []ResultKind{ResultBytes, ResultNil}
	setReplies     = []ResultKind{ResultOK, ResultNil, ResultBytes}
	bytesReply     = []ResultKind{ResultBytes}
	okOrInt        = []ResultKind{ResultOK, ResultInt}
	v2Validate     = (*Command).validateV2
	v2OpsValidated = (*Command).validateOps2
)

// ops is the registry, indexed by Op. OpInvalid and OpBatch have no entry:
// an OpBatch is applied as its sub-commands (batch.go).
var ops = [opMax]*opSpec{
	OpSet: {name: "SET", minFormat: FormatV1, replies: setReplies, validate: validateSet,
		apply1: withoutBatch(applySet), apply2: withoutBatch(applySet2)},
	OpGetDel: {name: "GETDEL", minFormat: FormatV1, replies: bytesOrNil, validate: validateOneKey,
		apply1: applyGetDel1, apply2: applyGetDel2},
	OpDel: {name: "DEL", minFormat: FormatV1, replies: intReply, validate: validateDel,
		apply1: applyDel1, apply2: applyDel2},
	OpIncrBy: {name: "INCRBY", minFormat: FormatV1, replies: intReply, validate: validateOneKey,
		apply1: applyIncrBy1, apply2: withoutBatch(applyIncr2)},
	OpAppend: {name: "APPEND", minFormat: FormatV1, replies: intReply, validate: validateKeyValue,
		apply1: applyAppend1, apply2: applyAppend2},
	OpMSet: {name: "MSET", minFormat: FormatV1, replies: okReply, validate: validatePairs,
		apply1: applyMSet1, apply2: applyMSet2},
	OpFlushAll: {name: "FLUSHALL", minFormat: FormatV1, replies: okReply, validate: validateNoKeys,
		apply1: applyFlushAll, apply2: applyFlushAll},
	OpRaiseFormat: {name: "RAISEFORMAT", minFormat: FormatV1, replies: okReply, validate: validateRaise,
		apply1: applyRaise, apply2: applyRaise},

	OpSetX: {name: "SETX", minFormat: FormatV2, replies: setReplies, validate: v2Validate,
		apply2: withoutBatch(applySet2)},
	OpExpire: {name: "EXPIRE", minFormat: FormatV2, replies: intReply, validate: v2Validate,
		apply2: withoutBatch(applyExpire2)},
	OpPersist: {name: "PERSIST", minFormat: FormatV2, replies: intReply, validate: v2Validate,
		apply2: applyPersist2},
	OpGetEx: {name: "GETEX", minFormat: FormatV2, replies: bytesOrNil, validate: v2Validate,
		apply2: applyGetEx2},
	OpExpireIf: {name: "EXPIREIF", minFormat: FormatV2, replies: intReply, validate: v2Validate,
		apply2: withoutBatch(applyExpireIf)},
	OpSetRange: {name: "SETRANGE", minFormat: FormatV2, replies: intReply, validate: v2OpsValidated,
		apply2: withoutBatch(applySetRange)},
	OpIncrByFloat: {name: "INCRBYFLOAT", minFormat: FormatV2, replies: bytesReply, validate: v2OpsValidated,
		apply2: withoutBatch(applyIncrByFloat)},
	OpMSetNX: {name: "MSETNX", minFormat: FormatV2, replies: intReply, validate: v2OpsValidated,
		apply2: withoutBatch(applyMSetNX)},
	OpRename: {name: "RENAME", minFormat: FormatV2, replies: okOrInt, validate: v2OpsValidated,
		apply2: withoutBatch(applyRename)},
	OpCopy: {name: "COPY", minFormat: FormatV2, replies: intReply, validate: v2OpsValidated,
		apply2: withoutBatch(applyCopy)},
}

// registerOps adds a family's ops to the registry; each family file calls
// it from init. Two families claiming one number is a programming error,
// caught the moment the binary starts (init runs before any client or
// peer can reach the store).
func registerOps(family map[Op]*opSpec) {
	for op, spec := range family {
		if op >= opMax || ops[op] != nil {
			panic(fmt.Sprintf("kv: op %d (%s) registered twice or out of range", op, spec.name))
		}
		ops[op] = spec
	}
}

// lookupOp returns op's registry entry, or nil for an op this binary does
// not know (and for OpInvalid and OpBatch).
func lookupOp(op Op) *opSpec {
	if op >= opMax {
		return nil
	}
	return ops[op]
}

// Format 1 validators. The format 2 ops validate in apply2.go and ops2.go.

func validateSet(c *Command) error {
	if err := validateKeyValue(c); err != nil {
		return err
	}
	if c.Flags&SetNX != 0 && c.Flags&SetXX != 0 {
		return fmt.Errorf("kv: NX and XX are exclusive")
	}
	return nil
}

func validateKeyValue(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 1 {
		return fmt.Errorf("kv: op %d needs one key and one value", c.Op)
	}
	return nil
}

func validateOneKey(c *Command) error {
	if len(c.Keys) != 1 || len(c.Values) != 0 {
		return fmt.Errorf("kv: op %d needs exactly one key", c.Op)
	}
	return nil
}

func validateDel(c *Command) error {
	if len(c.Keys) == 0 || len(c.Values) != 0 {
		return fmt.Errorf("kv: DEL needs at least one key")
	}
	return nil
}

func validatePairs(c *Command) error {
	if len(c.Keys) == 0 || len(c.Keys) != len(c.Values) {
		return fmt.Errorf("kv: MSET needs key/value pairs")
	}
	return nil
}

func validateNoKeys(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) != 0 {
		return fmt.Errorf("kv: FLUSHALL takes no keys")
	}
	return nil
}

func validateRaise(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) != 0 || c.Flags != 0 {
		return fmt.Errorf("kv: a format raise takes no keys, values or flags")
	}
	if c.Delta < int64(FormatV2) || c.Delta > int64(MaxFormat) {
		return fmt.Errorf("kv: format raise to %d: this binary knows versions up to %d", c.Delta, MaxFormat)
	}
	return nil
}
