package redis

import (
	"math"

	"github.com/elastickv/elastickv/internal/kv"
)

// String commands. Writes become one kv.Command each; reads run in one
// Backend.Read so that a multi-key read (MGET) sees a single snapshot.

func cmdSetNX(s *Server, c *client, args [][]byte) {
	r, ok := s.write(c, &kv.Command{Op: kv.OpSet, Flags: kv.SetNX, Keys: args[1:2], Values: args[2:3]})
	if !ok {
		return
	}
	// SETNX answers 1 or 0 where SET NX answers OK or nil.
	switch r.Kind {
	case kv.ResultOK:
		c.int(1)
	case kv.ResultNil:
		c.int(0)
	default:
		c.result(r)
	}
}

func cmdGetSet(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpSet, Flags: kv.SetGet, Keys: args[1:2], Values: args[2:3]})
}

func cmdGetDel(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpGetDel, Keys: args[1:2]})
}

func cmdGet(s *Server, c *client, args [][]byte) {
	var (
		val          []byte
		found, wrong bool
	)
	ok := s.read(c, func(v kv.View) error {
		var err error
		val, found, err = v.Get(args[1])
		if isWrongType(err) {
			wrong = true
			return nil
		}
		return err
	})
	switch {
	case !ok:
	case wrong:
		c.err(kv.ErrTextWrongType)
	case !found:
		c.null()
	default:
		c.bulk(val)
	}
}

func cmdStrlen(s *Server, c *client, args [][]byte) {
	n, wrong, ok := s.strlen(c, args[1])
	switch {
	case !ok:
	case wrong:
		c.err(kv.ErrTextWrongType)
	default:
		c.int(int64(n))
	}
}

// strlen reads the length of key's string value (0 if absent).
func (s *Server) strlen(c *client, key []byte) (n int, wrongType, ok bool) {
	ok = s.read(c, func(v kv.View) error {
		var err error
		n, _, err = v.StrLen(key)
		if isWrongType(err) {
			wrongType = true
			return nil
		}
		return err
	})
	return n, wrongType, ok
}

func cmdMGet(s *Server, c *client, args [][]byte) {
	keys := args[1:]
	vals := make([][]byte, len(keys))
	found := make([]bool, len(keys))
	ok := s.readKeys(c, "mget", len(keys), func(v kv.View) error {
		clear(vals)
		clear(found)
		held := 0
		for i, k := range keys {
			val, f, err := v.Get(k)
			if isWrongType(err) {
				continue // MGET answers nil for a key of another type
			}
			if err != nil {
				return err
			}
			if held += len(val) + respOverhead; held > s.maxReply() {
				return errReplyTooLarge
			}
			vals[i], found[i] = val, f
		}
		return nil
	})
	if !ok {
		return
	}
	c.array(len(keys))
	for i := range keys {
		if found[i] {
			c.bulk(vals[i])
		} else {
			c.null()
		}
	}
}

func cmdMSet(s *Server, c *client, args [][]byte) {
	pairs := args[1:]
	if len(pairs)%2 != 0 {
		c.err(wrongArity("mset"))
		return
	}
	n := len(pairs) / 2
	cmd := &kv.Command{Op: kv.OpMSet, Keys: make([][]byte, n), Values: make([][]byte, n)}
	for i := range n {
		cmd.Keys[i], cmd.Values[i] = pairs[2*i], pairs[2*i+1]
	}
	s.writeResult(c, cmd)
}

func cmdIncr(s *Server, c *client, args [][]byte) { s.incrBy(c, args[1], 1) }
func cmdDecr(s *Server, c *client, args [][]byte) { s.incrBy(c, args[1], -1) }

func cmdIncrBy(s *Server, c *client, args [][]byte) {
	n, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	s.incrBy(c, args[1], n)
}

func cmdDecrBy(s *Server, c *client, args [][]byte) {
	n, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	// -MinInt64 does not exist; Redis refuses it before touching the key.
	if n == math.MinInt64 {
		c.err("ERR decrement would overflow")
		return
	}
	s.incrBy(c, args[1], -n)
}

func (s *Server) incrBy(c *client, key []byte, delta int64) {
	s.writeResult(c, &kv.Command{Op: kv.OpIncrBy, Delta: delta, Keys: [][]byte{key}})
}

func cmdAppend(s *Server, c *client, args [][]byte) {
	// The state machine does not bound value sizes, so check here that the
	// result would stay within MaxValueBytes. The read and the write are not
	// atomic: concurrent APPENDs can overshoot by at most one argument each,
	// which still bounds growth.
	cur, _, ok := s.strlen(c, args[1])
	if !ok {
		return
	}
	if cur+len(args[2]) > s.cfg.MaxValueBytes {
		c.err(errTextStringTooLong)
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpAppend, Keys: args[1:2], Values: args[2:3]})
}

// writeResult proposes cmd and replies with its result.
func (s *Server) writeResult(c *client, cmd *kv.Command) {
	if r, ok := s.write(c, cmd); ok {
		c.result(r)
	}
}
