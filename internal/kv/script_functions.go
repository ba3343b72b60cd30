package kv

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The replicated function libraries (FUNCTION LOAD, format 4).
//
// A library is stored under "m.func.lib." + its name, its value the
// encoded list (AppendArgv) of its code followed by the names of the
// functions it registers; each function has a row "m.func.fn." + its name
// holding its library's name. The Redis layer decides, on apply, what a
// library registers (it runs the library's code, deterministically) and
// checks names for conflicts before it writes; these ops only store.
// Like scripts, libraries are outside the user keyspace: FLUSHALL keeps
// them and FUNCTION FLUSH removes them.
//
// Invariant: a function row exists exactly while the library that names
// it in its row does. OpFunctionPut replaces the library's old rows,
// OpFunctionDelete removes them, and both read the old library row inside
// the entry's batch. The Redis layer proposes them only inside an OpExec
// (FUNCTION LOAD and DELETE run on apply), whose batch is indexed, so the
// read sees every earlier write of the entry.

// OpFunctionPut stores a library: Values[0] its name, Values[1] its code,
// Values[2:] its functions. It replaces a library of that name.
const OpFunctionPut Op = 83

// OpFunctionDelete removes the library named Values[0]; it replies 1 if
// there was one, else 0.
const OpFunctionDelete Op = 84

// OpFunctionFlush removes every library.
const OpFunctionFlush Op = 85

const (
	funcLibPrefix = "m.func.lib."
	funcLibEnd    = "m.func.lib/"
	funcFnPrefix  = "m.func.fn."
	funcPrefix    = "m.func."
	funcEnd       = "m.func/"
)

// NewFunctionPut returns the command that stores library lib.
func NewFunctionPut(lib string, code []byte, functions []string) *Command {
	v := [][]byte{[]byte(lib), code}
	for _, f := range functions {
		v = append(v, []byte(f))
	}
	return &Command{Op: OpFunctionPut, Values: v}
}

// NewFunctionDelete returns the command that removes library lib.
func NewFunctionDelete(lib string) *Command {
	return &Command{Op: OpFunctionDelete, Values: [][]byte{[]byte(lib)}}
}

// NewFunctionFlush returns the command that removes every library.
func NewFunctionFlush() *Command { return &Command{Op: OpFunctionFlush} }

// FunctionLibrary is a stored library.
type FunctionLibrary struct {
	Name      string
	Code      []byte
	Functions []string
}

func decodeLibrary(name string, b []byte) (FunctionLibrary, error) {
	argv, err := DecodeArgv(b)
	if err != nil {
		return FunctionLibrary{}, fmt.Errorf("library %s: %w", name, err)
	}
	lib := FunctionLibrary{Name: name, Code: append([]byte(nil), argv[0]...)}
	for _, f := range argv[1:] {
		lib.Functions = append(lib.Functions, string(f))
	}
	return lib, nil
}

// ReadFunctionLibrary reads library name from v.
func ReadFunctionLibrary(v View, name string) (FunctionLibrary, bool, error) {
	wv, ok := v.(*view2)
	if !ok {
		return FunctionLibrary{}, false, ErrNoScriptCache
	}
	if err := wv.access("function"); err != nil {
		return FunctionLibrary{}, false, err
	}
	return readLibrary(wv.r, name)
}

func readLibrary(r pebbleReader, name string) (FunctionLibrary, bool, error) {
	var raw []byte
	_, found, err := getRaw(r, []byte(funcLibPrefix+name), func(b []byte) { raw = append([]byte(nil), b...) })
	if err != nil || !found {
		return FunctionLibrary{}, false, err
	}
	lib, err := decodeLibrary(name, raw)
	return lib, err == nil, err
}

// FunctionOwner returns the library that registers function fn.
func FunctionOwner(v View, fn string) (string, bool, error) {
	wv, ok := v.(*view2)
	if !ok {
		return "", false, ErrNoScriptCache
	}
	if err := wv.access("function"); err != nil {
		return "", false, err
	}
	var lib string
	_, found, err := getRaw(wv.r, []byte(funcFnPrefix+fn), func(b []byte) { lib = string(b) })
	return lib, found, err
}

// FunctionLibraries returns every stored library, by name.
func FunctionLibraries(v View) ([]FunctionLibrary, error) {
	wv, ok := v.(*view2)
	if !ok {
		return nil, ErrNoScriptCache
	}
	if err := wv.access("function"); err != nil {
		return nil, err
	}
	it, err := wv.r.NewIter(&pebble.IterOptions{LowerBound: []byte(funcLibPrefix), UpperBound: []byte(funcLibEnd)})
	if err != nil {
		return nil, fmt.Errorf("list libraries: %w", err)
	}
	defer func() { _ = it.Close() }()
	var out []FunctionLibrary
	for ok := it.First(); ok; ok = it.Next() {
		k := string(it.Key())
		lib, err := decodeLibrary(k[len(funcLibPrefix):], it.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, lib)
	}
	return out, it.Error()
}

func validateFunctionPut(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) < 2 || c.Flags != 0 || c.Delta != 0 || len(c.Values[0]) == 0 {
		return fmt.Errorf("kv: FUNCTION LOAD holds a name, code and functions")
	}
	if len(c.Values[1]) > MaxScriptBytes {
		return fmt.Errorf("kv: a library holds up to %d bytes", MaxScriptBytes)
	}
	return nil
}

func validateFunctionDelete(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) != 1 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: FUNCTION DELETE holds a library name")
	}
	return nil
}

func init() {
	registerOps(map[Op]*opSpec{
		OpFunctionPut: {name: "FUNCTION LOAD", minFormat: FormatV4, replies: okReply,
			validate: validateFunctionPut, apply2: applyFunctionPut},
		OpFunctionDelete: {name: "FUNCTION DELETE", minFormat: FormatV4, replies: intReply,
			validate: validateFunctionDelete, apply2: applyFunctionDelete},
		OpFunctionFlush: {name: "FUNCTION FLUSH", minFormat: FormatV4, replies: okReply,
			validate: validateScriptFlush, apply2: applyFunctionFlush},
	})
}

// deleteLibrary removes library name's rows, reading its old row from b
// (or the store, outside an indexed batch: the caller passes the reader).
func deleteLibrary(r pebbleReader, b *pebble.Batch, name string) (bool, error) {
	old, found, err := readLibrary(r, name)
	if err != nil || !found {
		return false, err
	}
	for _, f := range old.Functions {
		if err := b.Delete([]byte(funcFnPrefix+f), nil); err != nil {
			return false, fmt.Errorf("delete function %s: %w", f, err)
		}
	}
	if err := b.Delete([]byte(funcLibPrefix+name), nil); err != nil {
		return false, fmt.Errorf("delete library %s: %w", name, err)
	}
	return true, nil
}

// libReader is where an op reads the old library row: the entry's batch
// when it is indexed (inside an OpExec, where earlier commands of the
// entry may have written it), else the store.
func libReader(w *writeSet, b *pebble.Batch) pebbleReader {
	if b != nil && b.Indexed() {
		return b
	}
	return w.db
}

func applyFunctionPut(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	name := string(c.Values[0])
	if _, err := deleteLibrary(libReader(w, b), b, name); err != nil {
		return Result{}, err
	}
	if err := b.Set([]byte(funcLibPrefix+name), AppendArgv(nil, c.Values[1:]), nil); err != nil {
		return Result{}, fmt.Errorf("store library %s: %w", name, err)
	}
	for _, f := range c.Values[2:] {
		if err := b.Set(append([]byte(funcFnPrefix), f...), c.Values[0], nil); err != nil {
			return Result{}, fmt.Errorf("store function %s: %w", f, err)
		}
	}
	return Result{Kind: ResultOK}, nil
}

func applyFunctionDelete(w *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	found, err := deleteLibrary(libReader(w, b), b, string(c.Values[0]))
	if err != nil {
		return Result{}, err
	}
	if found {
		return Result{Kind: ResultInt, Int: 1}, nil
	}
	return Result{Kind: ResultInt, Int: 0}, nil
}

func applyFunctionFlush(_ *writeSet, b *pebble.Batch, _ *Command) (Result, error) {
	if err := b.DeleteRange([]byte(funcPrefix), []byte(funcEnd), nil); err != nil {
		return Result{}, fmt.Errorf("flush functions: %w", err)
	}
	return Result{Kind: ResultOK}, nil
}
