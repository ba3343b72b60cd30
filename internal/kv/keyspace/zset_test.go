package keyspace

import (
	"bytes"
	"encoding/hex"
	"math"
	"testing"
)

// TestZSetSuffixGolden pins the sorted-set suffix bytes: they are on disk
// in every replica, so a change is a format change.
func TestZSetSuffixGolden(t *testing.T) {
	pos, err := AppendZSetPos(nil, -1.5, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"member m", AppendZSetMemberSuffix(nil, []byte("m")), "006d"},
		{"pos -1.5 m", pos, "4007ffffffffffff6d"},
		{"order -1.5 m", AppendZSetOrderSuffix(nil, pos), "014007ffffffffffff6d"},
		{"fence -1.5 m", AppendZSetFenceSuffix(nil, pos), "024007ffffffffffff6d"},
		{"super -1.5 m", AppendZSetSuperSuffix(nil, pos), "034007ffffffffffff6d"},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(c.got); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

// TestZSetSuffixesMatchRowKeys checks that a suffix is exactly what the
// full row-key encoders put after the elements prefix.
func TestZSetSuffixesMatchRowKeys(t *testing.T) {
	sid := Stamp{Index: 99, Pos: 1}
	slot := HashSlot([]byte("z"))
	prefix := ElementsPrefix(nil, slot, sid)
	member := AppendZSetMemberKey(nil, slot, sid, []byte("abc"))
	if !bytes.Equal(member[len(prefix):], AppendZSetMemberSuffix(nil, []byte("abc"))) {
		t.Fatalf("member suffix differs from the row key")
	}
	order, err := AppendZSetOrderKey(nil, slot, sid, 3.25, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	pos, err := AppendZSetPos(nil, 3.25, []byte("abc"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(order[len(prefix):], AppendZSetOrderSuffix(nil, pos)) {
		t.Fatalf("order suffix differs from the row key")
	}
	if _, err := AppendZSetPos(nil, math.NaN(), nil); err == nil {
		t.Fatalf("a NaN position was accepted")
	}
}
