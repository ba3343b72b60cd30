package redis

import "github.com/elastickv/elastickv/internal/kv"

// listKeyedPop is the op of BLPOP and BRPOP: one element from the first
// of keys that exists, replied as [key, element], or nil (kv/list.go's
// ListKeyed shape of OpListPop).
func listKeyedPop(keys [][]byte, left bool) *kv.Command {
	cmd := &kv.Command{Op: kv.OpListPop, Flags: kv.ListKeyed, Keys: keys}
	if left {
		cmd.Flags |= kv.ListLeft
	}
	return cmd
}
