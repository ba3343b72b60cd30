package kv

import "math/rand/v2"

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
	// ScanKeys calls fn with every key >= start in ascending byte order until
	// fn returns false or the keys run out. The key slice passed to fn is only
	// valid during the call; copy it to keep it.
	ScanKeys(start []byte, fn func(key []byte) bool) error
	// DBSize returns the number of user keys.
	DBSize() (int64, error)
	// RandomKey returns a copy of a key picked with rnd's draws, O(log
	// keys), and false when there are no keys. The pick is not uniform:
	// see snapView.RandomKey for its bias.
	RandomKey(rnd *rand.Rand) (key []byte, found bool, err error)
}
