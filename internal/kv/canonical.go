package kv

import "encoding/binary"

// Canonical encodings.
//
// DecodeCommand accepts varints with redundant continuation bytes (Go's
// binary.Uvarint does), so more than one byte string decodes to the same
// command; AppendEncode writes only the shortest. Decoding stays lenient:
// entries already in a log must decode as they always did (a stricter
// decoder would be a new check at apply time). Bytes that arrive from a
// peer are checked with IsCanonical before they are proposed instead, so
// every entry this version of the code proposes is the exact encoding of
// its command: decoding and re-encoding an entry gives back its bytes.

// EncodedLen is the exact length of the command's encoding (AppendEncode).
func (c *Command) EncodedLen() int {
	n := 2 + varintLen(c.Delta) + uvarintLen(uint64(len(c.Keys))) + uvarintLen(uint64(len(c.Values)))
	for _, k := range c.Keys {
		n += uvarintLen(uint64(len(k))) + len(k)
	}
	for _, v := range c.Values {
		n += uvarintLen(uint64(len(v))) + len(v)
	}
	return n
}

// IsCanonical reports whether b decodes to a command whose encoding is
// exactly b, and, for an OpBatch, whether each of its commands is
// canonical too. It allocates only what DecodeCommand does.
func IsCanonical(b []byte) bool {
	c, err := DecodeCommand(b)
	if err != nil || c.EncodedLen() != len(b) {
		// Same fields, so a longer input can only hold longer varints.
		return false
	}
	if c.Op == OpBatch {
		for _, v := range c.Values {
			if !IsCanonical(v) {
				return false
			}
		}
	}
	return true
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}
