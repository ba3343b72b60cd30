package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Format advertisement (issue #14, section 6).
//
// Every stream this binary opens carries, in its gRPC request metadata,
// the highest log format version the binary supports (Config.LocalMaxFormat);
// every stream it serves answers with the same value in its response
// header, sent as soon as the stream is accepted. So each side learns the
// other's maximum: the receiver from the metadata before it reads a frame,
// the sender from the header before it writes one (after the raise only,
// see below).
//
// Compatibility: the binary before format versions (commit e75b20e) reads
// only x-elastickv-from and x-elastickv-lane and ignores other metadata,
// and never asks for a response header; the batch frame itself is
// unchanged (its version byte is checked strictly by that binary, so the
// advert cannot live there). A peer that advertises nothing supports
// format 1.
//
// Refusal: once the cluster format (SetClusterFormat) is above 1, a peer
// whose advertised maximum is below it, or that advertised nothing, would
// apply entries it cannot decode. The transport then drops every message
// from such a peer and sends it nothing: an outbound stream is only used
// after the peer's response header proved it supports the cluster format
// (an old binary sends no header until the stream ends, so the wait is
// bounded by DialTimeout and then counts as "nothing"). Each dropped
// message counts in elastickv_transport_format_refused_total{peer}, and
// the first refusal of a peer is logged at Error; it is logged again only
// after the peer once advertised enough.

// mdMaxFormat is the metadata key of the advert, in both directions.
const mdMaxFormat = "x-elastickv-max-format"

// maxFormatPeers bounds the advert table. Inbound adverts are keyed by the
// stream's x-elastickv-from, which comes off the wire: past the bound, an
// id that is not a configured peer is not recorded.
const maxFormatPeers = 1024

// errNoAdvert: an outbound stream ended before the peer's header.
var errNoAdvert = errors.New("stream ended before the peer's header")

// errFormatRefused: the peer does not support the cluster format.
var errFormatRefused = errors.New("peer does not support the cluster format")

// FormatObserver is an optional capability of a Handler: it hears each
// peer's advertised maximum format whenever the transport learns it for
// the first time or it changes (a peer restarted with another binary).
// A peer that connected without an advert is reported as 1. On Register,
// a FormatObserver is told every advert already known. PeerFormat follows
// the Handler rules: it must return at once and must not call back into
// the transport's peer management.
type FormatObserver interface {
	PeerFormat(id uint64, max uint8)
}

// peerFormat is what the transport knows of one peer's advert.
type peerFormat struct {
	max uint8
	// refusalLogged: the peer's current refusal was logged; cleared when
	// it advertises enough, so a later regression is logged again.
	refusalLogged bool
}

// parseFormat reads an advert from metadata; absent or malformed means 1
// (the binary before adverts), and 0 is not a format.
func parseFormat(md metadata.MD) uint8 {
	v := md.Get(mdMaxFormat)
	if len(v) == 0 {
		return 1
	}
	n, err := strconv.ParseUint(v[0], 10, 8)
	if err != nil || n == 0 {
		return 1
	}
	return uint8(n)
}

// parseStreamFormat reads the advert of an inbound stream.
func parseStreamFormat(ss grpc.ServerStream) uint8 {
	md, _ := metadata.FromIncomingContext(ss.Context())
	return parseFormat(md)
}

// countEnvelopes counts the messages of a refused frame, for the refusal
// counter; a malformed frame counts as what decoded before the fault, at
// least one.
func countEnvelopes(frame []byte) int {
	n := 0
	_ = decodeBatch(frame, func(envelope) error { n++; return nil })
	return max(n, 1)
}

// advertPairs returns the metadata pairs that advertise this binary's
// maximum, none when LocalMaxFormat is 0 (a test stand-in for the binary
// before adverts).
func (t *GRPC) advertPairs() []string {
	if t.cfg.LocalMaxFormat == 0 {
		return nil
	}
	return []string{mdMaxFormat, strconv.FormatUint(uint64(t.cfg.LocalMaxFormat), 10)}
}

// sendAdvertHeader answers an inbound stream with this binary's maximum.
// An error only means the stream is already gone, which its reads report.
func (t *GRPC) sendAdvertHeader(ss grpc.ServerStream) {
	if p := t.advertPairs(); p != nil {
		_ = ss.SendHeader(metadata.Pairs(p...))
	}
}

// SetClusterFormat tells the transport the cluster's format version. It
// only rises: a lower value is ignored (the version is never lowered).
// From a value above 1 on, peers that do not support it are refused.
func (t *GRPC) SetClusterFormat(v uint8) {
	for {
		cur := t.clusterFormat.Load()
		if uint32(v) <= cur {
			return
		}
		if t.clusterFormat.CompareAndSwap(cur, uint32(v)) {
			t.cfg.Logger.Info("raft transport: cluster format raised; peers below it are refused",
				slog.Int("cluster_format", int(v)))
			return
		}
	}
}

// ClusterFormat returns what SetClusterFormat last raised it to (0 unset).
func (t *GRPC) ClusterFormat() uint8 { return uint8(t.clusterFormat.Load()) }

// PeerFormat returns peer id's advertised maximum and whether one is known.
func (t *GRPC) PeerFormat(id uint64) (uint8, bool) {
	t.fmtMu.Lock()
	defer t.fmtMu.Unlock()
	f, ok := t.formats[id]
	return f.max, ok
}

// refuses reports whether a peer advertising max must be refused now.
func (t *GRPC) refuses(max uint8) bool {
	c := t.clusterFormat.Load()
	return c > 1 && uint32(max) < c
}

// notePeerFormat records peer id's advert and tells every FormatObserver
// when it is new or changed.
func (t *GRPC) notePeerFormat(id uint64, max uint8) {
	if id == 0 || id == t.cfg.LocalID {
		return
	}
	// t.mu before fmtMu, never both: Send holds t.mu while reading
	// the peer's advert.
	t.mu.RLock()
	p := t.peers[id]
	if p != nil {
		p.advert.Store(uint32(max))
	}
	t.mu.RUnlock()
	t.fmtMu.Lock()
	cur, ok := t.formats[id]
	if ok && cur.max == max {
		t.fmtMu.Unlock()
		return
	}
	if !ok && len(t.formats) >= maxFormatPeers && p == nil {
		t.fmtMu.Unlock()
		return
	}
	t.formats[id] = peerFormat{max: max, refusalLogged: cur.refusalLogged && t.refuses(max)}
	t.fmtMu.Unlock()
	t.cfg.Logger.Info("raft transport: peer advertised its maximum log format",
		slog.String("peer", t.cfg.peerName(id)), slog.Int("max_format", int(max)))
	t.groupsMu.RLock()
	var obs []FormatObserver
	for _, h := range t.groups {
		if o, ok := h.(FormatObserver); ok {
			obs = append(obs, o)
		}
	}
	t.groupsMu.RUnlock()
	for _, o := range obs {
		o.PeerFormat(id, max)
	}
}

// replayFormats tells a newly registered observer every advert known.
func (t *GRPC) replayFormats(o FormatObserver) {
	t.fmtMu.Lock()
	known := make(map[uint64]uint8, len(t.formats))
	for id, f := range t.formats {
		known[id] = f.max
	}
	t.fmtMu.Unlock()
	for id, m := range known {
		o.PeerFormat(id, m)
	}
}

// forgetPeerFormat drops a removed peer's advert.
func (t *GRPC) forgetPeerFormat(id uint64) {
	t.fmtMu.Lock()
	delete(t.formats, id)
	t.fmtMu.Unlock()
}

// refuse counts n messages dropped because peer id advertised max, below
// the cluster format, and logs the first such drop of the peer at Error.
func (t *GRPC) refuse(id uint64, max uint8, n int, direction string) {
	name := t.formatPeerLabel(id)
	t.met.formatRefused.WithLabelValues(name).Add(float64(n))
	t.fmtMu.Lock()
	f, ok := t.formats[id]
	first := ok && !f.refusalLogged
	if first {
		f.refusalLogged = true
		t.formats[id] = f
	}
	t.fmtMu.Unlock()
	if first {
		t.cfg.Logger.Error("raft transport: peer does not support the cluster's log format; refusing its messages and sending it none (upgrade its binary)",
			slog.String("peer", t.cfg.peerName(id)), slog.Int("peer_max_format", int(max)),
			slog.Int("cluster_format", int(t.ClusterFormat())), slog.String("direction", direction))
	}
}

// formatPeerLabel names id for the refusal counter: configured peers by
// name, any other id (it came off the wire) as "unknown", which keeps the
// label set bounded.
func (t *GRPC) formatPeerLabel(id uint64) string {
	t.mu.RLock()
	p, ok := t.peers[id]
	t.mu.RUnlock()
	if ok {
		return p.name
	}
	return "unknown"
}

// checkStreamFormat waits for the response header of a stream this node
// opened and refuses the peer if it does not support the cluster format.
// Before the raise it returns at once: nothing needs refusing, and waiting
// on a peer that sends no header would delay every stream to it. The wait
// is bounded by wd (DialTimeout): a peer that sends no header by then is a
// binary without adverts (it would send one only when the stream ends),
// which counts as format 1.
func (t *GRPC) checkStreamFormat(p *peer, cs grpc.ClientStream, wd *watchdog) error {
	if t.clusterFormat.Load() <= 1 {
		return nil
	}
	wd.arm(t.cfg.DialTimeout)
	md, err := cs.Header()
	fired := !wd.disarm()
	if err != nil && !fired {
		return fmt.Errorf("read peer %s's format advert: %w", p.name, err)
	}
	if !fired && len(md.Get(mdMaxFormat)) == 0 {
		// The stream ended before any header (e.g. the peer's transport
		// is closing): that says nothing about its binary, which, if it
		// predates adverts, keeps the stream open without a header.
		return fmt.Errorf("read peer %s's format advert: %w", p.name, errNoAdvert)
	}
	max := parseFormat(md)
	t.notePeerFormat(p.id, max)
	if t.refuses(max) {
		return fmt.Errorf("%w: peer %s supports format %d, the cluster is at %d",
			errFormatRefused, p.name, max, t.ClusterFormat())
	}
	if fired {
		return fmt.Errorf("read peer %s's format advert: %w (none within %s)", p.name, context.DeadlineExceeded, t.cfg.DialTimeout)
	}
	return nil
}

// newFormatRefusedCounter builds elastickv_transport_format_refused_total.
func newFormatRefusedCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "elastickv_transport_format_refused_total",
		Help: "Raft messages dropped, inbound or outbound, because the peer does not support the cluster's log format (it advertised a lower maximum, or none).",
	}, []string{"peer"})
}
