package keyspace

import (
	"bytes"
	"testing"
)

// within reports whether lo <= k < hi, as Pebble bounds a range.
func within(k, lo, hi []byte) bool {
	return bytes.Compare(lo, k) <= 0 && bytes.Compare(k, hi) < 0
}

// allRows builds one row of every kind for the key in slot with storage
// id sid.
func allRows(t *testing.T, slot uint16, sid Stamp, key []byte) (meta, expiry []byte, elems [][]byte) {
	t.Helper()
	z, err := AppendZSetOrderKey(nil, slot, sid, -3.5, []byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	elems = [][]byte{
		AppendChunkKey(nil, slot, sid, 0),
		AppendChunkKey(nil, slot, sid, 1<<32-1),
		AppendHashFieldKey(nil, slot, sid, nil),
		AppendHashFieldKey(nil, slot, sid, []byte{0xff, 0xff, 0xff, 0xff, 0xff}),
		AppendSetMemberKey(nil, slot, sid, []byte("member")),
		AppendZSetMemberKey(nil, slot, sid, []byte("m")),
		z,
		AppendListElemKey(nil, slot, sid, 0),
		AppendListElemKey(nil, slot, sid, ^uint64(0)),
	}
	return AppendMetaKey(nil, slot, key), AppendExpiryKey(nil, slot, 1700000000000, key), elems
}

// TestElementsRangeHoldsExactlyOneKeysRows is what makes dropping a key
// O(1): one DeleteRange over ElementsRange removes every element row of
// the key, and nothing of its neighbours (the adjacent storage ids, the
// same storage id in another slot, the key's own metadata and expiry rows).
func TestElementsRangeHoldsExactlyOneKeysRows(t *testing.T) {
	for _, slot := range []uint16{0, 1, 12182, SlotCount - 1} {
		for _, sid := range []Stamp{{0, 0}, {1, 0}, {1<<64 - 1, 1<<32 - 1}, {7, 1<<32 - 1}, {1<<32 - 1, 5}} {
			lo, hi := ElementsRange(slot, sid)
			meta, expiry, elems := allRows(t, slot, sid, []byte("k"))
			for _, r := range elems {
				if !within(r, lo, hi) {
					t.Fatalf("slot %d sid %v: element row %x outside [%x, %x)", slot, sid, r, lo, hi)
				}
			}
			if within(meta, lo, hi) || within(expiry, lo, hi) || within(AppendLoanKey(nil, slot, sid), lo, hi) {
				t.Fatalf("slot %d sid %v: the key's own metadata or expiry row is inside its elements range", slot, sid)
			}
			var others []Stamp
			if sid.Pos < 1<<32-1 {
				others = append(others, Stamp{sid.Index, sid.Pos + 1})
			} else if sid.Index < 1<<64-1 {
				others = append(others, Stamp{sid.Index + 1, 0})
			}
			if sid.Pos > 0 {
				others = append(others, Stamp{sid.Index, sid.Pos - 1})
			}
			for _, o := range others {
				_, _, oe := allRows(t, slot, o, []byte("k"))
				for _, r := range oe {
					if within(r, lo, hi) {
						t.Fatalf("slot %d: row %x of sid %v inside the range of sid %v", slot, r, o, sid)
					}
				}
			}
			if slot+1 < SlotCount {
				_, _, oe := allRows(t, slot+1, sid, []byte("k"))
				for _, r := range oe {
					if within(r, lo, hi) {
						t.Fatalf("row %x of slot %d inside slot %d's range for sid %v", r, slot+1, slot, sid)
					}
				}
			}
		}
	}
}

// TestSlotRangeHoldsEverySlotRow checks that a slot is one contiguous
// range: every row of a key in it is inside, and the rows of the next and
// previous slots, and the v1 and 'm' families, are not.
func TestSlotRangeHoldsEverySlotRow(t *testing.T) {
	for _, key := range []string{"foo", "{user1000}.following", "", "x\xff\xff"} {
		slot := HashSlot([]byte(key))
		lo, hi := SlotRange(slot)
		meta, expiry, elems := allRows(t, slot, Stamp{Index: 10, Pos: 1}, []byte(key))
		for _, r := range append(elems, meta, expiry, AppendLoanKey(nil, slot, Stamp{Index: 3})) {
			if !within(r, lo, hi) {
				t.Fatalf("key %q: row %x outside its slot range [%x, %x)", key, r, lo, hi)
			}
			if r[0] >= 0x40 {
				t.Fatalf("key %q: row %x starts at or above 0x40, into the letter families", key, r)
			}
		}
		for _, other := range [][]byte{LegacyKey([]byte(key)), KeyCountRow, ExpireCountRow, LegacyPresentRow} {
			if within(other, lo, hi) {
				t.Fatalf("row %q inside slot %d", other, slot)
			}
		}
	}
	_, hi := SlotRange(SlotCount - 1)
	if !bytes.Equal(hi, []byte{0x40, 0x00}) {
		t.Fatalf("the last slot ends at %x, want 4000", hi)
	}
	llo, _ := LegacyRange()
	if bytes.Compare(hi, llo) > 0 || bytes.Compare(hi, KeyCountRow) > 0 {
		t.Fatal("the slot rows overlap the letter families")
	}
}

func TestMetaKeyRoundTrip(t *testing.T) {
	for _, key := range []string{"", "foo", "{a}b", "\x00\x01\xff"} {
		row := MetaKey([]byte(key))
		slot, k, err := ParseMetaKey(row)
		if err != nil || slot != HashSlot([]byte(key)) || string(k) != key {
			t.Fatalf("ParseMetaKey(MetaKey(%q)) = %d, %q, %v", key, slot, k, err)
		}
		lo, hi := MetaRange(slot)
		if !within(row, lo, hi) {
			t.Fatalf("meta row %x outside MetaRange [%x, %x)", row, lo, hi)
		}
	}
	_, expiry, elems := allRows(t, 3, Stamp{1, 1}, []byte("k"))
	for _, r := range append(elems, expiry, LegacyKey([]byte("k")), []byte{0}) {
		if _, _, err := ParseMetaKey(r); err == nil {
			t.Fatalf("ParseMetaKey accepted %x", r)
		}
	}
}

// TestExpiryRangeSelectsDueKeys checks the sweeper's query: the rows due by
// a time are exactly those in ExpiryRange, earliest first.
func TestExpiryRangeSelectsDueKeys(t *testing.T) {
	const slot = 77
	times := []uint64{1, 999, 1000, 1001, 1<<64 - 1}
	var rows [][]byte
	for _, at := range times {
		for _, k := range []string{"", "a", "b\xff"} {
			rows = append(rows, AppendExpiryKey(nil, slot, at, []byte(k)))
		}
	}
	slicesSortBytes(rows)
	var prev uint64
	for _, r := range rows {
		s, at, _, err := ParseExpiryKey(r)
		if err != nil || s != slot {
			t.Fatalf("ParseExpiryKey(%x) = %d, %v", r, s, err)
		}
		if at < prev {
			t.Fatalf("expiry rows out of time order: %d after %d", at, prev)
		}
		prev = at
	}
	for _, upTo := range []uint64{0, 999, 1000, 1<<64 - 2, 1<<64 - 1} {
		lo, hi := ExpiryRange(slot, upTo)
		for _, r := range rows {
			_, at, _, _ := ParseExpiryKey(r)
			if got, want := within(r, lo, hi), at <= upTo; got != want {
				t.Fatalf("upTo %d: row at %d in range = %v, want %v", upTo, at, got, want)
			}
		}
		slo, shi := SlotRange(slot)
		if bytes.Compare(lo, slo) < 0 || bytes.Compare(hi, shi) > 0 {
			t.Fatalf("ExpiryRange(%d) [%x, %x) leaves the slot", upTo, lo, hi)
		}
	}
}

// TestElementRowsIterateInElementOrder checks the orders the commands
// will scan in: chunks by number, list elements by sequence number.
func TestElementRowsIterateInElementOrder(t *testing.T) {
	sid := Stamp{Index: 5, Pos: 0}
	prefix := ElementsPrefix(nil, 100, sid)
	var chunks [][]byte
	for _, n := range []uint32{1 << 20, 0, 255, 256, 1} {
		chunks = append(chunks, AppendChunkKey(nil, 100, sid, n))
	}
	slicesSortBytes(chunks)
	want := []uint32{0, 1, 255, 256, 1 << 20}
	for i, r := range chunks {
		n, err := ParseChunkKey(prefix, r)
		if err != nil || n != want[i] {
			t.Fatalf("chunk row %d is chunk %d (%v), want %d", i, n, err, want[i])
		}
	}
	a := AppendListElemKey(nil, 100, sid, ListSeqStart-1)
	b := AppendListElemKey(nil, 100, sid, ListSeqStart)
	if bytes.Compare(a, b) >= 0 {
		t.Fatal("an LPUSHed element sorts after the first element")
	}
	field, err := ParseElementSuffix(prefix, AppendHashFieldKey(nil, 100, sid, []byte("f1")))
	if err != nil || string(field) != "f1" {
		t.Fatalf("ParseElementSuffix = %q, %v", field, err)
	}
	if _, err := ParseElementSuffix(prefix, AppendHashFieldKey(nil, 100, Stamp{6, 0}, []byte("f1"))); err == nil {
		t.Fatal("ParseElementSuffix accepted a row of another storage id")
	}
	zlo, zhi := ZSetOrderRange(100, sid)
	mlo, mhi := ZSetMemberRange(100, sid)
	z, _ := AppendZSetOrderKey(nil, 100, sid, 1, []byte("m"))
	m := AppendZSetMemberKey(nil, 100, sid, []byte("m"))
	if !within(z, zlo, zhi) || within(z, mlo, mhi) || !within(m, mlo, mhi) || within(m, zlo, zhi) {
		t.Fatal("sorted-set member and order indexes overlap")
	}
}

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct{ in, want []byte }{
		{[]byte{1, 2}, []byte{1, 3}},
		{[]byte{1, 0xff}, []byte{2}},
		{[]byte{0xff, 0xff}, nil},
		{[]byte{}, nil},
	} {
		if got := PrefixEnd(tc.in); !bytes.Equal(got, tc.want) {
			t.Errorf("PrefixEnd(%x) = %x, want %x", tc.in, got, tc.want)
		}
	}
}

func TestParseStamp(t *testing.T) {
	sid := Stamp{Index: 1<<40 + 3, Pos: 1<<31 + 9}
	row := ElementsPrefix(nil, 5, sid)
	got, err := ParseStamp(row[3:])
	if err != nil || got != sid {
		t.Fatalf("ParseStamp = %v, %v, want %v", got, err, sid)
	}
	if _, err := ParseStamp(row[4:]); err == nil {
		t.Fatal("ParseStamp accepted 11 bytes")
	}
}

func TestStampOrderMatchesRowOrder(t *testing.T) {
	stamps := []Stamp{{0, 0}, {0, 1}, {1, 0}, {1, 1<<32 - 1}, {2, 0}, {1 << 40, 3}}
	for i, a := range stamps {
		for j, b := range stamps {
			if got, want := bytes.Compare(AppendStamp(nil, a), AppendStamp(nil, b)) < 0, i < j; got != want || a.Less(b) != want {
				t.Fatalf("stamps %v and %v: bytes less %v, Less %v, want %v", a, b, got, a.Less(b), want)
			}
		}
	}
}

func TestForeignElementsSlot(t *testing.T) {
	m := Meta{Type: TypeSet, Foreign: true, ElemSlot: 77, Len: 1}
	if got := m.ElementsSlot(5); got != 77 {
		t.Fatalf("foreign ElementsSlot = %d, want 77", got)
	}
	m = Meta{Type: TypeSet, Len: 1}
	if got := m.ElementsSlot(5); got != 5 {
		t.Fatalf("ElementsSlot = %d, want the key's slot 5", got)
	}
	lo, hi := LoanRange(77)
	if r := AppendLoanKey(nil, 77, Stamp{Index: 9, Pos: 1}); !within(r, lo, hi) {
		t.Fatalf("loan row %x outside LoanRange", r)
	}
	if r := AppendLoanKey(nil, 78, Stamp{}); within(r, lo, hi) {
		t.Fatalf("loan row of slot 78 inside slot 77's LoanRange")
	}
}

func TestChunkSpan(t *testing.T) {
	for _, tc := range []struct {
		off, n      uint64
		first, last uint32
	}{
		{0, 1, 0, 0},
		{0, ChunkSize, 0, 0},
		{0, ChunkSize + 1, 0, 1},
		{ChunkSize - 1, 2, 0, 1},
		{ChunkSize, ChunkSize, 1, 1},
		{536870000, 1, 131071, 131071},
		{MaxStringLen - 1, 1, 1<<32 - 1, 1<<32 - 1},
	} {
		first, last, err := ChunkSpan(tc.off, tc.n)
		if err != nil || first != tc.first || last != tc.last {
			t.Errorf("ChunkSpan(%d, %d) = %d, %d, %v; want %d, %d", tc.off, tc.n, first, last, err, tc.first, tc.last)
		}
	}
	for _, tc := range []struct{ off, n uint64 }{
		{0, 0}, {MaxStringLen, 1}, {MaxStringLen - 1, 2}, {1, ^uint64(0)}, {^uint64(0), 1},
	} {
		if _, _, err := ChunkSpan(tc.off, tc.n); err == nil {
			t.Errorf("ChunkSpan(%d, %d) accepted", tc.off, tc.n)
		}
	}
}
