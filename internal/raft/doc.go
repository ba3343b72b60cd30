// Package raft runs one Raft group: a go.etcd.io/raft RawNode, its durable
// log (the etcd WAL), and the hand-off of committed entries to a state
// machine.
//
// Goroutines and their jobs:
//
//   - the event loop (loop.go) owns the RawNode. It ticks, steps inbound
//     messages (heartbeats, votes and read-index traffic first, from their own
//     queue), takes proposals and read requests, persists each Ready to the
//     WAL, sends messages and hands committed entries to the applier. Nothing
//     else touches the RawNode. As leader it holds back appends that only
//     carry a new commit index until the next append carries it
//     (commitrelay.go).
//   - the applier (apply.go) applies committed entries to the state machine
//     and completes proposals and reads; beside it, in sync mode, a syncer
//     fsyncs the state machine at most every StateMachineSyncInterval. Both
//     run off the event loop so a slow disk in the state machine never
//     delays a heartbeat.
//
// Invariants:
//   - Entries and HardState of a Ready are durable in the WAL before any
//     message of that Ready that depends on them is sent (a leader may send
//     its MsgApps first: Raft thesis §10.2.1 lets the leader write its log in
//     parallel with replication, since it counts itself only after the write).
//   - Committed entries reach the applier in log order, exactly once per
//     process lifetime; after a restart they are replayed from the last
//     snapshot and the state machine skips what it already holds.
//   - A proposal completes only after its entry was applied on this node, with
//     the state machine's result; if its entry is overwritten by another
//     leader's entry, it completes with ErrProposalLost instead.
package raft
