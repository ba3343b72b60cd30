package redis

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/elastickv/elastickv/internal/kv"
)

// The registry of blocked clients (BLPOP, BLMOVE, BZPOPMIN, ...).
//
// A blocked client is a waiter queued on each of its keys, first come
// first served per key. This node learns that a key may have become
// non-empty from the apply events of its own store (KeysApplied): every
// replica applies every entry, so a push made through any node reaches the
// waiters of every node. An event on a key signals the first waiter of
// that key's queue that is not already busy; that waiter checks the key on
// the local store and, if it looks non-empty, proposes the pop. The pop's
// apply decides: if another waiter (on this node or another) got there
// first, the pop finds nothing and the waiter waits again, keeping its
// place in every queue.
//
// Invariants (under blockRegistry.mu):
//   - a waiter is in the queue of each of its keys exactly once, from
//     register to unregister, and in clients under its client id;
//   - busy: the waiter has been signalled (or is checking or popping on
//     its own initiative) and has not gone back to waiting; an event never
//     signals a busy waiter, it marks it missed instead and moves on to the
//     next waiter of the key, so two pushes serve two waiters at once;
//   - missed: an event came while the waiter was busy; the waiter checks
//     again before it waits, so an event that raced its check is never
//     lost.

// unblockMode is what CLIENT UNBLOCK asked a blocked client to do.
type unblockMode int32

const (
	unblockNone    unblockMode = iota
	unblockTimeout             // reply as if the timeout had passed
	unblockError               // reply -UNBLOCKED
)

// waiter is one blocked client.
type waiter struct {
	clientID uint64
	keys     []string        // distinct watched keys
	elems    []*list.Element // this waiter's element in each key's queue
	// wake holds at most one pending signal: an event on one of its keys
	// (or CLIENT UNBLOCK) since it last looked.
	wake chan struct{}
	// unblock is set once by CLIENT UNBLOCK (an unblockMode).
	unblock atomic.Int32

	busy, missed bool // guarded by blockRegistry.mu; see the invariants
}

// signal leaves a pending wake-up; it never blocks.
func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// blockRegistry holds the waiters of one Server.
type blockRegistry struct {
	// count is the number of registered waiters: apply events skip the
	// lock altogether while nobody is blocked.
	count atomic.Int64

	mu      sync.Mutex
	keys    map[string]*list.List // key -> FIFO of *waiter
	clients map[uint64]*waiter    // client id -> its waiter
}

// register queues a new waiter for client id on keys (duplicates are
// watched once). It starts busy: the caller checks the keys before it
// first waits. behind reports whether another waiter was already queued
// on one of the keys.
func (r *blockRegistry) register(id uint64, keys [][]byte) (w *waiter, behind bool) {
	w = &waiter{clientID: id, wake: make(chan struct{}, 1), busy: true}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = make(map[string]*list.List)
		r.clients = make(map[uint64]*waiter)
	}
	for _, k := range keys {
		ks := string(k)
		q := r.keys[ks]
		if q == nil {
			q = list.New()
			r.keys[ks] = q
		} else if w.watches(ks) {
			continue
		} else if q.Len() > 0 {
			behind = true
		}
		w.keys = append(w.keys, ks)
		w.elems = append(w.elems, q.PushBack(w))
	}
	r.clients[id] = w
	r.count.Add(1)
	return w, behind
}

// watches reports whether w already watches key (keys of one command are
// few: a linear search beats a map).
func (w *waiter) watches(key string) bool {
	for _, k := range w.keys {
		if k == key {
			return true
		}
	}
	return false
}

// unregister removes w from every queue. An event its queue position was
// owed (it was signalled and is giving up) passes to the next waiter.
func (r *blockRegistry) unregister(w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, k := range w.keys {
		q := r.keys[k]
		q.Remove(w.elems[i])
		if q.Len() == 0 {
			delete(r.keys, k)
			continue
		}
		if w.busy {
			// The key may still hold what w was woken for (w timed out,
			// was unblocked or its client left while busy): let the
			// next waiter look.
			r.signalFirstLocked(q)
		}
	}
	if r.clients[w.clientID] == w {
		delete(r.clients, w.clientID)
	}
	r.count.Add(-1)
}

// claim marks w busy before it checks its keys on its own initiative (a
// periodic re-check, a retry): events meanwhile go to the next waiter and
// mark w missed. A signal already pending is dropped, since the check
// about to run reads a state at least as new as the event behind it.
func (r *blockRegistry) claim(w *waiter) {
	r.mu.Lock()
	w.busy = true
	r.mu.Unlock()
	select {
	case <-w.wake:
	default:
	}
}

// idle puts w back to waiting after a check or a pop found nothing. It
// reports true, leaving w busy, when an event came meanwhile: the caller
// must check again before it waits.
func (r *blockRegistry) idle(w *waiter) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.missed {
		w.missed = false
		return true
	}
	w.busy = false
	return false
}

// keyChanged signals the first waiter of key that is not busy, and marks
// the busy ones before it missed.
func (r *blockRegistry) keyChanged(key []byte) {
	if q := r.keys[string(key)]; q != nil {
		r.signalFirstLocked(q)
	}
}

func (r *blockRegistry) signalFirstLocked(q *list.List) {
	for e := q.Front(); e != nil; e = e.Next() {
		w := e.Value.(*waiter)
		if w.busy {
			w.missed = true
			continue
		}
		w.busy = true
		w.signal()
		return
	}
}

// unblockClient is CLIENT UNBLOCK: it asks the blocked client id to stop
// waiting and reports whether it was blocked (and not already asked).
func (r *blockRegistry) unblockClient(id uint64, mode unblockMode) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.clients[id]
	if w == nil || !w.unblock.CompareAndSwap(int32(unblockNone), int32(mode)) {
		return false
	}
	w.signal()
	return true
}

// blockedClients is the number of clients blocked right now (INFO's
// blocked_clients).
func (r *blockRegistry) blockedClients() int64 { return r.count.Load() }

// KeysApplied hands the server the events of one committed apply chunk
// of its node's store (kv.Config.OnApplyEvents, fanned out by the node).
// It wakes the clients blocked on the keys the chunk touched. Any event
// wakes: a push, but also a RENAME or COPY onto the key, SORT ... STORE,
// or a delete (harmless: the woken client finds the key empty and waits
// again, at the cost of one local read). It runs on the applier goroutine
// and never blocks: it takes the registry's lock only when someone is
// blocked, and only signals.
func (s *Server) KeysApplied(events []kv.ApplyEvent) {
	r := &s.blocked
	if r.count.Load() == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range events {
		r.keyChanged(ev.Key)
	}
}
