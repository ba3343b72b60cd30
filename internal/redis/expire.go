package redis

import (
	"math"
	"strings"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
)

// Key expiry: the EXPIRE family, TTL and friends, PERSIST, SETEX, PSETEX
// and GETEX. Relative times travel in the log as they were given and are
// turned into absolute ones on apply, at the entry's replicated time, so
// that every replica computes the same deadline whatever its own clock
// says (kv's apply time; docs/keyspace.md). This node's clock is read only
// to refuse, as Redis does, a time so large that adding it to the current
// time would overflow.

// expireErr is Redis's reply to an expiry that is out of range, which
// names the command in lowercase.
func expireErr(cmd string) replyError {
	return replyError("ERR invalid expire time in '" + cmd + "' command")
}

// nowMillis is this node's clock, used only for Redis's range checks.
func nowMillis() int64 { return time.Now().UnixMilli() }

// expireOpts is the parsed set of NX|XX|GT|LT.
func parseExpireFlags(args [][]byte) (kv.SetFlags, error) {
	var f kv.SetFlags
	for _, a := range args {
		switch {
		case equalFold(a, "nx"):
			f |= kv.ExpireNX
		case equalFold(a, "xx"):
			f |= kv.ExpireXX
		case equalFold(a, "gt"):
			f |= kv.ExpireGT
		case equalFold(a, "lt"):
			f |= kv.ExpireLT
		default:
			return 0, replyError("ERR Unsupported option " + string(a))
		}
	}
	if f&kv.ExpireNX != 0 && f&(kv.ExpireXX|kv.ExpireGT|kv.ExpireLT) != 0 {
		return 0, replyError("ERR NX and XX, GT or LT options at the same time are not compatible")
	}
	if f&kv.ExpireGT != 0 && f&kv.ExpireLT != 0 {
		return 0, replyError("ERR GT and LT options at the same time are not compatible")
	}
	return f, nil
}

// expireCommand implements EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT: unit
// is 1000 for seconds, 1 for milliseconds; abs says the time is a Unix
// time rather than a duration.
func expireCommand(name string, unit int64, abs bool) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		flags, err := parseExpireFlags(args[3:])
		if err != nil {
			c.err(err.Error())
			return
		}
		when, err := parseInt(args[2])
		if err != nil {
			c.err(err.Error())
			return
		}
		ms, ok := expireMillis(c.nowMillis(), when, unit, abs)
		if !ok {
			c.err(string(expireErr(name)))
			return
		}
		if abs {
			flags |= kv.ExpireAbs
		}
		s.writeResult(c, &kv.Command{Op: kv.OpExpire, Flags: flags, Delta: ms, Keys: args[1:2]})
	}
}

// expireMillis converts an EXPIRE-family argument to milliseconds with
// Redis's overflow rules: the unit conversion and the addition of the
// current time (for a relative time) must both fit in int64. Negative
// values are allowed: they delete the key.
func expireMillis(now, when, unit int64, abs bool) (int64, bool) {
	if unit != 1 {
		if when > math.MaxInt64/unit || when < math.MinInt64/unit {
			return 0, false
		}
		when *= unit
	}
	if !abs && when > math.MaxInt64-now {
		return 0, false
	}
	return when, true
}

func cmdTTL(s *Server, c *client, args [][]byte)         { s.ttl(c, args[1], false, false) }
func cmdPTTL(s *Server, c *client, args [][]byte)        { s.ttl(c, args[1], true, false) }
func cmdExpireTime(s *Server, c *client, args [][]byte)  { s.ttl(c, args[1], false, true) }
func cmdPExpireTime(s *Server, c *client, args [][]byte) { s.ttl(c, args[1], true, true) }

// ttl answers TTL, PTTL, EXPIRETIME and PEXPIRETIME: -2 for a missing key,
// -1 for a key without expiry; otherwise the remaining time (rounded to
// the nearest second for TTL, as Redis rounds) or the absolute deadline.
func (s *Server) ttl(c *client, key []byte, ms, absolute bool) {
	var (
		info  kv.KeyInfo
		found bool
		now   uint64
	)
	ok := s.read(c, func(v kv.View) error {
		var err error
		info, found, err = v.Lookup(key)
		now = v.Now()
		return err
	})
	if !ok {
		return
	}
	switch {
	case !found:
		c.int(-2)
	case info.ExpireAt == 0:
		c.int(-1)
	case absolute && ms:
		c.int(int64(info.ExpireAt))
	case absolute:
		c.int(int64(info.ExpireAt / 1000))
	default:
		left := int64(0)
		if info.ExpireAt > now {
			left = int64(info.ExpireAt - now)
		}
		if !ms {
			left = (left + 500) / 1000
		}
		c.int(left)
	}
}

func cmdPersist(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpPersist, Keys: args[1:2]})
}

// setExpiry is what an EX|PX|EXAT|PXAT|KEEPTTL|PERSIST option asked for.
type setExpiry struct {
	flags kv.SetFlags // SetPX, SetPXAT, SetKeepTTL or GetExPersist
	arg   []byte      // the time argument, parsed after the syntax check
	unit  int64       // 1000 for EX and EXAT, 1 for PX and PXAT
}

// setOptions is SET's parsed option list.
type setOptions struct {
	flags  kv.SetFlags // NX, XX, GET
	expiry setExpiry
}

// parseSetOptions parses SET's options as Redis 7.2 does: NX and XX
// exclude each other; EX, PX, EXAT, PXAT and KEEPTTL exclude one another
// except that one of EX, PX, EXAT, PXAT may repeat (the last wins); any
// other word, or a time option without its argument, is a syntax error.
// The time argument is checked later, by resolve, because Redis reports a
// syntax error anywhere in the line before a bad number.
func parseSetOptions(opts [][]byte) (setOptions, error) {
	var o setOptions
	for i := 0; i < len(opts); i++ {
		a := opts[i]
		switch {
		case equalFold(a, "nx") && o.flags&kv.SetXX == 0:
			o.flags |= kv.SetNX
		case equalFold(a, "xx") && o.flags&kv.SetNX == 0:
			o.flags |= kv.SetXX
		case equalFold(a, "get"):
			o.flags |= kv.SetGet
		case equalFold(a, "keepttl") && o.expiry.flags == 0:
			o.expiry.flags = kv.SetKeepTTL
		default:
			e, ok := timeOption(a, o.expiry)
			if !ok || i+1 >= len(opts) {
				return o, errSyntax
			}
			i++
			e.arg = opts[i]
			o.expiry = e
		}
	}
	return o, nil
}

// timeOption recognises EX, PX, EXAT and PXAT, allowed when no other
// expiry option (KEEPTTL, PERSIST, or a different time option) was given.
func timeOption(a []byte, cur setExpiry) (setExpiry, bool) {
	var e setExpiry
	switch {
	case equalFold(a, "ex"):
		e = setExpiry{flags: kv.SetPX, unit: 1000}
	case equalFold(a, "px"):
		e = setExpiry{flags: kv.SetPX, unit: 1}
	case equalFold(a, "exat"):
		e = setExpiry{flags: kv.SetPXAT, unit: 1000}
	case equalFold(a, "pxat"):
		e = setExpiry{flags: kv.SetPXAT, unit: 1}
	default:
		return e, false
	}
	if cur.flags != 0 && (cur.flags != e.flags || cur.unit != e.unit) {
		return e, false
	}
	return e, true
}

// resolve checks the time argument as Redis's getExpireMillisecondsOrReply
// does and returns the command's flags and Delta.
func (e setExpiry) resolve(now int64, cmd string) (kv.SetFlags, int64, error) {
	if e.arg == nil {
		return e.flags, 0, nil
	}
	n, err := parseInt(e.arg)
	if err != nil {
		return 0, 0, err
	}
	if n <= 0 || (e.unit != 1 && n > math.MaxInt64/e.unit) {
		return 0, 0, expireErr(cmd)
	}
	n *= e.unit
	if e.flags == kv.SetPX && n > math.MaxInt64-now {
		return 0, 0, expireErr(cmd)
	}
	return e.flags, n, nil
}

func cmdSet(s *Server, c *client, args [][]byte) {
	o, err := parseSetOptions(args[3:])
	if err != nil {
		c.err(err.Error())
		return
	}
	ef, delta, err := o.expiry.resolve(c.nowMillis(), "set")
	if err != nil {
		c.err(err.Error())
		return
	}
	cmd := &kv.Command{Op: kv.OpSet, Flags: o.flags, Keys: args[1:2], Values: args[2:3]}
	if ef != 0 {
		// Only SET with an expiry option needs the newer op: plain SET
		// stays readable by every binary of a mixed cluster.
		cmd.Op, cmd.Flags, cmd.Delta = kv.OpSetX, o.flags|ef, delta
	}
	s.writeResult(c, cmd)
}

// setexCommand implements SETEX (unit 1000) and PSETEX (unit 1).
func setexCommand(name string, unit int64) func(s *Server, c *client, args [][]byte) {
	return func(s *Server, c *client, args [][]byte) {
		e := setExpiry{flags: kv.SetPX, unit: unit, arg: args[2]}
		ef, delta, err := e.resolve(c.nowMillis(), name)
		if err != nil {
			c.err(err.Error())
			return
		}
		s.writeResult(c, &kv.Command{Op: kv.OpSetX, Flags: ef, Delta: delta, Keys: args[1:2], Values: args[3:4]})
	}
}

// cmdGetEx implements GETEX key [EX|PX|EXAT|PXAT time | PERSIST]. Without
// an option it is a plain GET, served as a read.
func cmdGetEx(s *Server, c *client, args [][]byte) {
	var e setExpiry
	opts := args[2:]
	for i := 0; i < len(opts); i++ {
		a := opts[i]
		if equalFold(a, "persist") && e.flags == 0 {
			e.flags = kv.GetExPersist
			continue
		}
		ne, ok := timeOption(a, e)
		if !ok || e.flags == kv.GetExPersist || i+1 >= len(opts) {
			c.err(errTextSyntax)
			return
		}
		i++
		ne.arg = opts[i]
		e = ne
	}
	if e.flags == 0 {
		cmdGet(s, c, args[:2])
		return
	}
	ef, delta, err := e.resolve(c.nowMillis(), "getex")
	if err != nil {
		c.err(err.Error())
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpGetEx, Flags: ef, Delta: delta, Keys: args[1:2]})
}

// objectHelp is OBJECT HELP's answer, in Redis's words for the
// subcommands' meaning.
var objectHelp = []string{
	"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
	"ENCODING <key>",
	"    Return the kind of internal representation used in order to store the value",
	"    associated with a <key>.",
	"FREQ <key>",
	"    Return the access frequency index of the <key>. The returned integer is",
	"    proportional to the logarithm of the recent access frequency of the key.",
	"IDLETIME <key>",
	"    Return the idle time of the <key>, that is the approximated number of",
	"    seconds elapsed since the last access to the key.",
	"REFCOUNT <key>",
	"    Return the number of references of the value associated with the specified",
	"    <key>.",
	"HELP",
	"    Print this help.",
}

// errTextNoLFU is Redis's reply to OBJECT FREQ when no LFU policy is
// selected; elastickv never evicts, so it always answers so.
const errTextNoLFU = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."

// cmdObject implements OBJECT ENCODING, REFCOUNT, IDLETIME, FREQ and HELP.
// elastickv keeps no per-key access clock (a read must not write), so
// IDLETIME answers 0 and FREQ answers as Redis does without an LFU policy;
// REFCOUNT answers 1, the count of a value no other key shares.
func cmdObject(s *Server, c *client, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	if sub == "help" {
		c.array(len(objectHelp))
		for _, l := range objectHelp {
			c.simple(l)
		}
		return
	}
	var (
		info  kv.KeyInfo
		found bool
	)
	if !s.read(c, func(v kv.View) error {
		var err error
		info, found, err = v.Lookup(args[2])
		if err == nil && found && sub == "encoding" {
			// A collection's name depends on its elements (kv's
			// encoding.go): at most 512 rows read, 8192 for a list.
			info.Encoding, found, err = kv.ObjectEncoding(v, args[2], s.encodingLimits())
		}
		return err
	}) {
		return
	}
	if !found {
		c.null()
		return
	}
	switch sub {
	case "encoding":
		c.bulkString(info.Encoding)
	case "refcount":
		c.int(1)
	case "idletime":
		c.int(0)
	case "freq":
		c.err(errTextNoLFU)
	}
}
