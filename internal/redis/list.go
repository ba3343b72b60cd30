package redis

import (
	"github.com/elastickv/elastickv/internal/kv"
)

// Lists (issue #16): every write is one kv op (internal/kv/list.go), so
// its checks (WRONGTYPE, "no such key", "index out of range") run at
// apply in Redis's order; this layer parses arguments and refuses what
// Redis refuses before it looks at a key. Reads go through kv's list
// read functions; those whose cost grows with the list (LRANGE, LPOS)
// run under the request's budget (expensive.go).

// Redis's error texts for list arguments.
const (
	errTextMustBePositive = "ERR value is out of range, must be positive"
	errTextNumKeys        = "ERR numkeys should be greater than 0"
	errTextCountPositive  = "ERR count should be greater than 0"
	errTextRankZero       = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"
	errTextRankRange      = "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
	errTextCountNegative  = "ERR COUNT can't be negative"
	errTextMaxLenNegative = "ERR MAXLEN can't be negative"
)

// nullArray writes RESP2's null array (*-1), which Redis answers where an
// array reply has nothing to hold (LPOP key count on a missing key, LMPOP
// and the blocking pops when every key is empty or on timeout).
func (c *client) nullArray() {
	if !c.mute && c.charge(respOverhead) {
		c.conn.WriteRaw([]byte("*-1\r\n"))
	}
}

// arrayResult writes r, answering nil as a null array.
func (c *client) arrayResult(r kv.Result) {
	if r.Kind == kv.ResultNil {
		c.nullArray()
		return
	}
	c.result(r)
}

func cmdLPush(s *Server, c *client, args [][]byte)  { listPush(s, c, args, kv.ListLeft) }
func cmdRPush(s *Server, c *client, args [][]byte)  { listPush(s, c, args, 0) }
func cmdLPushX(s *Server, c *client, args [][]byte) { listPush(s, c, args, kv.ListLeft|kv.ListXX) }
func cmdRPushX(s *Server, c *client, args [][]byte) { listPush(s, c, args, kv.ListXX) }

func listPush(s *Server, c *client, args [][]byte, flags kv.SetFlags) {
	s.writeResult(c, &kv.Command{Op: kv.OpListPush, Flags: flags, Keys: args[1:2], Values: args[2:]})
}

func cmdLPop(s *Server, c *client, args [][]byte) { listPop(s, c, args, "lpop", kv.ListLeft) }
func cmdRPop(s *Server, c *client, args [][]byte) { listPop(s, c, args, "rpop", 0) }

// listPop is LPOP and RPOP: key [count].
func listPop(s *Server, c *client, args [][]byte, name string, flags kv.SetFlags) {
	if len(args) > 3 {
		c.err(wrongArity(name))
		return
	}
	cmd := &kv.Command{Op: kv.OpListPop, Flags: flags, Keys: args[1:2]}
	if len(args) == 3 {
		n, err := kv.ParseInt(args[2])
		if err != nil || n < 0 {
			c.err(errTextMustBePositive)
			return
		}
		cmd.Flags |= kv.ListCount
		cmd.Delta = n
	}
	r, ok := s.write(c, cmd)
	if !ok {
		return
	}
	if cmd.Flags&kv.ListCount != 0 {
		c.arrayResult(r)
		return
	}
	c.result(r)
}

// parseListEnd parses LEFT or RIGHT: ListLeft or 0, and false for
// anything else.
func parseListEnd(arg []byte) (left, ok bool) {
	switch {
	case equalFold(arg, "left"):
		return true, true
	case equalFold(arg, "right"):
		return false, true
	}
	return false, false
}

// parseRangeArg parses an integer argument within [lo, hi]; msg, when not
// empty, is the reply for a bad one, else Redis's generic texts.
func parseRangeArg(arg []byte, lo, hi int64, msg string) (int64, error) {
	n, err := kv.ParseInt(arg)
	if err != nil {
		if msg != "" {
			return 0, replyError(msg)
		}
		return 0, errNotInteger
	}
	if n < lo || n > hi {
		if msg != "" {
			return 0, replyError(msg)
		}
		return 0, replyError(errTextRankRange)
	}
	return n, nil
}

// ParseMPop parses the "numkeys key [key ...] LEFT|RIGHT [COUNT count]"
// part of LMPOP and BLMPOP into the OpListPop they propose (ListMulti,
// Delta the count).
func ParseMPop(args [][]byte) (*kv.Command, error) {
	const maxInt64 = 1<<63 - 1
	numkeys, err := parseRangeArg(args[0], 1, maxInt64, errTextNumKeys)
	if err != nil {
		return nil, err
	}
	if numkeys >= int64(len(args))-1 {
		return nil, errSyntax
	}
	keys, rest := args[1:1+numkeys], args[1+numkeys:]
	left, ok := parseListEnd(rest[0])
	if !ok {
		return nil, errSyntax
	}
	count := int64(-1)
	for j := 1; j < len(rest); j++ {
		if count == -1 && equalFold(rest[j], "count") && j+1 < len(rest) {
			j++
			if count, err = parseRangeArg(rest[j], 1, maxInt64, errTextCountPositive); err != nil {
				return nil, err
			}
			continue
		}
		return nil, errSyntax
	}
	if count == -1 {
		count = 1
	}
	cmd := &kv.Command{Op: kv.OpListPop, Flags: kv.ListMulti, Delta: count, Keys: keys}
	if left {
		cmd.Flags |= kv.ListLeft
	}
	return cmd, nil
}

func cmdLMPop(s *Server, c *client, args [][]byte) {
	cmd, err := ParseMPop(args[1:])
	if err != nil {
		c.err(err.Error())
		return
	}
	if r, ok := s.write(c, cmd); ok {
		c.arrayResult(r)
	}
}

func cmdLMove(s *Server, c *client, args [][]byte) {
	from, ok1 := parseListEnd(args[3])
	to, ok2 := parseListEnd(args[4])
	if !ok1 || !ok2 {
		c.err(errTextSyntax)
		return
	}
	s.writeResult(c, NewListMove(args[1], args[2], from, to))
}

func cmdRPopLPush(s *Server, c *client, args [][]byte) {
	s.writeResult(c, NewListMove(args[1], args[2], false, true))
}

// NewListMove builds the op of LMOVE src dst (BLMOVE's too): pop at src's
// head if fromLeft, push at dst's head if toLeft.
func NewListMove(src, dst []byte, fromLeft, toLeft bool) *kv.Command {
	cmd := &kv.Command{Op: kv.OpListMove, Keys: [][]byte{src, dst}}
	if fromLeft {
		cmd.Flags |= kv.ListLeft
	}
	if toLeft {
		cmd.Flags |= kv.ListDstLeft
	}
	return cmd
}

func cmdLSet(s *Server, c *client, args [][]byte) {
	idx, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpListSet, Delta: idx, Keys: args[1:2], Values: args[3:4]})
}

func cmdLInsert(s *Server, c *client, args [][]byte) {
	cmd := &kv.Command{Op: kv.OpListInsert, Keys: args[1:2], Values: args[3:5]}
	switch {
	case equalFold(args[2], "before"):
		cmd.Flags = kv.ListLeft
	case equalFold(args[2], "after"):
	default:
		c.err(errTextSyntax)
		return
	}
	s.writeResult(c, cmd)
}

func cmdLRem(s *Server, c *client, args [][]byte) {
	n, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpListRem, Delta: n, Keys: args[1:2], Values: args[3:4]})
}

func cmdLTrim(s *Server, c *client, args [][]byte) {
	start, err := parseInt(args[2])
	if err == nil {
		var stop int64
		if stop, err = parseInt(args[3]); err == nil {
			s.writeResult(c, kv.NewListTrim(args[1], start, stop))
			return
		}
	}
	c.err(err.Error())
}

// listWrongType maps kv's ErrWrongType to the WRONGTYPE reply.
func listWrongType(err error) error {
	if isWrongType(err) {
		return replyError(kv.ErrTextWrongType)
	}
	return err
}

func cmdLLen(s *Server, c *client, args [][]byte) {
	var n int64
	ok := s.read(c, func(v kv.View) error {
		var err error
		n, err = kv.ListLen(v, args[1])
		return listWrongType(err)
	})
	if ok {
		c.int(n)
	}
}

func cmdLIndex(s *Server, c *client, args [][]byte) {
	idx, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	var (
		val   []byte
		found bool
	)
	ok := s.read(c, func(v kv.View) error {
		var err error
		val, found, err = kv.ListIndex(v, args[1], idx)
		return listWrongType(err)
	})
	switch {
	case !ok:
	case !found:
		c.null()
	default:
		c.bulk(val)
	}
}

func cmdLRange(s *Server, c *client, args [][]byte) {
	start, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	stop, err := parseInt(args[3])
	if err != nil {
		c.err(err.Error())
		return
	}
	var out [][]byte
	ok := s.readBounded(c, "lrange", func(v kv.View, _ *budget) error {
		out = out[:0]
		_, err := kv.ListRange(v, args[1], start, stop, func(e []byte) bool {
			out = append(out, append([]byte(nil), e...))
			return true
		})
		return listWrongType(err)
	})
	if !ok {
		return
	}
	c.array(len(out))
	for _, e := range out {
		c.bulk(e)
	}
}

// parseLPos parses LPOS's options (the arguments after the element) and
// reports whether COUNT was given.
func parseLPos(opts [][]byte) (q kv.ListPosQuery, hasCount bool, err error) {
	const maxInt64 = 1<<63 - 1
	q.Rank = 1
	for j := 0; j < len(opts); j++ {
		more := j+1 < len(opts)
		switch {
		case equalFold(opts[j], "rank") && more:
			j++
			if q.Rank, err = parseRangeArg(opts[j], -maxInt64, maxInt64, ""); err != nil {
				return q, false, err
			}
			if q.Rank == 0 {
				return q, false, replyError(errTextRankZero)
			}
		case equalFold(opts[j], "count") && more:
			j++
			if q.Count, err = parseRangeArg(opts[j], 0, maxInt64, errTextCountNegative); err != nil {
				return q, false, err
			}
			hasCount = true
		case equalFold(opts[j], "maxlen") && more:
			j++
			if q.MaxLen, err = parseRangeArg(opts[j], 0, maxInt64, errTextMaxLenNegative); err != nil {
				return q, false, err
			}
		default:
			return q, false, errSyntax
		}
	}
	return q, hasCount, nil
}

func cmdLPos(s *Server, c *client, args [][]byte) {
	q, hasCount, err := parseLPos(args[3:])
	if err != nil {
		c.err(err.Error())
		return
	}
	if !hasCount {
		q.Count = 1
	}
	var pos []int64
	ok := s.readBounded(c, "lpos", func(v kv.View, _ *budget) error {
		var err error
		pos, err = kv.ListPos(v, args[1], args[2], q)
		return listWrongType(err)
	})
	switch {
	case !ok:
	case hasCount:
		c.array(len(pos))
		for _, p := range pos {
			c.int(p)
		}
	case len(pos) == 0:
		c.null()
	default:
		c.int(pos[0])
	}
}
