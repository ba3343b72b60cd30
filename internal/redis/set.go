package redis

import (
	"bytes"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Set commands (issue #15). SADD, SREM, SISMEMBER touch one row per
// member; SCARD reads the metadata's count. SMEMBERS, SINTER, SUNION,
// SDIFF and SINTERCARD are reads under the request's budget; their
// members come in byte order (Redis's order is its hash table's, which
// clients must not rely on). The ...STORE forms and SMOVE are one kv op
// each, computed on apply. SRANDMEMBER chooses on the node serving the
// read, and SPOP chooses before it proposes (kv/set.go explains the
// conditional pop and its retries).

// spopAttempts bounds SPOP's read-choose-propose rounds when other writes
// keep changing the set between its read and its apply; the first
// spopStrictAttempts require the set unchanged, the others only that the
// chosen members are still there (kv/set.go).
const (
	spopAttempts       = 8
	spopStrictAttempts = 2
)

func cmdSAdd(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpSAdd, Keys: args[1:2], Values: args[2:]})
}

func cmdSRem(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpSRem, Keys: args[1:2], Values: args[2:]})
}

func cmdSMove(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpSMove, Keys: args[1:3], Values: args[3:4]})
}

func cmdSInterStore(s *Server, c *client, args [][]byte) { s.sstore(c, kv.SetInter, args) }
func cmdSUnionStore(s *Server, c *client, args [][]byte) { s.sstore(c, kv.SetUnion, args) }
func cmdSDiffStore(s *Server, c *client, args [][]byte)  { s.sstore(c, kv.SetDiff, args) }

func (s *Server) sstore(c *client, op kv.SetFlags, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpSStore, Flags: op, Keys: args[1:]})
}

// readSet runs fn on key's set (found false when key is missing) in one
// read; a key of another type answers WRONGTYPE.
func (s *Server) readSet(c *client, key []byte, fn func(st kv.Set, found bool) error) bool {
	return s.read(c, func(v kv.View) error {
		st, found, err := kv.OpenSet(v, key)
		if err != nil {
			return wrongTypeOr(err)
		}
		return fn(st, found)
	})
}

func cmdSIsMember(s *Server, c *client, args [][]byte) {
	var in bool
	ok := s.readSet(c, args[1], func(st kv.Set, found bool) error {
		in = false
		if !found {
			return nil
		}
		var err error
		in, err = st.Has(args[2])
		return err
	})
	if ok {
		c.int(boolInt(in))
	}
}

func cmdSMIsMember(s *Server, c *client, args [][]byte) {
	members := args[2:]
	in := make([]bool, len(members))
	ok := s.readSet(c, args[1], func(st kv.Set, found bool) error {
		clear(in)
		if !found {
			return nil
		}
		for i, m := range members {
			var err error
			if in[i], err = st.Has(m); err != nil {
				return err
			}
		}
		return nil
	})
	if !ok {
		return
	}
	c.array(len(members))
	for _, b := range in {
		c.int(boolInt(b))
	}
}

func cmdSCard(s *Server, c *client, args [][]byte) {
	var n uint64
	ok := s.readSet(c, args[1], func(st kv.Set, found bool) error {
		n = 0
		if found {
			n = st.Len()
		}
		return nil
	})
	if ok {
		c.int(int64(n))
	}
}

func cmdSMembers(s *Server, c *client, args [][]byte) {
	var out [][]byte
	ok := s.readBounded(c, "smembers", func(v kv.View, _ *budget) error {
		out = out[:0]
		st, found, err := kv.OpenSet(v, args[1])
		if err != nil || !found {
			return wrongTypeOr(err)
		}
		held := 0
		err = st.Iter(nil, func(m []byte) bool {
			out = append(out, bytes.Clone(m))
			held += len(m) + respOverhead
			return held <= s.maxReply()
		})
		if err != nil {
			return err
		}
		if held > s.maxReply() {
			return errCollReplyTooLarge
		}
		return nil
	})
	if ok {
		writeBulks(c, out)
	}
}

// writeBulks replies an array of bulk strings.
func writeBulks(c *client, items [][]byte) {
	c.array(len(items))
	for _, it := range items {
		c.bulk(it)
	}
}

func cmdSInter(s *Server, c *client, args [][]byte) { s.setOpRead(c, "sinter", kv.SetInter, args[1:]) }
func cmdSUnion(s *Server, c *client, args [][]byte) { s.setOpRead(c, "sunion", kv.SetUnion, args[1:]) }
func cmdSDiff(s *Server, c *client, args [][]byte)  { s.setOpRead(c, "sdiff", kv.SetDiff, args[1:]) }

// setOpRead answers SINTER, SUNION and SDIFF with the members in byte
// order.
func (s *Server) setOpRead(c *client, name string, op kv.SetFlags, keys [][]byte) {
	var out [][]byte
	ok := s.readBounded(c, name, func(v kv.View, _ *budget) error {
		out = out[:0]
		held := 0
		err := kv.SetOp(v, op, keys, 0, func(m []byte) {
			if held <= s.maxReply() {
				out = append(out, bytes.Clone(m))
			}
			held += len(m) + respOverhead
		})
		if err != nil {
			return wrongTypeOr(err)
		}
		if held > s.maxReply() {
			return errCollReplyTooLarge
		}
		return nil
	})
	if ok {
		kv.SortMembers(out)
		writeBulks(c, out)
	}
}

func cmdSInterCard(s *Server, c *client, args [][]byte) {
	n, err := parseInt(args[1])
	if err != nil || n <= 0 {
		c.err("ERR numkeys should be greater than 0")
		return
	}
	if n > int64(len(args)-2) {
		c.err("ERR Number of keys can't be greater than number of args")
		return
	}
	keys := args[2 : 2+n]
	limit := int64(0)
	for rest := args[2+n:]; len(rest) > 0; rest = rest[2:] {
		if !equalFold(rest[0], "limit") || len(rest) < 2 {
			c.err(errTextSyntax)
			return
		}
		if limit, err = parseInt(rest[1]); err != nil || limit < 0 {
			c.err("ERR LIMIT can't be negative")
			return
		}
	}
	var count int64
	ok := s.readBounded(c, "sintercard", func(v kv.View, _ *budget) error {
		count = 0
		return wrongTypeOr(kv.SetOp(v, kv.SetInter, keys, int(min(limit, int64(maxInt))), func([]byte) { count++ }))
	})
	if ok {
		c.int(count)
	}
}

// maxInt is the largest int, for clamping 64-bit counts.
const maxInt = int(^uint(0) >> 1)

func cmdSScan(s *Server, c *client, args [][]byte) {
	s.collScanByElement(c, "sscan", args, func(v kv.View, key, from []byte, emit func(pos []byte, items ...[]byte) bool) (bool, error) {
		st, found, err := kv.OpenSet(v, key)
		if err != nil || !found {
			return false, err
		}
		return true, st.Iter(from, func(m []byte) bool { return emit(m, m) })
	})
}

func cmdSRandMember(s *Server, c *client, args [][]byte) {
	var a randArgs
	if len(args) >= 3 {
		n, err := parseRandCount(args[2])
		if err != nil {
			c.err(err.Error())
			return
		}
		if len(args) > 3 {
			c.err(errTextSyntax)
			return
		}
		a = randArgs{counted: true, count: n}
	}
	var picked [][2][]byte
	ok := s.readBounded(c, "srandmember", func(v kv.View, _ *budget) error {
		picked = picked[:0]
		st, found, err := kv.OpenSet(v, args[1])
		if err != nil || !found {
			return wrongTypeOr(err)
		}
		picked, err = randomPick(c.rng(), st.Len(), a, respOverhead, s.maxReply(), func(fn func(k, v []byte) bool) error {
			return st.Iter(nil, func(m []byte) bool { return fn(m, nil) })
		})
		return err
	})
	if !ok {
		return
	}
	if !a.counted {
		if len(picked) == 0 {
			c.null()
			return
		}
		c.bulk(picked[0][0])
		return
	}
	c.array(len(picked))
	for _, p := range picked {
		c.bulk(p[0])
	}
}

// cmdSPop reads the set, chooses uniformly, and proposes a pop of exactly
// the chosen members, conditional on the set being unchanged since the
// read; when another write got in between, apply refuses and SPOP starts
// over, at most spopAttempts times, the later rounds with the weaker
// condition that the chosen members are still there. A count at least
// the set's size pops everything with no choice and no condition.
func cmdSPop(s *Server, c *client, args [][]byte) {
	count := int64(1)
	counted := len(args) >= 3
	if counted {
		n, err := parseInt(args[2])
		if err != nil || n < 0 {
			c.err("ERR value is out of range, must be positive")
			return
		}
		if len(args) > 3 {
			c.err(errTextSyntax)
			return
		}
		count = n
	}
	for attempt := range spopAttempts {
		var (
			found  bool
			stamp  keyspace.Stamp
			size   uint64
			chosen [][2][]byte
		)
		ok := s.readBounded(c, "spop", func(v kv.View, _ *budget) error {
			found, chosen = false, chosen[:0]
			st, ok, err := kv.OpenSet(v, args[1])
			if err != nil || !ok {
				return wrongTypeOr(err)
			}
			found, stamp, size = true, st.Meta().LastWrite, st.Len()
			if count == 0 || uint64(count) >= size {
				return nil // nothing, or everything: no choice to make
			}
			chosen, err = randomPick(c.rng(), size, randArgs{counted: true, count: count}, respOverhead, s.maxReply(), func(fn func(k, v []byte) bool) error {
				return st.Iter(nil, func(m []byte) bool { return fn(m, nil) })
			})
			return err
		})
		switch {
		case !ok:
			return
		case !found && !counted:
			c.null()
			return
		case !found || count == 0:
			c.array(0)
			return
		}
		flags := kv.SetFlags(0)
		if counted {
			flags = kv.SPopCount
		}
		if attempt >= spopStrictAttempts {
			flags |= kv.SPopIfPresent
		}
		cmd := &kv.Command{Op: kv.OpSPop, Flags: flags, Delta: count, Keys: args[1:2], Values: make([][]byte, 1, 1+len(chosen))}
		cmd.Values[0] = keyspace.AppendStamp(nil, stamp)
		for _, p := range chosen {
			cmd.Values = append(cmd.Values, p[0])
		}
		r, ok := s.write(c, cmd)
		if !ok {
			return
		}
		if r.Kind == kv.ResultError && r.Err == kv.ErrTextSPopRetry {
			continue
		}
		c.result(r)
		return
	}
	c.err(kv.ErrTextSPopRetry)
}
