// Package kv is elastickv's state machine: it applies committed Raft entries
// to a Pebble database and serves reads from it.
//
// Keyspace layout inside Pebble (one byte prefix per family, so new families
// such as hashes or sharding metadata can be added without migration):
//
//	'm' + name  state-machine metadata: applied index, key count, and opaque
//	            blobs owned by the Raft layer (membership)
//	'u' + key   a user key; the value is a type byte ('s' for string) + data
//
// Invariants:
//   - The applied index is written in the same Pebble batch as the effects of
//     the entries it covers, so after any crash Pebble holds exactly the
//     effects of entries 1..applied. Apply skips entries at or below applied,
//     which makes replaying the log after a crash a no-op for what survived.
//   - Entries applied in one batch see each other's writes (indexed batch).
//   - Apply is deterministic: its result depends only on the prior state and
//     the entry, never on time, randomness or local configuration, so every
//     replica computes the same state and the same replies.
package kv
