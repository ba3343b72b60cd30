package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// Limits and defaults.
const (
	// MaxSnapshotChunkBytes caps Config.SnapshotChunkBytes: a chunk is one
	// gRPC message, and keeping it small bounds both sides' memory and lets
	// the rate limiter pace the stream smoothly.
	MaxSnapshotChunkBytes = 1 << 20

	// DefaultMaxInflightMsgs is the replication lane's default depth. It
	// matches the Raft engine's MaxInflightMsgs so that a leader that fills
	// its whole window toward one follower never overflows the lane.
	DefaultMaxInflightMsgs = 1024

	// frameOverhead is what the transport adds around the largest message it
	// accepts (envelope headers, snapshot frame headers); gRPC's size limits
	// are set to MaxMessageBytes plus this.
	frameOverhead = 64 << 10

	// maxBatchBytes bounds how much queued traffic one stream write carries.
	// Larger batches save syscalls but delay the first message of the next
	// batch; a single bigger message still goes out alone.
	maxBatchBytes = 1 << 20
)

// Config configures a GRPC transport. Start from DefaultConfig.
type Config struct {
	// LocalID is this node's Raft id. Inbound messages addressed to another
	// id are dropped, and AddPeer ignores it.
	LocalID uint64

	// Lanes selects the outbound lane layout (see LaneModeFromEnv).
	Lanes LaneMode

	// HeartbeatBuffer, ReplicationBuffer, SnapshotBuffer and OtherBuffer
	// are the depths of the four lanes, per peer, shared by every group.
	// In TwoLanes mode the normal lane is as deep as the replication,
	// snapshot and other lanes together.
	HeartbeatBuffer   int
	ReplicationBuffer int
	SnapshotBuffer    int
	OtherBuffer       int

	// MaxMessageBytes is the largest marshalled Raft message the transport
	// carries. gRPC send and receive limits, client and server, are set a
	// little above it. It must exceed the Raft engine's MaxSizePerMsg plus
	// the largest entry (elastickv's 16 MiB value cap).
	MaxMessageBytes int

	// SnapshotChunkBytes is the size of one snapshot chunk on the wire, at
	// most MaxSnapshotChunkBytes.
	SnapshotChunkBytes int

	// SnapshotRateBytesPerSec throttles outbound snapshot payload bytes, for
	// all peers together; 0 means unlimited. Only the snapshot stream is
	// throttled: heartbeats and replication are never slowed by it.
	SnapshotRateBytesPerSec int64

	// SpoolDir receives inbound snapshot payloads before they are verified
	// and handed to the group. Put it on the same file system as the data
	// directory so SnapshotStore.ReceiveSnapshot can rename the file.
	SpoolDir string

	// DialTimeout bounds opening a stream, including connecting.
	DialTimeout time.Duration

	// SendTimeout bounds one write to a stream. A peer that stops reading
	// shows up as a stalled write; after SendTimeout the stream is torn
	// down and the affected groups get ReportUnreachable.
	SendTimeout time.Duration

	// SnapshotAckTimeout bounds how long the sender waits, after the last
	// chunk, for the receiver to verify the payload and accept it.
	SnapshotAckTimeout time.Duration

	// SnapshotIdleTimeout is how long a receiver waits for the next frame
	// of an inbound snapshot before abandoning it (and its spool file).
	SnapshotIdleTimeout time.Duration

	// KeepaliveInterval makes idle connections ping so that a vanished host
	// is noticed; 0 disables it. The server must allow it: use
	// Config.ServerOptions.
	KeepaliveInterval time.Duration

	// AllowNonLoopback permits peer addresses that are not loopback. The
	// transport has no TLS, so by default AddPeer refuses anything else.
	AllowNonLoopback bool

	// Registerer receives the transport's metrics; nil keeps them in a
	// private registry. Several transports in one process need distinct
	// registerers (or prometheus.WrapRegistererWith).
	Registerer prometheus.Registerer

	// Logger receives the transport's logs; nil means slog.Default().
	Logger *slog.Logger

	// PeerName renders a peer id for metric labels and logs; nil means the
	// decimal id.
	PeerName func(uint64) string

	// LocalMaxFormat is the highest log format version this binary
	// supports, advertised on every stream (format.go). 0 advertises
	// nothing, as the binary before adverts did; only tests use it.
	LocalMaxFormat uint8

	// Limits bound what peers can make this node hold in memory or on
	// disk (limits.go).
	Limits
}

// DefaultConfig returns a configuration with every tunable at its default.
// LocalID still has to be set.
func DefaultConfig() Config {
	return Config{
		Lanes:               FourLanes,
		HeartbeatBuffer:     512,
		ReplicationBuffer:   DefaultMaxInflightMsgs,
		SnapshotBuffer:      4,
		OtherBuffer:         16,
		MaxMessageBytes:     64 << 20,
		SnapshotChunkBytes:  MaxSnapshotChunkBytes,
		SpoolDir:            os.TempDir(),
		DialTimeout:         2 * time.Second,
		SendTimeout:         3 * time.Second,
		SnapshotAckTimeout:  30 * time.Second,
		SnapshotIdleTimeout: 30 * time.Second,
		KeepaliveInterval:   10 * time.Second,
		Limits:              DefaultLimits(),
	}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.LocalID == 0:
		return errors.New("transport config: LocalID must be set")
	case c.Lanes > laneModeSingle:
		return fmt.Errorf("transport config: unknown lane mode %d", c.Lanes)
	case c.HeartbeatBuffer <= 0, c.ReplicationBuffer <= 0, c.SnapshotBuffer <= 0, c.OtherBuffer <= 0:
		return fmt.Errorf("transport config: lane buffers must be positive (heartbeat %d, replication %d, snapshot %d, other %d)",
			c.HeartbeatBuffer, c.ReplicationBuffer, c.SnapshotBuffer, c.OtherBuffer)
	case c.SnapshotChunkBytes <= 0 || c.SnapshotChunkBytes > MaxSnapshotChunkBytes:
		return fmt.Errorf("transport config: SnapshotChunkBytes %d not in (0, %d]", c.SnapshotChunkBytes, MaxSnapshotChunkBytes)
	case c.MaxMessageBytes < c.SnapshotChunkBytes:
		return fmt.Errorf("transport config: MaxMessageBytes %d below SnapshotChunkBytes %d", c.MaxMessageBytes, c.SnapshotChunkBytes)
	case c.MaxMessageBytes > 1<<30:
		return fmt.Errorf("transport config: MaxMessageBytes %d above 1 GiB", c.MaxMessageBytes)
	case c.SnapshotRateBytesPerSec < 0:
		return fmt.Errorf("transport config: SnapshotRateBytesPerSec %d is negative", c.SnapshotRateBytesPerSec)
	case c.SpoolDir == "":
		return errors.New("transport config: SpoolDir must be set")
	case c.DialTimeout <= 0, c.SendTimeout <= 0, c.SnapshotAckTimeout <= 0, c.SnapshotIdleTimeout <= 0:
		return errors.New("transport config: DialTimeout, SendTimeout, SnapshotAckTimeout and SnapshotIdleTimeout must be positive")
	case c.KeepaliveInterval < 0:
		return errors.New("transport config: KeepaliveInterval is negative")
	}
	return c.validate() // Limits.validate
}

// grpcMessageLimit is the gRPC send/receive size limit used on both sides.
func (c Config) grpcMessageLimit() int { return c.MaxMessageBytes + frameOverhead }

// ServerOptions returns what the node's *grpc.Server needs for this
// transport: the raw codec, message size limits above MaxMessageBytes, and a
// keepalive policy that tolerates the transport's client pings (without it
// the server answers them with GOAWAY "too_many_pings"). The node may add
// its own options; it must not set a lower size limit.
func (c Config) ServerOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{
		grpcraw.ServerOption(),
		grpc.MaxRecvMsgSize(c.grpcMessageLimit()),
		grpc.MaxSendMsgSize(c.grpcMessageLimit()),
	}
	if c.KeepaliveInterval > 0 {
		opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             c.KeepaliveInterval / 2,
			PermitWithoutStream: true,
		}))
	}
	return opts
}

// bufferFor returns the depth of lane l.
func (c Config) bufferFor(l Lane) int {
	switch l {
	case LaneHeartbeat:
		return c.HeartbeatBuffer
	case LaneReplication:
		return c.ReplicationBuffer
	case LaneSnapshot:
		return c.SnapshotBuffer
	case LaneOther:
		return c.OtherBuffer
	case LaneNormal:
		return c.ReplicationBuffer + c.SnapshotBuffer + c.OtherBuffer
	default:
		return c.HeartbeatBuffer + c.ReplicationBuffer + c.SnapshotBuffer + c.OtherBuffer
	}
}

// peerName renders id for labels and logs.
func (c Config) peerName(id uint64) string {
	if c.PeerName != nil {
		return c.PeerName(id)
	}
	return strconv.FormatUint(id, 10)
}
