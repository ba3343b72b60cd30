package config

import (
	"math"
	"time"
)

// Names of the parameters other packages read, so a typo fails to compile.
const (
	MaxClients             = "maxclients"
	Timeout                = "timeout"
	ClientQueryBufferLimit = "client-query-buffer-limit"
	ClientOutputLimit      = "client-output-buffer-limit"
	MaxMemoryClients       = "maxmemory-clients"
	ProtoMaxBulkLen        = "proto-max-bulk-len"
	Port                   = "port"
	Bind                   = "bind"
)

// maxSeconds bounds durations in seconds so that they fit a time.Duration.
const maxSeconds = math.MaxInt64 / int64(time.Second)

// Table is elastickv's parameter table. Defaults here are the defaults of
// the `elastickv server` flags, which are generated from this table.
func Table() []Param {
	return []Param{
		// Client limits (issue 13), node-local and mutable: each node
		// bounds its own clients.
		{Name: MaxClients, Kind: Int, Default: "10000", Min: 1, Max: 1 << 30, Mutable: true, Flag: MaxClients,
			Usage: "most Redis clients connected at once; one more is answered \"-ERR max number of clients reached\" and closed"},
		{Name: Timeout, Kind: Seconds, Default: "0", Min: 0, Max: maxSeconds, Mutable: true, Flag: Timeout,
			Usage: "close a Redis client that sends nothing for this many seconds; 0 means never"},
		{Name: ClientQueryBufferLimit, Kind: Bytes, Default: "65mb", Min: 1, Max: 1 << 40, Mutable: true, Flag: ClientQueryBufferLimit,
			Usage: "largest command, and most unexecuted input, one client may send (e.g. 64mb); the default follows --max-value-bytes: 4 x it + 1mb"},
		{Name: ClientOutputLimit, Kind: OutputLimit, Default: "normal 128mb 1mb 60", Mutable: true, Flag: ClientOutputLimit,
			Usage: "\"[normal] <hard> <soft> <seconds>\" or one size (the hard limit): a client whose unsent replies would pass hard is closed; past soft the server waits for the client to read, at most seconds; 0 disables each"},
		// Scripting (issue 17), node-local: it decides only when this
		// node answers BUSY while its applier runs a script, never apply.
		{Name: "busy-reply-threshold", Aliases: []string{"lua-time-limit"}, Kind: Int, Default: "5000", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: MaxMemoryClients, Kind: Bytes, Default: "512mb", Min: 0, Max: 1 << 62, Mutable: true, Flag: MaxMemoryClients,
			Usage: "all Redis clients' input and output buffers together; past it the largest clients are closed; 0 means no limit"},

		// Read-only facts of the node, present because clients and tools
		// read them (redis-benchmark reads save and appendonly).
		{Name: ProtoMaxBulkLen, Kind: Bytes, Default: "16mb", Min: 1, Max: 1 << 40}, // --max-value-bytes
		{Name: Port, Kind: Int, Default: "6381", Min: 0, Max: 65535},                // from --redis-addr
		{Name: Bind, Kind: String, Default: "127.0.0.1"},                            // from --redis-addr
		{Name: "databases", Kind: Int, Default: "1", Min: 1, Max: 1},                // database 0 only, as Redis Cluster
		{Name: "appendonly", Kind: Bool, Default: "no"},                             // durability is the Raft log, not an AOF
		{Name: "save", Kind: String, Default: ""},                                   // no RDB snapshots
		{Name: "maxmemory", Kind: Bytes, Default: "0", Min: 0, Max: 0},              // no eviction of keys
		{Name: "maxmemory-policy", Kind: Enum, Default: "noeviction", Enum: []string{"noeviction"}},
		{Name: "cluster-enabled", Kind: Bool, Default: "no"},
		{Name: "daemonize", Kind: Bool, Default: "no"}, // a supervisor runs the process

		// Replicated parameters, declared for the keyspace issue: apply
		// will depend on them, so they must change through the log on
		// every replica at once. CONFIG SET refuses them until the log
		// carries configuration entries.
		{Name: "active-expire-effort", Kind: Int, Default: "1", Min: 1, Max: 10, Mutable: true, Scope: Replicated},

		// Redis's small-encoding limits. elastickv stores every collection
		// as one row per element whatever its size (lists: elements at
		// sequence numbers, docs/keyspace.md), so these decide only the
		// name OBJECT ENCODING answers (kv's encoding.go), on the node
		// asked: they are local, and apply never reads them (Redis's own
		// tests set them).
		{Name: "hash-max-listpack-entries", Aliases: []string{"hash-max-ziplist-entries"}, Kind: Int, Default: "128", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "hash-max-listpack-value", Aliases: []string{"hash-max-ziplist-value"}, Kind: Int, Default: "64", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "list-max-listpack-size", Aliases: []string{"list-max-ziplist-size"}, Kind: Int, Default: "-2", Min: math.MinInt32, Max: math.MaxInt32, Mutable: true}, // Redis takes any int and reads below -5 as -5
		{Name: "list-compress-depth", Kind: Int, Default: "0", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "set-max-intset-entries", Kind: Int, Default: "512", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "set-max-listpack-entries", Kind: Int, Default: "128", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "set-max-listpack-value", Kind: Int, Default: "64", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "zset-max-listpack-entries", Aliases: []string{"zset-max-ziplist-entries"}, Kind: Int, Default: "128", Min: 0, Max: math.MaxInt32, Mutable: true},
		{Name: "zset-max-listpack-value", Aliases: []string{"zset-max-ziplist-value"}, Kind: Int, Default: "64", Min: 0, Max: math.MaxInt32, Mutable: true},
	}
}

// New returns a registry of Table at its defaults.
func New() *Registry {
	r, err := NewRegistry(Table())
	if err != nil {
		// Table is a constant of the program: a bad entry fails every
		// test at once, so it never reaches a client.
		panic(err)
	}
	return r
}
