// Package commands holds the facts of every Redis command and subcommand:
// name, arity, flags, ACL categories, key specifications, tips, the
// version that introduced it and its group. The facts are generated from
// the Redis command reference (facts_gen.go, see gen/) and describe Redis
// 7.2, whether or not elastickv implements the command; the server's own
// table (package redis) says which it implements.
//
// Invariants: the table never changes after init; every Spec's Name is
// lowercase, "container|sub" for a subcommand; FirstKey, LastKey, Step,
// the movablekeys flag and the implied ACL categories are derived from
// the generated facts the way Redis derives them, so COMMAND reports what
// Redis 7.2 reports.
package commands

//go:generate go run ./gen -ref ../../../../shared/redis-commands/commands -out facts_gen.go
