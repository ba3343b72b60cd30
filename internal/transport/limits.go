package transport

import (
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Limits bound what peers can make a node hold, in memory and on disk.
// Nothing a peer sends or makes this node queue can grow past them: what
// does not fit is refused with an error (inbound) or dropped and reported to
// Raft (outbound), never waited for. Every field has its default in
// DefaultLimits.
type Limits struct {
	// PeerQueueBytes bounds the marshalled bytes queued toward one peer,
	// across all its lanes but the heartbeat lane (whose messages are tiny
	// and already bounded by HeartbeatBuffer; exempting it keeps a flood
	// of appends from ever costing a heartbeat). A message that does not
	// fit is dropped, counted in elastickv_raft_dispatch_budget_drop_total
	// and reported to its group exactly as a full lane's is. A queue that
	// is empty admits any one message, so a message larger than the budget
	// is still sent, alone: the bound is PeerQueueBytes plus one message.
	PeerQueueBytes int64

	// MaxInboundSnapshots caps the snapshot streams this node receives at
	// once, from all peers together. One more is refused at once with
	// codes.ResourceExhausted; its sender reports SnapshotFailure to its
	// Raft group, which retries later.
	MaxInboundSnapshots int

	// SnapshotSpoolBytes caps the bytes the inbound snapshots in flight may
	// declare together, i.e. what peers can make this node write to its
	// spool directory at once. A snapshot images the whole data set, so it
	// must exceed the largest data set (plus its snapshot framing).
	SnapshotSpoolBytes int64

	// SnapshotDiskMarginBytes is the free space an inbound snapshot must
	// leave on the spool directory's file system, counting what the other
	// inbound snapshots in flight still have to write: one that would not
	// is refused before a byte is written, so a peer cannot fill the disk
	// the WAL and Pebble share.
	SnapshotDiskMarginBytes int64
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		PeerQueueBytes:          64 << 20,
		MaxInboundSnapshots:     2,
		SnapshotSpoolBytes:      64 << 30,
		SnapshotDiskMarginBytes: 256 << 20,
	}
}

func (l Limits) validate() error {
	switch {
	case l.PeerQueueBytes <= 0:
		return fmt.Errorf("transport config: PeerQueueBytes %d must be positive", l.PeerQueueBytes)
	case l.MaxInboundSnapshots <= 0:
		return fmt.Errorf("transport config: MaxInboundSnapshots %d must be positive", l.MaxInboundSnapshots)
	case l.SnapshotSpoolBytes <= 0:
		return fmt.Errorf("transport config: SnapshotSpoolBytes %d must be positive", l.SnapshotSpoolBytes)
	case l.SnapshotDiskMarginBytes < 0:
		return fmt.Errorf("transport config: SnapshotDiskMarginBytes %d is negative", l.SnapshotDiskMarginBytes)
	}
	return nil
}

// Reasons for elastickv_raft_snapshot_inbound_refused_total.
const (
	refusedTooManyStreams = "too_many_streams"
	refusedSpoolBudget    = "spool_budget"
	refusedDiskSpace      = "disk_space"
	refusedTooLarge       = "too_large"
)

// snapshotAdmission decides which inbound snapshots this node takes on.
// A stream first takes a slot (at most MaxInboundSnapshots), then, once its
// header declares a size, a reservation of that many spool bytes.
//
// Invariant: reserved is the sum of the sizes of the reservations in res,
// and at most SnapshotSpoolBytes.
type snapshotAdmission struct {
	lim Limits
	dir string
	met *metrics
	// free returns the bytes available to this process on dir's file
	// system, or ok=false when it cannot tell (the check is then skipped).
	free func(dir string) (int64, bool)

	mu       sync.Mutex
	streams  int
	reserved int64
	res      map[*spoolReservation]struct{}
}

func newSnapshotAdmission(lim Limits, dir string, met *metrics) *snapshotAdmission {
	return &snapshotAdmission{lim: lim, dir: dir, met: met, free: diskFree, res: make(map[*spoolReservation]struct{})}
}

// acquireStream takes a stream slot; the caller must call release once.
func (a *snapshotAdmission) acquireStream() (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.streams >= a.lim.MaxInboundSnapshots {
		a.met.snapRefused.WithLabelValues(refusedTooManyStreams).Inc()
		return nil, status.Errorf(codes.ResourceExhausted,
			"raft transport: %d inbound snapshots already in progress (MaxInboundSnapshots)", a.streams)
	}
	a.streams++
	a.met.snapStreams.Set(float64(a.streams))
	return sync.OnceFunc(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.streams--
		a.met.snapStreams.Set(float64(a.streams))
	}), nil
}

// spoolReservation is the spool space one inbound snapshot holds: size
// bytes declared, written of them already on disk.
type spoolReservation struct {
	a       *snapshotAdmission
	size    int64
	written atomic.Int64
	once    sync.Once
}

// reserve admits a snapshot of size bytes against the spool budget and the
// free disk, or refuses it with codes.ResourceExhausted.
func (a *snapshotAdmission) reserve(size int64) (*spoolReservation, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if size > a.lim.SnapshotSpoolBytes-a.reserved {
		a.met.snapRefused.WithLabelValues(refusedSpoolBudget).Inc()
		return nil, status.Errorf(codes.ResourceExhausted,
			"raft transport: snapshot of %d bytes exceeds the spool budget (%d of SnapshotSpoolBytes %d in use)",
			size, a.reserved, a.lim.SnapshotSpoolBytes)
	}
	if avail, ok := a.free(a.dir); ok {
		// What the others still have to write is as good as used.
		need := size + a.lim.SnapshotDiskMarginBytes
		for r := range a.res {
			need += max(0, r.size-r.written.Load())
		}
		if need > avail {
			a.met.snapRefused.WithLabelValues(refusedDiskSpace).Inc()
			return nil, status.Errorf(codes.ResourceExhausted,
				"raft transport: snapshot of %d bytes does not fit the spool file system: %d bytes free, %d needed with SnapshotDiskMarginBytes %d and the snapshots in flight",
				size, avail, need, a.lim.SnapshotDiskMarginBytes)
		}
	}
	r := &spoolReservation{a: a, size: size}
	a.res[r] = struct{}{}
	a.reserved += size
	a.met.spoolBytes.Set(float64(a.reserved))
	return r, nil
}

// wrote records n more bytes on disk.
func (r *spoolReservation) wrote(n int) { r.written.Add(int64(n)) }

// release returns the reservation's bytes; idempotent.
func (r *spoolReservation) release() {
	r.once.Do(func() {
		a := r.a
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.res, r)
		a.reserved -= r.size
		a.met.spoolBytes.Set(float64(a.reserved))
	})
}
