// Package chaos is elastickv's fault-injection harness: it runs a real
// cluster of `elastickv server` processes on loopback, routes every
// directed peer link through a fault-injecting TCP proxy, drives a Redis
// workload from concurrent clients while a nemesis kills, pauses,
// partitions and slows nodes, and then checks what the clients saw.
//
// What is checked:
//   - Linearizability of every key's history against a sequential model of
//     a Redis string (GET, SET, SET NX, INCR, APPEND, DEL), with porcupine.
//     A write whose outcome the client could not learn is allowed to take
//     effect at any later time or never; a checker timeout is a failure.
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
// Entry points: Run (used by `elastickv chaos` and the TestChaos tests),
// CheckLinearizable and WriteVisualization for saved histories.
package chaos
