package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire format of the Messages stream. Each gRPC message (grpcraw.Frame) is a
// batch:
//
//	version  uint8 (batchVersion)
//	then, repeated until the frame ends, one envelope:
//	  group    uint64 big-endian   Raft group id
//	  sentAt   int64  big-endian   sender's Send time, Unix nanoseconds
//	  length   uint32 big-endian   size of msg
//	  msg      [length]byte        proto.Marshal(raftpb.Message)
//
// The timestamp is taken when the group hands the message to Send, so the
// receiver's delay measurement includes time spent queued in the lane.
const (
	batchVersion   = 1
	envelopeHeader = 8 + 8 + 4
)

// errMalformed marks frames a peer should never have sent.
var errMalformed = errors.New("malformed frame")

// envelope is one decoded message of a batch; msg aliases the frame.
type envelope struct {
	group  uint64
	sentAt int64
	msg    []byte
}

// batchSize returns the encoded size of a batch of messages with the given
// payload lengths total and count n.
func batchSize(payload, n int) int { return 1 + n*envelopeHeader + payload }

// appendEnvelope appends one envelope to a batch started with newBatch.
func appendEnvelope(b []byte, group uint64, sentAt int64, msg []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, group)
	b = binary.BigEndian.AppendUint64(b, uint64(sentAt))
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// newBatch starts a batch with room for size bytes.
func newBatch(size int) []byte {
	b := make([]byte, 0, size)
	return append(b, batchVersion)
}

// decodeBatch splits a frame into envelopes, calling fn for each in order.
// It validates every length before slicing, so no input can make it panic.
// fn's error stops decoding and is returned as is.
func decodeBatch(frame []byte, fn func(envelope) error) error {
	if len(frame) == 0 {
		return fmt.Errorf("%w: empty batch", errMalformed)
	}
	if frame[0] != batchVersion {
		return fmt.Errorf("%w: batch version %d, want %d", errMalformed, frame[0], batchVersion)
	}
	rest := frame[1:]
	for len(rest) > 0 {
		if len(rest) < envelopeHeader {
			return fmt.Errorf("%w: %d trailing bytes, envelope header needs %d", errMalformed, len(rest), envelopeHeader)
		}
		env := envelope{
			group:  binary.BigEndian.Uint64(rest[0:8]),
			sentAt: int64(binary.BigEndian.Uint64(rest[8:16])),
		}
		n := binary.BigEndian.Uint32(rest[16:20])
		rest = rest[envelopeHeader:]
		if uint64(n) > uint64(len(rest)) {
			return fmt.Errorf("%w: envelope claims %d bytes, %d left", errMalformed, n, len(rest))
		}
		env.msg = rest[:n:n]
		rest = rest[n:]
		if err := fn(env); err != nil {
			return err
		}
	}
	return nil
}

// Wire format of the Snapshot stream: one RPC per MsgSnap, frames in order
//
//	header   'H' group uint64, sentAt int64, size int64, msg (the rest)
//	chunk    'C' payload bytes (at most SnapshotChunkBytes)      ... repeated
//	trailer  'T' crc32c uint32 (Castagnoli, over the payload), length uint64
//
// and one reply frame 'A' once the receiver verified and accepted the
// payload. msg is the marshalled raftpb.Message; when the payload travels
// as chunks its Snapshot.Data is left empty unless the sender's group has a
// SnapshotStore (then Data is the group's own descriptor).
const (
	snapHeader  byte = 'H'
	snapChunk   byte = 'C'
	snapTrailer byte = 'T'
	snapAck     byte = 'A'

	snapHeaderFixed  = 1 + 8 + 8 + 8
	snapTrailerBytes = 1 + 4 + 8
)

// snapshotHeader is the decoded first frame of a snapshot stream.
type snapshotHeader struct {
	group  uint64
	sentAt int64
	size   int64
	msg    []byte
}

func encodeSnapshotHeader(h snapshotHeader) []byte {
	b := make([]byte, 0, snapHeaderFixed+len(h.msg))
	b = append(b, snapHeader)
	b = binary.BigEndian.AppendUint64(b, h.group)
	b = binary.BigEndian.AppendUint64(b, uint64(h.sentAt))
	b = binary.BigEndian.AppendUint64(b, uint64(h.size))
	return append(b, h.msg...)
}

func decodeSnapshotHeader(f []byte) (snapshotHeader, error) {
	if len(f) < snapHeaderFixed || f[0] != snapHeader {
		return snapshotHeader{}, fmt.Errorf("%w: bad snapshot header (%d bytes)", errMalformed, len(f))
	}
	h := snapshotHeader{
		group:  binary.BigEndian.Uint64(f[1:9]),
		sentAt: int64(binary.BigEndian.Uint64(f[9:17])),
		size:   int64(binary.BigEndian.Uint64(f[17:25])),
		msg:    f[snapHeaderFixed:],
	}
	if h.size < 0 {
		return snapshotHeader{}, fmt.Errorf("%w: negative snapshot size %d", errMalformed, h.size)
	}
	return h, nil
}

func encodeSnapshotTrailer(crc uint32, length uint64) []byte {
	b := make([]byte, 0, snapTrailerBytes)
	b = append(b, snapTrailer)
	b = binary.BigEndian.AppendUint32(b, crc)
	return binary.BigEndian.AppendUint64(b, length)
}

func decodeSnapshotTrailer(f []byte) (crc uint32, length uint64, err error) {
	if len(f) != snapTrailerBytes || f[0] != snapTrailer {
		return 0, 0, fmt.Errorf("%w: bad snapshot trailer (%d bytes)", errMalformed, len(f))
	}
	return binary.BigEndian.Uint32(f[1:5]), binary.BigEndian.Uint64(f[5:13]), nil
}
