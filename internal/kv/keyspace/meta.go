package keyspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// FormatV2 is the format-version byte that starts every v2 metadata
// record. The v1 layout had no metadata records (a key was one 'u' row
// holding 's' + value), so any other first byte is a format this binary
// does not know. A later format bumps this byte; a binary meeting a byte it
// does not know refuses the record (ErrUnknownFormat) rather than
// misreading it.
const FormatV2 byte = 2

// InlineMax is the longest string value kept inside its metadata record.
// A GET of such a value is one point read. Longer values are chunked
// (ChunkSize), so APPEND and SETRANGE rewrite only what they touch, and
// metadata records stay small: a data block holds many of them, which keeps
// SCAN, TYPE, EXISTS and the one metadata read every write makes cheap.
// It is part of the format, like ChunkSize.
const InlineMax = 1024

// Type is a key's Redis type.
type Type byte

// Key types. The values are on disk; never renumber them.
const (
	TypeString Type = 1
	TypeHash   Type = 2
	TypeList   Type = 3
	TypeSet    Type = 4
	TypeZSet   Type = 5
)

// String returns the name Redis's TYPE command gives the type.
func (t Type) String() string {
	switch t {
	case TypeString:
		return "string"
	case TypeHash:
		return "hash"
	case TypeList:
		return "list"
	case TypeSet:
		return "set"
	case TypeZSet:
		return "zset"
	}
	return fmt.Sprintf("type(%d)", byte(t))
}

// StringEncoding says where a string's bytes are.
type StringEncoding byte

// String encodings. The values are on disk; never renumber them.
const (
	// StringInline keeps the value in the metadata record (Meta.Value).
	StringInline StringEncoding = 0
	// StringChunked keeps the value in chunk rows under the storage id
	// (AppendChunkKey); Meta.Len is its length.
	StringChunked StringEncoding = 1
)

// Meta is the metadata record of one key: everything about the key except
// the elements of a collection or the chunks of a large string.
type Meta struct {
	// Type is the key's type.
	Type Type
	// ExpireAt is when the key expires, Unix milliseconds; 0 means never.
	// Apply compares it with the entry's replicated apply time, never a
	// clock.
	ExpireAt uint64
	// Version is the write that created the key. A write that replaces the
	// key (SET over any type, a collection emptied and made again) gives it
	// a new version; the sweeper's conditional delete checks it.
	Version Stamp
	// LastWrite is the last write that changed the key, for WATCH.
	LastWrite Stamp
	// StorageID is the prefix of the key's element rows (ElementsPrefix):
	// the stamp of the write that created them (the key's creation, or the
	// write that first chunked a string). It survives RENAME, which then
	// rewrites only this record. An inline string has no element rows;
	// its StorageID is its Version and names nothing.
	StorageID Stamp
	// Foreign is set when the key's element rows live in another slot than
	// the key's own, ElemSlot: after a RENAME to a key of another slot,
	// which then stays O(1) instead of copying every element. The elements
	// slot holds a loan row (AppendLoanKey) naming the key, so migrating
	// that slot can find and re-home the elements first.
	Foreign bool
	// ElemSlot is the slot of the element rows when Foreign; 0 otherwise.
	ElemSlot uint16

	// Len is the length in bytes of a string (inline or chunked), or the
	// number of fields, members or elements of a hash, set or sorted set.
	// For a list it is Tail-Head and is not stored.
	Len uint64
	// Head and Tail bound a list's sequence numbers: its elements are at
	// [Head, Tail) (AppendListElemKey). Zero for other types.
	Head, Tail uint64
	// Encoding says where a string's bytes are; zero for other types.
	Encoding StringEncoding
	// Value is an inline string's value. DecodeMeta returns a slice of its
	// input: copy it before the input's buffer is reused.
	Value []byte
}

// ErrUnknownFormat reports a metadata record whose format-version byte
// this binary does not know: written by a newer binary, or damaged. The
// caller must stop rather than read around it.
var ErrUnknownFormat = errors.New("keyspace: unknown metadata format version")

// ErrBadMeta reports a metadata record of a known format that does not
// decode: damaged bytes.
var ErrBadMeta = errors.New("keyspace: malformed metadata record")

// ErrBadMetaValue reports a Meta that EncodeMeta cannot write: a caller
// bug, such as an inline value longer than InlineMax.
var ErrBadMetaValue = errors.New("keyspace: invalid metadata")

// Record layout (all integers unsigned varints, shortest form, unless
// said otherwise):
//
//	format byte (FormatV2)
//	type byte
//	expireAt
//	version.index version.pos
//	lastWrite.index lastWrite.pos
//	storageID.index storageID.pos
//	elemSlot+1 if Foreign, else 0
//	per type:
//	  string:            encoding byte, then
//	                       inline:  the value, to the end
//	                       chunked: len
//	  hash, set, zset:   len
//	  list:              head, tail (8 bytes big-endian each)
//
// Varints keep a small key's record small (a fresh string's stamps cost a
// few bytes each); the list bounds are fixed-width because they start at
// 2^63, where a varint would be longer.

// ElementsSlot returns the slot the key's element rows live under, given
// the slot of the key itself (HashSlot of the key).
func (m *Meta) ElementsSlot(keySlot uint16) uint16 {
	if m.Foreign {
		return m.ElemSlot
	}
	return keySlot
}

// elemSlotField is the on-disk form of Foreign and ElemSlot: 0 for the
// common case costs one byte.
func (m *Meta) elemSlotField() uint64 {
	if !m.Foreign {
		return 0
	}
	return uint64(m.ElemSlot) + 1
}

// check reports why m cannot be encoded, or nil.
func (m *Meta) check() error {
	if m.ElemSlot >= SlotCount || (!m.Foreign && m.ElemSlot != 0) {
		return fmt.Errorf("%w: elements slot %d (foreign %v)", ErrBadMetaValue, m.ElemSlot, m.Foreign)
	}
	if m.Foreign && m.Type == TypeString && m.Encoding == StringInline {
		return fmt.Errorf("%w: an inline string has no elements to live elsewhere", ErrBadMetaValue)
	}
	switch m.Type {
	case TypeString:
		switch m.Encoding {
		case StringInline:
			if len(m.Value) > InlineMax || m.Len != uint64(len(m.Value)) {
				return fmt.Errorf("%w: inline string of %d bytes with Len %d (max %d)", ErrBadMetaValue, len(m.Value), m.Len, InlineMax)
			}
		case StringChunked:
			if m.Value != nil {
				return fmt.Errorf("%w: chunked string with an inline value", ErrBadMetaValue)
			}
		default:
			return fmt.Errorf("%w: string encoding %d", ErrBadMetaValue, m.Encoding)
		}
		if m.Head != 0 || m.Tail != 0 {
			return fmt.Errorf("%w: list bounds on a string", ErrBadMetaValue)
		}
	case TypeHash, TypeSet, TypeZSet:
		if m.Encoding != 0 || m.Value != nil || m.Head != 0 || m.Tail != 0 {
			return fmt.Errorf("%w: string or list fields on a %s", ErrBadMetaValue, m.Type)
		}
	case TypeList:
		if m.Encoding != 0 || m.Value != nil || m.Head > m.Tail || m.Len != m.Tail-m.Head {
			return fmt.Errorf("%w: list with head %d, tail %d, len %d", ErrBadMetaValue, m.Head, m.Tail, m.Len)
		}
	default:
		return fmt.Errorf("%w: type %d", ErrBadMetaValue, m.Type)
	}
	return nil
}

// EncodedLen returns the length of m's encoding.
func (m *Meta) EncodedLen() int {
	n := 2 + uvarintLen(m.ExpireAt) +
		uvarintLen(m.Version.Index) + uvarintLen(uint64(m.Version.Pos)) +
		uvarintLen(m.LastWrite.Index) + uvarintLen(uint64(m.LastWrite.Pos)) +
		uvarintLen(m.StorageID.Index) + uvarintLen(uint64(m.StorageID.Pos)) +
		uvarintLen(m.elemSlotField())
	switch m.Type {
	case TypeString:
		n++
		if m.Encoding == StringInline {
			n += len(m.Value)
		} else {
			n += uvarintLen(m.Len)
		}
	case TypeList:
		n += 16
	default:
		n += uvarintLen(m.Len)
	}
	return n
}

// EncodeMeta returns m's record.
func EncodeMeta(m *Meta) ([]byte, error) {
	return AppendMeta(make([]byte, 0, m.EncodedLen()), m)
}

// AppendMeta appends m's record to dst. It refuses a Meta whose fields
// contradict its type, so nothing DecodeMeta would refuse is ever written.
func AppendMeta(dst []byte, m *Meta) ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	dst = append(dst, FormatV2, byte(m.Type))
	dst = binary.AppendUvarint(dst, m.ExpireAt)
	dst = binary.AppendUvarint(dst, m.Version.Index)
	dst = binary.AppendUvarint(dst, uint64(m.Version.Pos))
	dst = binary.AppendUvarint(dst, m.LastWrite.Index)
	dst = binary.AppendUvarint(dst, uint64(m.LastWrite.Pos))
	dst = binary.AppendUvarint(dst, m.StorageID.Index)
	dst = binary.AppendUvarint(dst, uint64(m.StorageID.Pos))
	dst = binary.AppendUvarint(dst, m.elemSlotField())
	switch m.Type {
	case TypeString:
		dst = append(dst, byte(m.Encoding))
		if m.Encoding == StringInline {
			dst = append(dst, m.Value...)
		} else {
			dst = binary.AppendUvarint(dst, m.Len)
		}
	case TypeList:
		dst = binary.BigEndian.AppendUint64(dst, m.Head)
		dst = binary.BigEndian.AppendUint64(dst, m.Tail)
	default:
		dst = binary.AppendUvarint(dst, m.Len)
	}
	return dst, nil
}

// DecodeMeta decodes a metadata record. It accepts exactly what AppendMeta
// writes: an unknown format-version byte is ErrUnknownFormat, and
// anything else it would not write (an unknown type, a varint in a longer
// form than needed, trailing bytes, a list whose head passes its tail) is
// ErrBadMeta. Meta.Value aliases b.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, fmt.Errorf("%w: empty record", ErrBadMeta)
	}
	if b[0] != FormatV2 {
		return Meta{}, fmt.Errorf("%w: %d (this binary reads %d)", ErrUnknownFormat, b[0], FormatV2)
	}
	if len(b) < 2 {
		return Meta{}, fmt.Errorf("%w: no type", ErrBadMeta)
	}
	d := decoder{b: b[2:]}
	m := Meta{Type: Type(b[1])}
	m.ExpireAt = d.uvarint()
	m.Version = d.stamp()
	m.LastWrite = d.stamp()
	m.StorageID = d.stamp()
	if es := d.uvarint(); es != 0 {
		if es > SlotCount && d.err == nil {
			d.err = fmt.Errorf("%w: elements slot %d out of range", ErrBadMeta, es-1)
		}
		m.Foreign, m.ElemSlot = true, uint16(es-1)
	}
	switch m.Type {
	case TypeString:
		m.Encoding = StringEncoding(d.byte())
		switch {
		case d.err != nil:
		case m.Encoding == StringInline:
			m.Value, d.b = d.b, nil
			m.Len = uint64(len(m.Value))
		default:
			m.Len = d.uvarint()
		}
	case TypeHash, TypeSet, TypeZSet:
		m.Len = d.uvarint()
	case TypeList:
		m.Head = d.uint64()
		m.Tail = d.uint64()
		m.Len = m.Tail - m.Head
	default:
		return Meta{}, fmt.Errorf("%w: unknown type %d", ErrBadMeta, b[1])
	}
	if d.err != nil {
		return Meta{}, d.err
	}
	if len(d.b) != 0 {
		return Meta{}, fmt.Errorf("%w: %d trailing bytes", ErrBadMeta, len(d.b))
	}
	if err := m.check(); err != nil {
		return Meta{}, fmt.Errorf("%w: %v", ErrBadMeta, err) // a decode error, not a caller's bad value
	}
	return m, nil
}

// decoder reads a record front to back, keeping the first error so the
// decoding code reads as the layout does.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("%w: bad varint", ErrBadMeta)
		return 0
	}
	if n != uvarintLen(v) {
		// Go's decoder accepts redundant continuation bytes; the format
		// does not, so each record has exactly one encoding.
		d.err = fmt.Errorf("%w: varint not in shortest form", ErrBadMeta)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) stamp() Stamp {
	idx := d.uvarint()
	pos := d.uvarint()
	if pos > math.MaxUint32 && d.err == nil {
		d.err = fmt.Errorf("%w: stamp position %d overflows 32 bits", ErrBadMeta, pos)
	}
	return Stamp{Index: idx, Pos: uint32(pos)}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = fmt.Errorf("%w: truncated", ErrBadMeta)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = fmt.Errorf("%w: truncated", ErrBadMeta)
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
