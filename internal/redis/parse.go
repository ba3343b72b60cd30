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
	// errExpiryUnsupported is SET's answer to EX, PX, EXAT and PXAT: storing
	// the key without its expiry would silently break the caller's
	// assumptions (a lock that never times out, a cache that never
	// refreshes), so refuse instead.
	errExpiryUnsupported replyError = "ERR key expiry (EX, PX, EXAT, PXAT) is not supported by elastickv yet"
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

// parseSetOptions parses the options after SET key value into OpSet flags.
func parseSetOptions(opts [][]byte) (kv.SetFlags, error) {
	var flags kv.SetFlags
	for _, o := range opts {
		switch {
		case equalFold(o, "nx"):
			if flags&kv.SetXX != 0 {
				return 0, errSyntax
			}
			flags |= kv.SetNX
		case equalFold(o, "xx"):
			if flags&kv.SetNX != 0 {
				return 0, errSyntax
			}
			flags |= kv.SetXX
		case equalFold(o, "get"):
			flags |= kv.SetGet
		case equalFold(o, "keepttl"):
			// No key has a TTL, so keeping it is what SET does anyway.
		case equalFold(o, "ex"), equalFold(o, "px"), equalFold(o, "exat"), equalFold(o, "pxat"):
			return 0, errExpiryUnsupported
		default:
			return 0, errSyntax
		}
	}
	return flags, nil
}

// defaultScanCount is how many keys SCAN examines when COUNT is absent.
const defaultScanCount = 10

// scanArgs are the parsed arguments of SCAN.
type scanArgs struct {
	cursor  uint64
	pattern []byte // nil: no MATCH
	count   int    // keys to examine, >= 1
	// noType is set when TYPE names a type other than string: nothing in
	// this keyspace can match.
	noType bool
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
			// Unknown type names match nothing rather than fail, like Redis 7.
			a.noType = !equalFold(val, "string")
		default:
			return a, errSyntax
		}
	}
	return a, nil
}
