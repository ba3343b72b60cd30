package raft

import (
	"sync/atomic"
	"time"
)

// Clock is where the lease and ReadIndex code read the time, so tests can
// pause it and make it jump. Production uses MonotonicClock.
//
// Config.WallClock is a Clock too: stamps (stamps.go) read its absolute
// value, as Unix milliseconds, because they are compared across nodes and
// restarts; tests inject one to put a node's clock behind or step it back.
type Clock interface {
	// Now returns the current time. As Config.Clock, only differences
	// between readings are used, never their wall-clock value; as
	// Config.WallClock, only the wall-clock value.
	Now() time.Time
}

// MonotonicClock is the production Clock: time.Now, whose readings carry
// Go's monotonic clock reading, so their differences ignore steps of the
// wall clock (NTP, an operator) and include time the process was stopped.
type MonotonicClock struct{}

// Now returns time.Now().
func (MonotonicClock) Now() time.Time { return time.Now() }

// instant is a clock reading and the epoch it was taken in.
type instant struct {
	at    time.Time
	epoch uint64
}

// leaseClock wraps the configured Clock for the lease and read code. It
// detects a reading earlier than one already taken (a clock that went
// backwards, which the monotonic clock never does, but an injected one or
// a broken platform might) and starts a new epoch. A lease grant is valid
// only in the epoch of the reading its round started at, so a backward
// jump ends the lease instead of stretching it: the time measured across
// the jump is unknown, and a lease measured in it could outlive the
// followers' promise not to vote (lease.go).
//
// Invariant: readings of one epoch never decrease, in the order now()
// calls return them.
type leaseClock struct {
	src  Clock
	base time.Time
	// latest is the newest reading, in nanoseconds after base.
	latest atomic.Int64
	// epoch counts the backward jumps seen.
	epoch atomic.Uint64
}

func newLeaseClock(src Clock) *leaseClock {
	if src == nil {
		src = MonotonicClock{}
	}
	return &leaseClock{src: src, base: src.Now()}
}

// now reads the clock. Safe for concurrent use; on the lease read path, so
// it takes no lock.
func (c *leaseClock) now() instant {
	for {
		// The epoch and the newest reading are loaded before the clock is
		// read. With a monotonic source, any reading stored in latest
		// was then taken before ours, so ours is never smaller and no
		// false jump is seen, however the goroutines interleave. And a
		// reading tagged with an epoch was taken after that epoch began,
		// never before a jump that ended it.
		e := c.epoch.Load()
		seen := c.latest.Load()
		t := c.src.Now()
		d := int64(t.Sub(c.base))
		if d >= seen {
			if d == seen || c.latest.CompareAndSwap(seen, d) {
				return instant{at: t, epoch: e}
			}
			continue // a concurrent reading moved latest: read again
		}
		// The clock went backwards: later readings are measured from here,
		// in a new epoch.
		if c.latest.CompareAndSwap(seen, d) {
			return instant{at: t, epoch: c.epoch.Add(1)}
		}
	}
}

// currentEpoch is the epoch of the newest reading.
func (c *leaseClock) currentEpoch() uint64 { return c.epoch.Load() }
