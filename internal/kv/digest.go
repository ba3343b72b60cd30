package kv

import (
	"encoding/binary"
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/cockroachdb/pebble/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// digest accumulates the logical hash of a keyspace (Store.HashContext):
// a sum of per-key digests, so that the order keys are met in (v1 rows in
// byte order, v2 keys slot by slot) does not matter.
type digest struct {
	total uint64
	h     hash.Hash64
	buf   [binary.MaxVarintLen64]byte
}

// begin starts a key's digest; the value is then written with write.
func (d *digest) begin(key []byte, typ keyspace.Type, expireAt, valueLen uint64) {
	if d.h == nil {
		d.h = fnv.New64a()
	}
	d.h.Reset()
	d.uvarint(uint64(len(key)))
	_, _ = d.h.Write(key)
	_, _ = d.h.Write([]byte{byte(typ)})
	d.uvarint(expireAt)
	d.uvarint(valueLen)
}

func (d *digest) uvarint(v uint64) {
	n := binary.PutUvarint(d.buf[:], v)
	_, _ = d.h.Write(d.buf[:n])
}

func (d *digest) write(b []byte) { _, _ = d.h.Write(b) }

// end adds the key's digest, mixed so that near-equal digests do not
// cancel out in the sum.
func (d *digest) end() {
	x := d.h.Sum64()
	// splitmix64's finalizer.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	d.total += x
}

// sum returns the hash of the keys added and the format version.
func (d *digest) sum(format uint8) uint64 {
	h := fnv.New64a()
	var b [9]byte
	b[0] = format
	binary.BigEndian.PutUint64(b[1:], d.total)
	_, _ = h.Write(b[:])
	return h.Sum64()
}

// DigestOf returns what Store.Hash returns, at cluster format version
// format, for a store holding exactly the strings keys[i] = values[i]
// with no expiry. Upgrade tests compare a store's hash with a list of
// expected keys through it.
func DigestOf(format uint8, keys, values [][]byte) uint64 {
	var d digest
	for i, k := range keys {
		d.begin(k, keyspace.TypeString, 0, uint64(len(values[i])))
		d.write(values[i])
		d.end()
	}
	return d.sum(format)
}

// hashLegacy adds every v1 row.
func hashLegacy(r pebbleReader, d *digest, check func() error) error {
	lo, hi := keyspace.LegacyRange()
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := check(); err != nil {
			_ = it.Close()
			return err
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		val, err := keyspace.DecodeLegacyValue(v)
		if err != nil {
			// Keep the hash total: a non-string v1 row hashes as its bytes.
			val = v
		}
		d.begin(it.Key()[1:], keyspace.TypeString, 0, uint64(len(val)))
		d.write(val)
		d.end()
	}
	return it.Close()
}

// hashV2 adds every v2 key live at now, reading chunked values chunk by
// chunk through a second iterator.
func hashV2(r pebbleReader, now uint64, d *digest, check func() error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: []byte{0, 0}, UpperBound: []byte{keyspace.SlotCount >> 8}})
	if err != nil {
		return err
	}
	defer func() { _ = it.Close() }() // its error is it.Error(), checked below
	ok := it.First()
	for ok {
		if err := check(); err != nil {
			return err
		}
		row := it.Key()
		slot, key, perr := keyspace.ParseMetaKey(row)
		if perr != nil {
			if row[2] < 0x01 {
				ok = it.SeekGE(metaSeek(slot, nil))
			} else if s := binaryBE16(row); s+1 < keyspace.SlotCount {
				ok = it.SeekGE(metaSeek(s+1, nil))
			} else {
				ok = false
			}
			continue
		}
		m, err := keyspace.DecodeMeta(it.Value())
		if err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if m.ExpireAt == 0 || m.ExpireAt > now {
			d.begin(key, m.Type, m.ExpireAt, m.Len)
			switch {
			case m.Type == keyspace.TypeString && m.Encoding == keyspace.StringInline:
				d.write(m.Value)
			case m.Type == keyspace.TypeString:
				if err := hashChunks(r, m.ElementsSlot(slot), m.StorageID, m.Len, d); err != nil {
					return err
				}
			default:
				// Collections: their element rows, in order.
				if err := hashElements(r, m.ElementsSlot(slot), m.StorageID, d); err != nil {
					return err
				}
			}
			d.end()
		}
		ok = it.Next()
	}
	return it.Error()
}

func binaryBE16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }

// hashChunks writes the n bytes of a chunked string, zeros where no row
// holds them, exactly as a read returns them.
func hashChunks(r pebbleReader, slot uint16, sid keyspace.Stamp, n uint64, d *digest) error {
	lo, hi := keyspace.ElementsRange(slot, sid)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var zeros [keyspace.ChunkSize]byte
	var at uint64
	pad := func(to uint64) {
		for at < to {
			k := min(to-at, keyspace.ChunkSize)
			d.write(zeros[:k])
			at += k
		}
	}
	for ok := it.First(); ok && at < n; ok = it.Next() {
		c, err := keyspace.ParseChunkKey(lo, it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		off := uint64(c) * keyspace.ChunkSize
		if off >= n {
			break
		}
		pad(off)
		v := it.Value()
		v = v[:min(uint64(len(v)), n-off)]
		d.write(v)
		at = off + uint64(len(v))
	}
	pad(n)
	return it.Close()
}

// hashElements writes a collection's element rows (suffix and value).
func hashElements(r pebbleReader, slot uint16, sid keyspace.Stamp, d *digest) error {
	lo, hi := keyspace.ElementsRange(slot, sid)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		d.uvarint(uint64(len(it.Key()) - len(lo)))
		d.write(it.Key()[len(lo):])
		d.uvarint(uint64(len(it.Value())))
		d.write(it.Value())
	}
	return it.Close()
}
