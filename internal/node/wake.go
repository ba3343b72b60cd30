package node

import "github.com/elastickv/elastickv/internal/kv"

// onApplyEvents is kv's Config.OnApplyEvents: it fans each committed
// chunk's apply events out to the expiry sweeper's hints and to the Redis
// server's blocked clients (redis.Server.KeysApplied). It runs on the
// applier goroutine under the store's apply lock, so neither listener may
// block: both only take a short lock and signal.
//
// Every replica applies every entry, so a client blocked on any node
// learns of a push made through any other node when its own store applies
// it; that is what lets a blocking pop wait on a follower.
func (n *Node) onApplyEvents(events []kv.ApplyEvent) {
	n.sweep.hints.onApplyEvents(events)
	if s := n.keyWatcher.Load(); s != nil {
		s.KeysApplied(events)
	}
}
