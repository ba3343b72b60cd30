package node

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Active expiry: keys nobody reads again still go away.
//
// The sweeper runs on every node and acts only while its node leads and the
// cluster is at log format 2. Each tick it reads the keys due at the
// leader's read time from the expiry index and proposes their deletion in
// OpExpireIf entries. An entry names each key with the version and deadline
// the sweeper saw, and apply deletes a key only if both still match and the
// deadline has passed at the entry's apply time. A PERSIST, SET or EXPIRE
// that commits between the sweeper's read and its entry therefore wins, and
// a sweep proposed by a deposed leader deletes nothing that changed.
//
// Nothing in apply depends on the sweeper: its choices only decide which
// conditional deletions enter the log. Reads never need it either, since
// they evaluate expiry themselves; it exists to reclaim space and to make
// expired keys leave the counts.
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

// sweeper is the node's active-expiry loop; started by Start, stopped by
// Close.
type sweeper struct {
	stop chan struct{}
	done chan struct{}
	// proposed counts keys proposed for deletion; rounds counts entries.
	proposed, rounds prometheus.Counter
}

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
	if n.store.FormatVersion() < 2 || n.group.Err() != nil || n.group.Status().State != "leader" {
		return nil
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
		var (
			keys     [][]byte
			versions []keyspace.Stamp
			ats      []uint64
			bytes    int
		)
		limit := min(budget, sweepBatchKeys)
		err = n.store.ReadAt(now, func(v kv.View) error {
			keys, versions, ats, bytes = keys[:0], versions[:0], ats[:0], 0
			return v.DueKeys(limit, func(key []byte, ver keyspace.Stamp, at uint64) bool {
				keys = append(keys, append([]byte(nil), key...))
				versions = append(versions, ver)
				ats = append(ats, at)
				bytes += len(key)
				return bytes < sweepBatchBytes
			})
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		if _, err := (backend{n}).Write(ctx, kv.NewExpireIf(keys, versions, ats)); err != nil {
			return err
		}
		s.rounds.Inc()
		s.proposed.Add(float64(len(keys)))
		budget -= len(keys)
		if len(keys) < limit && bytes < sweepBatchBytes {
			return nil // nothing more is due
		}
	}
	return nil
}
