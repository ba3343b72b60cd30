package kv

import (
	"crypto/sha1" //nolint:gosec // Redis names scripts by their SHA1; not a security use.
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// The replicated script cache (format 4).
//
// SCRIPT LOAD, and every EVAL on apply, store the script's body under a
// state-machine row named by the body's SHA1 ("m.script." + 40 lowercase
// hex digits), outside the user keyspace: FLUSHALL leaves it, as Redis
// keeps its script cache across FLUSHALL, and SCRIPT FLUSH removes every
// such row. Because the cache is replicated state, EVALSHA finds a script
// on every node once any node loaded it, and a node that joins later
// receives the rows with its snapshot.
//
// Invariants:
//   - A row's name is the SHA1 of its value, computed on apply from the
//     body alone, so a proposer cannot store a body under another name.
//   - The rows are written straight into the entry's batch: inside an
//     OpExec that batch is indexed, so a later EVALSHA of the same entry
//     reads the body back (Txn.Read).

// OpScriptLoad stores Values[0], a script body, in the script cache.
const OpScriptLoad Op = 81

// OpScriptFlush empties the script cache.
const OpScriptFlush Op = 82

// MaxScriptBytes bounds a script body, like any value.
const MaxScriptBytes = 512 << 20

// scriptPrefix starts the script cache's rows; scriptEnd is just past them.
const (
	scriptPrefix = "m.script."
	scriptEnd    = "m.script/"
)

// ScriptRow returns the row of the script named sha (40 lowercase hex).
func ScriptRow(sha string) []byte { return []byte(scriptPrefix + sha) }

// ScriptSHA returns the SHA1 of body in lowercase hex: the script's name.
func ScriptSHA(body []byte) string {
	sum := sha1.Sum(body) //nolint:gosec // a name, as Redis computes it
	return hex.EncodeToString(sum[:])
}

// NewScriptLoad returns the command that caches body.
func NewScriptLoad(body []byte) *Command {
	return &Command{Op: OpScriptLoad, Values: [][]byte{body}}
}

// NewScriptFlush returns the command that empties the script cache.
func NewScriptFlush() *Command { return &Command{Op: OpScriptFlush} }

// ErrNoScriptCache is returned by ScriptBody on a view that cannot hold
// the cache (a cluster below format 4).
var ErrNoScriptCache = errors.New("kv: the script cache needs the cluster at format 4")

// ScriptBody reads the body of the cached script sha (lowercase hex) from
// v, a view Store.Read or Txn.Read handed out. found is false when no
// such script is cached.
func ScriptBody(v View, sha string) (body []byte, found bool, err error) {
	wv, ok := v.(*view2)
	if !ok {
		return nil, false, ErrNoScriptCache
	}
	if err := wv.access("script"); err != nil {
		return nil, false, err
	}
	_, found, err = getRaw(wv.r, ScriptRow(sha), func(b []byte) { body = append([]byte(nil), b...) })
	if err != nil {
		return nil, false, fmt.Errorf("read script %s: %w", sha, err)
	}
	return body, found, nil
}

func validateScriptLoad(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) != 1 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: SCRIPT LOAD holds one body")
	}
	if len(c.Values[0]) > MaxScriptBytes {
		return fmt.Errorf("kv: a script holds up to %d bytes", MaxScriptBytes)
	}
	return nil
}

func validateScriptFlush(c *Command) error {
	if len(c.Keys) != 0 || len(c.Values) != 0 || c.Flags != 0 || c.Delta != 0 {
		return fmt.Errorf("kv: SCRIPT FLUSH takes no arguments")
	}
	return nil
}

func init() {
	registerOps(map[Op]*opSpec{
		OpScriptLoad: {name: "SCRIPT LOAD", minFormat: FormatV4, replies: bytesReply,
			validate: validateScriptLoad, apply2: applyScriptLoad},
		OpScriptFlush: {name: "SCRIPT FLUSH", minFormat: FormatV4, replies: okReply,
			validate: validateScriptFlush, apply2: applyScriptFlush},
	})
}

// applyScriptLoad stores the body and replies its SHA1.
func applyScriptLoad(_ *writeSet, b *pebble.Batch, c *Command) (Result, error) {
	sha := ScriptSHA(c.Values[0])
	if err := b.Set(ScriptRow(sha), c.Values[0], nil); err != nil {
		return Result{}, fmt.Errorf("store script %s: %w", sha, err)
	}
	return Result{Kind: ResultBytes, Bytes: []byte(sha)}, nil
}

// applyScriptFlush removes every cached script.
func applyScriptFlush(_ *writeSet, b *pebble.Batch, _ *Command) (Result, error) {
	if err := b.DeleteRange([]byte(scriptPrefix), []byte(scriptEnd), nil); err != nil {
		return Result{}, fmt.Errorf("flush scripts: %w", err)
	}
	return Result{Kind: ResultOK}, nil
}
