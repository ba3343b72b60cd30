package raft

import (
	"slices"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/elastickv/elastickv/internal/transport"
)

// Format advertisement (issue #14, section 6).
//
// Each member's record (Member.MaxFormat) states the highest log format
// its binary supports, as etcd's members advertise their versions. The
// records are replicated state, and only the leader writes MaxFormat: it
// keeps each record equal to what the member's binary advertises on the
// transport (transport.FormatObserver), and its own to Config.
// LocalMaxFormat. When one differs, the leader proposes a
// ConfChangeUpdateNode carrying the corrected record, one change at a
// time through the membership machinery (a pending or dropped change is
// simply retried on a later tick). UpdateNode changes no voter or learner
// set; every binary, including the one before format versions, applies it
// by decoding the record (unknown JSON fields are ignored) and storing it.
//
// Bootstrap records carry no MaxFormat (they read as 1), although THE
// PLAN of issue #14 had them carry the bootstrapping binary's maximum: each
// member writes its bootstrap entries itself, before any leader exists,
// so members whose binaries differ (a test node standing in for an older
// binary, or a cluster bootstrapped mid-upgrade) would write different
// records at the same log index, and the replicas' membership rows, part
// of the replicated state, would differ for good wherever no leader had
// cause to rewrite them. Left at 1, they are identical everywhere, and the
// first leader writes the true values: one UpdateNode per member, each a
// round trip, so a new cluster of N members is raised N+1 round trips
// after its first election instead of one.
//
// The node raises the cluster format only when MinMemberFormat, over the
// applied records, reaches the new version and FormatSettled says the
// leader has heard every member advertise exactly what its record says, so
// a record written by an earlier leader, or a bootstrap list that claimed
// more than a member's binary supports, cannot let the raise through.

// effectiveFormat reads a record's MaxFormat: missing (0) means 1, the
// format of the binary before adverts.
func effectiveFormat(v uint8) uint8 { return max(v, 1) }

// formatAdverts are the members' advertised maxima as the transport reports
// them; safe for concurrent use (the transport calls in from its
// goroutines).
type formatAdverts struct {
	mu sync.Mutex
	m  map[uint64]uint8
}

func (a *formatAdverts) set(id uint64, v uint8) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = make(map[uint64]uint8)
	}
	a.m[id] = v
}

func (a *formatAdverts) get(id uint64) (uint8, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok := a.m[id]
	return v, ok
}

var _ transport.FormatObserver = (*Group)(nil)

// PeerFormat implements transport.FormatObserver: peer id's binary
// advertised max. It only records it; the leader's tick acts on it.
func (g *Group) PeerFormat(id uint64, max uint8) {
	g.adverts.set(id, max)
}

// MinMemberFormat returns the lowest MaxFormat over the applied membership
// records, every voter and learner (a record without one counts as 1); 1
// when no record is known yet. Every voter and learner has a record: they
// are only ever added with one.
func (g *Group) MinMemberFormat() uint8 {
	ms := g.Status().Members
	if len(ms) == 0 {
		return 1
	}
	low := uint8(255)
	for _, m := range ms {
		low = min(low, effectiveFormat(m.MaxFormat))
	}
	return low
}

// FormatSettled reports whether every member's record agrees with what its
// binary advertises as this node last heard it (this node's own record
// with Config.LocalMaxFormat), and every other member has been heard from.
// Only meaningful on the leader, which keeps the records in line; a raise
// waits for it, so a member that is down blocks the raise, as etcd's
// cluster version waits for every member.
func (g *Group) FormatSettled() bool {
	for id, m := range g.Status().Members {
		want, ok := g.advertFor(id)
		if !ok || effectiveFormat(m.MaxFormat) != want {
			return false
		}
	}
	return true
}

// advertFor returns member id's advertised maximum: this node's own from
// its configuration, a peer's from the transport.
func (g *Group) advertFor(id uint64) (uint8, bool) {
	if id == g.id {
		if g.cfg.LocalMaxFormat == 0 {
			return 0, false
		}
		return g.cfg.LocalMaxFormat, true
	}
	return g.adverts.get(id)
}

// maybeUpdateFormats, on the leader, proposes the record of one member
// whose advertised maximum differs from its record; loop only, every tick.
func (g *Group) maybeUpdateFormats() {
	if g.conf != nil {
		return // one change at a time; retried on a later tick
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return
	}
	ids := make([]uint64, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids) // the same member first every tick
	for _, id := range ids {
		cur := g.members[id]
		adv, ok := g.advertFor(id)
		if !ok || effectiveFormat(cur.MaxFormat) == adv {
			continue
		}
		m := cur
		m.MaxFormat = adv
		cc := &raftpb.ConfChange{Type: raftpb.ConfChangeUpdateNode.Enum(), NodeId: proto.Uint64(id)}
		desc := "record max format of " + m.Name
		if err := g.startConfChange(cc, m, desc, nil); err != nil {
			g.log.Debug("member format record not proposed; retrying", "member", m.Name, "err", err)
		}
		return
	}
}
