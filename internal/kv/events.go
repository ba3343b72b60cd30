package kv

// Apply events (issue #14 section 5): apply reports what it did to each
// key, named as Redis's keyspace notifications name it, for notifications
// and for waking blocked clients. Nothing listens yet.
//
// Events are gathered per chunk, in log order (and within an entry, in
// the order its commands and their keys were applied), and handed to
// Config.OnApplyEvents after the chunk commits, so a listener never sees
// an event whose write could still be lost to a failed commit. With no
// listener the gathering costs one branch per event and allocates nothing.

// Event names, as Redis's keyspace notifications name them.
const (
	EventSet         = "set"
	EventDel         = "del"
	EventExpire      = "expire"
	EventExpired     = "expired"
	EventPersist     = "persist"
	EventAppend      = "append"
	EventIncrBy      = "incrby"
	EventIncrByFloat = "incrbyfloat"
	EventSetRange    = "setrange"
	EventRenameFrom  = "rename_from"
	EventRenameTo    = "rename_to"
	EventCopyTo      = "copy_to"
)

// ApplyEvent is one event of apply: Event happened to Key at log index
// Index. Key aliases the applied entry or the store's memory: it is valid
// only during the OnApplyEvents call.
type ApplyEvent struct {
	Index uint64
	Key   []byte
	Event string
}

// event records that name happened to key, if anyone listens.
func (w *writeSet) event(key []byte, name string) {
	if !w.emit {
		return
	}
	w.events = append(w.events, ApplyEvent{Index: w.entryIndex, Key: key, Event: name})
}

// deliverEvents hands the committed chunk's events to the listener.
func (s *Store) deliverEvents(w *writeSet) {
	if len(w.events) == 0 {
		return
	}
	s.cfg.OnApplyEvents(w.events)
	clear(w.events)
	w.events = w.events[:0]
}
