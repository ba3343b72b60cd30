package raft

import (
	"bytes"
	"testing"
)

// FuzzDecodeProposal feeds decodeProposal what a log can hold: it never
// panics, and whatever it accepts re-encodes to the same bytes in the
// version it was read as, so no two encodings mean the same entry.
func FuzzDecodeProposal(f *testing.F) {
	f.Add(encodeProposal(7, 42, []byte("payload")))
	f.Add(encodeProposalV2(7, 42, 1_700_000_000_891, []byte("payload")))
	f.Add(encodeProposalV2(0, 0, 1_700_000_000_891, nil))
	f.Add(encodeAckedRecord(3))
	f.Add([]byte{headerVersionV2, 1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		proposer, seq, stamp, payload, ok := decodeProposal(b)
		if !ok {
			if entryStamp(b) != 0 {
				t.Fatalf("a stamp in data that is not a proposal: %x", b)
			}
			return
		}
		var again []byte
		if b[0] == headerVersion {
			if stamp != 0 {
				t.Fatalf("v1 header decoded with stamp %d", stamp)
			}
			again = encodeProposal(proposer, seq, payload)
		} else {
			if entryStamp(b) != stamp {
				t.Fatalf("entryStamp %d, decodeProposal %d", entryStamp(b), stamp)
			}
			again = encodeProposalV2(proposer, seq, stamp, payload)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x as %x", b, again)
		}
	})
}

// FuzzSplitReadCtx feeds the read context parser what a peer can send in
// a MsgReadIndexResp: it never panics and accepts only the two shapes
// this package writes.
func FuzzSplitReadCtx(f *testing.F) {
	f.Add(roundCtx(77))
	f.Add(append(roundCtx(77), readTimeTag, 0, 0, 1, 0x8b, 0xcf, 0xe5, 0x6b, 0x7b))
	f.Add([]byte{readTimeTag})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, has, ok := splitReadCtx(b)
		switch {
		case !ok:
		case len(b) == readCtxLen && !has:
		case len(b) == readCtxTimeLen && has && b[readCtxLen] == readTimeTag:
		default:
			t.Fatalf("accepted %x (time %v)", b, has)
		}
	})
}
