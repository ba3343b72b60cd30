package redis

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/elastickv/elastickv/internal/kv"
)

// Hash commands (issue #15). Writes are one kv op each (kv/hash.go); reads
// go through kv.OpenHash inside one read, so a multi-field read sees one
// snapshot. HSET, HGET, HDEL of one field are one point write or read;
// HLEN reads the metadata's count. HKEYS, HVALS, HGETALL walk the hash
// under the request's budget and refuse a reply larger than the client's
// output allows.

// errCollReplyTooLarge refuses a whole-collection reply past maxReply.
const errCollReplyTooLarge replyError = "ERR reply too large; read the collection in steps (HSCAN, SSCAN, ZSCAN)"

func cmdHSet(s *Server, c *client, args [][]byte)  { s.hset(c, "hset", args) }
func cmdHMSet(s *Server, c *client, args [][]byte) { s.hset(c, "hmset", args) }

// hset answers HSET (the number of new fields) and HMSET (OK).
func (s *Server) hset(c *client, name string, args [][]byte) {
	if len(args)%2 != 0 {
		c.err(wrongArity(name))
		return
	}
	r, ok := s.write(c, &kv.Command{Op: kv.OpHSet, Keys: args[1:2], Values: args[2:]})
	if !ok {
		return
	}
	if name == "hmset" && r.Kind == kv.ResultInt {
		c.ok()
		return
	}
	c.result(r)
}

func cmdHSetNX(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpHSet, Flags: kv.HSetNX, Keys: args[1:2], Values: args[2:4]})
}

func cmdHDel(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpHDel, Keys: args[1:2], Values: args[2:]})
}

func cmdHIncrBy(s *Server, c *client, args [][]byte) {
	n, err := parseInt(args[3])
	if err != nil {
		c.err(err.Error())
		return
	}
	s.writeResult(c, &kv.Command{Op: kv.OpHIncrBy, Delta: n, Keys: args[1:2], Values: args[2:3]})
}

func cmdHIncrByFloat(s *Server, c *client, args [][]byte) {
	s.writeResult(c, &kv.Command{Op: kv.OpHIncrByFloat, Keys: args[1:2], Values: args[2:4]})
}

// readHash runs fn on key's hash (found false when key is missing) in one
// read; a key of another type answers WRONGTYPE.
func (s *Server) readHash(c *client, key []byte, fn func(h kv.Hash, found bool) error) bool {
	return s.read(c, func(v kv.View) error {
		h, found, err := kv.OpenHash(v, key)
		if err != nil {
			return wrongTypeOr(err)
		}
		return fn(h, found)
	})
}

func cmdHGet(s *Server, c *client, args [][]byte) {
	var (
		val   []byte
		found bool
	)
	ok := s.readHash(c, args[1], func(h kv.Hash, exists bool) error {
		val, found = nil, false
		if !exists {
			return nil
		}
		var err error
		val, found, err = h.Get(args[2])
		return err
	})
	switch {
	case !ok:
	case found:
		c.bulk(val)
	default:
		c.null()
	}
}

func cmdHMGet(s *Server, c *client, args [][]byte) {
	fields := args[2:]
	vals := make([][]byte, len(fields))
	found := make([]bool, len(fields))
	ok := s.readHash(c, args[1], func(h kv.Hash, exists bool) error {
		clear(vals)
		clear(found)
		if !exists {
			return nil
		}
		held := 0
		for i, f := range fields {
			v, ok, err := h.Get(f)
			if err != nil {
				return err
			}
			if held += len(v) + respOverhead; held > s.maxReply() {
				return errCollReplyTooLarge
			}
			vals[i], found[i] = v, ok
		}
		return nil
	})
	if !ok {
		return
	}
	c.array(len(fields))
	for i := range fields {
		if found[i] {
			c.bulk(vals[i])
		} else {
			c.null()
		}
	}
}

func cmdHExists(s *Server, c *client, args [][]byte) {
	var found bool
	ok := s.readHash(c, args[1], func(h kv.Hash, exists bool) error {
		found = false
		if !exists {
			return nil
		}
		var err error
		_, found, err = h.Get(args[2])
		return err
	})
	if ok {
		c.int(boolInt(found))
	}
}

func cmdHStrLen(s *Server, c *client, args [][]byte) {
	var n int
	ok := s.readHash(c, args[1], func(h kv.Hash, exists bool) error {
		n = 0
		if !exists {
			return nil
		}
		v, _, err := h.Get(args[2])
		n = len(v)
		return err
	})
	if ok {
		c.int(int64(n))
	}
}

func cmdHLen(s *Server, c *client, args [][]byte) {
	var n uint64
	ok := s.readHash(c, args[1], func(h kv.Hash, exists bool) error {
		n = 0
		if exists {
			n = h.Len()
		}
		return nil
	})
	if ok {
		c.int(int64(n))
	}
}

// boolInt is 1 for true, 0 for false: Redis's integer booleans.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Which parts of each field HKEYS, HVALS and HGETALL reply.
const (
	hashKeys = 1 << iota
	hashVals
)

func cmdHKeys(s *Server, c *client, args [][]byte) { s.hashAll(c, "hkeys", args[1], hashKeys) }
func cmdHVals(s *Server, c *client, args [][]byte) { s.hashAll(c, "hvals", args[1], hashVals) }
func cmdHGetAll(s *Server, c *client, args [][]byte) {
	s.hashAll(c, "hgetall", args[1], hashKeys|hashVals)
}

// hashAll answers HKEYS, HVALS and HGETALL: O(fields), under the request's
// budget, and refused past the client's reply limit.
func (s *Server) hashAll(c *client, name string, key []byte, parts int) {
	var items [][]byte
	ok := s.readBounded(c, name, func(v kv.View, _ *budget) error {
		items = items[:0]
		h, found, err := kv.OpenHash(v, key)
		if err != nil || !found {
			return wrongTypeOr(err)
		}
		held := 0
		var tooLarge bool
		err = h.Iter(nil, func(f, val []byte) bool {
			if parts&hashKeys != 0 {
				items = append(items, bytes.Clone(f))
				held += len(f) + respOverhead
			}
			if parts&hashVals != 0 {
				items = append(items, bytes.Clone(val))
				held += len(val) + respOverhead
			}
			tooLarge = held > s.maxReply()
			return !tooLarge
		})
		if err != nil {
			return err
		}
		if tooLarge {
			return errCollReplyTooLarge
		}
		return nil
	})
	if !ok {
		return
	}
	c.array(len(items))
	for _, it := range items {
		c.bulk(it)
	}
}

func cmdHScan(s *Server, c *client, args [][]byte) {
	s.collScanByElement(c, "hscan", args, func(v kv.View, key, from []byte, emit func(pos []byte, items ...[]byte) bool) (bool, error) {
		h, found, err := kv.OpenHash(v, key)
		if err != nil || !found {
			return false, err
		}
		return true, h.Iter(from, func(f, val []byte) bool { return emit(f, f, val) })
	})
}

// HRANDFIELD and SRANDMEMBER choose on the node serving the read, never on
// apply. The choice is uniform: the picks are uniformly drawn positions
// (distinct ones, or with repeats for a negative count) in the
// collection's order, and one walk collects them, O(N) in the collection's
// size. The reply comes in a random order.

// randArgs is the parsed count of HRANDFIELD, SRANDMEMBER and SPOP.
type randArgs struct {
	counted bool  // a count was given: the reply is an array
	count   int64 // > 0: distinct elements; < 0: -count with repeats
}

// parseRandCount parses HRANDFIELD's and SRANDMEMBER's count, as Redis
// does: within ±LONG_MAX.
func parseRandCount(arg []byte) (int64, error) {
	n, err := parseInt(arg)
	if err != nil {
		return 0, err
	}
	if n == math.MinInt64 {
		return 0, replyError("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
	}
	return n, nil
}

func cmdHRandField(s *Server, c *client, args [][]byte) {
	var a randArgs
	withValues := false
	if len(args) >= 3 {
		n, err := parseRandCount(args[2])
		if err != nil {
			c.err(err.Error())
			return
		}
		if len(args) > 4 || (len(args) == 4 && !equalFold(args[3], "withvalues")) {
			c.err(errTextSyntax)
			return
		}
		if len(args) == 4 {
			withValues = true
			if n < -math.MaxInt64/2 || n > math.MaxInt64/2 {
				c.err("ERR value is out of range")
				return
			}
		}
		a = randArgs{counted: true, count: n}
	}
	var picked [][2][]byte
	ok := s.readBounded(c, "hrandfield", func(v kv.View, _ *budget) error {
		picked = picked[:0]
		h, found, err := kv.OpenHash(v, args[1])
		if err != nil || !found {
			return wrongTypeOr(err)
		}
		perItem := respOverhead
		if withValues {
			perItem *= 2
		}
		picked, err = randomPick(c.rng(), h.Len(), a, perItem, s.maxReply(), func(fn func(k, v []byte) bool) error {
			return h.Iter(nil, fn)
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
	n := len(picked)
	if withValues {
		n *= 2
	}
	c.array(n)
	for _, p := range picked {
		c.bulk(p[0])
		if withValues {
			c.bulk(p[1])
		}
	}
}

// randomPick draws a's elements from a collection of n elements that iter
// walks in a fixed order (key and value of each), and returns copies of
// them in a random order: uniform, O(n). perItem is the reply's framing
// per element, for the limit maxReply.
func randomPick(rnd *rand.Rand, n uint64, a randArgs, perItem, maxReply int, iter func(fn func(k, v []byte) bool) error) ([][2][]byte, error) {
	if n == 0 || (a.counted && a.count == 0) {
		return nil, nil
	}
	want := uint64(1)
	repeats := false
	switch {
	case !a.counted:
	case a.count < 0:
		want, repeats = uint64(-a.count), true
	default:
		want = min(uint64(a.count), n)
	}
	if want > uint64(maxReply/perItem) {
		return nil, errCollReplyTooLarge
	}
	// pos is the sorted list of positions to take, a position repeated
	// as often as it is drawn.
	var pos []uint64
	switch {
	case repeats:
		pos = make([]uint64, want)
		for i := range pos {
			pos[i] = rnd.Uint64N(n)
		}
	case want == n:
		// Every element: no draw.
	case want > n/2:
		// Most elements: draw the ones to leave out.
		pos = distinctPositions(rnd, n, n-want, true)
	default:
		pos = distinctPositions(rnd, n, want, false)
	}
	slices.Sort(pos)
	out := make([][2][]byte, 0, want)
	held := 0
	var i uint64 // position of the element iter is at
	k := 0       // next entry of pos
	err := iter(func(key, val []byte) bool {
		take := 0
		switch {
		case want == n:
			take = 1
		case pos == nil:
		default:
			for k < len(pos) && pos[k] == i {
				take++
				k++
			}
		}
		for range take {
			out = append(out, [2][]byte{bytes.Clone(key), bytes.Clone(val)})
			held += len(key) + len(val) + perItem
		}
		i++
		if held > maxReply {
			return false
		}
		return want == n || k < len(pos)
	})
	if err != nil {
		return nil, err
	}
	if held > maxReply {
		return nil, errCollReplyTooLarge
	}
	rnd.Shuffle(len(out), func(x, y int) { out[x], out[y] = out[y], out[x] })
	return out, nil
}

// distinctPositions draws k distinct positions in [0, n) uniformly
// (Floyd's algorithm: k draws, whatever n); with complement, it returns
// the other n-k positions instead, sorted.
func distinctPositions(rnd *rand.Rand, n, k uint64, complement bool) []uint64 {
	chosen := make(map[uint64]struct{}, k) // lookups only
	drawn := make([]uint64, 0, k)
	for j := n - k; j < n; j++ {
		t := rnd.Uint64N(j + 1)
		if _, dup := chosen[t]; dup {
			t = j
		}
		chosen[t] = struct{}{}
		drawn = append(drawn, t)
	}
	if !complement {
		return drawn
	}
	slices.Sort(drawn)
	rest := make([]uint64, 0, n-k)
	d := 0
	for p := range n {
		if d < len(drawn) && drawn[d] == p {
			d++
			continue
		}
		rest = append(rest, p)
	}
	return rest
}
