package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Ranges of a sorted set, shared by the reads (ZRANGE and its older
// forms, ZCOUNT, ZLEXCOUNT, ZRANK) and the writes that select by range
// (ZRANGESTORE, ZREMRANGEBY*). Ranks go through the rank index
// (zset_index.go); score and lex ranges are scans of the order index
// between two positions, with a rank lookup only to skip a LIMIT offset.

// ZRangeKind says how a ZRangeSpec selects.
type ZRangeKind uint8

// Range kinds.
const (
	ZByRank  ZRangeKind = 0
	ZByScore ZRangeKind = 1
	ZByLex   ZRangeKind = 2
)

// ZRangeSpec is a parsed ZRANGE: by rank (Start, Stop, negative from the
// end), by score (Min, Max) or by lex (LexMin, LexMax), in reverse with
// Rev, with a LIMIT (Offset, Count; Count < 0 is no limit) for the last
// two. Min/LexMin is always the lower end, whatever the order the command
// took them in.
type ZRangeSpec struct {
	Kind           ZRangeKind
	Rev            bool
	Start, Stop    int64
	Min, Max       ScoreBound
	LexMin, LexMax LexBound
	Offset, Count  int64
}

// encode appends the spec to a Command's Values (ZRANGESTORE): a header
// (kind, rev, offset, count), then the two ends.
func (s *ZRangeSpec) encode() [][]byte {
	h := []byte{byte(s.Kind), 0}
	if s.Rev {
		h[1] = 1
	}
	h = binary.BigEndian.AppendUint64(h, uint64(s.Offset))
	h = binary.BigEndian.AppendUint64(h, uint64(s.Count))
	switch s.Kind {
	case ZByRank:
		return [][]byte{h, binary.BigEndian.AppendUint64(nil, uint64(s.Start)), binary.BigEndian.AppendUint64(nil, uint64(s.Stop))}
	case ZByScore:
		return [][]byte{h, encodeScoreBound(s.Min), encodeScoreBound(s.Max)}
	default:
		return [][]byte{h, s.LexMin, s.LexMax}
	}
}

func encodeScoreBound(b ScoreBound) []byte {
	out := []byte{0}
	if b.Excl {
		out[0] = 1
	}
	return append(out, scoreBits(b.Value)...)
}

func decodeScoreBound(b []byte) (ScoreBound, error) {
	if len(b) != 9 || b[0] > 1 {
		return ScoreBound{}, fmt.Errorf("kv: a score bound of %d bytes", len(b))
	}
	f, _ := scoreFromBits(b[1:])
	if f != f {
		return ScoreBound{}, fmt.Errorf("kv: a NaN score bound")
	}
	return ScoreBound{Value: f, Excl: b[0] == 1}, nil
}

// decodeZRangeSpec reverses encode; it is validate's check too.
func decodeZRangeSpec(v [][]byte) (ZRangeSpec, error) {
	var s ZRangeSpec
	if len(v) != 3 || len(v[0]) != 18 || v[0][0] > byte(ZByLex) || v[0][1] > 1 {
		return s, fmt.Errorf("kv: a malformed range")
	}
	s.Kind, s.Rev = ZRangeKind(v[0][0]), v[0][1] == 1
	s.Offset = int64(binary.BigEndian.Uint64(v[0][2:]))
	s.Count = int64(binary.BigEndian.Uint64(v[0][10:]))
	var err error
	switch s.Kind {
	case ZByRank:
		if len(v[1]) != 8 || len(v[2]) != 8 {
			return s, fmt.Errorf("kv: a malformed rank range")
		}
		s.Start, s.Stop = int64(binary.BigEndian.Uint64(v[1])), int64(binary.BigEndian.Uint64(v[2]))
	case ZByScore:
		if s.Min, err = decodeScoreBound(v[1]); err != nil {
			return s, err
		}
		if s.Max, err = decodeScoreBound(v[2]); err != nil {
			return s, err
		}
	case ZByLex:
		if !ValidLexBound(v[1]) || !ValidLexBound(v[2]) {
			return s, fmt.Errorf("kv: a malformed lex range")
		}
		s.LexMin, s.LexMax = v[1], v[2]
	}
	return s, nil
}

// zset is one sorted set's rows, its length and its rank index.
type zset struct {
	r zrows
	n uint64
	x zindex
}

func newZSet(r zrows, n uint64) zset { return zset{r: r, n: n, x: newZIndex(r)} }

// score returns member's exact score.
func (z zset) score(member []byte) (float64, bool, error) {
	v, ok, err := z.r.get(keyspace.AppendZSetMemberSuffix(nil, member))
	if err != nil || !ok {
		return 0, false, err
	}
	f, err := scoreFromBits(v)
	return f, err == nil, err
}

// entryAt decodes the order row suffix s. A zero score is read back from
// the member index, where -0 keeps its sign (the order index holds +0).
func (z zset) entryAt(s []byte) (zentry, error) {
	if len(s) < 1+keyspace.ScoreLen {
		return zentry{}, fmt.Errorf("sorted set: order row %x too short", s)
	}
	f, err := keyspace.DecodeScore(s[1 : 1+keyspace.ScoreLen])
	if err != nil {
		return zentry{}, fmt.Errorf("sorted set: order row %x: %w", s, err)
	}
	e := zentry{member: bytes.Clone(s[1+keyspace.ScoreLen:]), score: f, pos: bytes.Clone(s[1:])}
	if f == 0 {
		if exact, ok, err := z.score(e.member); err != nil {
			return zentry{}, err
		} else if ok {
			e.score = exact
		}
	}
	return e, nil
}

// scan collects up to limit (< 0: all) entries from the order rows in
// [lo, hi) positions (hi nil: to the end), ascending or descending.
func (z zset) scan(lo, hi []byte, reverse bool, limit int64) ([]zentry, error) {
	if limit == 0 {
		return nil, nil
	}
	hs := zOrderHi
	if hi != nil {
		hs = orderSuffix(hi)
	}
	var out []zentry
	err := z.r.iter(orderSuffix(lo), hs, reverse, func(s, _ []byte) (bool, error) {
		e, err := z.entryAt(s)
		if err != nil {
			return false, err
		}
		out = append(out, e)
		return limit < 0 || int64(len(out)) < limit, nil
	})
	return out, err
}

// rankRange normalises a by-rank range as Redis does, returning the
// inclusive ranks [from, to] in ascending order, or ok false if empty.
func rankRange(start, stop int64, n uint64) (from, to uint64, ok bool) {
	ln := int64(n)
	if start < 0 {
		start += ln
	}
	if stop < 0 {
		stop += ln
	}
	start = max(start, 0)
	if start > stop || start >= ln {
		return 0, 0, false
	}
	stop = min(stop, ln-1)
	return uint64(start), uint64(stop), true
}

// edgeScore returns the encoded score of the set's first row (last with
// last), which anchors the lex bounds (lexLo, lexHi).
func (z zset) edgeScore(last bool) ([]byte, error) {
	var s []byte
	err := z.r.iter(zOrderLo, zOrderHi, last, func(suf, _ []byte) (bool, error) {
		if len(suf) < 1+keyspace.ScoreLen {
			return false, fmt.Errorf("sorted set: order row %x too short", suf)
		}
		s = bytes.Clone(suf[1 : 1+keyspace.ScoreLen])
		return false, nil
	})
	return s, err
}

// lexByScan reports whether a lex range must be answered by a scan: the
// set's scores differ. Redis's lex commands compare members only, along
// the score order, assuming one score; when every score is equal a lex
// range is a range of positions (bounds), otherwise it is answered as
// Redis walks it: from the first member at or above min, while members
// stay at or below max, O(N). Redis leaves the result unspecified when
// members are not in order along the scores; this matches it whenever
// they are.
func (z zset) lexByScan() (bool, error) {
	if z.n < 2 {
		return false, nil
	}
	first, err := z.edgeScore(false)
	if err != nil {
		return false, err
	}
	last, err := z.edgeScore(true)
	if err != nil {
		return false, err
	}
	return !bytes.Equal(first, last), nil
}

// lexGteMin and lexLteMax test a member against lex bounds.
func lexGteMin(m []byte, b LexBound) bool {
	switch b[0] {
	case '-':
		return true
	case '+':
		return false
	case '(':
		return bytes.Compare(m, b[1:]) > 0
	}
	return bytes.Compare(m, b[1:]) >= 0
}

func lexLteMax(m []byte, b LexBound) bool {
	switch b[0] {
	case '+':
		return true
	case '-':
		return false
	case '(':
		return bytes.Compare(m, b[1:]) < 0
	}
	return bytes.Compare(m, b[1:]) <= 0
}

// lexEmpty reports whether lex bounds select nothing whatever the set:
// min above max, or equal with either end exclusive.
func lexEmpty(lo, hi LexBound) bool {
	if lo[0] == '+' || hi[0] == '-' {
		return true
	}
	if lo[0] == '-' || hi[0] == '+' {
		return false
	}
	c := bytes.Compare(lo[1:], hi[1:])
	return c > 0 || c == 0 && (lo[0] == '(' || hi[0] == '(')
}

// lexScan answers a lex spec by walking the order index (lexByScan):
// from the first member inside the range in the walk's direction, skip
// offset rows, then take rows while they stay inside, up to count.
func (z zset) lexScan(spec *ZRangeSpec, offset, count int64) ([]zentry, error) {
	if lexEmpty(spec.LexMin, spec.LexMax) || count == 0 {
		return nil, nil
	}
	started := false
	var out []zentry
	err := z.r.iter(zOrderLo, zOrderHi, spec.Rev, func(s, _ []byte) (bool, error) {
		m := s[1+keyspace.ScoreLen:]
		if !started {
			if spec.Rev && !lexLteMax(m, spec.LexMax) || !spec.Rev && !lexGteMin(m, spec.LexMin) {
				return true, nil
			}
			started = true
		}
		if offset > 0 {
			offset--
			return true, nil
		}
		if spec.Rev && !lexGteMin(m, spec.LexMin) || !spec.Rev && !lexLteMax(m, spec.LexMax) {
			return false, nil
		}
		e, err := z.entryAt(s)
		if err != nil {
			return false, err
		}
		out = append(out, e)
		return count < 0 || int64(len(out)) < count, nil
	})
	return out, err
}

// bounds returns the positions [lo, hi) a score or lex spec selects (hi
// nil: the end), and ok false when the range is empty.
func (z zset) bounds(spec *ZRangeSpec) (lo, hi []byte, ok bool, err error) {
	if z.n == 0 {
		return nil, nil, false, nil
	}
	if spec.Kind == ZByScore {
		lo, hi = scoreLo(spec.Min), scoreHi(spec.Max)
	} else {
		s, err := z.edgeScore(false)
		if err != nil {
			return nil, nil, false, err
		}
		lo, hi = lexLo(spec.LexMin, s), lexHi(spec.LexMax, s)
	}
	if hi != nil && bytes.Compare(lo, hi) >= 0 {
		return nil, nil, false, nil
	}
	return lo, hi, true, nil
}

// count returns the number of rows a score or lex spec selects, LIMIT
// aside: two ranks, O(N/B + B).
func (z zset) count(spec *ZRangeSpec) (uint64, error) {
	if spec.Kind == ZByLex {
		scan, err := z.lexByScan()
		if err != nil {
			return 0, err
		}
		if scan {
			es, err := z.lexScan(&ZRangeSpec{Kind: ZByLex, LexMin: spec.LexMin, LexMax: spec.LexMax}, 0, -1)
			return uint64(len(es)), err
		}
	}
	lo, hi, ok, err := z.bounds(spec)
	if err != nil || !ok {
		return 0, err
	}
	a, err := z.x.rank(lo, z.n)
	if err != nil {
		return 0, err
	}
	b, err := z.x.rank(hi, z.n)
	if err != nil {
		return 0, err
	}
	if b < a {
		return 0, nil
	}
	return b - a, nil
}

// selectRange returns the entries spec selects, in reply order.
func (z zset) selectRange(spec *ZRangeSpec) ([]zentry, error) {
	if z.n == 0 {
		return nil, nil
	}
	if spec.Kind == ZByRank {
		from, to, ok := rankRange(spec.Start, spec.Stop, z.n)
		if spec.Rev {
			from, to = z.n-1-to, z.n-1-from
		}
		if !ok {
			return nil, nil
		}
		pos, err := z.x.at(from, z.n)
		if err != nil {
			return nil, err
		}
		out, err := z.scan(pos, nil, false, int64(to-from+1))
		if err != nil {
			return nil, err
		}
		if spec.Rev {
			slices.Reverse(out)
		}
		return out, nil
	}
	if spec.Offset < 0 {
		return nil, nil // Redis skips "offset" rows while any remain: none left
	}
	if spec.Kind == ZByLex {
		scan, err := z.lexByScan()
		if err != nil {
			return nil, err
		}
		if scan {
			return z.lexScan(spec, spec.Offset, spec.Count)
		}
	}
	lo, hi, ok, err := z.bounds(spec)
	if err != nil || !ok {
		return nil, err
	}
	if spec.Offset == 0 {
		return z.scan(lo, hi, spec.Rev, spec.Count)
	}
	// Skip the offset by rank rather than row by row.
	rlo, err := z.x.rank(lo, z.n)
	if err != nil {
		return nil, err
	}
	rhi, err := z.x.rank(hi, z.n)
	if err != nil {
		return nil, err
	}
	if rhi <= rlo || uint64(spec.Offset) >= rhi-rlo {
		return nil, nil
	}
	if !spec.Rev {
		pos, err := z.x.at(rlo+uint64(spec.Offset), z.n)
		if err != nil {
			return nil, err
		}
		return z.scan(pos, hi, false, spec.Count)
	}
	pos, err := z.x.at(rhi-1-uint64(spec.Offset), z.n)
	if err != nil {
		return nil, err
	}
	return z.scan(lo, append(pos, 0), true, spec.Count)
}

// rankOf returns member's 0-based rank (from the end with rev) and score.
func (z zset) rankOf(member []byte, rev bool) (uint64, float64, bool, error) {
	f, ok, err := z.score(member)
	if err != nil || !ok {
		return 0, 0, false, err
	}
	pos, err := keyspace.AppendZSetPos(nil, f, member)
	if err != nil {
		return 0, 0, false, fmt.Errorf("sorted set: member %q: %w", member, err)
	}
	r, err := z.x.rank(pos, z.n)
	if err != nil {
		return 0, 0, false, err
	}
	if rev {
		r = z.n - 1 - r
	}
	return r, f, true, nil
}
