package redis

import (
	"strconv"

	"github.com/elastickv/elastickv/internal/kv"
)

// This file holds the pure argument parsers, kept apart from the handlers
// so that they can be table-tested and fuzzed without a server.

// replyError is an error whose text is the reply sent to the client after
// '-', starting with a Redis error code.
type replyError string

func (e replyError) Error() string { return string(e) }

// Errors the parsers return.
const (
	errSyntax        replyError = errTextSyntax
	errNotInteger    replyError = kv.ErrTextNotInteger
	errInvalidCursor replyError = "ERR invalid cursor"
	errReplyTooLarge replyError = "ERR reply too large; ask for fewer keys at a time (SCAN instead of KEYS)"
)

// parseInt parses an integer argument exactly as Redis does: optional '-',
// decimal digits, no '+', no leading zeros, within int64.
func parseInt(arg []byte) (int64, error) {
	n, err := kv.ParseInt(arg)
	if err != nil {
		return 0, errNotInteger
	}
	return n, nil
}

// defaultScanCount is how many keys SCAN examines when COUNT is absent.
const defaultScanCount = 10

// scanArgs are the parsed arguments of SCAN.
type scanArgs struct {
	cursor  uint64
	pattern []byte // nil: no MATCH
	count   int    // keys to examine, >= 1
	// typ is TYPE's argument (nil: no TYPE): only keys whose TYPE name
	// it is, compared case-insensitively as Redis does, are returned; an
	// unknown name matches nothing rather than fail, like Redis 7.
	typ []byte
}

// parseScanArgs parses "cursor [MATCH pattern] [COUNT count] [TYPE type]"
// (the arguments after SCAN).
func parseScanArgs(args [][]byte) (scanArgs, error) {
	var a scanArgs
	if len(args) == 0 {
		return a, errSyntax
	}
	// Redis cursors are unsigned decimal integers; ParseUint rejects signs,
	// spaces and underscores, as Redis does.
	cur, err := strconv.ParseUint(string(args[0]), 10, 64)
	if err != nil {
		return a, errInvalidCursor
	}
	a.cursor, a.count = cur, defaultScanCount
	opts := args[1:]
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			return a, errSyntax
		}
		val := opts[i+1]
		switch {
		case equalFold(opts[i], "match"):
			a.pattern = val
		case equalFold(opts[i], "count"):
			n, err := parseInt(val)
			if err != nil {
				return a, err
			}
			if n < 1 {
				return a, errSyntax
			}
			a.count = int(min(n, maxScanCount))
		case equalFold(opts[i], "type"):
			a.typ = val
		default:
			return a, errSyntax
		}
	}
	return a, nil
}
