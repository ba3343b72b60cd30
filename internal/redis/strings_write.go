package redis

import (
	"github.com/elastickv/elastickv/internal/kv"
)

// SETRANGE, INCRBYFLOAT and MSETNX: string writes that are one kv op each
// (kv ops2.go), at cluster format 2. The state machine replies Redis's
// errors in Redis's order (WRONGTYPE before a value's checks); this layer
// refuses only what Redis refuses before looking at the key, and what
// exceeds this node's argument cap.

func cmdSetRange(s *Server, c *client, args [][]byte) {
	off, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	if off < 0 {
		c.err("ERR offset is out of range")
		return
	}
	// The node caps values below proto-max-bulk-len (MaxValueBytes, as for
	// APPEND); an empty value changes nothing and is never refused.
	if v := args[3]; len(v) > 0 && off > int64(s.cfg.MaxValueBytes-len(v)) {
		c.err(kv.ErrTextTooLarge)
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpSetRange, Delta: off, Keys: args[1:2], Values: args[3:4]})
}

func cmdIncrByFloat(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpIncrByFloat, Keys: args[1:2], Values: args[2:3]})
}

func cmdMSetNX(s *Server, c *client, args [][]byte) {
	pairs := args[1:]
	if len(pairs)%2 != 0 {
		c.err(wrongArity("msetnx"))
		return
	}
	n := len(pairs) / 2
	cmd := &kv.Command{Op: kv.OpMSetNX, Keys: make([][]byte, n), Values: make([][]byte, n)}
	for i := range n {
		cmd.Keys[i], cmd.Values[i] = pairs[2*i], pairs[2*i+1]
	}
	s.writeResult(c, cmd)
}
