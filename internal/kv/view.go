package kv

import (
	"math/rand/v2"

	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// View is a consistent, read-only view of the user keyspace. A View is only
// valid inside the callback it was handed to; it must not be retained.
type View interface {
	// Get returns a copy of key's value and whether the key exists.
	Get(key []byte) (value []byte, found bool, err error)
	// Exists reports whether key exists.
	Exists(key []byte) (bool, error)
	// StrLen returns the length of key's string value without copying it
	// (0 and false when the key is absent); a key of another type gives an
	// error that errors.Is ErrWrongType.
	StrLen(key []byte) (n int, found bool, err error)
	// ReadString calls fn with key's string value in place, if the key
	// exists; the slice is only valid during the call, so fn copies what
	// it keeps. A key of another type gives an error that errors.Is
	// ErrWrongType, and fn is not called.
	ReadString(key []byte, fn func(val []byte)) (found bool, err error)
	// ScanKeys calls fn with every key >= start until fn returns false or
	// the keys run out: in ascending byte order at format 1, in scan order
	// (see Scan) at format 2. The key slice passed to fn is only valid
	// during the call; copy it to keep it. SCAN and KEYS use Scan, whose
	// cursor works at both formats.
	ScanKeys(start []byte, fn func(key []byte) bool) error
	// Scan calls fn with every live key that has prefix, from cursor (nil:
	// the start; otherwise what an earlier Scan returned, opaque), until
	// fn returns false or the keys run out. It returns the cursor of the
	// key fn refused, which a later Scan visits first, or nil when the
	// keys ran out. Every key present for the whole of a scan is visited
	// at least once, across a format raise too; keys come in byte order
	// within each phase (v1 rows, then each hash slot), not overall. A
	// cursor Scan did not hand out gives ErrBadCursor.
	Scan(cursor, prefix []byte, fn func(key []byte) bool) (next []byte, err error)
	// DBSize returns the number of user keys, expired ones not yet
	// deleted included (as Redis counts them). O(1) at format 2 once no
	// v1 rows remain.
	DBSize() (int64, error)
	// Format is the keyspace format the view reads (1 or 2); DBSize and
	// Counts are O(1) at 2 (plus the v1 rows not yet converted).
	Format() uint8
	// Counts returns DBSize's count and the number of keys with an expiry.
	Counts() (keys, expires uint64, err error)
	// Lookup returns what the keyspace records about key, if it is live.
	Lookup(key []byte) (KeyInfo, bool, error)
	// Now returns the view's time (Unix ms): the read time it was opened
	// at, or the store's apply time if that is later. Keys whose expiry is
	// at or before it read as missing.
	Now() uint64
	// DueKeys calls fn with up to limit keys whose expiry is at or before
	// Now, with the version and expiry the sweeper's OpExpireIf needs.
	DueKeys(limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) error
	// DueInSlot calls fn with up to limit keys of one hash slot whose
	// expiry is at or before Now, in expiry order, starting at expiry
	// from (the rows below it are skipped with one seek, so a sweeper that
	// remembers where it stopped does not step over the tombstones of the
	// rows it already deleted). It returns the expiry of the first row it
	// did not hand out (one not yet due, or the one past limit), or
	// math.MaxUint64 when the slot has no further rows.
	DueInSlot(slot uint16, from uint64, limit int, fn func(key []byte, version keyspace.Stamp, expireAt uint64) bool) (next uint64, err error)
	// RandomKey returns a copy of a key picked with rnd's draws, O(log
	// keys), and false when there are no keys. The pick is not uniform:
	// see snapView.RandomKey for its bias.
	RandomKey(rnd *rand.Rand) (key []byte, found bool, err error)
	// Collection returns key's collection if key is a live collection of
	// type t (a hash, list, set or sorted set), and false if key is
	// missing; a live key of another type gives an error that errors.Is
	// ErrWrongType. The family read functions (hash.go, set.go, zset.go,
	// list.go) decode its rows.
	Collection(key []byte, t keyspace.Type) (Coll, bool, error)
}
