package keyspace

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// sampleMetas holds one record per type and encoding, with stamps and
// expiries big enough to take multi-byte varints.
func sampleMetas() map[string]Meta {
	v := Stamp{Index: 1234567, Pos: 2}
	return map[string]Meta{
		"string-inline": {Type: TypeString, Version: v, LastWrite: v, StorageID: v, Len: 5, Value: []byte("hello")},
		"string-inline-empty": {Type: TypeString, Version: Stamp{1, 0}, LastWrite: Stamp{1, 0},
			StorageID: Stamp{1, 0}, Value: []byte{}},
		"string-inline-ttl": {Type: TypeString, ExpireAt: 1767225600000, Version: v,
			LastWrite: Stamp{Index: 1234999, Pos: 70000}, StorageID: v, Len: 3, Value: []byte("bar")},
		"string-chunked": {Type: TypeString, Version: v, LastWrite: v, StorageID: Stamp{Index: 99, Pos: 1},
			Encoding: StringChunked, Len: 10 << 20},
		"hash": {Type: TypeHash, Version: v, LastWrite: v, StorageID: v, Len: 3},
		"hash-foreign": {Type: TypeHash, Version: Stamp{Index: 1300000, Pos: 0}, LastWrite: Stamp{Index: 1300000, Pos: 0},
			StorageID: v, Foreign: true, ElemSlot: SlotCount - 1, Len: 3},
		"set":  {Type: TypeSet, ExpireAt: 1, Version: v, LastWrite: v, StorageID: v, Len: 300},
		"zset": {Type: TypeZSet, Version: v, LastWrite: v, StorageID: v, Len: 1 << 40},
		"list": {Type: TypeList, Version: v, LastWrite: v, StorageID: v,
			Head: ListSeqStart - 2, Tail: ListSeqStart + 1, Len: 3},
		"list-empty-bounds": {Type: TypeList, Version: v, LastWrite: v, StorageID: v,
			Head: ListSeqStart, Tail: ListSeqStart},
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for name, m := range sampleMetas() {
		b, err := EncodeMeta(&m)
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		if len(b) != m.EncodedLen() {
			t.Errorf("%s: EncodedLen %d, encoding %d bytes", name, m.EncodedLen(), len(b))
		}
		if b[0] != FormatV2 {
			t.Errorf("%s: first byte %d, want the format version %d", name, b[0], FormatV2)
		}
		got, err := DecodeMeta(b)
		if err != nil {
			t.Fatalf("%s: decode %x: %v", name, b, err)
		}
		if len(got.Value) == 0 && len(m.Value) == 0 {
			got.Value, m.Value = nil, nil
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, m)
		}
	}
}

func TestDecodeMetaRejectsUnknownFormat(t *testing.T) {
	m := sampleMetas()["hash"]
	b, _ := EncodeMeta(&m)
	for _, v := range []byte{0, 1, 3, 's', 0xff} {
		bad := append([]byte{v}, b[1:]...)
		if _, err := DecodeMeta(bad); !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("format byte %d: err = %v, want ErrUnknownFormat", v, err)
		}
	}
}

func TestDecodeMetaRejectsMalformed(t *testing.T) {
	m := sampleMetas()["set"]
	good, _ := EncodeMeta(&m)
	list := sampleMetas()["list"]
	goodList, _ := EncodeMeta(&list)
	cases := map[string][]byte{
		"empty":              {},
		"format only":        {FormatV2},
		"unknown type":       append([]byte{FormatV2, 9}, good[2:]...),
		"type zero":          append([]byte{FormatV2, 0}, good[2:]...),
		"trailing byte":      append(bytes.Clone(good), 0),
		"truncated":          good[:len(good)-1],
		"long varint expiry": append([]byte{FormatV2, byte(TypeSet), 0x81, 0x00}, good[3:]...),
		"pos over 32 bits": {FormatV2, byte(TypeHash), 0, 1, 0x80, 0x80, 0x80, 0x80, 0x10,
			1, 0, 1, 0, 0},
		"list head past tail": append(bytes.Clone(goodList[:len(goodList)-16]),
			0x80, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0),
		"list truncated":          goodList[:len(goodList)-3],
		"bad string encoding":     {FormatV2, byte(TypeString), 0, 1, 0, 1, 0, 1, 0, 7, 0},
		"chunked string no len":   {FormatV2, byte(TypeString), 0, 1, 0, 1, 0, 1, 0, byte(StringChunked)},
		"string no encoding":      {FormatV2, byte(TypeString), 0, 1, 0, 1, 0, 1, 0},
		"inline over InlineMax":   append([]byte{FormatV2, byte(TypeString), 0, 1, 0, 1, 0, 1, 0, 0}, strings.Repeat("x", InlineMax+1)...),
		"varint runs off the end": {FormatV2, byte(TypeHash), 0x80},
		"elements slot too big":   {FormatV2, byte(TypeHash), 0, 1, 0, 1, 0, 1, 0, 0x81, 0x80, 0x01, 3},
		"foreign inline string":   {FormatV2, byte(TypeString), 0, 1, 0, 1, 0, 1, 0, 5, 0, 'x'},
	}
	for name, b := range cases {
		_, err := DecodeMeta(b)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrBadMeta) {
			t.Errorf("%s (%x): err = %v, want ErrBadMeta", name, b, err)
		}
	}
}

func TestEncodeMetaRejectsContradictions(t *testing.T) {
	v := Stamp{1, 0}
	for name, m := range map[string]Meta{
		"inline too long":      {Type: TypeString, Version: v, Value: make([]byte, InlineMax+1), Len: InlineMax + 1},
		"inline len differs":   {Type: TypeString, Version: v, Value: []byte("ab"), Len: 3},
		"chunked with value":   {Type: TypeString, Encoding: StringChunked, Value: []byte("x"), Len: 1},
		"hash with value":      {Type: TypeHash, Value: []byte("x")},
		"set with list head":   {Type: TypeSet, Head: 1, Tail: 2},
		"list len differs":     {Type: TypeList, Head: 1, Tail: 3, Len: 1},
		"list head > tail":     {Type: TypeList, Head: 3, Tail: 1},
		"unknown type":         {Type: 0},
		"slot but not foreign": {Type: TypeSet, ElemSlot: 4, Len: 1},
		"foreign slot too big": {Type: TypeSet, Foreign: true, ElemSlot: SlotCount, Len: 1},
	} {
		if _, err := EncodeMeta(&m); !errors.Is(err, ErrBadMetaValue) {
			t.Errorf("%s: err = %v, want ErrBadMetaValue", name, err)
		}
	}
}

func TestInlineValueAtLimit(t *testing.T) {
	m := Meta{Type: TypeString, Version: Stamp{5, 0}, LastWrite: Stamp{5, 0}, StorageID: Stamp{5, 0},
		Value: bytes.Repeat([]byte{'v'}, InlineMax), Len: InlineMax}
	b, err := EncodeMeta(&m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil || !bytes.Equal(got.Value, m.Value) {
		t.Fatalf("decode of an InlineMax value: %v", err)
	}
}

func TestLegacyValue(t *testing.T) {
	v, err := DecodeLegacyValue([]byte("shello"))
	if err != nil || string(v) != "hello" {
		t.Fatalf("DecodeLegacyValue(shello) = %q, %v", v, err)
	}
	for _, bad := range [][]byte{nil, {}, []byte("hhello")} {
		if _, err := DecodeLegacyValue(bad); err == nil {
			t.Errorf("DecodeLegacyValue(%q) accepted", bad)
		}
	}
	small := LegacyMeta([]byte("abc"))
	if small.Encoding != StringInline || string(small.Value) != "abc" || !small.Version.IsZero() {
		t.Errorf("LegacyMeta(abc) = %+v", small)
	}
	if _, err := EncodeMeta(&small); err != nil {
		t.Errorf("LegacyMeta of a small value does not encode: %v", err)
	}
	big := LegacyMeta(make([]byte, InlineMax+1))
	if big.Encoding != StringChunked || big.Len != InlineMax+1 || big.Value != nil {
		t.Errorf("LegacyMeta of %d bytes = %+v", InlineMax+1, big)
	}
	if got := string(LegacyKey([]byte("k"))); got != "uk" {
		t.Errorf("LegacyKey(k) = %q", got)
	}
}

func TestCountRoundTrip(t *testing.T) {
	for _, n := range []uint64{0, 1, 1 << 40, ^uint64(0)} {
		got, err := DecodeCount(EncodeCount(n))
		if err != nil || got != n {
			t.Errorf("count %d decoded as %d, %v", n, got, err)
		}
	}
	if n, err := DecodeCount(nil); n != 0 || err != nil {
		t.Errorf("DecodeCount(nil) = %d, %v; a missing row is 0", n, err)
	}
	if _, err := DecodeCount([]byte{1, 2}); err == nil {
		t.Error("DecodeCount accepted 2 bytes")
	}
}
