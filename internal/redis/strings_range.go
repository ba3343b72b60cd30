package redis

import (
	"bytes"
	"strconv"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
)

// GETRANGE, SUBSTR and LCS: read-only string commands that look at part of
// a value or compare two. Both read in one Backend.Read and compute outside
// it, so no snapshot is held while LCS fills its table.

// cmdGetRange answers GETRANGE (and SUBSTR, its alias) as Redis 7.2 does:
// negative indexes count from the end, both ends are clamped into the
// value, and an empty or inverted range answers an empty string, as does
// an absent key.
func cmdGetRange(s *Server, c *client, args [][]byte) {
	start, err := parseInt(args[2])
	if err != nil {
		c.err(err.Error())
		return
	}
	end, err := parseInt(args[3])
	if err != nil {
		c.err(err.Error())
		return
	}
	var (
		val   []byte
		wrong bool
	)
	ok := s.read(c, func(v kv.View) error {
		val, wrong = nil, false // kv may run the callback twice
		// Only the range is copied out of the store, whatever the
		// value's size.
		_, err := v.ReadString(args[1], func(b []byte) {
			lo, hi := stringRange(int64(len(b)), start, end)
			val = bytes.Clone(b[lo:hi])
		})
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
	default:
		c.bulk(val)
	}
}

// stringRange maps GETRANGE's inclusive start and end over a value of n
// bytes to the half-open slice bounds [lo, hi) Redis 7.2 answers; lo == hi
// for an empty answer.
func stringRange(n, start, end int64) (lo, hi int64) {
	// Both negative and inverted: empty, even where clamping start to 0
	// would make the range cover the value (GETRANGE k -1 -5).
	if start < 0 && end < 0 && start > end {
		return 0, 0
	}
	if start < 0 {
		start += n // no overflow: n >= 0 and start < 0
	}
	if end < 0 {
		end += n
	}
	start, end = max(start, 0), max(end, 0)
	if end >= n {
		end = n - 1
	}
	if n == 0 || start > end {
		return 0, 0
	}
	return start, end + 1
}

// maxLCSCells bounds LCS's dynamic-programming table, (len1+1)*(len2+1)
// cells of 4 bytes: 16 Mi cells is 64 MiB of transient memory and about
// 50 ms of one core. It covers two 4 KiB strings, LCS's real use (diffing
// short texts, DNA fragments as in Redis's own tests); Redis bounds the
// table by proto-max-bulk-len (512 MiB, 128 Mi cells), which a few
// concurrent clients could multiply past the node's 512 MiB Go memory
// limit. A request beyond the bound is refused before either value is
// copied out of the store.
const maxLCSCells = 16 << 20

// Tables of more than lcsSmallCells take one of lcsSlots' slots while they
// exist, so that however many clients ask at once, LCS holds at most
// cap(lcsSlots) * maxLCSCells * 4 bytes (128 MiB) of tables in the whole
// process; smaller tables (256 KiB and less) never wait behind large ones.
// A request waits for a slot until its deadline.
const lcsSmallCells = 64 << 10

var lcsSlots = make(chan struct{}, 2)

// abortBusy is the reason label of a LCS that found no slot in time.
const abortBusy = "busy"

// acquireLCSSlot waits for a slot of lcsSlots until deadline or the
// server's shutdown, returning the reply error if it got none.
func (s *Server) acquireLCSSlot(deadline time.Time) error {
	select {
	case lcsSlots <- struct{}{}:
		return nil
	default:
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case lcsSlots <- struct{}{}:
		return nil
	case <-s.baseCtx.Done():
		s.metrics.commandAborted("lcs", abortShutdown)
		return errShuttingDown
	case <-timer.C:
		s.metrics.commandAborted("lcs", abortBusy)
		return replyError("ERR LCS waited its time limit of " + s.cfg.RequestTimeout.String() +
			" (request-timeout) for memory: " + strconv.Itoa(cap(lcsSlots)) + " large LCS tables are being computed")
	}
}

// lcsCellWork is the budget work charged per table cell: a look at the
// clock every budgetCheckWork cells, some 30 µs of filling.
const lcsCellWork = 1

// abortTableSize is the reason label of a LCS refused for its table size.
const abortTableSize = "table_size"

// lcsOptions are LCS's parsed options.
type lcsOptions struct {
	getLen, getIdx, withMatchLen bool
	minMatchLen                  int64
}

// parseLCSOptions parses the options after LCS key1 key2 as Redis 7.2
// does: a negative MINMATCHLEN counts as 0, and LEN with IDX is refused.
func parseLCSOptions(opts [][]byte) (lcsOptions, error) {
	var o lcsOptions
	for i := 0; i < len(opts); i++ {
		switch {
		case equalFold(opts[i], "idx"):
			o.getIdx = true
		case equalFold(opts[i], "len"):
			o.getLen = true
		case equalFold(opts[i], "withmatchlen"):
			o.withMatchLen = true
		case equalFold(opts[i], "minmatchlen") && i+1 < len(opts):
			n, err := parseInt(opts[i+1])
			if err != nil {
				return o, err
			}
			o.minMatchLen = max(n, 0)
			i++
		default:
			return o, errSyntax
		}
	}
	if o.getIdx && o.getLen {
		return o, replyError("ERR If you want both the length and indexes, please just use IDX.")
	}
	return o, nil
}

// cmdLCS answers LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]
// with Redis 7.2's replies (RESP2 shapes: IDX answers a flat
// "matches"/"len" array). An absent key counts as an empty string.
func cmdLCS(s *Server, c *client, args [][]byte) {
	var (
		a, b     []byte
		wrong    bool
		tooLarge int64 // the table's cells, when refused
	)
	// Options are parsed after the type check, as Redis does: a syntax
	// error on a key of another type answers the type error.
	ok := s.read(c, func(v kv.View) error {
		wrong, tooLarge = false, 0
		n1, _, err1 := v.StrLen(args[1])
		n2, _, err2 := v.StrLen(args[2])
		if isWrongType(err1) || isWrongType(err2) {
			wrong = true
			return nil
		}
		if err1 != nil {
			return err1
		}
		if err2 != nil {
			return err2
		}
		if cells := (int64(n1) + 1) * (int64(n2) + 1); cells > maxLCSCells {
			tooLarge = cells
			return nil
		}
		var err error
		if a, _, err = v.Get(args[1]); err != nil {
			return err
		}
		b, _, err = v.Get(args[2])
		return err
	})
	if !ok {
		return
	}
	if wrong {
		c.err("ERR The specified keys must contain string values")
		return
	}
	if c.exec != nil {
		// A table cell costs about as much as examining a key takes
		// sixteen of: the entry's bound (kv.MaxExecWork) covers LCS too.
		c.exec.charge((int64(len(a)) + 1) * (int64(len(b)) + 1) / 16)
		if c.exec.tx.Aborted() {
			c.err("ERR the transaction examined too much on apply")
			return
		}
	}
	o, err := parseLCSOptions(args[3:])
	if err != nil {
		c.err(err.Error())
		return
	}
	if tooLarge != 0 {
		s.metrics.commandAborted("lcs", abortTableSize)
		c.err("ERR Insufficient memory, transient memory for LCS exceeds the limit of " +
			strconv.Itoa(maxLCSCells) + " table cells ((len1+1)*(len2+1) is " + strconv.FormatInt(tooLarge, 10) + ")")
		return
	}
	s.metrics.expensiveInFlight.Inc()
	defer s.metrics.expensiveInFlight.Dec()
	bud := s.newBudget("lcs", s.cfg.RequestTimeout)
	// On apply no slot is taken: waiting for one would make the reply
	// depend on this node's other clients, and the apply loop computes one
	// table at a time anyway.
	if c.exec == nil && (len(a)+1)*(len(b)+1) > lcsSmallCells {
		if err := s.acquireLCSSlot(bud.deadline); err != nil {
			c.err(err.Error())
			return
		}
		defer func() { <-lcsSlots }()
	}
	bud.unit = "table rows"
	table, err := lcsTable(a, b, bud)
	if err != nil {
		if bud.reason != "" {
			s.metrics.commandAborted("lcs", bud.reason)
		}
		c.err(err.Error())
		return
	}
	writeLCS(c, a, b, table, o)
}

// lcsTable fills the table whose cell (i, j), at i*(len(b)+1)+j, is the
// length of the LCS of a[:i] and b[:j], charging bud row by row. Its size
// was bounded by the caller, so the cell values fit in uint32.
func lcsTable(a, b []byte, bud *budget) ([]uint32, error) {
	w := len(b) + 1
	t := make([]uint32, (len(a)+1)*w)
	for i := 1; i <= len(a); i++ {
		bud.examined++
		if err := bud.spend(w * lcsCellWork); err != nil {
			return nil, err
		}
		row, prev := t[i*w:(i+1)*w], t[(i-1)*w:i*w]
		for j := 1; j < w; j++ {
			switch {
			case a[i-1] == b[j-1]:
				row[j] = prev[j-1] + 1
			case prev[j] > row[j-1]:
				row[j] = prev[j]
			default:
				row[j] = row[j-1]
			}
		}
	}
	return t, nil
}

// lcsRange is one run of matching bytes, inclusive indexes into a and b.
type lcsRange struct{ aStart, aEnd, bStart, bEnd int }

// writeLCS walks the table back from its last cell, as Redis does, and
// writes the reply o asks for: the LCS itself, its length, or its matching
// ranges from the end of the strings backwards.
func writeLCS(c *client, a, b []byte, t []uint32, o lcsOptions) {
	w := len(b) + 1
	total := int(t[len(a)*w+len(b)])
	if o.getLen {
		c.int(int64(total))
		return
	}
	result := make([]byte, total)
	var ranges []lcsRange
	cur, open := lcsRange{}, false
	idx := total
	for i, j := len(a), len(b); i > 0 && j > 0; {
		emit := false
		if a[i-1] == b[j-1] {
			result[idx-1] = a[i-1]
			switch {
			case !open:
				cur, open = lcsRange{aStart: i - 1, aEnd: i - 1, bStart: j - 1, bEnd: j - 1}, true
			case cur.aStart == i && cur.bStart == j:
				cur.aStart--
				cur.bStart--
			default:
				emit = true
			}
			// A run that reached the first byte of either string ends.
			if cur.aStart == 0 || cur.bStart == 0 {
				emit = true
			}
			idx--
			i--
			j--
		} else {
			if t[(i-1)*w+j] > t[i*w+j-1] {
				i--
			} else {
				j--
			}
			emit = open
		}
		if emit {
			if n := int64(cur.aEnd - cur.aStart + 1); o.minMatchLen == 0 || n >= o.minMatchLen {
				ranges = append(ranges, cur)
			}
			open = false
		}
	}
	if !o.getIdx {
		c.bulk(result)
		return
	}
	c.array(4)
	c.bulkString("matches")
	c.array(len(ranges))
	for _, r := range ranges {
		if o.withMatchLen {
			c.array(3)
		} else {
			c.array(2)
		}
		c.array(2)
		c.int(int64(r.aStart))
		c.int(int64(r.aEnd))
		c.array(2)
		c.int(int64(r.bStart))
		c.int(int64(r.bEnd))
		if o.withMatchLen {
			c.int(int64(r.aEnd - r.aStart + 1))
		}
	}
	c.bulkString("len")
	c.int(int64(total))
}
