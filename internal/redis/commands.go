package redis

// The command table. Arity and key positions follow Redis 7 so that
// clients which route or validate by COMMAND see what they expect.

// Flag and category sets shared by several commands.
var (
	flagsRead      = []string{"readonly", "fast"}
	flagsWrite     = []string{"write", "denyoom"}
	flagsWriteFast = []string{"write", "denyoom", "fast"}
	flagsConn      = []string{"fast", "loading", "stale"}

	catStringRead  = []string{"@read", "@string", "@fast"}
	catStringWrite = []string{"@write", "@string", "@fast"}
	catKeyRead     = []string{"@keyspace", "@read", "@fast"}
	catKeyWrite    = []string{"@keyspace", "@write", "@slow"}
	catConn        = []string{"@fast", "@connection"}
	catAdmin       = []string{"@admin", "@slow", "@dangerous"}
)

func init() {
	cmds := []*command{
		// strings.go
		{name: "get", arity: 2, flags: flagsRead, firstKey: 1, lastKey: 1, step: 1, categories: catStringRead, run: cmdGet},
		{name: "set", arity: -3, flags: flagsWrite, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdSet},
		{name: "setnx", arity: 3, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdSetNX},
		{name: "getset", arity: 3, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdGetSet},
		{name: "getdel", arity: 2, flags: []string{"write", "fast"}, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdGetDel},
		{name: "mget", arity: -2, flags: flagsRead, firstKey: 1, lastKey: -1, step: 1, categories: catStringRead, run: cmdMGet},
		{name: "mset", arity: -3, flags: flagsWrite, firstKey: 1, lastKey: -1, step: 2, categories: catStringWrite, run: cmdMSet},
		{name: "incr", arity: 2, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdIncr},
		{name: "decr", arity: 2, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdDecr},
		{name: "incrby", arity: 3, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdIncrBy},
		{name: "decrby", arity: 3, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdDecrBy},
		{name: "append", arity: 3, flags: flagsWriteFast, firstKey: 1, lastKey: 1, step: 1, categories: catStringWrite, run: cmdAppend},
		{name: "strlen", arity: 2, flags: flagsRead, firstKey: 1, lastKey: 1, step: 1, categories: catStringRead, run: cmdStrlen},

		// keys.go, scan.go
		{name: "del", arity: -2, flags: []string{"write"}, firstKey: 1, lastKey: -1, step: 1, categories: catKeyWrite, run: cmdDel},
		{name: "exists", arity: -2, flags: flagsRead, firstKey: 1, lastKey: -1, step: 1, categories: catKeyRead, run: cmdExists},
		{name: "type", arity: 2, flags: flagsRead, firstKey: 1, lastKey: 1, step: 1, categories: catKeyRead, run: cmdType},
		{name: "keys", arity: 2, flags: []string{"readonly"}, categories: []string{"@keyspace", "@read", "@slow", "@dangerous"}, run: cmdKeys},
		{name: "scan", arity: -2, flags: []string{"readonly"}, categories: []string{"@keyspace", "@read", "@slow"}, run: cmdScan},
		{name: "dbsize", arity: 1, flags: flagsRead, categories: catKeyRead, run: cmdDBSize},
		{name: "flushall", arity: -1, flags: []string{"write"}, categories: []string{"@keyspace", "@write", "@slow", "@dangerous"}, run: cmdFlushAll},
		{name: "flushdb", arity: -1, flags: []string{"write"}, categories: []string{"@keyspace", "@write", "@slow", "@dangerous"}, run: cmdFlushAll},

		// connection.go
		{name: "ping", arity: -1, flags: []string{"fast"}, categories: catConn, run: cmdPing},
		{name: "echo", arity: 2, flags: []string{"fast"}, categories: catConn, run: cmdEcho},
		{name: "quit", arity: -1, flags: flagsConn, categories: catConn, run: cmdQuit},
		{name: "select", arity: 2, flags: flagsConn, categories: catConn, run: cmdSelect},
		{name: "client", arity: -2, flags: []string{"loading", "stale"}, categories: []string{"@slow", "@connection"}, run: cmdClient},
		{name: "hello", arity: -1, flags: []string{"noscript", "loading", "stale", "fast", "no_auth"}, categories: catConn, run: cmdHello},
		{name: "auth", arity: -2, flags: []string{"noscript", "loading", "stale", "fast", "no_auth"}, categories: catConn, run: cmdAuth},

		// admin.go
		{name: "info", arity: -1, flags: []string{"loading", "stale"}, categories: []string{"@slow", "@dangerous"}, run: cmdInfo},
		{name: "command", arity: -1, flags: []string{"loading", "stale"}, categories: []string{"@slow", "@connection"}, run: cmdCommand},
		{name: "debug", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, categories: catAdmin, run: cmdDebug},
		{name: "config", arity: -2, flags: []string{"admin", "noscript", "loading", "stale"}, categories: catAdmin, run: cmdConfig},
	}
	for _, name := range []string{"set", "setnx", "getset", "getdel", "del", "incr", "decr", "incrby", "decrby", "mset"} {
		cmdByName(cmds, name).batchWrite = true
	}
	for _, name := range []string{"get", "mget", "exists", "strlen", "type"} {
		cmdByName(cmds, name).batchRead = true
	}
	commandTable = make(map[string]*command, len(cmds))
	for _, cmd := range cmds {
		commandTable[cmd.name] = cmd
	}
}

func cmdByName(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	panic("command table has no " + name) // init-time programming error
}
