package redis

import "github.com/elastickv/elastickv/internal/kv"

// The non-blocking list ops a blocking command proposes on each attempt.
// STAND-IN: the list family's ops (internal/kv/list.go) are not on main
// yet; these use their announced numbers and flags and are replaced by
// the named constants once they land.
const (
	standinOpListPop  kv.Op = 61
	standinOpListMove kv.Op = 62

	standinListLeft    = 1 << 0
	standinListMulti   = 1 << 3
	standinListKeyed   = 1 << 4
	standinListDstLeft = 1 << 5
)

// listKeyedPop pops one element from the first of keys that exists:
// [key, element], or nil (BLPOP, BRPOP).
func listKeyedPop(keys [][]byte, left bool) *kv.Command {
	var f kv.SetFlags = standinListKeyed
	if left {
		f |= standinListLeft
	}
	return &kv.Command{Op: standinOpListPop, Flags: f, Keys: keys}
}

// listMultiPop pops up to count elements from the first of keys that
// exists: [key, [elements]], or nil (BLMPOP).
func listMultiPop(keys [][]byte, left bool, count int64) *kv.Command {
	var f kv.SetFlags = standinListMulti
	if left {
		f |= standinListLeft
	}
	return &kv.Command{Op: standinOpListPop, Flags: f, Delta: count, Keys: keys}
}

// listMove moves one element from src to dst: the element, or nil
// (BLMOVE, BRPOPLPUSH).
func listMove(src, dst []byte, fromLeft, toLeft bool) *kv.Command {
	var f kv.SetFlags
	if fromLeft {
		f |= standinListLeft
	}
	if toLeft {
		f |= standinListDstLeft
	}
	return &kv.Command{Op: standinOpListMove, Flags: f, Keys: [][]byte{src, dst}}
}
