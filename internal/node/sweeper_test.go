package node

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// TestSweepHints: a visit raises a slot's hints; an event that can add an
// expiry row resets them, and a visit that read them before the event
// does not raise them over it.
func TestSweepHints(t *testing.T) {
	h := newSweepHints()
	s := &sweeper{hints: h}
	slot := keyspace.HashSlot([]byte("k"))
	require.Zero(t, h.next[slot], "a new node visits every slot")

	s.raise([]visit{{slot: slot, gen: h.gen[slot], next: 500, last: 100}})
	require.Equal(t, uint64(500), h.next[slot])
	require.Equal(t, uint64(100), h.from[slot])

	// Events that cannot add an expiry row leave the hints alone.
	h.onApplyEvents([]kv.ApplyEvent{{Key: []byte("k"), Event: kv.EventSet}, {Key: []byte("k"), Event: kv.EventDel}})
	require.Equal(t, uint64(500), h.next[slot])

	stale := h.gen[slot]
	h.onApplyEvents([]kv.ApplyEvent{{Key: []byte("k"), Event: kv.EventExpire}})
	require.Zero(t, h.next[slot])
	require.Zero(t, h.from[slot])
	s.raise([]visit{{slot: slot, gen: stale, next: math.MaxUint64, last: 400}})
	require.Zero(t, h.next[slot], "a visit from before the event does not raise the hint")

	for _, ev := range []string{kv.EventRenameTo, kv.EventCopyTo} {
		s.raise([]visit{{slot: slot, gen: h.gen[slot], next: math.MaxUint64, last: 400}})
		require.Equal(t, uint64(math.MaxUint64), h.next[slot])
		h.onApplyEvents([]kv.ApplyEvent{{Key: []byte("k"), Event: ev}})
		require.Zero(t, h.next[slot], ev)
	}

	s.raise([]visit{{slot: slot, gen: h.gen[slot], next: math.MaxUint64}})
	h.reset()
	require.Zero(t, h.next[slot], "a new leader makes a full pass")
}
