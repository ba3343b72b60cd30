package node

import (
	"bytes"
	"testing"

	"github.com/elastickv/elastickv/internal/kv"
)

// FuzzForwardBatchRequestDecode: a ForwardBatch request frame from a peer
// never panics the decoder, never makes it allocate more payload slots than
// the frame has bytes, and what decodes re-encodes to a frame that decodes
// to the same group and payloads. Whatever combineForwarded accepts
// becomes an entry that decodes, validates and is canonical.
func FuzzForwardBatchRequestDecode(f *testing.F) {
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{setCmd("a", "1")}))
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{setCmd("a", "1"), incrCmd("n")}))
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{batchCmd(setCmd("a", "1"), incrCmd("n")), incrCmd("m")}))
	f.Add(appendForwardBatchRequest(nil, groupID, [][]byte{execCmd(), setCmd("a", "1")}))
	for _, frame := range malformedBatchRequests() {
		f.Add(frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		group, payloads, err := decodeForwardBatchRequest(frame)
		if err != nil {
			return
		}
		if len(payloads) == 0 || len(payloads) > kv.MaxBatch || len(payloads) > len(frame) {
			t.Fatalf("%d payloads from a %d-byte frame", len(payloads), len(frame))
		}
		g2, p2, err := decodeForwardBatchRequest(appendForwardBatchRequest(nil, group, payloads))
		if err != nil || g2 != group || len(p2) != len(payloads) {
			t.Fatalf("re-encoded frame: group %d, %d payloads, %v", g2, len(p2), err)
		}
		for i := range payloads {
			if !bytes.Equal(p2[i], payloads[i]) {
				t.Fatalf("payload %d changed in a round trip", i)
			}
		}
		entry, err := combineForwarded(payloads)
		if err != nil {
			return
		}
		cmd, err := kv.DecodeCommand(entry.payload)
		if err != nil {
			t.Fatalf("accepted frame built an entry that does not decode: %v", err)
		}
		if err := cmd.Validate(); err != nil {
			t.Fatalf("accepted frame built an invalid entry: %v", err)
		}
		if !kv.IsCanonical(entry.payload) {
			t.Fatal("accepted frame built a non-canonical entry")
		}
		if len(entry.spans) != len(payloads) {
			t.Fatalf("%d spans for %d commands", len(entry.spans), len(payloads))
		}
	})
}

// FuzzForwardBatchResponseDecode: a fwdOK body from a leader never panics
// the follower's decoder, which accepts exactly as many results as it sent
// commands, and decoded results survive a round trip.
func FuzzForwardBatchResponseDecode(f *testing.F) {
	f.Add(appendForwardBatchResults(nil, []kv.Result{{Kind: kv.ResultOK}, {Kind: kv.ResultInt, Int: 3}}), uint16(2))
	f.Add(appendForwardBatchResults(nil, []kv.Result{{Kind: kv.ResultBatch, Batch: []kv.Result{{Kind: kv.ResultNil}}}}), uint16(1))
	f.Add(appendForwardBatchResults(nil, []kv.Result{{Kind: kv.ResultBytes, Bytes: []byte("v")}}), uint16(2))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f}, uint16(1))
	f.Fuzz(func(t *testing.T, body []byte, want uint16) {
		n := int(want) % (maxForwardBatchCalls + 1)
		results, err := decodeForwardBatchResults(body, n)
		if err != nil {
			return
		}
		if len(results) != n {
			t.Fatalf("%d results for %d commands", len(results), n)
		}
		back, err := decodeForwardBatchResults(appendForwardBatchResults(nil, results), n)
		if err != nil {
			t.Fatalf("re-encoded results do not decode: %v", err)
		}
		for i := range results {
			a, b := results[i].AppendEncode(nil), back[i].AppendEncode(nil)
			if !bytes.Equal(a, b) {
				t.Fatalf("result %d changed in a round trip: %x -> %x", i, a, b)
			}
		}
	})
}
