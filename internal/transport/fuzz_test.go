package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets feed the transport's two inbound decoders (a Messages
// batch, a Snapshot stream) with arbitrary bytes, through the same code a
// peer's frames reach. Seeds are in testdata/fuzz/<Name>; CI runs each with
// -fuzz for a few seconds.

// fuzzTransport is a transport with no peers and no server: only its
// inbound paths are used.
func fuzzTransport(t testing.TB) *GRPC {
	cfg := DefaultConfig()
	cfg.LocalID = 2
	cfg.SpoolDir = t.TempDir()
	cfg.MaxMessageBytes = MaxSnapshotChunkBytes
	cfg.SnapshotSpoolBytes = 16 << 20
	cfg.Logger = slog.New(slog.DiscardHandler)
	tr, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// splitFrames cuts data into frames, each a 2-byte big-endian length and
// that many bytes (the last one possibly short).
func splitFrames(data []byte) [][]byte {
	var frames [][]byte
	for len(data) >= 2 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		frames = append(frames, data[:n])
		data = data[n:]
	}
	return frames
}

// joinFrames is splitFrames' inverse, for seeds.
func joinFrames(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// snapshotSeeds are valid and nearly valid Snapshot streams.
func snapshotSeeds(t testing.TB) [][]byte {
	hdrMsg, err := proto.Marshal(snapMsg(1, 2, nil))
	require.NoError(t, err)
	payload := []byte("0123456789abcdef")
	hdr := func(group uint64, size int64) []byte {
		return encodeSnapshotHeader(snapshotHeader{group: group, sentAt: 1, size: size, msg: hdrMsg})
	}
	chunk := func(p []byte) []byte { return append([]byte{snapChunk}, p...) }
	trailer := encodeSnapshotTrailer(crc32Of(payload), uint64(len(payload)))
	return [][]byte{
		joinFrames(hdr(7, 16), chunk(payload), trailer),
		joinFrames(hdr(8, 16), chunk(payload[:8]), chunk(payload[8:]), trailer),
		joinFrames(hdr(7, 0), encodeSnapshotTrailer(crc32Of(nil), 0)),
		joinFrames(hdr(7, 16), chunk(payload), encodeSnapshotTrailer(0, 16)),
		joinFrames(hdr(8, 1<<40), chunk(payload)),
		joinFrames(hdr(7, -1)),
		joinFrames([]byte{snapHeader, 0, 1}),
		joinFrames(hdr(7, 16), []byte{'Z'}),
		{},
	}
}

func FuzzSnapshotStreamDecode(f *testing.F) {
	for _, s := range snapshotSeeds(f) {
		f.Add(s)
	}
	tr := fuzzTransport(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, store := newRecorder(), newStoreRecorder(nil)
		tr.Register(7, rec)
		tr.Register(8, store)
		frames := splitFrames(data)
		next := func() ([]byte, error) {
			if len(frames) == 0 {
				return nil, io.EOF
			}
			f := frames[0]
			frames = frames[1:]
			return f, nil
		}
		err := tr.receiveSnapshot(next)
		stepped := rec.count(raftpb.MsgSnap) + store.count(raftpb.MsgSnap)
		if err == nil {
			// Accepted: exactly one snapshot, as long as it declared.
			require.Equal(t, 1, stepped)
			hdr, herr := decodeSnapshotHeader(splitFrames(data)[0])
			require.NoError(t, herr)
			if got := rec.ofType(raftpb.MsgSnap); len(got) == 1 {
				require.Len(t, got[0].GetSnapshot().GetData(), int(hdr.size))
			} else {
				require.Len(t, store.receivedPayloads()[0], int(hdr.size))
			}
		} else {
			require.Zero(t, stepped, "a rejected stream steps nothing: %v", err)
		}
		require.Empty(t, spoolEntries(t, tr.cfg.SpoolDir), "no spool file outlives its stream")
		tr.admit.mu.Lock()
		reserved := tr.admit.reserved
		tr.admit.mu.Unlock()
		require.Zero(t, reserved, "every spool reservation returned")
	})
}

// batchSeeds are valid and nearly valid Messages frames.
func batchSeeds(t testing.TB) [][]byte {
	hb, err := proto.Marshal(msg(raftpb.MsgHeartbeat, 1, 2))
	require.NoError(t, err)
	app, err := proto.Marshal(appMsg(1, 2, 5))
	require.NoError(t, err)
	two := appendEnvelope(appendEnvelope(newBatch(256), 7, 1, hb), 7, 2, app)
	return [][]byte{
		appendEnvelope(newBatch(64), 7, time.Unix(0, 0).UnixNano(), hb),
		two,
		two[:len(two)-3],
		appendEnvelope(newBatch(64), 7, 0, []byte{0xff, 0xff}),
		{batchVersion, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff},
		{9},
		{},
	}
}

func FuzzEnvelopeDecode(f *testing.F) {
	for _, s := range batchSeeds(f) {
		f.Add(s)
	}
	tr := fuzzTransport(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var envs []envelope
		err := decodeBatch(frame, func(e envelope) error {
			envs = append(envs, e)
			return nil
		})
		if err != nil {
			require.True(t, errors.Is(err, errMalformed), "%v", err)
		} else {
			// What decodes re-encodes to the same bytes: nothing skipped.
			b := newBatch(len(frame))
			for _, e := range envs {
				b = appendEnvelope(b, e.group, e.sentAt, e.msg)
			}
			require.True(t, bytes.Equal(frame, b), "re-encoded frame differs")
		}
		// The whole inbound path: decode, unmarshal, route, step.
		rec := newRecorder()
		tr.Register(7, rec)
		if derr := tr.deliverBatch(frame, time.Now()); derr != nil {
			require.True(t, errors.Is(derr, errMalformed), "%v", derr)
		}
		require.LessOrEqual(t, len(rec.stepped), len(envs), "only decoded envelopes are stepped")
	})
}

// TestFuzzSeedsReachTheAcceptPath: the valid seeds are accepted, so the
// fuzzer starts from streams that get all the way through.
func TestFuzzSeedsReachTheAcceptPath(t *testing.T) {
	tr := fuzzTransport(t)
	tr.Register(7, newRecorder())
	tr.Register(8, newStoreRecorder(nil))
	for i, s := range snapshotSeeds(t)[:3] {
		frames := splitFrames(s)
		next := func() ([]byte, error) {
			if len(frames) == 0 {
				return nil, io.EOF
			}
			f := frames[0]
			frames = frames[1:]
			return f, nil
		}
		require.NoError(t, tr.receiveSnapshot(next), "seed %d", i)
	}
	for i, s := range batchSeeds(t)[:2] {
		require.NoError(t, tr.deliverBatch(s, time.Now()), "seed %d", i)
	}
}
