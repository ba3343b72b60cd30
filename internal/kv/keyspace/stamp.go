package keyspace

import (
	"encoding/binary"
	"fmt"
)

// Stamp names one write in the replicated log: the Raft index of its entry
// and its position among the writes of that entry (an entry may batch many
// commands, and one command, such as MSET, may create many keys).
//
// Stamps serve three roles, all deterministic because every replica applies
// the same entries in the same order:
//   - a key's Version: the write that created it;
//   - a key's LastWrite: the write that last changed it (WATCH compares it);
//   - a key's storage id: the prefix its element rows live under. A key
//     created by write s gets storage id s, so no counter has to be stored,
//     read or replicated to allocate one.
//
// Position is 32 bits: an entry is capped far below 4 GiB and every
// allocation consumes at least one byte of it, so it cannot overflow.
type Stamp struct {
	Index uint64
	Pos   uint32
}

// StampLen is the length of a Stamp in a row key (AppendStamp).
const StampLen = 12

// Less orders stamps as the log does: by index, then position.
func (s Stamp) Less(o Stamp) bool {
	return s.Index < o.Index || (s.Index == o.Index && s.Pos < o.Pos)
}

// IsZero reports whether s is the zero stamp, which no write has (log
// indexes start at 1). Keys read in place from the v1 layout report it as
// their version, as they carry none.
func (s Stamp) IsZero() bool { return s == Stamp{} }

// String formats s as index.pos, for logs and errors.
func (s Stamp) String() string { return fmt.Sprintf("%d.%d", s.Index, s.Pos) }

// AppendStamp appends s as 12 big-endian bytes (index, then position).
// Fixed width keeps everything after it in a row key unambiguous without a
// length or an escape, and big-endian keeps row order equal to log order.
func AppendStamp(dst []byte, s Stamp) []byte {
	dst = binary.BigEndian.AppendUint64(dst, s.Index)
	return binary.BigEndian.AppendUint32(dst, s.Pos)
}

// ParseStamp reads a stamp written by AppendStamp from the front of b,
// such as the storage id in an element row after its slot and tag.
func ParseStamp(b []byte) (Stamp, error) {
	if len(b) < StampLen {
		return Stamp{}, fmt.Errorf("%w: stamp of %d bytes, want %d", ErrBadRow, len(b), StampLen)
	}
	return Stamp{Index: binary.BigEndian.Uint64(b), Pos: binary.BigEndian.Uint32(b[8:])}, nil
}
