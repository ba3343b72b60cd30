// Package redis is elastickv's RESP front door: it accepts Redis clients on
// every node, parses their commands and executes them against a Backend,
// which replicates writes through Raft and serves linearizable reads.
//
// The package knows nothing about Raft. A write becomes one kv.Command handed
// to Backend.Write; a read runs inside Backend.Read against a kv.View. The
// reply is whatever the state machine produced, so every node answers a
// command the same way whether or not it leads.
//
// Invariants:
//   - A command is validated completely (arity, options, integer arguments,
//     argument size) before anything is proposed: a refused command never
//     reaches the Raft log.
//   - Every Backend call carries a context bounded by Config.RequestTimeout,
//     and is cancelled when the Server closes, so no client waits forever and
//     Close never waits on a stuck proposal.
//   - TRYAGAIN, which clients retry on their own, is only sent when retrying
//     is safe: a read, or a write the Backend reports as not applied. A write
//     that timed out is answered as of unknown outcome.
//   - Memory is bounded however big the keyspace or the client: the framing
//     guard (limits.go) refuses a command larger than Config.MaxCommandBytes
//     (client-query-buffer-limit) before it is buffered, and makes redcon
//     drain its read buffer once it holds half that much, so the buffer
//     stays within a few times the limit; MGET
//     and KEYS refuse to gather a reply larger than the same bound; pending
//     replies are bounded per client (client-output-buffer-limit) and every
//     write has a deadline; all clients' buffers together are bounded by
//     maxmemory-clients, which closes the largest clients first; maxclients
//     bounds the connections (clients.go). SCAN examines at most COUNT keys
//     per call and keeps a bounded table of cursors.
//   - Nothing a client sends can panic the server: parsers check lengths and
//     ranges instead of relying on recover.
//   - Commands of one connection run one at a time, in the order they
//     arrived, so pipelined replies come back in order.
//
// Key expiry (EX, PX, EXAT, PXAT, EXPIRE, TTL...) is not supported yet: SET
// refuses the expiry options with an explicit error instead of silently
// storing a key that never expires. KEEPTTL is accepted because, with no
// expiry in the keyspace, keeping the TTL is exactly what a plain SET does.
package redis
