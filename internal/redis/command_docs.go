package redis

// summaries are COMMAND DOCS's one-line summaries of the commands
// elastickv implements, in the project's own words (the reference's prose
// is not copied). redis-cli prints them in HELP.
var summaries = map[string]string{
	// hash.go (issue #15)

	// set.go (issue #15)

	// zset.go (issue #15)

	// list.go (issue #16)

	// blocking.go (issue #16)

	// sort.go (issue #16)

	"expire":                  "Sets a key's time to live in seconds, optionally only under NX, XX, GT or LT.",
	"pexpire":                 "Sets a key's time to live in milliseconds, optionally only under NX, XX, GT or LT.",
	"expireat":                "Sets the Unix time, in seconds, at which a key expires.",
	"pexpireat":               "Sets the Unix time, in milliseconds, at which a key expires.",
	"ttl":                     "Replies with a key's remaining time to live in seconds, -1 without one, -2 for no key.",
	"pttl":                    "Replies with a key's remaining time to live in milliseconds, -1 without one, -2 for no key.",
	"expiretime":              "Replies with the Unix time, in seconds, at which a key expires.",
	"pexpiretime":             "Replies with the Unix time, in milliseconds, at which a key expires.",
	"persist":                 "Removes a key's time to live.",
	"setrange":                "Overwrites part of a key's string value at a byte offset, zero-padding; replies with the new length.",
	"incrbyfloat":             "Adds a floating-point number to a key's value, creating the key if needed; replies with the result.",
	"msetnx":                  "Sets several keys' string values only if none of the keys exists.",
	"rename":                  "Renames a key, replacing the destination if it exists; keeps the time to live.",
	"renamenx":                "Renames a key only if the destination does not exist.",
	"copy":                    "Copies a key's value and time to live to another key, optionally replacing it.",
	"setex":                   "Sets a key's string value with a time to live in seconds.",
	"psetex":                  "Sets a key's string value with a time to live in milliseconds.",
	"getex":                   "Replies with a key's string value and sets or removes its time to live.",
	"object":                  "Inspects how a key's value is stored.",
	"object|encoding":         "Replies with the internal representation of a key's value.",
	"object|freq":             "Refused: elastickv keeps no access frequency (no LFU policy).",
	"object|help":             "Describes the OBJECT subcommands.",
	"object|idletime":         "Replies 0: elastickv keeps no access time.",
	"object|refcount":         "Replies with the number of references to a key's value (always 1).",
	"append":                  "Appends a string to a key's value, creating the key if needed; replies with the new length.",
	"auth":                    "Authenticates the connection.",
	"client":                  "Inspects or names the current connection.",
	"client|getname":          "Replies with the name this connection set, or nil.",
	"client|id":               "Replies with this connection's numeric id.",
	"client|info":             "Describes this connection in CLIENT LIST's format.",
	"client|setinfo":          "Records the client library's name or version for this connection.",
	"client|setname":          "Names this connection.",
	"command":                 "Describes the commands this server implements.",
	"command|count":           "Replies with how many commands this server implements.",
	"command|docs":            "Replies with the documentation facts of commands.",
	"command|getkeys":         "Replies with the key arguments of a full command line.",
	"command|getkeysandflags": "Replies with the key arguments of a full command line and how the command uses each.",
	"command|info":            "Describes the named commands, or all of them.",
	"command|list":            "Lists the implemented command names, optionally filtered.",
	"config":                  "Reads and changes server parameters.",
	"config|get":              "Replies with the parameters whose names match the patterns.",
	"config|help":             "Describes the CONFIG subcommands.",
	"config|resetstat":        "Resets the statistics INFO reports (there are none to reset yet).",
	"config|rewrite":          "Refused: there is no config file; flags configure a node at start.",
	"config|set":              "Changes node-local parameters on this node, all or none.",
	"dbsize":                  "Counts the keys.",
	"debug":                   "Diagnostics; DEBUG DIGEST hashes this node's data.",
	"decr":                    "Subtracts one from a key's integer value.",
	"decrby":                  "Subtracts an amount from a key's integer value.",
	"del":                     "Removes keys; replies with how many existed.",
	"echo":                    "Replies with its argument.",
	"exists":                  "Counts how many of the given keys exist.",
	"flushall":                "Removes every key.",
	"flushdb":                 "Removes every key (there is only database 0).",
	"get":                     "Replies with a key's string value, or nil.",
	"getdel":                  "Replies with a key's string value and removes the key.",
	"getrange":                "Replies with the bytes of a key's string value between two inclusive offsets; negative offsets count from the end.",
	"getset":                  "Sets a key's string value and replies with the previous one.",
	"hello":                   "Handshake: replies with facts about the server (RESP2).",
	"incr":                    "Adds one to a key's integer value.",
	"incrby":                  "Adds an amount to a key's integer value.",
	"info":                    "Replies with server, client, statistics, replication, Raft and keyspace facts.",
	"keys":                    "Replies with every key matching a glob pattern.",
	"lcs":                     "Replies with the longest common subsequence of two keys' string values, its length, or where it matches.",
	"mget":                    "Replies with the string values of several keys.",
	"mset":                    "Sets several keys to string values at once.",
	"ping":                    "Replies PONG, or its argument.",
	"quit":                    "Closes the connection once the replies before it are sent.",
	"randomkey":               "Replies with a key picked at random, or nil when there are none.",
	"scan":                    "Walks the keyspace a batch at a time with a cursor.",
	"select":                  "Selects the database; only database 0 exists.",
	"set":                     "Sets a key to a string value, with conditions and options.",
	"setnx":                   "Sets a key to a string value only if the key is absent.",
	"strlen":                  "Replies with the length of a key's string value.",
	"substr":                  "Replies with a range of a key's string value; the older name of GETRANGE.",
	"time":                    "Replies with this node's clock: Unix seconds and microseconds.",
	"touch":                   "Counts how many of the given keys exist (no access time is kept).",
	"type":                    "Replies with the type of the value a key holds.",
	"unlink":                  "Removes keys, as DEL does; replies with how many existed.",
}
