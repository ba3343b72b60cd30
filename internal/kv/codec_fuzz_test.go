package kv

import (
	"bytes"
	"testing"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// commandSeeds are valid encodings of every op (the seed corpus under
// testdata/fuzz adds malformed and non-canonical ones).
func commandSeeds() [][]byte {
	k, v := []byte("key"), []byte("value")
	cmds := []*Command{
		{Op: OpSet, Keys: [][]byte{k}, Values: [][]byte{v}},
		{Op: OpSet, Flags: SetNX | SetGet, Keys: [][]byte{k}, Values: [][]byte{{}}},
		{Op: OpGetDel, Keys: [][]byte{k}},
		{Op: OpDel, Keys: [][]byte{k, []byte("k2")}},
		{Op: OpIncrBy, Delta: -1 << 63, Keys: [][]byte{k}},
		{Op: OpAppend, Keys: [][]byte{k}, Values: [][]byte{v}},
		{Op: OpMSet, Keys: [][]byte{k, {}}, Values: [][]byte{v, {}}},
		{Op: OpFlushAll},
		NewRaiseFormat(FormatV2),
		{Op: OpSetX, Flags: SetXX | SetGet | SetPX, Delta: 1500, Keys: [][]byte{k}, Values: [][]byte{v}},
		{Op: OpSetX, Flags: SetKeepTTL, Keys: [][]byte{k}, Values: [][]byte{v}},
		{Op: OpExpire, Flags: ExpireAbs | ExpireGT, Delta: 1 << 40, Keys: [][]byte{k}},
		{Op: OpPersist, Keys: [][]byte{k}},
		{Op: OpGetEx, Flags: GetExPersist, Keys: [][]byte{k}},
		NewExpireIf([][]byte{k}, []keyspace.Stamp{{Index: 7, Pos: 1}}, []uint64{1 << 41}),
		{Op: OpSetRange, Delta: 1 << 20, Keys: [][]byte{k}, Values: [][]byte{v}},
		{Op: OpIncrByFloat, Keys: [][]byte{k}, Values: [][]byte{[]byte("-1.5e3")}},
		{Op: OpMSetNX, Keys: [][]byte{k, []byte("k2")}, Values: [][]byte{v, {}}},
		{Op: OpRename, Flags: RenameNX, Keys: [][]byte{k, []byte("k2")}},
		{Op: OpCopy, Flags: CopyReplace, Keys: [][]byte{k, []byte("k2")}},
		NewExec([][]byte{k}, []WatchRecord{{Live: true, Version: keyspace.Stamp{Index: 9, Pos: 2}, LastWrite: keyspace.Stamp{Index: 11}, ExpireAt: 1 << 41, Applied: 12}},
			[][][]byte{{[]byte("SET"), k, v}, {[]byte("GET"), k}}),
		NewBareExec([][]byte{[]byte("EVAL"), []byte("return 1"), []byte("0")}),
	}
	var out [][]byte
	for _, c := range cmds {
		out = append(out, c.AppendEncode(nil))
	}
	b, err := NewBatch(append(cmds[:3:3], cmds[9:len(cmds)-2]...)) // EXECs never batch
	if err != nil {
		panic(err) // the seeds above are valid
	}
	return append(out, b.AppendEncode(nil))
}

// FuzzDecodeCommand: DecodeCommand never panics, allocates in proportion to
// its input, and whatever decodes and passes the checks made before
// proposing (Validate, and IsCanonical for bytes from a peer) re-encodes
// to exactly the same bytes. Any decoded command re-encodes to bytes that
// decode to the same command, with the same Validate verdict.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range commandSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			if IsCanonical(b) {
				t.Fatal("IsCanonical accepted bytes that do not decode")
			}
			return
		}
		// Every key and value takes at least its length byte: the counts a
		// frame declares can never make decoding allocate more slots than
		// it has bytes.
		if len(c.Keys)+len(c.Values) > len(b) {
			t.Fatalf("%d keys and %d values from %d bytes", len(c.Keys), len(c.Values), len(b))
		}
		valid := c.Validate()
		enc := c.AppendEncode(nil)
		if len(enc) != c.EncodedLen() || len(enc) > c.Size() {
			t.Fatalf("encoded %d bytes; EncodedLen %d, Size %d", len(enc), c.EncodedLen(), c.Size())
		}
		same := bytes.Equal(enc, b)
		if IsCanonical(b) && !same {
			t.Fatalf("canonical input re-encodes differently:\n in %x\nout %x", b, enc)
		}
		if same && c.Op != OpBatch && !IsCanonical(b) {
			t.Fatalf("IsCanonical refused the encoder's own output %x", b)
		}
		back, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
		if !sameCommand(&c, &back) {
			t.Fatalf("round trip changed the command: %+v -> %+v", c, back)
		}
		if (back.Validate() == nil) != (valid == nil) {
			t.Fatalf("Validate changed its verdict across a round trip: %v", valid)
		}
		if !bytes.Equal(back.AppendEncode(nil), enc) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

// FuzzDecodeResult: DecodeResult never panics, allocates in proportion to
// its input, and a decoded result survives encode/decode unchanged.
func FuzzDecodeResult(f *testing.F) {
	for _, r := range []Result{
		{Kind: ResultOK},
		{Kind: ResultNil},
		{Kind: ResultInt, Int: -42},
		{Kind: ResultBytes, Bytes: []byte("value")},
		{Kind: ResultBytes, Bytes: []byte{}},
		{Kind: ResultError, Err: ErrTextWrongType},
		{Kind: ResultRaw, Bytes: []byte("*2\r\n:1\r\n$-1\r\n")},
		{Kind: ResultBatch, Batch: []Result{{Kind: ResultOK}, {Kind: ResultInt, Int: 7}, {Kind: ResultError, Err: ErrTextTooLarge}}},
	} {
		f.Add(r.AppendEncode(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			return
		}
		if len(r.Batch) > len(b) {
			t.Fatalf("%d batch results from %d bytes", len(r.Batch), len(b))
		}
		enc := r.AppendEncode(nil)
		back, err := DecodeResult(enc)
		if err != nil {
			t.Fatalf("re-encoded result does not decode: %v", err)
		}
		if !sameResult(&r, &back) {
			t.Fatalf("round trip changed the result: %+v -> %+v", r, back)
		}
		if !bytes.Equal(back.AppendEncode(nil), enc) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

func sameCommand(a, b *Command) bool {
	return a.Op == b.Op && a.Flags == b.Flags && a.Delta == b.Delta &&
		sameSlices(a.Keys, b.Keys) && sameSlices(a.Values, b.Values)
}

func sameSlices(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func sameResult(a, b *Result) bool {
	if a.Kind != b.Kind || a.Int != b.Int || !bytes.Equal(a.Bytes, b.Bytes) || a.Err != b.Err || len(a.Batch) != len(b.Batch) {
		return false
	}
	if (a.Bytes == nil) != (b.Bytes == nil) {
		return false // a nil reply and an empty string are different replies
	}
	for i := range a.Batch {
		if !sameResult(&a.Batch[i], &b.Batch[i]) {
			return false
		}
	}
	return true
}

func TestIsCanonical(t *testing.T) {
	for _, s := range commandSeeds() {
		if !IsCanonical(s) {
			t.Errorf("the encoder's output %x is not canonical", s)
		}
	}
	set := (&Command{Op: OpSet, Keys: [][]byte{[]byte("k")}, Values: [][]byte{[]byte("v")}}).AppendEncode(nil)
	// The same SET with its key length written as a two-byte varint.
	long := append([]byte{}, set[:5]...)
	long = append(long, 0x81, 0x00)
	long = append(long, set[6:]...)
	c, err := DecodeCommand(long)
	if err != nil || string(c.Keys[0]) != "k" {
		t.Fatalf("the lenient decoder no longer accepts a long varint: %v", err)
	}
	if IsCanonical(long) {
		t.Error("a redundant varint byte passed as canonical")
	}
	// A batch is canonical only if its commands are.
	b := (&Command{Op: OpBatch, Values: [][]byte{set, long}}).AppendEncode(nil)
	if IsCanonical(b) {
		t.Error("a batch holding a non-canonical command passed")
	}
	if IsCanonical(nil) || IsCanonical([]byte{byte(OpSet)}) {
		t.Error("undecodable bytes passed")
	}
}
