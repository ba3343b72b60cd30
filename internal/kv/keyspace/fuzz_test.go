package keyspace

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeMeta feeds DecodeMeta arbitrary bytes: a damaged or hostile
// record must give an error, never a panic, and every record it accepts
// must be canonical (re-encoding gives back the same bytes), which is what
// lets replicas compare raw rows. The seed corpus is in
// testdata/fuzz/FuzzDecodeMeta; the golden records are added here too.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range sampleMetas() {
		b, err := EncodeMeta(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) && !errors.Is(err, ErrUnknownFormat) {
				t.Fatalf("DecodeMeta(%x): error %v is neither ErrBadMeta nor ErrUnknownFormat", b, err)
			}
			return
		}
		if m.EncodedLen() != len(b) {
			t.Fatalf("DecodeMeta(%x) = %+v, whose EncodedLen is %d", b, m, m.EncodedLen())
		}
		re, err := EncodeMeta(&m)
		if err != nil {
			t.Fatalf("DecodeMeta(%x) accepted %+v, which EncodeMeta refuses: %v", b, m, err)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("record %x re-encodes as %x", b, re)
		}
	})
}
