package redis

import (
	"slices"
	"strings"

	"github.com/elastickv/elastickv/internal/redis/commands"
)

// The command table: which commands elastickv implements, their handlers,
// and our own marks. Every other fact (arity, flags, key positions, ACL
// categories) comes from the generated Redis reference in package
// commands, so COMMAND and the dispatcher's arity check say what Redis 7.2
// says.

// implemented lists the commands elastickv serves. subs are the
// subcommands a container implements (run by the container's handler);
// the dispatcher refuses the others with Redis's "unknown subcommand".
var implemented = []struct {
	name string
	run  func(s *Server, c *client, args [][]byte)
	subs []string
}{
	// strings.go
	{name: "get", run: cmdGet},
	{name: "set", run: cmdSet},
	{name: "setnx", run: cmdSetNX},
	{name: "getset", run: cmdGetSet},
	{name: "getdel", run: cmdGetDel},
	{name: "mget", run: cmdMGet},
	{name: "mset", run: cmdMSet},
	{name: "incr", run: cmdIncr},
	{name: "decr", run: cmdDecr},
	{name: "incrby", run: cmdIncrBy},
	{name: "decrby", run: cmdDecrBy},
	{name: "append", run: cmdAppend},
	{name: "strlen", run: cmdStrlen},
	// strings_write.go
	{name: "setrange", run: cmdSetRange},
	{name: "incrbyfloat", run: cmdIncrByFloat},
	{name: "msetnx", run: cmdMSetNX},
	// strings_range.go
	{name: "getrange", run: cmdGetRange},
	{name: "substr", run: cmdGetRange},
	{name: "lcs", run: cmdLCS},

	// expire.go
	{name: "expire", run: expireCommand("expire", 1000, false)},
	{name: "pexpire", run: expireCommand("pexpire", 1, false)},
	{name: "expireat", run: expireCommand("expireat", 1000, true)},
	{name: "pexpireat", run: expireCommand("pexpireat", 1, true)},
	{name: "ttl", run: cmdTTL},
	{name: "pttl", run: cmdPTTL},
	{name: "expiretime", run: cmdExpireTime},
	{name: "pexpiretime", run: cmdPExpireTime},
	{name: "persist", run: cmdPersist},
	{name: "setex", run: setexCommand("setex", 1000)},
	{name: "psetex", run: setexCommand("psetex", 1)},
	{name: "getex", run: cmdGetEx},
	{name: "object", run: cmdObject, subs: []string{"encoding", "freq", "help", "idletime", "refcount"}},

	// keys.go, scan.go
	{name: "del", run: cmdDel},
	{name: "unlink", run: cmdUnlink},
	{name: "exists", run: cmdExists},
	{name: "touch", run: cmdTouch},
	{name: "randomkey", run: cmdRandomKey},
	{name: "type", run: cmdType},
	{name: "keys", run: cmdKeys},
	{name: "scan", run: cmdScan},
	{name: "dbsize", run: cmdDBSize},
	{name: "flushall", run: cmdFlushAll},
	{name: "flushdb", run: cmdFlushAll},
	// rename.go
	{name: "rename", run: cmdRename},
	{name: "renamenx", run: cmdRenameNX},
	{name: "copy", run: cmdCopy},

	// hash.go (issue #15)
	{name: "hset", run: cmdHSet},
	{name: "hmset", run: cmdHMSet},
	{name: "hsetnx", run: cmdHSetNX},
	{name: "hget", run: cmdHGet},
	{name: "hmget", run: cmdHMGet},
	{name: "hdel", run: cmdHDel},
	{name: "hexists", run: cmdHExists},
	{name: "hlen", run: cmdHLen},
	{name: "hstrlen", run: cmdHStrLen},
	{name: "hkeys", run: cmdHKeys},
	{name: "hvals", run: cmdHVals},
	{name: "hgetall", run: cmdHGetAll},
	{name: "hincrby", run: cmdHIncrBy},
	{name: "hincrbyfloat", run: cmdHIncrByFloat},
	{name: "hrandfield", run: cmdHRandField},
	{name: "hscan", run: cmdHScan},
	// memory.go (with the hashes: Redis's hash and set suites call it)
	{name: "memory", run: cmdMemory, subs: []string{"help", "usage"}},

	// set.go (issue #15)
	{name: "sadd", run: cmdSAdd},
	{name: "srem", run: cmdSRem},
	{name: "sismember", run: cmdSIsMember},
	{name: "smismember", run: cmdSMIsMember},
	{name: "scard", run: cmdSCard},
	{name: "smembers", run: cmdSMembers},
	{name: "spop", run: cmdSPop},
	{name: "srandmember", run: cmdSRandMember},
	{name: "smove", run: cmdSMove},
	{name: "sinter", run: cmdSInter},
	{name: "sintercard", run: cmdSInterCard},
	{name: "sunion", run: cmdSUnion},
	{name: "sdiff", run: cmdSDiff},
	{name: "sinterstore", run: cmdSInterStore},
	{name: "sunionstore", run: cmdSUnionStore},
	{name: "sdiffstore", run: cmdSDiffStore},
	{name: "sscan", run: cmdSScan},

	// zset.go (issue #15)
	{name: "zadd", run: cmdZAdd},
	{name: "zincrby", run: cmdZIncrBy},
	{name: "zrem", run: cmdZRem},
	{name: "zcard", run: cmdZCard},
	{name: "zscore", run: cmdZScore},
	{name: "zmscore", run: cmdZMScore},
	{name: "zrank", run: cmdZRank},
	{name: "zrevrank", run: cmdZRevRank},
	{name: "zcount", run: cmdZCount},
	{name: "zlexcount", run: cmdZLexCount},
	{name: "zrange", run: cmdZRange},
	{name: "zrangestore", run: cmdZRangeStore},
	{name: "zrevrange", run: cmdZRevRange},
	{name: "zrangebyscore", run: cmdZRangeByScore},
	{name: "zrevrangebyscore", run: cmdZRevRangeByScore},
	{name: "zrangebylex", run: cmdZRangeByLex},
	{name: "zrevrangebylex", run: cmdZRevRangeByLex},
	{name: "zremrangebyrank", run: cmdZRemRangeByRank},
	{name: "zremrangebyscore", run: cmdZRemRangeByScore},
	{name: "zremrangebylex", run: cmdZRemRangeByLex},
	{name: "zpopmin", run: cmdZPopMin},
	{name: "zpopmax", run: cmdZPopMax},
	{name: "zmpop", run: cmdZMPop},
	{name: "zrandmember", run: cmdZRandMember},
	{name: "zunion", run: cmdZUnion},
	{name: "zinter", run: cmdZInter},
	{name: "zdiff", run: cmdZDiff},
	{name: "zunionstore", run: cmdZUnionStore},
	{name: "zinterstore", run: cmdZInterStore},
	{name: "zdiffstore", run: cmdZDiffStore},
	{name: "zintercard", run: cmdZInterCard},
	{name: "zscan", run: cmdZScan},

	// list.go (issue #16)
	{name: "lpush", run: cmdLPush},
	{name: "rpush", run: cmdRPush},
	{name: "lpushx", run: cmdLPushX},
	{name: "rpushx", run: cmdRPushX},
	{name: "lpop", run: cmdLPop},
	{name: "rpop", run: cmdRPop},
	{name: "lmpop", run: cmdLMPop},
	{name: "llen", run: cmdLLen},
	{name: "lindex", run: cmdLIndex},
	{name: "lset", run: cmdLSet},
	{name: "linsert", run: cmdLInsert},
	{name: "lrange", run: cmdLRange},
	{name: "lrem", run: cmdLRem},
	{name: "ltrim", run: cmdLTrim},
	{name: "lpos", run: cmdLPos},
	{name: "lmove", run: cmdLMove},
	{name: "rpoplpush", run: cmdRPopLPush},

	// blocking.go (issue #16)
	{name: "blpop", run: cmdBLPop},
	{name: "brpop", run: cmdBRPop},
	{name: "blmpop", run: cmdBLMPop},
	{name: "blmove", run: cmdBLMove},
	{name: "brpoplpush", run: cmdBRPopLPush},
	{name: "bzpopmin", run: cmdBZPopMin},
	{name: "bzpopmax", run: cmdBZPopMax},
	{name: "bzmpop", run: cmdBZMPop},

	// sort.go (issue #16)
	{name: "sort", run: cmdSort},
	{name: "sort_ro", run: cmdSortRO},

	// connection.go
	{name: "ping", run: cmdPing},
	{name: "echo", run: cmdEcho},
	{name: "quit", run: cmdQuit},
	{name: "select", run: cmdSelect},
	{name: "client", run: cmdClient, subs: []string{"getname", "id", "info", "setinfo", "setname", "unblock"}},
	{name: "hello", run: cmdHello},
	{name: "auth", run: cmdAuth},

	// multi.go (issue #17)
	{name: "multi", run: cmdMulti},
	{name: "exec", run: cmdExec},
	{name: "discard", run: cmdDiscard},
	{name: "watch", run: cmdWatch},
	{name: "unwatch", run: cmdUnwatch},

	// scripting: script.go (issue #17)
	{name: "eval", run: cmdEval},
	{name: "evalsha", run: cmdEvalSHA},
	{name: "eval_ro", run: cmdEvalRO},
	{name: "evalsha_ro", run: cmdEvalSHARO},
	{name: "script", run: cmdScript, subs: []string{"exists", "flush", "help", "kill", "load"}},
	{name: "fcall", run: cmdFCall},
	{name: "fcall_ro", run: cmdFCallRO},
	{name: "function", run: cmdFunction, subs: []string{"delete", "flush", "help", "kill", "list", "load", "stats"}},

	// admin.go, command_info.go, debug.go
	{name: "info", run: cmdInfo},
	{name: "time", run: cmdTime},
	{name: "command", run: cmdCommand, subs: []string{"count", "docs", "getkeys", "getkeysandflags", "info", "list"}},
	{name: "debug", run: cmdDebug},
	// config_cmd.go
	{name: "config", run: cmdConfig, subs: []string{"get", "help", "resetstat", "rewrite", "set"}},
}

// Our own marks. batchWrite: the handler makes exactly one s.write call
// and nothing else that touches the Backend, so pipelined runs can share
// one batch (pipeline.go). batchRead: it only makes s.read calls.
var (
	batchWriteCommands = []string{"set", "setnx", "getset", "getdel", "del", "incr", "decr", "incrby", "decrby", "mset", "unlink",
		"expire", "pexpire", "expireat", "pexpireat", "persist", "setex", "psetex",
		"setrange", "incrbyfloat", "msetnx", "rename", "renamenx", "copy",
		// list.go (issue #16)
		"lpush", "rpush", "lpushx", "rpushx", "lpop", "rpop", "lmpop", "lset", "linsert", "lrem", "ltrim", "lmove", "rpoplpush"}
	batchReadCommands = []string{"get", "mget", "exists", "strlen", "type", "touch", "randomkey", "getrange", "substr", "lcs",
		"ttl", "pttl", "expiretime", "pexpiretime",
		// list.go (issue #16)
		"llen", "lindex", "lrange", "lpos"}
)

func init() {
	commandTable = make(map[string]*command, len(implemented))
	for _, im := range implemented {
		cmd := newCommand(im.name, im.run)
		for _, sub := range im.subs {
			if cmd.subs == nil {
				cmd.subs = make(map[string]*command, len(im.subs))
			}
			cmd.subs[sub] = newCommand(im.name+"|"+sub, im.run)
		}
		cmd.batchWrite = slices.Contains(batchWriteCommands, im.name)
		cmd.batchRead = slices.Contains(batchReadCommands, im.name)
		commandTable[im.name] = cmd
	}
}

// newCommand builds a table entry from the generated facts. A name the
// reference lacks is a programming error caught by the package's tests.
func newCommand(name string, run func(s *Server, c *client, args [][]byte)) *command {
	spec := commands.Lookup(name)
	if spec == nil {
		panic("redis: the command reference has no " + name) // init-time programming error
	}
	return &command{name: name, spec: spec, arity: spec.Arity, run: run}
}

// subcommandsSorted returns a container's implemented subcommands by name.
func (cmd *command) subcommandsSorted() []*command {
	out := make([]*command, 0, len(cmd.subs))
	for _, sub := range cmd.subs {
		out = append(out, sub)
	}
	slices.SortFunc(out, func(a, b *command) int { return strings.Compare(a.name, b.name) })
	return out
}

// checkArgs applies Redis's dispatch checks to args for cmd (nil if
// unknown), resolving an implemented subcommand, and returns the error
// reply, or "" when the command may run.
func checkArgs(cmd *command, args [][]byte) string {
	switch {
	case cmd == nil:
		return unknownCommandMessage(args)
	case cmd.subs != nil && len(args) >= 2:
		sub := cmd.subs[strings.ToLower(string(args[1]))]
		if sub == nil {
			return "ERR unknown subcommand '" + truncate(args[1]) + "'. Try " + strings.ToUpper(cmd.name) + " HELP."
		}
		if !arityOK(sub.arity, len(args)) {
			return wrongArity(sub.name)
		}
	case !arityOK(cmd.arity, len(args)):
		return wrongArity(cmd.name)
	}
	return ""
}

// lookupFullName finds an implemented command or subcommand by its full
// name ("client|setname"), as COMMAND INFO and DOCS name them.
func lookupFullName(name []byte) *command {
	container, sub, isSub := strings.Cut(strings.ToLower(string(name)), "|")
	cmd := commandTable[container]
	if cmd == nil || !isSub {
		return cmd
	}
	return cmd.subs[sub] // nil for "get|key" or "config|get|key", as in Redis
}
