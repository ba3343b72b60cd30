package keyspace

import (
	"bytes"
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// specialScores are the values where a sign-flip encoding usually breaks.
var specialScores = []float64{
	math.Inf(-1), -math.MaxFloat64, -1e300, -2, -1, -math.SmallestNonzeroFloat64,
	math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, 2.2250738585072014e-308,
	1, 1.0000000000000002, 2, 1e300, math.MaxFloat64, math.Inf(1),
}

// randomScore draws scores from every part of the float64 line: arbitrary
// bit patterns (all magnitudes, subnormals, both signs), small integers
// (so equal scores occur), and the special values.
func randomScore(r *rand.Rand) float64 {
	switch r.IntN(3) {
	case 0:
		for {
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) {
				return f
			}
		}
	case 1:
		return float64(r.IntN(7) - 3)
	default:
		return specialScores[r.IntN(len(specialScores))]
	}
}

func mustScore(t *testing.T, f float64) []byte {
	t.Helper()
	b, err := AppendScore(nil, f)
	if err != nil {
		t.Fatalf("AppendScore(%v): %v", f, err)
	}
	return b
}

// TestScoreOrderMatchesNumericOrder is the property the sorted set's order
// index rests on: for any two non-NaN scores, comparing their encodings
// bytewise gives the numeric comparison (-0 equal to +0).
func TestScoreOrderMatchesNumericOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	check := func(a, b float64) {
		ea, eb := mustScore(t, a), mustScore(t, b)
		if got, want := bytes.Compare(ea, eb), cmp.Compare(a, b); got != want {
			t.Fatalf("scores %v (%x) and %v (%x): bytes compare %d, numbers %d", a, ea, b, eb, got, want)
		}
	}
	for _, a := range specialScores {
		for _, b := range specialScores {
			check(a, b)
		}
	}
	for range 200000 {
		check(randomScore(r), randomScore(r))
	}
}

// TestScoreRoundTrip decodes every encoding back to the score, except that
// -0 comes back as +0 (the order index stores it canonically).
func TestScoreRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for i := range 100000 {
		f := randomScore(r)
		if i < len(specialScores) {
			f = specialScores[i]
		}
		got, err := DecodeScore(mustScore(t, f))
		if err != nil {
			t.Fatalf("DecodeScore(AppendScore(%v)): %v", f, err)
		}
		if want := f + 0; math.Float64bits(got) != math.Float64bits(want) && !(f == 0 && got == 0 && !math.Signbit(got)) {
			t.Fatalf("round trip of %v gave %v", f, got)
		}
		if f == 0 && math.Signbit(got) {
			t.Fatalf("-0 decoded with its sign: %v", got)
		}
	}
}

func TestScoreRejectsNaN(t *testing.T) {
	for _, nan := range []float64{math.NaN(), math.Float64frombits(0x7ff0000000000001), math.Float64frombits(0xfff8000000000000)} {
		if _, err := AppendScore(nil, nan); !errors.Is(err, ErrNaNScore) {
			t.Errorf("AppendScore(NaN %x) err = %v, want ErrNaNScore", math.Float64bits(nan), err)
		}
		if _, err := AppendZSetOrderKey(nil, 1, Stamp{1, 0}, nan, []byte("m")); !errors.Is(err, ErrNaNScore) {
			t.Errorf("AppendZSetOrderKey(NaN) err = %v, want ErrNaNScore", err)
		}
	}
	// The bytes a NaN would have if it were encoded like any other float.
	for _, b := range [][]byte{
		{0xff, 0xf8, 0, 0, 0, 0, 0, 0},                   // +NaN with the sign bit flipped
		{0x00, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, // -NaN inverted
	} {
		if _, err := DecodeScore(b); !errors.Is(err, ErrNaNScore) {
			t.Errorf("DecodeScore(%x) err = %v, want ErrNaNScore", b, err)
		}
	}
}

func TestDecodeScoreRejectsNonCanonical(t *testing.T) {
	if _, err := DecodeScore([]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Error("DecodeScore accepted the bytes of -0, which AppendScore never writes")
	}
	if _, err := DecodeScore([]byte{0x80, 0, 0}); err == nil {
		t.Error("DecodeScore accepted 3 bytes")
	}
}

// TestZSetOrderRowsSortByScoreThenMember checks the order index as Pebble
// would iterate it: sorting the row keys bytewise gives Redis's order.
func TestZSetOrderRowsSortByScoreThenMember(t *testing.T) {
	type entry struct {
		score  float64
		member string
	}
	want := []entry{
		{math.Inf(-1), "z"}, {-2.5, "a"}, {-2.5, "b"}, {math.Copysign(0, -1), "a"}, {0, "b"},
		{math.Copysign(0, -1), "c"}, {1, ""}, {1, "a"}, {1, "a\x00"}, {math.Inf(1), "a"},
	}
	sid := Stamp{Index: 42, Pos: 3}
	prefix := ElementsPrefix(nil, 9, sid)
	var rows [][]byte
	for i := len(want) - 1; i >= 0; i-- {
		row, err := AppendZSetOrderKey(nil, 9, sid, want[i].score, []byte(want[i].member))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	slicesSortBytes(rows)
	for i, row := range rows {
		score, member, err := ParseZSetOrderKey(prefix, row)
		if err != nil {
			t.Fatal(err)
		}
		if score != want[i].score || string(member) != want[i].member {
			t.Fatalf("row %d is (%v, %q), want (%v, %q)", i, score, member, want[i].score, want[i].member)
		}
	}
}
