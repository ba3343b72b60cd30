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
//	0x02 boundary          -> count (8 bytes big-endian): the rank index
//
// A fence's boundary is an order position (score(8) member, the order
// suffix without its tag), or empty for the first fence; its count is the
// number of order rows from its boundary up to the next fence's. kv's
// zset_index.go maintains them; the bytes here are the format.

// ZSetFenceTag is the row kind of a rank-index fence.
const ZSetFenceTag byte = 0x02

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

// AppendZSetFenceSuffix appends the suffix of the fence whose boundary is
// pos (empty for the first fence).
func AppendZSetFenceSuffix(dst, pos []byte) []byte {
	dst = append(dst, ZSetFenceTag)
	return append(dst, pos...)
}
