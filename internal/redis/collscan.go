package redis

import (
	"bytes"
	"strconv"

	"github.com/elastickv/elastickv/internal/kv"
)

// HSCAN, SSCAN and ZSCAN share this cursor helper. A collection's elements
// iterate in a fixed order (a hash's fields and a set's members in byte
// order, a sorted set's member index likewise), so a cursor is a position
// in that order: the element to resume at. Like SCAN's (scan.go), the
// position lives in the server's cursor table under a random numeric id,
// tagged so that a SCAN cursor is never taken for a collection's or the
// reverse; an id that aged out is answered "-ERR invalid cursor".
//
// Guarantee, as Redis gives: an element present for the whole scan is
// returned exactly once (positions only move forward, and the rows are in
// a total order); one added or removed during the scan may or may not be.
// Cost per call: O(COUNT) rows read, plus the pattern matching.

// collCursorTag starts every cursor-table entry of a collection scan.
const collCursorTag = 'e'

// errWrongTypeReply is Redis's WRONGTYPE reply, for read callbacks of the
// collection families to return (backendError writes it).
const errWrongTypeReply replyError = kv.ErrTextWrongType

// wrongTypeOr maps a View's ErrWrongType to the WRONGTYPE reply and
// passes any other error through.
func wrongTypeOr(err error) error {
	if isWrongType(err) {
		return errWrongTypeReply
	}
	return err
}

// collWalk walks the collection key for a scan, from position from (nil:
// the start), calling emit with each element's position and its reply
// items (field and value; member; member and score), in position order,
// until emit returns false. It reports whether key exists; a key of
// another type is an error that errors.Is kv.ErrWrongType. It runs inside
// a read callback: the slices it passes may be reused once emit returns.
type collWalk func(v kv.View, key, from []byte, emit func(pos []byte, items ...[]byte) bool) (found bool, err error)

// collScanOpts are the options after a collection scan's cursor.
type collScanOpts struct {
	pattern *glob // nil: no MATCH
	count   int   // elements to examine, >= 1
}

// parseCollScanOpts parses "[MATCH pattern] [COUNT count]"; NOVALUES
// (Redis 7.4) and TYPE are syntax errors, as in Redis 7.2.
func parseCollScanOpts(opts [][]byte) (collScanOpts, error) {
	a := collScanOpts{count: defaultScanCount}
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			return a, errSyntax
		}
		val := opts[i+1]
		switch {
		case equalFold(opts[i], "match"):
			a.pattern = compileGlob(val)
		case equalFold(opts[i], "count"):
			n, err := parseInt(val)
			if err != nil {
				return a, err
			}
			if n < 1 {
				return a, errSyntax
			}
			a.count = int(min(n, maxScanCount))
		default:
			return a, errSyntax
		}
	}
	return a, nil
}

// collScan answers HSCAN, SSCAN or ZSCAN (name, lowercase): args are the
// command's arguments (name, key, cursor, options). Redis's order of
// errors: a malformed cursor, then the key's type (a missing key answers
// an empty page whatever the options), then the options.
func (s *Server) collScan(c *client, name string, args [][]byte, walk collWalk) {
	s.collScanWith(c, name, args, walk, false)
}

// collScanByElement is collScan for a collection whose positions are its
// elements themselves (a hash's fields, a set's members): the literal
// prefix of a MATCH pattern then bounds the walk to the elements that can
// match, so a scan with MATCH "user:*" costs O(elements under "user:")
// over all its calls rather than O(N).
func (s *Server) collScanByElement(c *client, name string, args [][]byte, walk collWalk) {
	s.collScanWith(c, name, args, walk, true)
}

// collScanWith is collScan; byElement says positions are elements.
func (s *Server) collScanWith(c *client, name string, args [][]byte, walk collWalk, byElement bool) {
	key := args[1]
	cur, err := strconv.ParseUint(string(args[2]), 10, 64)
	if err != nil {
		c.err(string(errInvalidCursor))
		return
	}
	var from []byte
	if cur != 0 {
		stored, ok := s.cursorGet(c, cur)
		if !ok || len(stored) == 0 || stored[0] != collCursorTag {
			c.err(string(errInvalidCursor))
			return
		}
		from = stored[1:]
	}
	opts, optErr := parseCollScanOpts(args[3:])
	var prefix []byte // elements outside it cannot match (byElement)
	if byElement && optErr == nil && opts.pattern != nil {
		if prefix = literalPrefix(opts.pattern.pattern); len(prefix) > 0 && bytes.Compare(from, prefix) < 0 {
			from = prefix
		}
	}
	var (
		items [][]byte
		next  []byte // the position of the first element not examined; nil when done
	)
	ok := s.readBounded(c, name, func(v kv.View, b *budget) error {
		items, next = items[:0], nil
		examined, held := 0, 0
		found, err := walk(v, key, from, func(pos []byte, it ...[]byte) bool {
			if optErr != nil {
				return false // only the key's existence and type were wanted
			}
			if len(prefix) > 0 && !bytes.HasPrefix(pos, prefix) {
				return false // past the elements that can match: done
			}
			if examined == opts.count || held >= maxScanReplyBytes {
				next = append([]byte{collCursorTag}, pos...)
				return false
			}
			examined++
			if opts.pattern != nil && len(it) > 0 {
				m, err := opts.pattern.matchWithin(it[0], b)
				if err != nil {
					return false // the budget is spent; the walk reports it
				}
				if !m {
					return true
				}
			}
			for _, x := range it {
				items = append(items, bytes.Clone(x))
				held += len(x) + respOverhead
			}
			return true
		})
		if err != nil {
			return wrongTypeOr(err)
		}
		if !found {
			items, next = items[:0], nil
			return nil
		}
		return optErr
	})
	if !ok {
		return
	}
	var id uint64
	if next != nil {
		id = s.cursorPut(c, next)
	}
	writeScanReply(c, id, items)
}

// encodingLimits reads the small-encoding limits OBJECT ENCODING follows
// from this node's CONFIG parameters (local ones: kv's encoding.go).
func (s *Server) encodingLimits() kv.EncodingLimits {
	snap := s.params.Snapshot()
	return kv.EncodingLimits{
		HashEntries:      snap.Int("hash-max-listpack-entries"),
		HashValue:        snap.Int("hash-max-listpack-value"),
		SetIntsetEntries: snap.Int("set-max-intset-entries"),
		SetEntries:       snap.Int("set-max-listpack-entries"),
		SetValue:         snap.Int("set-max-listpack-value"),
		ZSetEntries:      snap.Int("zset-max-listpack-entries"),
		ZSetValue:        snap.Int("zset-max-listpack-value"),
		ListSize:         snap.Int("list-max-listpack-size"),
	}
}

// The hash and set commands that pipelined runs may batch (pipeline.go):
// each write handler makes exactly one s.write call, each read handler
// only s.read calls. Appended during package variable initialization,
// which the Go spec orders before every init function (and after
// batchWriteCommands, which markBatchable refers to), so commands.go's
// init sees them.
var _ = markBatchable(
	[]string{"hset", "hmset", "hsetnx", "hdel", "hincrby", "hincrbyfloat",
		"sadd", "srem", "smove", "sinterstore", "sunionstore", "sdiffstore"},
	[]string{"hget", "hmget", "hexists", "hlen", "hstrlen", "sismember", "smismember", "scard"},
)

// markBatchable adds commands to the batchable lists of commands.go.
func markBatchable(writes, reads []string) bool {
	batchWriteCommands = append(batchWriteCommands, writes...)
	batchReadCommands = append(batchReadCommands, reads...)
	return true
}
