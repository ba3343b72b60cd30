package node

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Active expiry: keys nobody reads again still go away.
//
// The sweeper runs on every node and acts only while its node leads and the
// cluster is at log format 2. Each tick it reads, at the leader's read time,
// the due keys of the hash slots whose hint says something may be due, and
// proposes their deletion in OpExpireIf entries. An entry names each key
// with the version and deadline the sweeper saw, and apply deletes a key
// only if both still match and the deadline has passed at the entry's
// apply time. A PERSIST, SET or EXPIRE that commits between the sweeper's
// read and its entry therefore wins, and a sweep proposed by a deposed
// leader deletes nothing that changed.
//
// Nothing in apply depends on the sweeper: its choices only decide which
// conditional deletions enter the log. Reads never need it either, since
// they evaluate expiry themselves; it exists to reclaim space and to make
// expired keys leave the counts.
//
// The hints (docs/keyspace.md, "Expiry index: per slot") are node-local:
// per slot, the earliest expiry that may be in its index (next) and the
// expiry below which every row is known to be gone (from). A tick visits
// only the slots whose next has come, and seeks each from its from, so
// neither an idle keyspace nor the tombstones of rows already swept cost a
// scan. A hint may be too low (a wasted seek), never too high while it
// matters:
//   - every hint starts at 0 (visit, from the start) when the node starts
//     and whenever it leads in a new term, so a new leader makes one full
//     pass (a snapshot installed while following sends no events);
//   - an apply event that can add an expiry row to a slot (expire,
//     rename_to, copy_to) resets that slot's hints to 0 on every node;
//   - a visit raises next to the first expiry it did not hand out, and,
//     once the proposal deleting what it handed out is applied, raises from
//     to the last expiry it handed out: a key handed out is then gone,
//     either deleted by the entry or changed (and its row rewritten) by the
//     write that made the condition fail;
//   - a visit raises a slot's hints only if no event reset them since the
//     visit read them (a generation count per slot), and a failed proposal
//     raises nothing.
//
// The rate bound: at most Config.ExpireSweepRate keys a second, in entries
// of at most sweepBatchKeys keys and sweepBatchBytes of key bytes, so a
// million keys expiring at once become a steady trickle of small entries
// that interleave with client writes instead of one entry that stalls them.

const (
	// sweepInterval is the sweeper's tick.
	sweepInterval = 100 * time.Millisecond
	// sweepBatchKeys bounds the keys of one OpExpireIf entry.
	sweepBatchKeys = 512
	// sweepBatchBytes bounds the key bytes of one OpExpireIf entry.
	sweepBatchBytes = 1 << 20
	// DefaultExpireSweepRate is the default Config.ExpireSweepRate.
	DefaultExpireSweepRate = 20000
	// sweepTimeout bounds one sweep's read and proposal.
	sweepTimeout = 5 * time.Second
)

// sweepHints are the per-slot hints; mu guards them (the applier's event
// callback and the sweeper's loop both write them).
type sweepHints struct {
	mu   sync.Mutex
	next [keyspace.SlotCount]uint64
	from [keyspace.SlotCount]uint64
	gen  [keyspace.SlotCount]uint32
}

// reset makes every slot due for a visit from its first row.
func (h *sweepHints) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.next {
		h.next[i], h.from[i] = 0, 0
		h.gen[i]++
	}
}

// onApplyEvents is kv's Config.OnApplyEvents: an event that can add an
// expiry row to a slot resets that slot's hints. It runs on the applier
// goroutine and only takes the hints' lock.
func (h *sweepHints) onApplyEvents(events []kv.ApplyEvent) {
	locked := false
	for _, ev := range events {
		switch ev.Event {
		case kv.EventExpire, kv.EventRenameTo, kv.EventCopyTo:
		default:
			continue
		}
		if !locked {
			h.mu.Lock()
			locked = true
		}
		s := keyspace.HashSlot(ev.Key)
		h.next[s], h.from[s] = 0, 0
		h.gen[s]++
	}
	if locked {
		h.mu.Unlock()
	}
}

// visit is what one slot's visit found, for raising its hints.
type visit struct {
	slot       uint16
	gen        uint32
	next, last uint64 // first expiry not handed out; last one handed out
}

// sweeper is the node's active-expiry loop; started by Start, stopped by
// Close.
type sweeper struct {
	stop  chan struct{}
	done  chan struct{}
	hints *sweepHints
	// term is the term the node last swept as leader in (loop only), 0
	// when it did not lead at the previous tick.
	term uint64
	// cursor is the slot the next tick's visits start at (loop only), so
	// that a budget spent early does not always favour low slots.
	cursor uint16
	// proposed counts keys proposed for deletion; rounds counts entries.
	proposed, rounds prometheus.Counter
}

// newSweepHints returns the hints kv's event callback feeds; Start creates
// them before it opens the store.
func newSweepHints() *sweepHints { return &sweepHints{} }

func (n *Node) startSweeper() {
	if n.cfg.ExpireSweepRate < 0 {
		return
	}
	s := &n.sweep
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	s.proposed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "elastickv_expire_sweep_keys_total",
		Help: "Expired keys this node, as leader, proposed to delete (each deleted only if unchanged since).",
	})
	s.rounds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "elastickv_expire_sweep_entries_total",
		Help: "Conditional-delete entries the expiry sweeper proposed.",
	})
	n.reg.MustRegister(s.proposed, s.rounds)
	rate := n.cfg.ExpireSweepRate
	if rate <= 0 {
		rate = DefaultExpireSweepRate
	}
	perTick := max(1, int(int64(rate)*int64(sweepInterval)/int64(time.Second)))
	go func() {
		defer close(s.done)
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if err := n.sweepOnce(s, perTick); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Debug("expiry sweep", "err", err)
			}
		}
	}()
}

func (n *Node) stopSweeper() {
	if n.sweep.stop == nil {
		return
	}
	close(n.sweep.stop)
	<-n.sweep.done
	n.sweep.stop = nil
}

// sweepOnce proposes the deletion of up to budget due keys.
func (n *Node) sweepOnce(s *sweeper, budget int) error {
	st := n.group.Status()
	if n.store.FormatVersion() < kv.FormatV2 || n.group.Err() != nil || st.State != "leader" {
		s.term = 0
		return nil
	}
	if st.Term != s.term {
		// Newly leading, or leading again in a later term (between two
		// ticks the node may have followed and installed a snapshot,
		// which sends no apply events): a pass from scratch is cheap and
		// needs no argument about the hints kept meanwhile.
		s.hints.reset()
		s.term = st.Term
	}
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	// A copy: stopSweeper clears s.stop once the loop (and this call) has
	// returned, while this goroutine may still be selecting.
	stop := s.stop
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for budget > 0 {
		now, err := n.group.ReadAt(ctx)
		if err != nil {
			return err
		}
		keys, versions, ats, visits, full, err := n.collectDue(s, now, min(budget, sweepBatchKeys))
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if _, err := (backend{n}).Write(ctx, kv.NewExpireIf(keys, versions, ats)); err != nil {
				return err
			}
			s.rounds.Inc()
			s.proposed.Add(float64(len(keys)))
		}
		s.raise(visits)
		budget -= len(keys)
		if !full {
			return nil // every slot whose hint had come was visited
		}
	}
	return nil
}

// collectDue visits the slots whose hint has come, from the cursor on,
// and gathers up to limit due keys (and sweepBatchBytes of key bytes). full
// says it stopped because the batch was full, before visiting every slot.
func (n *Node) collectDue(s *sweeper, now uint64, limit int) (keys [][]byte, versions []keyspace.Stamp, ats []uint64, visits []visit, full bool, err error) {
	type plan struct {
		slot uint16
		gen  uint32
		from uint64
	}
	var plans []plan
	h := s.hints
	h.mu.Lock()
	for i := range keyspace.SlotCount {
		slot := uint16((int(s.cursor) + i) % keyspace.SlotCount)
		if h.next[slot] <= now {
			plans = append(plans, plan{slot: slot, gen: h.gen[slot], from: h.from[slot]})
		}
	}
	h.mu.Unlock()
	if len(plans) == 0 {
		return nil, nil, nil, nil, false, nil
	}
	err = n.store.ReadAt(now, func(v kv.View) error {
		// Read may run this twice (kv's live view, then a snapshot).
		keys, versions, ats, visits, full = keys[:0], versions[:0], ats[:0], visits[:0], false
		bytes := 0
		for _, p := range plans {
			if len(keys) >= limit || bytes >= sweepBatchBytes {
				full = true
				s.cursor = p.slot
				return nil
			}
			vis := visit{slot: p.slot, gen: p.gen, last: p.from}
			next, err := v.DueInSlot(p.slot, p.from, limit-len(keys), func(key []byte, ver keyspace.Stamp, at uint64) bool {
				keys = append(keys, append([]byte(nil), key...))
				versions = append(versions, ver)
				ats = append(ats, at)
				vis.last = at
				bytes += len(key)
				return bytes < sweepBatchBytes
			})
			if err != nil {
				return err
			}
			vis.next = next
			visits = append(visits, vis)
		}
		return nil
	})
	return keys, versions, ats, visits, full, err
}

// raise raises the visited slots' hints once what they handed out is
// deleted (the proposal returned), unless an event reset a slot since.
func (s *sweeper) raise(visits []visit) {
	h := s.hints
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range visits {
		if h.gen[v.slot] != v.gen {
			continue
		}
		// next is math.MaxUint64 when the slot has no rows left: only an
		// event (which resets it) can add one.
		h.from[v.slot], h.next[v.slot] = v.last, v.next
	}
}
