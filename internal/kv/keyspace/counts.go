package keyspace

import (
	"encoding/binary"
	"fmt"
)

// Rows outside the slots, in the store's 'm' family of state-machine
// metadata ('m' '.' name, as kv's metaKey builds them). They are global,
// not per slot: DBSIZE and INFO keyspace read one row each, and a
// per-slot count would add a second row write for nearly every key a
// pipelined batch touches. A slot migration counts the keys it moves as it
// copies them and adjusts both ends.
var (
	// KeyCountRow holds the number of live v2 keys (expired keys the sweeper
	// has not yet deleted included, as Redis's DBSIZE counts them).
	KeyCountRow = []byte("m.keyspace.keys")
	// ExpireCountRow holds the number of v2 keys with an expiry: the rows of
	// the expiry index.
	ExpireCountRow = []byte("m.keyspace.expires")
	// LegacyPresentRow exists while the store may still hold v1 rows ('u' +
	// key). While it does, a lookup that misses the v2 metadata also reads
	// the v1 row; the migration that empties the v1 range deletes it, and
	// from then on a miss costs one read.
	LegacyPresentRow = []byte("m.keyspace.v1")
)

// CountLen is the length of a count row's value.
const CountLen = 8

// EncodeCount encodes a count row's value: 8 bytes big-endian, fixed so a
// count is rewritten in place at the same size.
func EncodeCount(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// DecodeCount decodes a count row's value; a missing row (nil) is 0.
func DecodeCount(b []byte) (uint64, error) {
	if b == nil {
		return 0, nil
	}
	if len(b) != CountLen {
		return 0, fmt.Errorf("keyspace: count row of %d bytes, want %d", len(b), CountLen)
	}
	return binary.BigEndian.Uint64(b), nil
}

// Family bytes of the v1 layout, read in place until every key is
// converted.
const (
	legacyUserPrefix byte = 'u'
	legacyString     byte = 's'
)

// LegacyKey returns the v1 row key of key: 'u' + key.
func LegacyKey(key []byte) []byte {
	return append([]byte{legacyUserPrefix}, key...)
}

// LegacyRange returns the bounds [lo, hi) of every v1 user row.
func LegacyRange() (lo, hi []byte) {
	return []byte{legacyUserPrefix}, []byte{legacyUserPrefix + 1}
}

// DecodeLegacyValue returns the string stored in a v1 row's value ('s' +
// value). It aliases v. v1 knew only strings, so any other first byte is
// damage.
func DecodeLegacyValue(v []byte) ([]byte, error) {
	if len(v) == 0 || v[0] != legacyString {
		return nil, fmt.Errorf("keyspace: v1 value is not a string (%d bytes)", len(v))
	}
	return v[1:], nil
}

// LegacyMeta returns the metadata a v1 string reads as: an inline or
// chunked string (by length) with no expiry and the zero stamps, as v1 kept
// no versions. The value is not copied into the Meta (it may exceed
// InlineMax); the caller converting the key writes it inline or as chunks
// under a fresh storage id.
func LegacyMeta(value []byte) Meta {
	m := Meta{Type: TypeString, Len: uint64(len(value))}
	if len(value) > InlineMax {
		m.Encoding = StringChunked
	} else {
		m.Value = value
	}
	return m
}
