package keyspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ScoreLen is the length of an encoded score (AppendScore).
const ScoreLen = 8

// ErrNaNScore reports a NaN score, which has no place in an order: Redis
// refuses it too ("resulting score is not a number (NaN)").
var ErrNaNScore = errors.New("keyspace: score is NaN")

// AppendScore appends score so that bytes.Compare of two encodings agrees
// with the numeric order of the scores, for every float64 but NaN: -inf
// first, +inf last, -0 equal to +0.
//
// The IEEE 754 bits already order non-negative floats as unsigned
// integers; flipping the sign bit moves them above the negatives, and
// flipping every bit of a negative reverses the negatives' order (a larger
// magnitude is smaller). -0 is first made +0: numerically they are equal,
// and Redis breaks ties between equal scores by member, so two encodings
// that compared unequal would misorder members. The exact score, -0
// included, lives in the member index (AppendZSetMemberKey), not here.
func AppendScore(dst []byte, score float64) ([]byte, error) {
	if math.IsNaN(score) {
		return nil, ErrNaNScore
	}
	if score == 0 {
		score = 0 // -0 == 0, so this turns -0 into +0
	}
	b := math.Float64bits(score)
	if b&(1<<63) != 0 {
		b = ^b
	} else {
		b |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, b), nil
}

// DecodeScore reverses AppendScore. b must be ScoreLen bytes; the bytes of
// a NaN or of -0 are refused, as AppendScore never writes them.
func DecodeScore(b []byte) (float64, error) {
	if len(b) != ScoreLen {
		return 0, fmt.Errorf("keyspace: score is %d bytes, want %d", len(b), ScoreLen)
	}
	u := binary.BigEndian.Uint64(b)
	if u&(1<<63) != 0 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	f := math.Float64frombits(u)
	if math.IsNaN(f) {
		return 0, ErrNaNScore
	}
	if u == 1<<63 {
		// -0: AppendScore writes +0 for it, so these bytes are damage.
		return 0, fmt.Errorf("keyspace: score bytes %x are not canonical (-0)", b)
	}
	return f, nil
}
