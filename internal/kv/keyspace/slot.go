package keyspace

// SlotCount is the number of hash slots, as in Redis Cluster.
const SlotCount = 16384

// crc16Table is the CRC16-CCITT (XMODEM: polynomial 0x1021, initial value
// 0, no reflection, no final xor) table that Redis Cluster's keyHashSlot
// uses. It is built at init from the polynomial rather than pasted, so it
// cannot hold a typo; the slot tests pin it against Redis's known answers.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16 is CRC16-CCITT/XMODEM of b.
func crc16(b []byte) uint16 {
	var c uint16
	for _, x := range b {
		c = c<<8 ^ crc16Table[byte(c>>8)^x]
	}
	return c
}

// HashSlot returns the Redis Cluster hash slot of key: CRC16 of the key,
// or of its hash tag, mod 16384. The hash tag is the text between the
// first '{' and the first '}' after it, used only when it is not empty; so
// "foo{}{bar}" hashes whole and "foo{{bar}}" hashes "{bar". Matching Redis
// exactly lets cluster-aware clients route by their own computation, and
// lets a later sharded elastickv answer CLUSTER KEYSLOT and MOVED.
func HashSlot(key []byte) uint16 {
	return crc16(HashTag(key)) & (SlotCount - 1)
}

// HashTag returns the part of key that HashSlot hashes: the non-empty text
// between the first '{' and the first '}' after it, or the whole key.
func HashTag(key []byte) []byte {
	for i, c := range key {
		if c != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j == i+1 {
					return key
				}
				return key[i+1 : j]
			}
		}
		return key
	}
	return key
}
