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
// for the small encoding (at most 512 rows, or 8192 for a list).

// Redis 7.2's default limits of the small encodings.
const (
	hashMaxListpackEntries = 128
	hashMaxListpackValue   = 64
	setMaxIntsetEntries    = 512
	setMaxListpackEntries  = 128
	setMaxListpackValue    = 64
	zsetMaxListpackEntries = 128
	zsetMaxListpackValue   = 64
	listMaxListpackBytes   = 8192
	// listpackHeader is a listpack's fixed overhead (header and end
	// byte); listpackEntryOverhead approximates one entry's (encoding
	// byte, length bytes and back-length), for elements under 4 KiB.
	listpackHeader        = 7
	listpackEntryOverhead = 3
)

// collectionEncoding is the encoding from the element count alone (m a
// collection's metadata).
func collectionEncoding(m *keyspace.Meta) string {
	switch m.Type {
	case keyspace.TypeHash:
		if m.Len <= hashMaxListpackEntries {
			return "listpack"
		}
		return "hashtable"
	case keyspace.TypeSet:
		if m.Len <= setMaxListpackEntries {
			return "listpack"
		}
		return "hashtable"
	case keyspace.TypeZSet:
		if m.Len <= zsetMaxListpackEntries {
			return "listpack"
		}
		return "skiplist"
	case keyspace.TypeList:
		if m.Len*(1+listpackEntryOverhead)+listpackHeader <= listMaxListpackBytes {
			return "listpack"
		}
		return "quicklist"
	case keyspace.TypeString:
	}
	return ""
}

// ObjectEncoding answers OBJECT ENCODING for key: Redis 7.2's encoding
// name for its value (see above), and whether key exists.
func ObjectEncoding(v View, key []byte) (string, bool, error) {
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
	enc := collectionEncoding(&m)
	switch m.Type {
	case keyspace.TypeHash:
		if enc == "listpack" {
			err = c.Iter(nil, nil, false, func(f, val []byte) bool {
				if len(f) > hashMaxListpackValue || len(val) > hashMaxListpackValue {
					enc = "hashtable"
				}
				return enc == "listpack"
			})
		}
	case keyspace.TypeSet:
		if m.Len <= setMaxIntsetEntries {
			ints, short := true, true
			err = c.Iter(nil, nil, false, func(mem, _ []byte) bool {
				if _, perr := parseRedisInt(mem); perr != nil {
					ints = false
				}
				if len(mem) > setMaxListpackValue {
					short = false
				}
				return ints || short
			})
			switch {
			case ints:
				enc = "intset"
			case short && m.Len <= setMaxListpackEntries:
				enc = "listpack"
			default:
				enc = "hashtable"
			}
		}
	case keyspace.TypeZSet:
		if enc == "listpack" {
			// The member index: suffix 0x00 member (keyspace rows.go).
			err = c.Iter([]byte{0x00}, []byte{0x01}, false, func(suffix, _ []byte) bool {
				if len(suffix)-1 > zsetMaxListpackValue {
					enc = "skiplist"
				}
				return enc == "listpack"
			})
		}
	case keyspace.TypeList:
		if enc == "listpack" {
			size := uint64(listpackHeader)
			err = c.Iter(nil, nil, false, func(_, val []byte) bool {
				size += uint64(len(val)) + listpackEntryOverhead
				if size > listMaxListpackBytes {
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
