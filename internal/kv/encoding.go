package kv

import (
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// OBJECT ENCODING for collections. elastickv stores every collection the
// same way (one row per element), so the encoding is not a fact of the
// storage: it is the name Redis 7.2 would give a value with the same
// content under its default limits, computed when asked. The limits are
// constants (Redis's CONFIG SET of them is not supported):
//
//	hash: listpack while at most 128 fields and every field and value
//	      at most 64 bytes, else hashtable;
//	set:  intset while at most 512 members that are all integers, else
//	      listpack while at most 128 members of at most 64 bytes, else
//	      hashtable;
//	zset: listpack while at most 128 members of at most 64 bytes, else
//	      skiplist;
//	list: listpack while its elements would fit one 8 KiB listpack
//	      (list-max-listpack-size -2), else quicklist.
//
// Redis never converts a hashtable back to a listpack when a hash
// shrinks (nor a set, nor a sorted set); here the answer follows the
// current content, so a collection that grew and shrank again reports the
// small encoding. KeyInfo.Encoding (Lookup) gives the same names from the
// element count alone, with no row read; ObjectEncoding, which OBJECT
// ENCODING calls, also reads the elements of a collection small enough
// for a small encoding (as many rows as the limits allow: 512 under the
// defaults, 8192 for a list).

// EncodingLimits are Redis's small-encoding limits (its CONFIG
// parameters of the same names) that OBJECT ENCODING's answer follows.
type EncodingLimits struct {
	HashEntries, HashValue                 int64 // hash-max-listpack-entries, -value
	SetIntsetEntries, SetEntries, SetValue int64 // set-max-intset-entries, set-max-listpack-entries, -value
	ZSetEntries, ZSetValue                 int64 // zset-max-listpack-entries, -value
	// ListSize is list-max-listpack-size: > 0 caps the entries of the one
	// listpack (and its bytes at 8 KiB); -1..-5 cap its bytes at 4, 8,
	// 16, 32 or 64 KiB.
	ListSize int64
}

// DefaultEncodingLimits are Redis 7.2's defaults.
func DefaultEncodingLimits() EncodingLimits {
	return EncodingLimits{HashEntries: 128, HashValue: 64, SetIntsetEntries: 512, SetEntries: 128, SetValue: 64,
		ZSetEntries: 128, ZSetValue: 64, ListSize: -2}
}

// A listpack's fixed overhead (header and end byte), and an estimate of
// one entry's (encoding byte, length bytes and back-length) for elements
// under 4 KiB; listSafetyBytes is the byte cap of a list whose
// list-max-listpack-size counts entries.
const (
	listpackHeader        = 7
	listpackEntryOverhead = 3
	listSafetyBytes       = 8192
)

// listLimits returns the entry and byte caps of l's single list listpack.
func (l EncodingLimits) listLimits() (entries, size uint64) {
	if l.ListSize >= 0 {
		return uint64(max(l.ListSize, 1)), listSafetyBytes
	}
	level := min(-l.ListSize-1, 4)
	return ^uint64(0), 4096 << level
}

// collectionEncoding is the encoding from the element count alone (m a
// collection's metadata).
func (l EncodingLimits) collectionEncoding(m *keyspace.Meta) string {
	n := m.Len
	switch m.Type {
	case keyspace.TypeHash:
		if n <= uint64(l.HashEntries) {
			return "listpack"
		}
		return "hashtable"
	case keyspace.TypeSet:
		if n <= uint64(l.SetEntries) {
			return "listpack"
		}
		return "hashtable"
	case keyspace.TypeZSet:
		if n <= uint64(l.ZSetEntries) {
			return "listpack"
		}
		return "skiplist"
	case keyspace.TypeList:
		entries, size := l.listLimits()
		if n <= entries && n <= size && n*(1+listpackEntryOverhead)+listpackHeader <= size {
			return "listpack"
		}
		return "quicklist"
	case keyspace.TypeString:
	}
	return ""
}

// collectionEncoding is the count-only encoding under Redis's defaults,
// which Lookup reports.
func collectionEncoding(m *keyspace.Meta) string {
	return DefaultEncodingLimits().collectionEncoding(m)
}

// ObjectEncoding answers OBJECT ENCODING for key: Redis 7.2's encoding
// name for its value under limits l (see above), and whether key exists.
func ObjectEncoding(v View, key []byte, l EncodingLimits) (string, bool, error) {
	info, found, err := v.Lookup(key)
	if err != nil || !found {
		return "", found, err
	}
	if info.Type == keyspace.TypeString {
		return info.Encoding, true, nil
	}
	c, ok, err := v.Collection(key, info.Type)
	if err != nil || !ok {
		return "", ok, err
	}
	m := c.Meta()
	enc := l.collectionEncoding(&m)
	switch m.Type {
	case keyspace.TypeHash:
		if enc == "listpack" {
			err = c.Iter(nil, nil, false, func(f, val []byte) bool {
				if int64(len(f)) > l.HashValue || int64(len(val)) > l.HashValue {
					enc = "hashtable"
				}
				return enc == "listpack"
			})
		}
	case keyspace.TypeSet:
		if m.Len <= uint64(l.SetIntsetEntries) || m.Len <= uint64(l.SetEntries) {
			ints, short := true, true
			err = c.Iter(nil, nil, false, func(mem, _ []byte) bool {
				if _, perr := parseRedisInt(mem); perr != nil {
					ints = false
				}
				if int64(len(mem)) > l.SetValue {
					short = false
				}
				return ints || short
			})
			switch {
			case ints && m.Len <= uint64(l.SetIntsetEntries):
				enc = "intset"
			case short && m.Len <= uint64(l.SetEntries):
				enc = "listpack"
			default:
				enc = "hashtable"
			}
		}
	case keyspace.TypeZSet:
		if enc == "listpack" {
			// The member index: suffix 0x00 member (keyspace rows.go).
			err = c.Iter([]byte{0x00}, []byte{0x01}, false, func(suffix, _ []byte) bool {
				if int64(len(suffix)-1) > l.ZSetValue {
					enc = "skiplist"
				}
				return enc == "listpack"
			})
		}
	case keyspace.TypeList:
		if enc == "listpack" {
			_, limit := l.listLimits()
			size := uint64(listpackHeader)
			err = c.Iter(nil, nil, false, func(_, val []byte) bool {
				size += uint64(len(val)) + listpackEntryOverhead
				if size > limit {
					enc = "quicklist"
				}
				return enc == "listpack"
			})
		}
	case keyspace.TypeString:
	}
	if err != nil {
		return "", false, err
	}
	return enc, true, nil
}
