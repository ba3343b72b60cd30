// Package grpcraw is the gRPC codec shared by elastickv's internal services.
//
// elastickv's peer services exchange payloads that are already encoded (Raft
// messages marshalled by raftpb, state-machine commands in kv's own binary
// format), so the codec only moves bytes: it never reflects over messages and
// needs no generated protobuf code. Every service registered on the peer gRPC
// server uses it, and every client must force it with CallOption().
package grpcraw

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// Name is the codec's content-subtype on the wire.
const Name = "elastickv-raw"

// Frame is one gRPC message: an opaque byte slice.
type Frame struct {
	// Data is the encoded payload. After Unmarshal it is owned by the caller.
	Data []byte
}

// Codec implements encoding.Codec over *Frame values.
type Codec struct{}

var _ encoding.Codec = Codec{}

// Marshal returns the frame's bytes without copying.
func (Codec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, fmt.Errorf("grpcraw: cannot marshal %T", v)
	}
	return f.Data, nil
}

// Unmarshal copies data into the frame: gRPC may reuse the buffer it lent us
// once Unmarshal returns.
func (Codec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("grpcraw: cannot unmarshal into %T", v)
	}
	f.Data = append(f.Data[:0:0], data...)
	return nil
}

// Name reports the codec name.
func (Codec) Name() string { return Name }

// ServerOption makes a gRPC server use this codec for every service.
func ServerOption() grpc.ServerOption { return grpc.ForceServerCodec(Codec{}) }

// CallOption makes a client call use this codec.
func CallOption() grpc.CallOption { return grpc.ForceCodec(Codec{}) }
