package keyspace

import "testing"

// The metadata codec runs on every write and every read of the v2 layout;
// these show what it adds next to the Pebble lookup (a few µs).

func BenchmarkEncodeMetaInline(b *testing.B) {
	m := sampleMetas()["string-inline-ttl"]
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendMeta(buf[:0], &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMetaInline(b *testing.B) {
	m := sampleMetas()["string-inline-ttl"]
	rec, err := EncodeMeta(&m)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMeta(rec); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHashSlot(b *testing.B) {
	key := []byte("user:1000:profile:settings")
	b.ReportAllocs()
	for b.Loop() {
		HashSlot(key)
	}
}
