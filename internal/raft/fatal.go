package raft

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A group that fails stops serving for good.
//
// Every storage write the group depends on (the WAL append and its fsync, a
// snapshot file and its fsync, the state machine's commit and sync) ends in
// setFatal when it fails, never in a log line alone: after a failed write
// or fsync the node cannot tell what reached the disk (the kernel may have
// dropped the dirty pages), so the only safe continuation is a restart that
// recovers from what is durable. A committed entry this binary cannot apply
// ends here too. Invariant: once Err is non-nil it never changes, the group
// proposes, applies and answers reads no more, and Status reports
// StateFailed.

// StateFailed is the Status.State of a group that stopped serving (Err is
// set): it is neither leader nor follower and will not become one again.
const StateFailed = "failed"

// ErrFailed matches (errors.Is) every error Err returns.
var ErrFailed = errors.New("raft group failed")

// failedError is the error a failed group returns from then on.
type failedError struct {
	group uint64
	err   error
}

func (e *failedError) Error() string {
	return fmt.Sprintf("raft group %d stopped serving: %v", e.group, e.err)
}
func (e *failedError) Unwrap() error        { return e.err }
func (e *failedError) Is(target error) bool { return target == ErrFailed }

// failureState records why the group stopped; safe for concurrent use.
type failureState struct {
	err   atomic.Pointer[failedError]
	done  chan struct{} // closed when err is set
	gauge prometheus.Gauge
}

func (f *failureState) init(reg prometheus.Registerer, group uint64) {
	f.done = make(chan struct{})
	f.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "elastickv_raft_group_failed",
		Help:        "1 once the group stopped serving after a storage failure or an entry it cannot apply; the process must be restarted.",
		ConstLabels: prometheus.Labels{"group": strconv.FormatUint(group, 10)},
	})
	if reg != nil {
		_ = reg.Register(f.gauge)
	}
}

// Err returns the error that stopped the group (a storage failure, or a
// committed entry this binary cannot apply), or nil while it is healthy.
// A group that returns non-nil never serves again: the process must be
// restarted (and recovers from its WAL) or replaced. errors.Is(err,
// ErrFailed) holds for it.
func (g *Group) Err() error {
	err := g.fatal()
	if err != nil {
		// setFatal publishes the error before it closes Failed (whoever
		// sees Failed closed must find the reason): wait out that
		// instant, so that whoever sees the reason finds Failed closed
		// too. setFatal never calls Err.
		<-g.failure.done
	}
	return err
}

// Failed is closed when the group stops serving; Err then says why. A
// process watches it to exit, so that its supervisor restarts it.
func (g *Group) Failed() <-chan struct{} { return g.failure.done }

// Fail stops the group as one of its own failed storage writes would: for
// failures found outside it, such as a write error in the state machine's
// background work (a flush or compaction) that no Apply or Sync returns.
func (g *Group) Fail(err error) {
	if err == nil {
		err = errors.New("stopped by its owner without a reason")
	}
	g.setFatal(err)
}

func (g *Group) fatal() error {
	if e := g.failure.err.Load(); e != nil {
		return e
	}
	return nil
}

// setFatal stops the group for good; the first error wins. Any goroutine.
func (g *Group) setFatal(err error) {
	fe := &failedError{group: g.cfg.GroupID, err: err}
	if !g.failure.err.CompareAndSwap(nil, fe) {
		return
	}
	// Before anything else: a lease read checks only the lease.
	g.revokeLease()
	g.failure.gauge.Set(1)
	g.metrics.isLeader.Set(0)
	g.metrics.observeRoles("", StateFailed)
	g.log.Error("raft group stopped serving; the process must restart",
		"err", err, "action", failureAdvice(err))
	close(g.failure.done)
	g.stopOnce.Do(func() { close(g.stopc) })
}

// failedCloseWait bounds how long Close waits for the applier and the
// background snapshot writer of a failed group: one of them may be parked
// for good inside the state machine, on the disk that failed (kv parks the
// Pebble goroutine that met a failed write rather than let Pebble panic).
const failedCloseWait = 3 * time.Second

// waitWorkers waits for the applier and background writers to finish;
// once the group has failed, for failedCloseWait at most.
func (g *Group) waitWorkers() {
	done := make(chan struct{})
	go func() {
		<-g.applierDone
		g.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-g.failure.done:
	}
	t := time.NewTimer(failedCloseWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.log.Warn("closing the failed group without its applier, parked on the failed disk", "waited", failedCloseWait)
	}
}

// isDiskError reports whether err says the disk, not the caller, failed.
func isDiskError(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EDQUOT)
}

// failureAdvice tells the operator what to do about err.
func failureAdvice(err error) string {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "free space on the data directory's filesystem, then restart the node: it recovers from its WAL and catches up from the leader"
	case errors.Is(err, syscall.EIO), errors.Is(err, syscall.EROFS):
		return "the disk reported an I/O error: check it (dmesg, SMART); restart the node if it is sound, replace the node (new id, empty disk) if not"
	default:
		return "restart the node: it recovers from its WAL; if it stops again with the same error, check the disk, or run a binary that can apply the entry named above"
	}
}
