package keyspace

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sub-families inside a slot. Their order puts a slot's metadata first,
// its elements next and its expiry index last; nothing depends on that
// order except that each is a contiguous range.
const (
	tagMeta   byte = 0x01
	tagElems  byte = 0x02
	tagExpiry byte = 0x03
	tagLoan   byte = 0x04
)

// Sorted-set row kinds under a storage id: the member index (member ->
// score) and the order index (score, member -> nothing).
const (
	zsetMemberTag byte = 0x00
	zsetOrderTag  byte = 0x01
)

// ErrBadRow reports a row key that is not of the asked-for kind or is too
// short: damaged data or a caller bug, never something to guess around.
var ErrBadRow = errors.New("keyspace: malformed row key")

// appendSlot appends slot as 2 big-endian bytes. Slots are < 0x4000, so
// the first byte is < 0x40 and never meets the v1 letter families.
func appendSlot(dst []byte, slot uint16) []byte {
	return binary.BigEndian.AppendUint16(dst, slot)
}

// SlotRange returns the bounds [lo, hi) holding every row of every key in
// slot: its metadata, elements and expiry index. Migrating or dropping a
// slot is one range.
func SlotRange(slot uint16) (lo, hi []byte) {
	return appendSlot(nil, slot), appendSlot(nil, slot+1)
}

// MetaKey returns the metadata row key of a user key.
func MetaKey(key []byte) []byte {
	return AppendMetaKey(make([]byte, 0, 3+len(key)), HashSlot(key), key)
}

// AppendMetaKey appends the metadata row key of key, whose slot the caller
// has computed (HashSlot), to dst. The user key runs to the end of the row
// key, so no escaping is needed and a key prefix is a row-key prefix (SCAN
// MATCH with a literal prefix becomes a range within each slot).
func AppendMetaKey(dst []byte, slot uint16, key []byte) []byte {
	dst = appendSlot(dst, slot)
	dst = append(dst, tagMeta)
	return append(dst, key...)
}

// MetaRange returns the bounds [lo, hi) of the metadata rows of slot: one
// row per key, so iterating it lists the slot's keys.
func MetaRange(slot uint16) (lo, hi []byte) {
	return []byte{byte(slot >> 8), byte(slot), tagMeta}, []byte{byte(slot >> 8), byte(slot), tagMeta + 1}
}

// ParseMetaKey splits a metadata row key into its slot and user key. The
// returned key aliases row.
func ParseMetaKey(row []byte) (slot uint16, key []byte, err error) {
	if len(row) < 3 || row[2] != tagMeta || row[0] >= 0x40 {
		return 0, nil, fmt.Errorf("%w: not a metadata row: %x", ErrBadRow, row)
	}
	return binary.BigEndian.Uint16(row), row[3:], nil
}

// ElementsPrefix appends the prefix shared by every element row of the key
// in slot whose storage id is sid.
func ElementsPrefix(dst []byte, slot uint16, sid Stamp) []byte {
	dst = appendSlot(dst, slot)
	dst = append(dst, tagElems)
	return AppendStamp(dst, sid)
}

// ElementsRange returns the bounds [lo, hi) of every element row under
// storage id sid in slot: whatever the type and however many elements,
// deleting the key's contents is one DeleteRange over it.
func ElementsRange(slot uint16, sid Stamp) (lo, hi []byte) {
	lo = ElementsPrefix(make([]byte, 0, 3+StampLen), slot, sid)
	return lo, PrefixEnd(lo)
}

// PrefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff). Slot rows never are: their first
// byte is below 0x40.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// ChunkSize is the size of a chunk of a large string. It is part of the
// format: changing it needs a new format version. 4 KiB is Pebble's block
// size, so SETRANGE or APPEND rewrites at most about one block beside the
// bytes it changes, while a 512 MiB value is still only 131072 rows.
const ChunkSize = 4096

// AppendChunkKey appends the row key of chunk n (bytes [n*ChunkSize,
// (n+1)*ChunkSize)) of a chunked string. A chunk row holds at most
// ChunkSize bytes; the bytes of a chunk past its row's value, up to the
// string's length, read as zeros, so a missing row is a chunk of zeros and
// SETRANGE far past the end writes only the chunk it touches.
func AppendChunkKey(dst []byte, slot uint16, sid Stamp, n uint32) []byte {
	dst = ElementsPrefix(dst, slot, sid)
	return binary.BigEndian.AppendUint32(dst, n)
}

// MaxStringLen is the longest string the layout can chunk: 2^32 chunks.
// Redis caps strings far lower (proto-max-bulk-len, 512 MiB by default),
// and callers must refuse larger offsets before they reach ChunkSpan.
const MaxStringLen = uint64(1<<32) * ChunkSize

// ChunkSpan returns the chunks [first, last] that bytes [off, off+n) of a
// chunked string touch, n > 0: what SETRANGE rewrites and GETRANGE reads.
// It refuses a span past MaxStringLen, so a hostile offset cannot wrap.
func ChunkSpan(off, n uint64) (first, last uint32, err error) {
	if n == 0 || off >= MaxStringLen || n > MaxStringLen-off {
		return 0, 0, fmt.Errorf("keyspace: byte span [%d, +%d) is empty or past the %d-byte string limit", off, n, MaxStringLen)
	}
	return uint32(off / ChunkSize), uint32((off + n - 1) / ChunkSize), nil
}

// ParseChunkKey returns the chunk number of a chunk row key of the string
// whose elements prefix is prefix (ElementsPrefix).
func ParseChunkKey(prefix, row []byte) (uint32, error) {
	if len(row) != len(prefix)+4 || string(row[:len(prefix)]) != string(prefix) {
		return 0, fmt.Errorf("%w: not a chunk row: %x", ErrBadRow, row)
	}
	return binary.BigEndian.Uint32(row[len(prefix):]), nil
}

// AppendHashFieldKey appends the row key of field in a hash; the row's
// value is the field's value. The field runs to the end (the storage id
// before it has a fixed width), so fields iterate in byte order, as
// HSCAN's cursor needs.
func AppendHashFieldKey(dst []byte, slot uint16, sid Stamp, field []byte) []byte {
	dst = ElementsPrefix(dst, slot, sid)
	return append(dst, field...)
}

// AppendSetMemberKey appends the row key of member in a set; the row's
// value is empty.
func AppendSetMemberKey(dst []byte, slot uint16, sid Stamp, member []byte) []byte {
	dst = ElementsPrefix(dst, slot, sid)
	return append(dst, member...)
}

// ParseElementSuffix returns what follows the elements prefix in row: a
// hash field, a set member, a list sequence number or a chunk number. It
// aliases row.
func ParseElementSuffix(prefix, row []byte) ([]byte, error) {
	if len(row) < len(prefix) || string(row[:len(prefix)]) != string(prefix) {
		return nil, fmt.Errorf("%w: row %x is not under %x", ErrBadRow, row, prefix)
	}
	return row[len(prefix):], nil
}

// AppendZSetMemberKey appends the row key of member in a sorted set's
// member index; the row's value is the member's score as 8 big-endian
// bytes of its IEEE 754 bits (math.Float64bits), exact, -0 included, so
// ZSCORE answers what ZADD was given.
func AppendZSetMemberKey(dst []byte, slot uint16, sid Stamp, member []byte) []byte {
	dst = ElementsPrefix(dst, slot, sid)
	dst = append(dst, zsetMemberTag)
	return append(dst, member...)
}

// AppendZSetOrderKey appends the row key of (score, member) in a sorted
// set's order index; the row's value is empty. Rows sort by score
// numerically (AppendScore), then by member bytes, which is Redis's order,
// so ZRANGE and ZRANGEBYSCORE are range scans. The score must not be NaN.
func AppendZSetOrderKey(dst []byte, slot uint16, sid Stamp, score float64, member []byte) ([]byte, error) {
	dst = ElementsPrefix(dst, slot, sid)
	dst = append(dst, zsetOrderTag)
	dst, err := AppendScore(dst, score)
	if err != nil {
		return nil, err
	}
	return append(dst, member...), nil
}

// ZSetOrderRange returns the bounds [lo, hi) of a sorted set's order
// index, every (score, member) row in score order.
func ZSetOrderRange(slot uint16, sid Stamp) (lo, hi []byte) {
	lo = append(ElementsPrefix(nil, slot, sid), zsetOrderTag)
	return lo, PrefixEnd(lo)
}

// ZSetMemberRange returns the bounds [lo, hi) of a sorted set's member
// index, in member order (ZRANGEBYLEX needs the order index, whose ties
// on score are in member order).
func ZSetMemberRange(slot uint16, sid Stamp) (lo, hi []byte) {
	lo = append(ElementsPrefix(nil, slot, sid), zsetMemberTag)
	return lo, PrefixEnd(lo)
}

// ParseZSetOrderKey returns the score and member of an order-index row of
// the sorted set whose elements prefix is prefix. The member aliases row.
func ParseZSetOrderKey(prefix, row []byte) (float64, []byte, error) {
	n := len(prefix)
	if len(row) < n+1+ScoreLen || string(row[:n]) != string(prefix) || row[n] != zsetOrderTag {
		return 0, nil, fmt.Errorf("%w: not a sorted-set order row: %x", ErrBadRow, row)
	}
	score, err := DecodeScore(row[n+1 : n+1+ScoreLen])
	if err != nil {
		return 0, nil, err
	}
	return score, row[n+1+ScoreLen:], nil
}

// ListSeqStart is the sequence number of the first element pushed to an
// empty list: the middle of the uint64 range, so LPUSH (head-1) and RPUSH
// (tail+1) both have 2^63 steps of room.
const ListSeqStart uint64 = 1 << 63

// AppendListElemKey appends the row key of the list element with sequence
// number seq; the row's value is the element. A list's elements occupy
// exactly the sequence numbers [Head, Tail) of its metadata, so LINDEX and
// LSET find element i at Head+i without a scan.
func AppendListElemKey(dst []byte, slot uint16, sid Stamp, seq uint64) []byte {
	dst = ElementsPrefix(dst, slot, sid)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// AppendExpiryKey appends the expiry-index row key of key, which expires
// at at (Unix milliseconds, never 0) and lives in slot. The row's value is
// empty: the sweeper reads the key's metadata anyway, to propose a delete
// conditional on the version and expiry it saw.
func AppendExpiryKey(dst []byte, slot uint16, at uint64, key []byte) []byte {
	dst = appendSlot(dst, slot)
	dst = append(dst, tagExpiry)
	dst = binary.BigEndian.AppendUint64(dst, at)
	return append(dst, key...)
}

// ExpiryRange returns the bounds [lo, hi) of slot's expiry-index rows
// whose expiry is at or before upTo (Unix milliseconds): the keys of the
// slot due to expire by then, earliest first.
func ExpiryRange(slot uint16, upTo uint64) (lo, hi []byte) {
	lo = []byte{byte(slot >> 8), byte(slot), tagExpiry}
	if upTo == ^uint64(0) {
		return lo, []byte{byte(slot >> 8), byte(slot), tagExpiry + 1}
	}
	return lo, binary.BigEndian.AppendUint64(append([]byte(nil), lo...), upTo+1)
}

// ParseExpiryKey splits an expiry-index row key. The key aliases row.
func ParseExpiryKey(row []byte) (slot uint16, at uint64, key []byte, err error) {
	if len(row) < 11 || row[0] >= 0x40 || row[2] != tagExpiry {
		return 0, 0, nil, fmt.Errorf("%w: not an expiry row: %x", ErrBadRow, row)
	}
	return binary.BigEndian.Uint16(row), binary.BigEndian.Uint64(row[3:]), row[11:], nil
}

// AppendLoanKey appends the loan row key of the elements under storage id
// sid in slot, whose key lives in another slot (Meta.Foreign); the row's
// value is that key. Slot migration reads the loans of a slot (LoanRange)
// to re-home those elements before the slot leaves, since they are in its
// range but belong to a key that stays.
func AppendLoanKey(dst []byte, slot uint16, sid Stamp) []byte {
	dst = appendSlot(dst, slot)
	dst = append(dst, tagLoan)
	return AppendStamp(dst, sid)
}

// LoanRange returns the bounds [lo, hi) of slot's loan rows.
func LoanRange(slot uint16) (lo, hi []byte) {
	return []byte{byte(slot >> 8), byte(slot), tagLoan}, []byte{byte(slot >> 8), byte(slot), tagLoan + 1}
}
