package keyspace

// Sorted-set element-row suffixes: what follows a sorted set's
// ElementsPrefix. The kv layer reads and writes element rows by suffix
// (the prefix is the apply path's or the view's), so these mirror
// AppendZSetMemberKey and AppendZSetOrderKey without the prefix, and add
// the third row kind, the fences of the rank index.
//
// Three row kinds live under a sorted set's storage id, each a contiguous
// range, so one DeleteRange over ElementsRange drops all of them:
//
//	0x00 member            -> score bits (8 bytes, exact, -0 included)
//	0x01 score(8) member   -> empty: the order index, Redis's order
//	0x02 end               -> count (8 bytes big-endian): rank-index fences
//	0x03 end               -> rows, fences (8 + 8 bytes): rank-index supers
//
// A fence's end is an order position (score(8) member, the order suffix
// without its tag), exclusive, or all 0xff for the last fence; its count
// is the number of order rows from the previous fence's end up to its
// own. A super groups the fences from the previous super's end up to its
// own (a fence end). kv's zset_index.go maintains them; the bytes here
// are the format.

// ZSetFenceTag and ZSetSuperTag are the row kinds of the rank index.
const (
	ZSetFenceTag byte = 0x02
	ZSetSuperTag byte = 0x03
)

// ZSetMemberTag and ZSetOrderTag are the row kinds of the member and order
// indexes (the first byte of their suffixes).
const (
	ZSetMemberTag = zsetMemberTag
	ZSetOrderTag  = zsetOrderTag
)

// AppendZSetMemberSuffix appends the suffix of member's member-index row.
func AppendZSetMemberSuffix(dst, member []byte) []byte {
	dst = append(dst, zsetMemberTag)
	return append(dst, member...)
}

// AppendZSetPos appends the order position of (score, member): the order
// row's suffix without its tag, which sorts as Redis orders a sorted set.
// The score must not be NaN.
func AppendZSetPos(dst []byte, score float64, member []byte) ([]byte, error) {
	dst, err := AppendScore(dst, score)
	if err != nil {
		return nil, err
	}
	return append(dst, member...), nil
}

// AppendZSetOrderSuffix appends the suffix of the order row at position
// pos (AppendZSetPos).
func AppendZSetOrderSuffix(dst, pos []byte) []byte {
	dst = append(dst, zsetOrderTag)
	return append(dst, pos...)
}

// AppendZSetFenceSuffix appends the suffix of the fence whose bucket ends
// at position end.
func AppendZSetFenceSuffix(dst, end []byte) []byte {
	dst = append(dst, ZSetFenceTag)
	return append(dst, end...)
}

// AppendZSetSuperSuffix appends the suffix of the super whose group of
// fences ends at end.
func AppendZSetSuperSuffix(dst, end []byte) []byte {
	dst = append(dst, ZSetSuperTag)
	return append(dst, end...)
}
