package keyspace

import (
	"math/rand/v2"
	"testing"
)

// TestHashSlotMatchesRedis pins HashSlot to answers Redis Cluster's
// CLUSTER KEYSLOT gives (from Redis's documentation and test suite), so a
// cluster-aware client computing slots itself agrees with us.
func TestHashSlotMatchesRedis(t *testing.T) {
	for _, tc := range []struct {
		key  string
		want uint16
	}{
		{"foo", 12182},
		{"somekey", 11058},
		{"foo{hash_tag}", 2515},
		{"bar{hash_tag}", 2515},
		{"{user1}.following", 8106},
		{"8xjx7vWrfPq54mKfFD3Y1CcjjofpnAcQ", 5458},
		{"my_key", 13711},
		{"{user1234}:contact", 14020},
		{"", 0},
	} {
		if got := HashSlot([]byte(tc.key)); got != tc.want {
			t.Errorf("HashSlot(%q) = %d, want %d", tc.key, got, tc.want)
		}
	}
}

// TestCRC16CheckValue checks the CRC against the catalogued check value of
// CRC-16/XMODEM, the variant Redis Cluster specifies.
func TestCRC16CheckValue(t *testing.T) {
	if got := crc16([]byte("123456789")); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#04x, want 0x31c3", got)
	}
}

// TestCRC16TableMatchesBitwise compares the table-driven CRC with a
// straightforward bit-at-a-time one over random inputs.
func TestCRC16TableMatchesBitwise(t *testing.T) {
	bitwise := func(b []byte) uint16 {
		var c uint16
		for _, x := range b {
			c ^= uint16(x) << 8
			for range 8 {
				if c&0x8000 != 0 {
					c = c<<1 ^ 0x1021
				} else {
					c <<= 1
				}
			}
		}
		return c
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := crc16(b), bitwise(b); got != want {
			t.Fatalf("crc16(%x) = %#04x, bitwise %#04x", b, got, want)
		}
	}
}

// TestHashTagRules follows the hash-tag rules of the Redis Cluster
// specification, including its edge cases.
func TestHashTagRules(t *testing.T) {
	for _, tc := range []struct {
		key, tag string
	}{
		{"{user1000}.following", "user1000"},
		{"{user1000}.followers", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"}, // empty first tag: whole key
		{"foo{{bar}}zap", "{bar"},    // first '{' to first '}' after it
		{"foo{{bar}}", "{bar"},       // same, at the end
		{"foo{bar}{zap}", "bar"},     // only the first tag counts
		{"foo{bar", "foo{bar"},       // no closing brace: whole key
		{"}foo{", "}foo{"},           // '}' before '{' does not close
		{"a}b{c}d", "c"},             // a '}' before the '{' is ignored
		{"{}", "{}"},                 // empty tag
		{"{a}", "a"},                 // tag is the whole content
		{"plain", "plain"},           // no braces
		{"", ""},                     // empty key
		{"x{\x00\xff}y", "\x00\xff"}, // binary tags
	} {
		if got := string(HashTag([]byte(tc.key))); got != tc.tag {
			t.Errorf("HashTag(%q) = %q, want %q", tc.key, got, tc.tag)
		}
		if got, want := HashSlot([]byte(tc.key)), crc16([]byte(tc.tag))%SlotCount; got != want {
			t.Errorf("HashSlot(%q) = %d, want %d", tc.key, got, want)
		}
	}
	if a, b := HashSlot([]byte("{user1000}.following")), HashSlot([]byte("{user1000}.followers")); a != b {
		t.Errorf("{user1000} keys in slots %d and %d", a, b)
	}
	if a, b := HashSlot([]byte("foo{}{bar}")), HashSlot([]byte("bar")); a == b {
		t.Errorf("foo{}{bar} hashed its second tag: slot %d", a)
	}
}
