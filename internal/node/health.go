package node

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/elastickv/elastickv/internal/raft"
)

// Health: /healthz, /readyz, and the failure a process exits on.
//
// /healthz answers whether the node can serve at all: it fails (503, with
// the reason in the body) for good once the Raft group stopped on a storage
// failure or an entry it cannot apply. /readyz answers whether it should be
// sent traffic now: a leader is known and this node has applied what was
// committed one sample interval ago. Both are pure functions of the node's
// state at the time of the request (the readiness target is moved by a
// sampler the node owns, never by a probe), so how often they are polled
// does not change what they answer.

// readySampleInterval is how often the readiness target moves: a node is
// ready when it has applied what was committed between one and two
// intervals ago, so a healthy node under write load stays ready and a node
// that keeps falling behind does not.
const readySampleInterval = time.Second

// readySampler moves the readiness target; started by Start, stopped by
// Close.
type readySampler struct {
	target atomic.Uint64 // commit index sampled one interval ago
	stop   chan struct{}
	done   chan struct{}
}

// startReadySampler starts the sampler. The first target is the commit
// index at start, so a restarted node is not ready before it has applied
// what it knew to be committed.
func (n *Node) startReadySampler(interval time.Duration) {
	s := &n.ready
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	prev := n.group.Status().Commit
	s.target.Store(prev)
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				cur := n.group.Status().Commit
				s.target.Store(prev)
				prev = cur
			}
		}
	}()
}

// stopReadySampler stops the sampler and waits for it; idempotent under
// Close's lock.
func (n *Node) stopReadySampler() {
	if n.ready.stop == nil {
		return
	}
	close(n.ready.stop)
	<-n.ready.done
	n.ready.stop = nil
}

// readiness is /readyz's answer for st and the sampled target.
func readiness(st raft.Status, target uint64, failure error) (bool, string) {
	switch {
	case failure != nil:
		return false, fmt.Sprintf("not ready: %v", failure)
	case st.LeaderID == 0:
		return false, fmt.Sprintf("not ready: no leader known (state=%s)", st.State)
	case st.Applied < min(target, st.Commit):
		return false, fmt.Sprintf("not ready: applied=%d behind commit=%d", st.Applied, min(target, st.Commit))
	}
	return true, fmt.Sprintf("ready: state=%s applied=%d", st.State, st.Applied)
}

// serveReadyz answers 200 while a leader is known and this node has
// applied what was committed one sample ago; 503 otherwise.
func (n *Node) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	ok, msg := readiness(n.group.Status(), n.ready.target.Load(), n.group.Err())
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = fmt.Fprintln(w, msg)
}

// serveHealthz answers 200 "ok" until the node's group has failed, then
// 503 with the error that stopped it.
func (n *Node) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if err := n.Err(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "failed: %v\n", err)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Err returns the error that stopped this node from serving (a storage
// failure, or a committed entry it cannot apply), or nil while it serves.
// A node that returns non-nil never serves again: its process must exit
// and be restarted.
func (n *Node) Err() error {
	if err := n.group.Err(); err != nil {
		return err
	}
	return n.store.Err()
}

// Failed is closed when the node stops serving for good; Err then says
// why. The server command exits non-zero on it.
func (n *Node) Failed() <-chan struct{} { return n.group.Failed() }

// reportStorageFailure is the store's OnStorageFailure: a write Pebble
// failed in the background (flush, compaction, its own WAL) stops the
// group at once rather than at the next Apply, which may never come (a
// follower with no writes) or may wedge on Pebble's write stall.
func (n *Node) reportStorageFailure(err error) {
	if g := n.served.Load(); g != nil {
		g.Fail(err)
	}
	// Before the group is open, Start checks the store's Err once it is.
}
