// Package chaos is elastickv's fault-injection harness: it runs a real
// cluster of `elastickv server` processes on loopback, routes every
// directed peer link through a fault-injecting TCP proxy, drives a Redis
// workload from concurrent clients while a nemesis kills, pauses,
// partitions and slows nodes, and then checks what the clients saw.
//
// What is checked:
//   - Linearizability of every register key's history ("chaos:k<i>")
//     against a sequential model of a Redis string (GET, SET, SET NX,
//     INCR, APPEND, DEL, and SET PX, PEXPIRE, PERSIST, PTTL), with
//     porcupine. A write whose outcome the client could not learn is
//     allowed to take effect at any later time or never; a checker timeout
//     is a failure. The TTLs set on these keys (10 minutes plus twice the
//     run) never fire during the run, so the model tracks only whether a
//     key has one: PERSIST's and PEXPIRE's 1/0 and PTTL's -2/-1/"time
//     left" are checked linearizably, PTTL's exact value only against the
//     TTL set.
//   - Linearizability of the collection keys' histories ("chaos:h<i>",
//     "chaos:s<i>", "chaos:l<i>", "chaos:z<i>", Config.CollectionKeys of
//     each), in the same porcupine check: a model whose state per key is
//     the hash (HSET, HGET, HDEL, HGETALL), set (SADD, SREM, SPOP, whose
//     random member makes the model nondeterministic, SMEMBERS),
//     list (LPUSH, RPOP, LRANGE with Redis's index rules) or sorted set
//     (ZADD, ZREM, ZSCORE, ZPOPMIN, ZRANGE WITHSCORES), with DEL on all
//     four and Redis's rule that an emptied collection is gone. Each key
//     keeps one type, so WRONGTYPE fails the check; HGETALL and SMEMBERS
//     replies are compared as unordered, duplicates included
//     (collections.go).
//   - The job queue (issue #16, queue.go): producers RPUSH elements unique
//     in the run, consumers on every node take them with BLPOP or BLMOVE
//     to a done list, and CheckQueue accounts for each element: popped
//     exactly once, still queued, or in the done list; an acknowledged
//     element found nowhere must be matched by a BLPOP of unknown outcome
//     (counted as maybe-popped), one each; never popped twice, never a
//     phantom, never popped before it was pushed, and FIFO per producer.
//   - Expiry, on the expiry keys ("chaos:x<i>", Config.ExpiryKeys): SET PX
//     and PEXPIRE with TTLs of 100-500 or 1000-3000 ms, PERSIST, plain
//     SET, DEL, GET and PTTL, every SET with a value of its own.
//     CheckExpiry enforces
//     issue #14's invariant, "once any node has reported a key as expired,
//     no node returns it later; expiry may come late by the skew bound,
//     never undone", and that nothing acknowledged is lost, per key:
//     no revival (a value or key seen gone never comes back without a
//     write that could bring it); no early expiry (a read that surely
//     follows a SET PX or PEXPIRE with nothing possibly between, and ends
//     a skew before the TTL counted from the write's invocation, sees the
//     key, and a SET's value); no late expiry (a GET invoked twice the
//     skew after every TTL that could govern the value, counted from
//     those writes' returns, does not see it); PERSIST that replied 1
//     keeps the key, without TTL, until a later write; PTTL is -1 exactly
//     when the governing write left no TTL, and never exceeds the TTL
//     set. Writes to these keys stop the longest TTL plus twice the skew
//     before the end, so the last seconds of reads and the final reads
//     after the heal find every TTL certainly passed or certainly not.
//     The skew bound (Config.ExpirySkew, 1 s) covers raft's stamp Δ (500
//     ms, by which stamps and read times may run ahead of the clock after
//     a leader change), a second leader change soon after, and the clocks
//     of one machine; expiry.go states the time model in full. Every rule
//     is sound against unknown outcomes: such a write may apply at any
//     time after its invocation, or never.
//   - The transaction workloads (issue #17; txn.go, cas.go, lock.go),
//     recorded as TxnOps in a history of their own: MULTI/INCR/INCR/EXEC
//     on pairs of keys, whose every read (MGET, MULTI/GET/GET/EXEC) must
//     show both equal, whose acknowledged EXECs reply two equal values no
//     other EXEC got, and whose final values lie between the acknowledged
//     EXECs and those plus the unknown ones (CheckTxn); a WATCH
//     check-and-set counter that loses no increment and aborts only when
//     another commit may have applied (CheckCAS); a lock taken with SET NX
//     PX and released by a Lua compare-and-delete, whose holders' certain
//     intervals never overlap and whose fencing values follow the order
//     of acquisition (CheckLock). Each counter involved must only grow in
//     real time and never exceed the increments sent (checkCounter).
//   - No acknowledged write is lost: after the final heal, every key is read
//     through every node and those reads are part of the checked history.
//   - Replicas converge: with writes stopped, every node reports the same
//     DEBUG DIGEST (applied index and state hash).
//   - Availability: after each fault heals, every node serves a write and a
//     linearizable read again within Config.RecoveryBound.
//   - No node process dies unless the harness killed it.
//   - No node reports a data race: a server built with -race (BuildServer
//     does so whenever the test binary has it) writes race reports to its
//     log, and Run fails on any (RaceReports).
//
// Links are per direction: proxy i->j carries the connections node i opens
// to node j (through the server's --peer-dial), in both byte directions,
// while cluster membership keeps the real addresses. Cutting i->j therefore
// stops what i sends on its own connections to j, and leaves j->i alone.
//
// Config.Workloads picks which workloads run: the register and expiry
// keys ("registers"), the collection keys ("collections"), the queue
// ("queue"), and the transaction workloads ("txn", "cas", "lock"); the
// first three by default (`elastickv chaos --workload all` runs all six),
// minus any whose commands the binary lacks (Report.Unsupported).
//
// Entry points: Run (used by `elastickv chaos` and the TestChaos tests),
// CheckLinearizable, CheckExpiry, CheckQueue, CheckTxn, CheckCAS,
// CheckLock and WriteVisualization for saved histories (history.json,
// txn-history.json).
package chaos
