package raft

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/elastickv/elastickv/internal/transport"
)

// Group is one Raft group on this node. Its exported methods are safe for
// concurrent use.
type Group struct {
	cfg     Config
	id      uint64
	log     *slog.Logger
	metrics *metrics
	inbound *inboundBudget // bytes in prioc and recvc (inbound.go)

	// Owned by the event loop goroutine.
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	wal     *wal.WAL
	members map[uint64]Member
	reads   *readState
	lease   leaseState
	// clock times the lease, read rounds and the vote gate (clock.go).
	clock *leaseClock
	// stamps is the replicated clock (stamps.go); lastPropose is when
	// this node last proposed (idle stamps), on clock. Loop only.
	stamps      *stampState
	lastPropose time.Time
	// heldCommits are the commit-only appends held back per follower, and
	// sendBuf the slice sendAsLeader fills (commitrelay.go).
	heldCommits map[uint64]*raftpb.Message
	sendBuf     []*raftpb.Message
	propBuf     []*proposal // the loop gathers the next proposal batch here (the blocking select may leave one for the next pass)
	// voteGateUntil: until then, votes for a normal campaign are dropped
	// (lease.go, voteGate). Zero for a node that started with no state.
	voteGateUntil time.Time
	// isLearner: this node is a learner in the latest applied configuration.
	isLearner bool
	// membersView is an immutable copy of members, replaced on every change,
	// so Status can hand it out without copying.
	membersView map[uint64]Member
	confState   *raftpb.ConfState
	// lastLead and lastState are what the role metrics last showed.
	lastLead  uint64
	lastState string

	propc   chan *proposal
	readc   chan *readRequest
	prioc   chan *raftpb.Message // heartbeats, votes, read-index: stepped first
	recvc   chan *raftpb.Message // everything else from peers
	reports *reportBox
	applyc  chan applyTask

	progressc    chan chan map[uint64]uint64
	ctlc         chan func()   // calls to run on the event loop (membership.go)
	conf         *pendingConf  // the unresolved membership change proposed here; loop only
	confSnapAt   atomic.Uint64 // newest applied conf change; snapshotted right after (membership.go)
	snapDone     chan localSnap
	snapIndex    atomic.Uint64 // index of the newest snapshot
	snapshotting atomic.Bool   // a snapshot file is being written
	logBytes     uint64        // entry data applied since the last snapshot began; applier only
	// ackChecked are the members this leader found recorded as having
	// acknowledged entries, or proposed a record for (acked.go); loop only.
	ackChecked map[uint64]bool
	bg         sync.WaitGroup

	// heard is when the leader last saw each peer recently active
	// (membership.go); loop only.
	heard map[uint64]time.Time

	pending *pendingProposals
	applied *appliedWaiter
	seq     atomic.Uint64
	// appliedStamp is the newest stamp applied (or restored) here: the
	// applier writes it, snapshots record it (stamps.go).
	appliedStamp atomic.Uint64

	statusMu sync.RWMutex
	status   Status

	// adverts are the peers' advertised maximum formats (format.go).
	adverts formatAdverts

	// failure is set once, when the group stops serving (fatal.go).
	failure failureState

	stopOnce    sync.Once
	stopc       chan struct{}
	loopDone    chan struct{}
	applierDone chan struct{}
}

// Status is a point-in-time view of the group for INFO, metrics and admin.
// State is StateFailed once the group has stopped serving (Err is set).
type Status struct {
	ID       uint64
	Name     string
	State    string // leader, follower, candidate, precandidate, learner, failed
	LeaderID uint64
	Term     uint64
	Commit   uint64
	Applied  uint64
	Members  map[uint64]Member
}

// Open recovers the group from cfg.Dir (or bootstraps it from cfg.Bootstrap
// when the directory is empty) and starts its goroutines.
func Open(cfg Config) (*Group, error) {
	cfg.fillBudgetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("group", cfg.GroupID)
	g := &Group{
		cfg:         cfg,
		id:          cfg.Self.ID(),
		log:         log,
		members:     make(map[uint64]Member),
		reads:       newReadState(),
		clock:       newLeaseClock(cfg.Clock),
		stamps:      newStampState(&cfg),
		propc:       make(chan *proposal, 4096),
		readc:       make(chan *readRequest, 4096),
		prioc:       make(chan *raftpb.Message, 1024),
		recvc:       make(chan *raftpb.Message, 4096),
		reports:     newReportBox(),
		applyc:      make(chan applyTask, 256),
		snapDone:    make(chan localSnap, 1),
		progressc:   make(chan chan map[uint64]uint64),
		ctlc:        make(chan func()),
		pending:     newPendingProposals(),
		heldCommits: make(map[uint64]*raftpb.Message),
		ackChecked:  make(map[uint64]bool),
		applied:     newAppliedWaiter(cfg.StateMachine.AppliedIndex()),
		stopc:       make(chan struct{}),
		loopDone:    make(chan struct{}),
		applierDone: make(chan struct{}),
	}
	g.metrics = newMetrics(cfg.Registerer, cfg.GroupID)
	g.inbound = newInboundBudget(cfg.MaxInboundBytes, cfg.Registerer, cfg.GroupID)
	g.failure.init(cfg.Registerer, cfg.GroupID)
	// Sequence numbers start at the wall clock so that entries proposed by an
	// earlier incarnation of this node, replayed after a restart, can never
	// match a proposal of this one.
	g.seq.Store(uint64(time.Now().UnixNano()))
	// Read-index request ids likewise: a response delayed across a restart
	// must not complete a new read with an old index.
	g.reads.seq = uint64(time.Now().UnixNano())

	disk, err := openDisk(&cfg, log)
	if err != nil {
		return nil, err
	}
	g.wal, g.storage = disk.wal, disk.storage
	if disk.snap != nil {
		g.snapIndex.Store(disk.snap.meta.GetIndex())
	}
	_, g.confState, _ = g.storage.InitialState()
	g.applied.advance(cfg.StateMachine.AppliedIndex())
	if err := g.loadStamps(); err != nil {
		_ = g.wal.Close()
		return nil, err
	}

	// Peers known from the state machine's last applied membership; entries
	// replayed below may update them.
	if err := g.loadMembers(); err != nil {
		_ = g.wal.Close()
		return nil, err
	}
	rc := &raft.Config{
		ID:              g.id,
		ElectionTick:    cfg.electionTicks(),
		HeartbeatTick:   1,
		Storage:         g.storage,
		MaxSizePerMsg:   cfg.MaxSizePerMsg,
		MaxInflightMsgs: cfg.MaxInflightMsgs,
		// The transport's replication lane is shared by every group on a
		// peer; bounding bytes in flight keeps one group's catch-up from
		// queueing far ahead of the others.
		MaxInflightBytes:          uint64(cfg.MaxInflightMsgs) * cfg.MaxSizePerMsg / 4,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{log},
	}
	g.rn, err = raft.NewRawNode(rc)
	if err != nil {
		_ = g.wal.Close()
		return nil, fmt.Errorf("start raft node: %w", err)
	}
	if disk.fresh {
		if err := g.bootstrap(); err != nil {
			_ = g.wal.Close()
			return nil, err
		}
	} else {
		// See voteGate: this node may have acknowledged a leader's lease
		// round just before it went down.
		g.voteGateUntil = g.clock.now().at.Add(cfg.ElectionTimeout)
		if len(g.members) == 0 {
			// A joined node restarted before it learned the membership.
			g.contactJoinMembers()
		}
	}
	g.updateStatus()
	cfg.Transport.Register(cfg.GroupID, g)
	go g.runApplier()
	go g.run()
	return g, nil
}

func (g *Group) bootstrap() error {
	if g.cfg.Join {
		g.contactJoinMembers()
		g.log.Info("joining a running cluster; waiting for the leader's log or snapshot", "members", len(g.cfg.JoinMembers))
		return nil
	}
	if len(g.cfg.Bootstrap) == 0 {
		return fmt.Errorf("data directory %s is empty and no initial peers were given", g.cfg.Dir)
	}
	peers := make([]raft.Peer, 0, len(g.cfg.Bootstrap))
	self := false
	for _, m := range g.cfg.Bootstrap {
		ctx, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode member %s: %w", m.Name, err)
		}
		peers = append(peers, raft.Peer{ID: m.ID(), Context: ctx})
		self = self || m.Name == g.cfg.Self.Name
		g.addMember(m)
	}
	if !self {
		return fmt.Errorf("bootstrap peers do not include this node %q", g.cfg.Self.Name)
	}
	if err := g.rn.Bootstrap(peers); err != nil {
		return fmt.Errorf("bootstrap raft: %w", err)
	}
	return nil
}

func (g *Group) loadMembers() error {
	ms, err := readMembers(g.cfg.StateMachine)
	if err != nil {
		return err
	}
	for _, m := range ms {
		g.addMember(m)
	}
	return nil
}

// addMember records m and makes it reachable; event loop (or Open) only.
func (g *Group) addMember(m Member) {
	g.members[m.ID()] = m
	g.refreshMembersView()
	if pn, ok := g.cfg.Transport.(PeerNamer); ok {
		pn.NamePeer(m.ID(), m.Name)
	}
	if m.ID() != g.id {
		g.cfg.Transport.AddPeer(m.ID(), m.Addr)
	}
}

func (g *Group) removeMember(id uint64) {
	delete(g.members, id)
	delete(g.heldCommits, id) // nobody to tell any more
	g.refreshMembersView()
	if id != g.id {
		g.cfg.Transport.RemovePeer(id)
	}
}

// ID returns this node's Raft id.
func (g *Group) ID() uint64 { return g.id }

// Propose replicates payload and returns the state machine's result for it
// once the entry is applied on this node. It fails fast with a
// *NotLeaderError on a follower. If ctx ends first, the entry may still be
// applied later: the outcome is unknown to the caller.
func (g *Group) Propose(ctx context.Context, payload []byte) (any, error) {
	if err := g.fatal(); err != nil {
		return nil, err
	}
	if err := g.CheckPayloadSize(len(payload)); err != nil {
		return nil, err
	}
	if len(payload) == 0 {
		// An empty payload would reach the state machine as a command
		// that does not decode, and stop every replica.
		return nil, errors.New("raft: empty proposal")
	}
	st := g.Status()
	if st.State != "leader" {
		return nil, &NotLeaderError{LeaderID: st.LeaderID}
	}
	p := &proposal{seq: g.seq.Add(1), done: make(chan proposalResult, 1)}
	p.buf = newProposalBuf(g.id, p.seq, payload)
	g.pending.add(p)
	start := time.Now()
	select {
	case g.propc <- p:
	case <-ctx.Done():
		g.pending.cancel(p.seq)
		return nil, ctx.Err()
	case <-g.stopc:
		g.pending.cancel(p.seq)
		return nil, ErrStopped
	}
	select {
	case r := <-p.done:
		if r.err != nil {
			g.metrics.proposalsFailed.Inc()
		} else {
			g.metrics.proposeLatency.Observe(time.Since(start).Seconds())
		}
		return r.value, r.err
	case <-ctx.Done():
		g.pending.cancel(p.seq)
		g.metrics.proposalsFailed.Inc()
		return nil, fmt.Errorf("proposal outcome unknown: %w", ctx.Err())
	case <-g.stopc:
		return nil, ErrStopped
	}
}

// ReadIndex returns once this node's state machine reflects every write
// acknowledged before the call: it obtains a read index from the leader
// (batched with concurrent callers) and waits until it is applied here.
// It is ReadAt without the read time.
//
// In ReadModeLease a leader holding its lease skips the round (lease.go).
func (g *Group) ReadIndex(ctx context.Context) error {
	_, err := g.ReadAt(ctx)
	return err
}

// ReadAt is ReadIndex that also returns the read time R, Unix
// milliseconds, at which the caller must evaluate expiry (stamps.go): the
// time the leader computed for this read, or with stamping off the wall
// clock. With stamping on, R never decreases across reads that do not
// overlap, on any nodes, and no entry applied after the state the read
// sees applies at a time below R. The state machine evaluates at
// max(R, its apply time): until the first stamp commits, R is small.
func (g *Group) ReadAt(ctx context.Context) (uint64, error) {
	if err := g.fatal(); err != nil {
		return 0, err // not even under a lease: this node's state may be behind its own log
	}
	if g.cfg.ReadMode == ReadModeLease {
		if idx, r, ok := g.leaseRead(g.clock.now()); ok {
			g.metrics.leaseReads.Inc()
			return r, g.applied.wait(ctx, idx, g.stopc)
		}
	}
	g.metrics.readIndexReads.Inc()
	for {
		if err := g.fatal(); err != nil {
			return 0, err
		}
		r := &readRequest{done: make(chan readResult, 1)}
		select {
		case g.readc <- r:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-g.stopc:
			return 0, ErrStopped
		}
		var res readResult
		select {
		case res = <-r.done:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-g.stopc:
			return 0, ErrStopped
		}
		if errors.Is(res.err, ErrNoLeader) {
			// Wait a beat for an election to settle rather than spinning.
			select {
			case <-time.After(g.cfg.HeartbeatInterval):
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
			case <-g.stopc:
				return 0, ErrStopped
			}
		}
		if res.err != nil {
			return 0, res.err
		}
		return res.time, g.applied.wait(ctx, res.index, g.stopc)
	}
}

// AppliedIndex returns the index of the last entry applied on this node.
func (g *Group) AppliedIndex() uint64 { return g.applied.get() }

// Status returns the group's current status.
func (g *Group) Status() Status {
	g.statusMu.RLock()
	defer g.statusMu.RUnlock()
	s := g.status
	s.Applied = g.applied.get()
	if g.fatal() != nil {
		// The loop may have published a role just before it stopped: a
		// failed group leads nothing and follows no one.
		s.State, s.LeaderID = StateFailed, 0
	}
	return s
}

// Members returns the current membership.
func (g *Group) Members() map[uint64]Member { return g.Status().Members }

// Step implements transport.Handler. Heartbeat-class messages go to their own
// queue, which the event loop drains first, so a flood of MsgApp cannot
// delay them. Queues never block the transport: an overflowing message is
// dropped, which Raft tolerates (it retransmits).
func (g *Group) Step(m *raftpb.Message) error {
	q := g.recvc
	if transport.IsPriority(m.GetType()) {
		q = g.prioc
	}
	n := msgBytes(m)
	if !g.inbound.admit(n) {
		return fmt.Errorf("raft group %d: inbound queue holds its byte budget (%d bytes)", g.cfg.GroupID, g.inbound.max)
	}
	select {
	case q <- m:
		return nil
	case <-g.stopc:
		g.inbound.release(n)
		return ErrStopped
	default:
		g.inbound.release(n)
		g.metrics.inboundDropped.Inc()
		return fmt.Errorf("raft group %d: inbound queue full", g.cfg.GroupID)
	}
}

// ReportUnreachable implements transport.Handler.
func (g *Group) ReportUnreachable(peer uint64) { g.reports.postUnreachable(peer) }

// ReportSnapshot implements transport.Handler.
func (g *Group) ReportSnapshot(peer uint64, st raft.SnapshotStatus) {
	g.reports.postSnapshot(peer, st)
}

// Close stops the group and waits for its goroutines. Pending proposals and
// reads fail with ErrStopped.
func (g *Group) Close() error {
	g.stopOnce.Do(func() { close(g.stopc) })
	<-g.loopDone
	g.waitWorkers() // fatal.go: bounded once the group has failed
	g.cfg.Transport.Unregister(g.cfg.GroupID)
	g.pending.failAll(ErrStopped)
	if err := g.wal.Close(); err != nil {
		return fmt.Errorf("close wal: %w", err)
	}
	return g.fatal()
}

func (g *Group) refreshMembersView() {
	v := make(map[uint64]Member, len(g.members))
	for id, m := range g.members {
		v[id] = m
	}
	g.membersView = v
}

// FirstIndex is the first log index still held in memory (entries before it
// were compacted into a snapshot).
func (g *Group) FirstIndex() (uint64, error) { return g.storage.FirstIndex() }

// MatchIndexes returns, on the leader, the highest log index each member is
// known to have durably acknowledged (0 for one that never acknowledged
// anything this term), and nil on any other node.
func (g *Group) MatchIndexes(ctx context.Context) (map[uint64]uint64, error) {
	reply := make(chan map[uint64]uint64, 1)
	select {
	case g.progressc <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.stopc:
		return nil, ErrStopped
	}
	select {
	case m := <-reply:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-g.stopc:
		return nil, ErrStopped
	}
}
