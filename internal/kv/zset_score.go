package kv

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Scores: parsing, formatting and the range bounds of the sorted-set
// commands. Parsing happens in the Redis layer, before anything is
// proposed; the log carries scores as IEEE 754 bits, so apply never
// parses text.

// Redis error texts of the sorted-set commands.
const (
	ErrTextNaNScore     = "ERR resulting score is not a number (NaN)"
	ErrTextMinMaxFloat  = "ERR min or max is not a float"
	ErrTextMinMaxString = "ERR min or max not valid string range item"
)

// zentry is one member of a sorted set with its score and its order
// position (keyspace.AppendZSetPos).
type zentry struct {
	member []byte
	score  float64
	pos    []byte
}

// ZEntry is a member and its score, as the read functions return them.
type ZEntry struct {
	Member []byte
	Score  float64
}

func scoreBits(f float64) []byte { return binary.BigEndian.AppendUint64(nil, math.Float64bits(f)) }

func scoreFromBits(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("sorted set: a score of %d bytes, want 8", len(b))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

// EncodeScore is the 8-byte form of a score in a Command.
func EncodeScore(f float64) []byte { return scoreBits(f) }

// ParseScore parses a score as Redis does (strtod, then its checks):
// decimal or hex notation, "inf", "+inf", "-inf" and "infinity" in any
// case. NaN, empty text, leading or trailing spaces, and a value out of
// range (overflowing to an infinity, or a nonzero underflowing to 0) are
// refused, as Redis refuses them.
func ParseScore(b []byte) (float64, bool) {
	s := string(b)
	if s == "" || strings.ContainsAny(s, " \t\n\r\v\f_") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, false // ErrRange included: strtod's ERANGE at ±HUGE_VAL
	}
	if f == 0 && !isHex(s) && strings.ContainsAny(mantissa(s), "123456789") {
		return 0, false // a nonzero that underflowed to 0: ERANGE
	}
	return f, true
}

func isHex(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')
}

// mantissa returns s up to its exponent.
func mantissa(s string) string {
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		return s[:i]
	}
	return s
}

// FormatScore formats a score as Redis 7.2 replies it: an integer of
// magnitude up to 2^62 as an integer; otherwise the shortest decimal that
// reads back as the same double, written plainly unless the exponent is
// far from the digits (then d.ddde±x); "inf" and "-inf" for the
// infinities, "-0" for negative zero.
func FormatScore(f float64) string {
	return string(AppendScoreText(nil, f))
}

// AppendScoreText appends FormatScore(f) to dst.
func AppendScoreText(dst []byte, f float64) []byte {
	switch {
	case math.IsInf(f, 1):
		return append(dst, "inf"...)
	case math.IsInf(f, -1):
		return append(dst, "-inf"...)
	case f == 0:
		if math.Signbit(f) {
			return append(dst, "-0"...)
		}
		return append(dst, '0')
	}
	// An integer within ±2^62 prints as one (Redis's fast path for them).
	if f >= -math.MaxInt64/2 && f <= math.MaxInt64/2 && f == math.Trunc(f) {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	// Shortest round-trip digits d1.d2...dn and the decimal exponent x of
	// d1: the value is D * 10^k, D the n digits, k = x-(n-1).
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	neg := e[0] == '-'
	if neg {
		e = e[1:]
		dst = append(dst, '-')
	}
	ei := strings.IndexByte(string(e), 'e')
	digits := make([]byte, 0, 17)
	for _, c := range e[:ei] {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	x, _ := strconv.Atoi(string(e[ei+1:]))
	n := len(digits)
	k := x - (n - 1)
	ax := x
	if ax < 0 {
		ax = -ax
	}
	switch {
	case k >= 0 && ax < n+7:
		// An integer: the digits and k zeros.
		dst = append(dst, digits...)
		for range k {
			dst = append(dst, '0')
		}
		return dst
	case k < 0 && (k > -7 || ax < 4):
		// A plain decimal.
		if x < 0 {
			dst = append(dst, "0."...)
			for range -x - 1 {
				dst = append(dst, '0')
			}
			return append(dst, digits...)
		}
		dst = append(dst, digits[:x+1]...)
		dst = append(dst, '.')
		return append(dst, digits[x+1:]...)
	}
	dst = append(dst, digits[0])
	if n > 1 {
		dst = append(dst, '.')
		dst = append(dst, digits[1:]...)
	}
	dst = append(dst, 'e')
	if x < 0 {
		dst = append(dst, '-')
	} else {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, int64(ax), 10)
}

// ScoreBound is one end of a score range: "(" makes it exclusive.
type ScoreBound struct {
	Value float64
	Excl  bool
}

// ParseScoreBound parses a ZRANGEBYSCORE bound: a score, "(" score for an
// exclusive one. It reports false where Redis answers "min or max is not
// a float".
func ParseScoreBound(b []byte) (ScoreBound, bool) {
	excl := len(b) > 0 && b[0] == '('
	if excl {
		b = b[1:]
	}
	f, ok := ParseScore(b)
	return ScoreBound{Value: f, Excl: excl}, ok
}

// LexBound is one end of a lex range, as given: "-", "+", "[" member or
// "(" member.
type LexBound []byte

// ValidLexBound reports whether b is a lex range item.
func ValidLexBound(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case '-', '+':
		return len(b) == 1
	case '[', '(':
		return true
	}
	return false
}

// scoreLo returns the order-position bound at or above which rows have
// a score inside lower bound lo: [lo.pos, ...).
func scoreLo(lo ScoreBound) []byte {
	p, _ := keyspace.AppendScore(nil, lo.Value) // never NaN: ParseScore refused it
	if lo.Excl {
		return nextScore(p)
	}
	return p
}

// scoreHi returns the order-position bound below which rows have a score
// inside upper bound hi: [..., hi.pos).
func scoreHi(hi ScoreBound) []byte {
	p, _ := keyspace.AppendScore(nil, hi.Value)
	if hi.Excl {
		return p
	}
	return nextScore(p)
}

// nextScore returns the 8-byte encoding after p: every position with p's
// score sorts below it. No score encodes as all ones (that would be a
// NaN), so it never wraps.
func nextScore(p []byte) []byte {
	return binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(p)+1)
}

// lexLo and lexHi turn lex bounds into order positions under score s, the
// score of the set's first row: Redis's lex commands assume every member
// has the same score, and order members by bytes within it. lexLo's "-"
// is the start (an empty position, rank 0), lexHi's "+" the end (nil).
func lexLo(b LexBound, s []byte) []byte {
	switch b[0] {
	case '-':
		return []byte{} // the start: rank 0
	case '+':
		return zMax
	}
	p := append(append([]byte(nil), s...), b[1:]...)
	if b[0] == '(' {
		p = append(p, 0)
	}
	return p
}

func lexHi(b LexBound, s []byte) []byte {
	switch b[0] {
	case '+':
		return nil
	case '-':
		return []byte{}
	}
	p := append(append([]byte(nil), s...), b[1:]...)
	if b[0] == '[' {
		p = append(p, 0)
	}
	return p
}

// zMax is a position above every row's (no score encodes as all ones).
var zMax = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
