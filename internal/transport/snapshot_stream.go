package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/grpcraw"
)

// castagnoli is the CRC-32C table: hardware-accelerated on amd64 and
// arm64, so checksumming keeps up with the network.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// newCRC returns the payload checksum of the Snapshot stream.
func newCRC() hash.Hash32 { return crc32.New(castagnoli) }

// sendSnapshot transfers one MsgSnap and reports the outcome to its group:
// SnapshotFinish only once the receiver verified and accepted the payload,
// SnapshotFailure for anything else.
func (l *lane) sendSnapshot(m outMsg) {
	h := l.t.handler(m.group)
	if h == nil {
		// Nobody to send for or report to: the group is gone.
		l.met.errors.Inc()
		return
	}
	err := errBackoff
	if !time.Now().Before(l.retryAt) {
		err = l.streamSnapshot(m, h)
	}
	if err != nil {
		l.met.errors.Inc()
		l.t.met.snapshots.WithLabelValues("send", "error").Inc()
		if !errors.Is(err, errBackoff) && l.p.ctx.Err() == nil {
			if isNetworkFailure(err) {
				// Back off only when the peer looks unreachable; a refused
				// or corrupt snapshot says nothing about the lane, which in
				// the two-lane layout also carries replication.
				l.noteFailure()
			}
			l.t.log.logf(slog.LevelWarn, logKey{event: "snapshot-send", peer: l.p.id, lane: l.kind}, "raft transport: snapshot transfer failed",
				slog.String("peer", l.p.name), slog.String("lane", l.kind.String()), slog.Uint64("group", m.group), slog.Any("err", err))
		}
		h.ReportSnapshot(l.p.id, raft.SnapshotFailure)
		return
	}
	l.backoff = 0
	l.t.met.snapshots.WithLabelValues("send", "ok").Inc()
	h.ReportSnapshot(l.p.id, raft.SnapshotFinish)
}

// isNetworkFailure reports whether err means the peer could not be reached
// or stopped reading, as opposed to a refusal or a local error.
func isNetworkFailure(err error) bool {
	if errors.Is(err, errSendStalled) || errors.Is(err, errPeerClosed) {
		return true
	}
	code := status.Code(err)
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// streamSnapshot runs one Snapshot RPC: header, chunks, trailer, then waits
// for the receiver's ack. Every network call is bounded by the watchdog;
// reading the payload is not (a SnapshotStore may be slow), but it is
// interrupted by closing the reader when the peer or transport goes away.
func (l *lane) streamSnapshot(om outMsg, h Handler) error {
	cfg := &l.t.cfg
	m := new(raftpb.Message)
	if err := proto.Unmarshal(om.data, m); err != nil {
		return fmt.Errorf("decode queued MsgSnap: %w", err)
	}
	ctx, cancel := context.WithCancel(l.p.ctx)
	defer cancel()

	var (
		payload io.Reader
		size    int64
	)
	if store, ok := h.(SnapshotStore); ok {
		rc, n, err := store.OpenSnapshot(m)
		if err != nil {
			return fmt.Errorf("open snapshot payload (group %d, index %d): %w", om.group, m.GetSnapshot().GetMetadata().GetIndex(), err)
		}
		closeReader := sync.OnceFunc(func() {
			if err := rc.Close(); err != nil {
				l.t.cfg.Logger.Debug("raft transport: closing snapshot payload", slog.Any("err", err))
			}
		})
		defer closeReader()
		// A blocked Read must not pin the worker once the peer is gone.
		stopClose := context.AfterFunc(ctx, closeReader)
		defer stopClose()
		payload, size = rc, n
	} else {
		data := m.GetSnapshot().GetData()
		payload, size = bytes.NewReader(data), int64(len(data))
		if m.Snapshot != nil {
			m.Snapshot.Data = nil // travels as chunks
		}
	}
	if size < 0 {
		return fmt.Errorf("snapshot payload size %d is negative", size)
	}
	hdrMsg, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("marshal MsgSnap header: %w", err)
	}

	cc, err := l.conn.get()
	if err != nil {
		return err
	}
	ctx = metadata.AppendToOutgoingContext(ctx, append([]string{
		mdFrom, strconv.FormatUint(cfg.LocalID, 10), mdLane, l.kind.String()}, l.t.advertPairs()...)...)
	wd := newWatchdog(cancel)
	defer wd.disarm()
	call := func(what string, d timeoutSpec, fn func() error) error {
		wd.arm(d.d)
		err := fn()
		if !wd.disarm() {
			return fmt.Errorf("%s: %w for %s (%s): %v", what, errSendStalled, d.d, d.name, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	dial := timeoutSpec{"DialTimeout", cfg.DialTimeout}
	send := timeoutSpec{"SendTimeout", cfg.SendTimeout}

	var cs grpc.ClientStream
	if err := call("open snapshot stream to "+l.conn.address(), dial, func() (err error) {
		cs, err = cc.NewStream(ctx, &serviceDesc.Streams[streamSnapshot], methodSnapshot)
		return err
	}); err != nil {
		return err
	}
	if err := l.t.checkStreamFormat(l.p, cs, wd); err != nil {
		if errors.Is(err, errFormatRefused) {
			l.t.refuse(l.p.id, uint8(l.p.advert.Load()), 1, "outbound")
		}
		return err
	}
	sendFrame := func(what string, b []byte) error {
		return call(what, send, func() error { return sendOrStatus(cs, b) })
	}
	hdr := encodeSnapshotHeader(snapshotHeader{group: om.group, sentAt: om.queued.UnixNano(), size: size, msg: hdrMsg})
	if err := sendFrame("send snapshot header", hdr); err != nil {
		return err
	}

	crc := newCRC()
	var sent int64
	for {
		// A fresh buffer per chunk: gRPC may still hold the previous one.
		buf := make([]byte, 1+cfg.SnapshotChunkBytes)
		buf[0] = snapChunk
		n, rerr := io.ReadFull(payload, buf[1:])
		if n > 0 {
			if sent+int64(n) > size {
				return fmt.Errorf("snapshot payload longer than the declared %d bytes", size)
			}
			if l.t.limiter != nil {
				if err := l.t.limiter.WaitN(ctx, n); err != nil {
					return fmt.Errorf("snapshot rate limit: %w", err)
				}
			}
			crc.Write(buf[1 : 1+n])
			if err := sendFrame("send snapshot chunk", buf[:1+n]); err != nil {
				return err
			}
			sent += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("read snapshot payload: %w (%v)", ctx.Err(), rerr)
			}
			return fmt.Errorf("read snapshot payload: %w", rerr)
		}
	}
	if sent != size {
		return fmt.Errorf("snapshot payload ended at %d of the declared %d bytes", sent, size)
	}
	if err := sendFrame("send snapshot trailer", encodeSnapshotTrailer(crc.Sum32(), uint64(sent))); err != nil {
		return err
	}
	ack := new(grpcraw.Frame)
	if err := call("wait for snapshot ack", timeoutSpec{"SnapshotAckTimeout", cfg.SnapshotAckTimeout}, func() error {
		if err := cs.CloseSend(); err != nil {
			return err
		}
		return cs.RecvMsg(ack)
	}); err != nil {
		return err
	}
	if len(ack.Data) != 1 || ack.Data[0] != snapAck {
		return fmt.Errorf("unexpected snapshot ack %q", ack.Data)
	}
	return nil
}

// timeoutSpec is a deadline and the Config field it comes from, for errors.
type timeoutSpec struct {
	name string
	d    time.Duration
}

// sendOrStatus sends one frame; when the server already ended the stream
// (io.EOF), it returns the server's status instead, which says why.
func sendOrStatus(cs grpc.ClientStream, b []byte) error {
	err := cs.SendMsg(&grpcraw.Frame{Data: b})
	if errors.Is(err, io.EOF) {
		if rerr := cs.RecvMsg(&grpcraw.Frame{}); rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
		return errors.New("stream closed by peer")
	}
	return err
}

// serveSnapshot is the server side of one Snapshot RPC.
func (t *GRPC) serveSnapshot(ss grpc.ServerStream) error {
	select {
	case <-t.done:
		return status.Error(codes.Unavailable, "raft transport closed")
	default:
	}
	from, _ := streamOrigin(ss)
	t.sendAdvertHeader(ss)
	if adv := parseStreamFormat(ss); t.refuses(adv) {
		t.notePeerFormat(from, adv)
		t.refuse(from, adv, 1, "inbound")
		return status.Errorf(codes.FailedPrecondition, "raft transport: this cluster is at log format %d and your binary supports at most %d", t.ClusterFormat(), adv)
	}
	release, err := t.admit.acquireStream()
	if err != nil {
		// Refused before reading a frame: the sender's next write or its
		// wait for the ack returns this status, and its group hears
		// SnapshotFailure.
		t.met.snapshots.WithLabelValues("receive", "error").Inc()
		t.log.logf(slog.LevelWarn, logKey{event: "snapshot-refused", peer: from}, "raft transport: inbound snapshot refused",
			slog.String("peer", t.cfg.peerName(from)), slog.Any("err", err))
		return err
	}
	defer release()
	frames, stop := recvFrames(ss)
	defer stop()
	idle := time.NewTimer(t.cfg.SnapshotIdleTimeout)
	defer idle.Stop()
	next := func() ([]byte, error) {
		select {
		case <-t.done:
			return nil, status.Error(codes.Unavailable, "raft transport closed")
		case <-idle.C:
			return nil, status.Errorf(codes.DeadlineExceeded, "no snapshot frame for %s", t.cfg.SnapshotIdleTimeout)
		case r := <-frames:
			idle.Reset(t.cfg.SnapshotIdleTimeout)
			return r.data, r.err
		}
	}
	if err := t.receiveSnapshot(next); err != nil {
		t.met.snapshots.WithLabelValues("receive", "error").Inc()
		t.met.inbound.WithLabelValues(inboundSnapshotError).Inc()
		t.log.logf(slog.LevelWarn, logKey{event: "snapshot-receive", peer: from}, "raft transport: inbound snapshot rejected",
			slog.String("peer", t.cfg.peerName(from)), slog.Any("err", err))
		if _, ok := status.FromError(err); ok {
			return err
		}
		return status.Errorf(codes.InvalidArgument, "raft transport: %v", err)
	}
	t.met.snapshots.WithLabelValues("receive", "ok").Inc()
	return ss.SendMsg(&grpcraw.Frame{Data: []byte{snapAck}})
}

// receiveSnapshot spools one snapshot to a file, verifies it and hands it
// to the group. On any error the spool file is removed and nothing is
// stepped.
func (t *GRPC) receiveSnapshot(next func() ([]byte, error)) error {
	first, err := next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: snapshot stream ended before its header", errMalformed)
		}
		return err
	}
	hdr, err := decodeSnapshotHeader(first)
	if err != nil {
		return err
	}
	m := new(raftpb.Message)
	if err := proto.Unmarshal(hdr.msg, m); err != nil {
		return fmt.Errorf("%w: unmarshal MsgSnap: %v", errMalformed, err)
	}
	switch {
	case m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil:
		return fmt.Errorf("%w: snapshot stream carries %s", errMalformed, m.GetType())
	case m.GetTo() != t.cfg.LocalID:
		return fmt.Errorf("snapshot for node %d delivered to node %d", m.GetTo(), t.cfg.LocalID)
	}
	h := t.handler(hdr.group)
	if h == nil {
		t.met.inbound.WithLabelValues(inboundUnknownGroup).Inc()
		return status.Errorf(codes.NotFound, "raft transport: unknown group %d", hdr.group)
	}
	store, isStore := h.(SnapshotStore)
	if !isStore && hdr.size > int64(t.cfg.MaxMessageBytes) {
		// This payload is read back into memory and stepped as one message.
		t.met.snapRefused.WithLabelValues(refusedTooLarge).Inc()
		return status.Errorf(codes.ResourceExhausted, "raft transport: in-memory snapshot of %d bytes exceeds MaxMessageBytes %d",
			hdr.size, t.cfg.MaxMessageBytes)
	}
	// The declared size is checked against the budget and the free disk
	// before the spool file exists; spool then refuses a byte beyond it.
	res, err := t.admit.reserve(hdr.size)
	if err != nil {
		return err
	}
	defer res.release()

	// The spool file's name is chosen here, never by the sender.
	f, err := os.CreateTemp(t.cfg.SpoolDir, spoolFilePrefix+"*"+spoolFileSuffix)
	if err != nil {
		return status.Errorf(codes.ResourceExhausted, "create snapshot spool file: %v", err)
	}
	path := f.Name()
	keep := false
	defer func() {
		if !keep {
			_ = f.Close() // may already be closed; the file goes anyway
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.cfg.Logger.Warn("raft transport: removing snapshot spool file", slog.String("path", path), slog.Any("err", err))
			}
		}
	}()
	if err := spool(f, hdr.size, res, next); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync snapshot spool file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close snapshot spool file: %w", err)
	}

	if isStore {
		keep = true // the store owns the file now, even if it fails
		if err := store.ReceiveSnapshot(m, path); err != nil {
			if rerr := os.Remove(path); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				t.cfg.Logger.Warn("raft transport: removing refused snapshot", slog.String("path", path), slog.Any("err", rerr))
			}
			return status.Errorf(codes.Aborted, "group %d refused snapshot: %v", hdr.group, err)
		}
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read back snapshot spool file: %w", err)
	}
	m.Snapshot.Data = data
	if err := h.Step(m); err != nil {
		return status.Errorf(codes.Aborted, "group %d refused snapshot: %v", hdr.group, err)
	}
	return nil
}

// spool copies chunks into f until the trailer, then checks length and
// checksum against the header and trailer.
func spool(f *os.File, size int64, res *spoolReservation, next func() ([]byte, error)) error {
	var (
		crc     = newCRC()
		written int64
	)
	for {
		fr, err := next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: snapshot truncated at %d of %d bytes", errMalformed, written, size)
			}
			return err
		}
		if len(fr) == 0 {
			return fmt.Errorf("%w: empty snapshot frame", errMalformed)
		}
		switch fr[0] {
		case snapChunk:
			chunk := fr[1:]
			if written+int64(len(chunk)) > size {
				return fmt.Errorf("%w: snapshot exceeds its declared %d bytes", errMalformed, size)
			}
			if _, err := f.Write(chunk); err != nil {
				return status.Errorf(codes.ResourceExhausted, "write snapshot spool file: %v", err)
			}
			crc.Write(chunk)
			written += int64(len(chunk))
			res.wrote(len(chunk))
		case snapTrailer:
			sum, length, err := decodeSnapshotTrailer(fr)
			if err != nil {
				return err
			}
			if length != uint64(written) || written != size {
				return fmt.Errorf("%w: snapshot length mismatch: header %d, trailer %d, received %d", errMalformed, size, length, written)
			}
			if got := crc.Sum32(); got != sum {
				return status.Errorf(codes.DataLoss, "snapshot checksum mismatch: sender %08x, received %08x", sum, got)
			}
			return nil
		default:
			return fmt.Errorf("%w: unknown snapshot frame kind %q", errMalformed, fr[0])
		}
	}
}
