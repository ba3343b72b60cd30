package redis

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/redis/commands"
)

// TestEveryImplementedCommandHasAGeneratedEntry: the table's facts come
// from the reference, so each implemented command and subcommand must be
// in it, with the arity the dispatcher checks.
func TestEveryImplementedCommandHasAGeneratedEntry(t *testing.T) {
	require.Len(t, commandTable, len(implemented))
	for _, im := range implemented {
		spec := commands.Lookup(im.name)
		require.NotNil(t, spec, im.name)
		require.Equal(t, spec.Arity, commandTable[im.name].arity, im.name)
		require.NotEmpty(t, summaries[im.name], im.name)
		for _, sub := range im.subs {
			require.NotNil(t, commands.Lookup(im.name+"|"+sub), im.name+"|"+sub)
			require.NotNil(t, spec.Subcommand(sub), im.name+"|"+sub)
			require.NotEmpty(t, summaries[im.name+"|"+sub], im.name+"|"+sub)
		}
	}
	for name := range summaries {
		require.NotNil(t, lookupFullName([]byte(name)), "summary of an unimplemented "+name)
	}
	for _, name := range append(batchWriteCommands, batchReadCommands...) {
		require.NotNil(t, commandTable[name], name)
	}
}

func TestCommandGetKeysFollowsKeySpecs(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []any
		want []string // nil when an error is expected
		err  string
	}{
		{args: []any{"get", "k"}, want: []string{"k"}},
		{args: []any{"SET", "k", "v", "EX", "10"}, want: []string{"k"}},
		{args: []any{"mset", "k1", "v1", "k2", "v2", "k3", "v3"}, want: []string{"k1", "k2", "k3"}},
		{args: []any{"del", "a", "b", "c"}, want: []string{"a", "b", "c"}},
		// EVAL's keys are its numkeys arguments (scripting, issue #17).
		{args: []any{"eval", "return 1", "2", "k1", "k2", "arg"}, want: []string{"k1", "k2"}},
		{args: []any{"get"}, err: "ERR Invalid number of arguments specified for command"},
		// Key specs only count positions: Redis answers this odd MSET so too.
		{args: []any{"mset", "k1", "v1", "k2"}, want: []string{"k1", "k2"}},
		{args: []any{"keys", "*"}, err: "ERR The command has no key arguments"},
		{args: []any{"client", "setname", "x"}, err: "ERR The command has no key arguments"},
		// Commands elastickv does not implement are unknown here, as they
		// are to COMMAND INFO, even where the reference has key specs.
		{args: []any{"xreadgroup", "GROUP", "g", "c", "STREAMS", "s", ">"}, err: "ERR Invalid command specified"},
		{args: []any{"nosuch", "k"}, err: "ERR Invalid command specified"},
		{args: []any{"client", "nosuch"}, err: "ERR Invalid command specified"},
	} {
		args := append([]any{"COMMAND", "GETKEYS"}, tc.args...)
		got, err := f.do(args...).StringSlice()
		if tc.want == nil {
			requireErr(t, err, tc.err)
			continue
		}
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.want, got, tc.args)
	}
	requireErr(t, f.do("COMMAND", "GETKEYS").Err(), "ERR wrong number of arguments for 'command|getkeys' command")
}

func TestCommandGetKeysAndFlags(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []any
		want []any
	}{
		// The expected flags are Redis 7.2's answers (its test suite's).
		{[]any{"set", "k1", "v1"}, []any{[]any{"k1", []any{"OW", "update"}}}},
		{[]any{"set", "k1", "v1", "get"}, []any{[]any{"k1", []any{"RW", "access", "update"}}}},
		{[]any{"mset", "k1", "v1", "k2", "v2"}, []any{[]any{"k1", []any{"OW", "update"}}, []any{"k2", []any{"OW", "update"}}}},
		{[]any{"getdel", "k"}, []any{[]any{"k", []any{"RW", "access", "delete"}}}},
		{[]any{"get", "k"}, []any{[]any{"k", []any{"RO", "access"}}}},
	} {
		args := append([]any{"COMMAND", "GETKEYSANDFLAGS"}, tc.args...)
		got, err := f.do(args...).Slice()
		require.NoError(t, err, tc.args)
		require.Equal(t, tc.want, got, tc.args)
	}
}

// TestCommandInfoMatchesRedis compares COMMAND INFO with what Redis 7.2
// reports, written out from the reference's facts (flags and categories
// plus those Redis derives), not from our own output.
func TestCommandInfoMatchesRedis(t *testing.T) {
	f := newFixture(t)
	rangeSpec := func(flags []any, index, lastkey, step int64) []any {
		return []any{
			"flags", flags,
			"begin_search", []any{"type", "index", "spec", []any{"index", index}},
			"find_keys", []any{"type", "range", "spec", []any{"lastkey", lastkey, "keystep", step, "limit", int64(0)}},
		}
	}
	got, err := f.do("COMMAND", "INFO", "set", "MSET", "get", "ping", "xadd", "get|key", "client|setname").Slice()
	require.NoError(t, err)
	require.Equal(t, []any{
		[]any{"set", int64(-3), []any{"write", "denyoom"}, int64(1), int64(1), int64(1),
			[]any{"@write", "@string", "@slow"}, []any{},
			[]any{rangeSpec([]any{"RW", "access", "update", "variable_flags"}, 1, 0, 1)}, []any{}},
		[]any{"mset", int64(-3), []any{"write", "denyoom"}, int64(1), int64(-1), int64(2),
			[]any{"@write", "@string", "@slow"}, []any{"request_policy:multi_shard", "response_policy:all_succeeded"},
			[]any{rangeSpec([]any{"OW", "update"}, 1, -1, 2)}, []any{}},
		[]any{"get", int64(2), []any{"readonly", "fast"}, int64(1), int64(1), int64(1),
			[]any{"@read", "@string", "@fast"}, []any{},
			[]any{rangeSpec([]any{"RO", "access"}, 1, 0, 1)}, []any{}},
		[]any{"ping", int64(-1), []any{"fast"}, int64(0), int64(0), int64(0),
			[]any{"@fast", "@connection"}, []any{"request_policy:all_shards", "response_policy:all_succeeded"},
			[]any{}, []any{}},
		nil, // not implemented
		nil, // GET has no subcommands
		[]any{"client|setname", int64(3), []any{"noscript", "loading", "stale"}, int64(0), int64(0), int64(0),
			[]any{"@slow", "@connection"}, []any{"request_policy:all_nodes", "response_policy:all_succeeded"},
			[]any{}, []any{}},
	}, got)

	// A container lists its implemented subcommands, each described alike.
	client, err := f.do("COMMAND", "INFO", "client").Slice()
	require.NoError(t, err)
	subs := client[0].([]any)[9].([]any)
	var names []any
	for _, s := range subs {
		names = append(names, s.([]any)[0])
	}
	require.Equal(t, []any{"client|getname", "client|id", "client|info", "client|setinfo", "client|setname", "client|unblock"}, names)

	// go-redis reads the whole table.
	infos, err := f.rdb.Command(f.ctx).Result()
	require.NoError(t, err)
	require.Len(t, infos, len(commandTable))
	require.Equal(t, []string{"@read", "@string", "@fast"}, infos["get"].ACLFlags)
}

func TestArityAndSubcommandErrorsUseRedisWords(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		args []any
		err  string
	}{
		{[]any{"get"}, "ERR wrong number of arguments for 'get' command"},
		{[]any{"set", "k"}, "ERR wrong number of arguments for 'set' command"},
		{[]any{"getdel", "a", "b"}, "ERR wrong number of arguments for 'getdel' command"},
		{[]any{"client"}, "ERR wrong number of arguments for 'client' command"},
		{[]any{"client", "setname"}, "ERR wrong number of arguments for 'client|setname' command"},
		{[]any{"client", "id", "x"}, "ERR wrong number of arguments for 'client|id' command"},
		{[]any{"client", "Frob"}, "ERR unknown subcommand 'Frob'. Try CLIENT HELP."},
		{[]any{"config", "frob"}, "ERR unknown subcommand 'frob'. Try CONFIG HELP."},
		{[]any{"command", "count", "x"}, "ERR wrong number of arguments for 'command|count' command"},
		{[]any{"xadd", "d", "*", "a"}, "ERR unknown command 'xadd', with args beginning with: 'd' '*' 'a' "},
	} {
		requireErr(t, f.do(tc.args...).Err(), tc.err)
	}
	// The connection still serves.
	require.NoError(t, f.rdb.Set(f.ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.rdb.Get(f.ctx, "k").Val())
}

func TestCommandListFilters(t *testing.T) {
	f := newFixture(t)
	list := func(args ...any) []string {
		t.Helper()
		got, err := f.do(append([]any{"COMMAND", "LIST"}, args...)...).StringSlice()
		require.NoError(t, err)
		return got
	}
	all := list()
	require.Contains(t, all, "set")
	require.Contains(t, all, "client|setname")
	require.Equal(t, []string{"set"}, list("FILTERBY", "PATTERN", "set"))
	require.Equal(t, []string{"config", "config|get", "config|help", "config|resetstat", "config|rewrite", "config|set"}, list("filterby", "pattern", "CONFIG*"))
	require.Equal(t, []string{"config|resetstat", "config|rewrite"}, list("filterby", "pattern", "config|*re*"))
	require.Empty(t, list("filterby", "pattern", "nosuch*"))
	// The read category grows with every command family; check members
	// and non-members rather than the whole list.
	reads := list("filterby", "aclcat", "READ")
	for _, name := range []string{"dbsize", "exists", "expiretime", "get", "getrange", "keys", "lcs", "mget", "object|encoding", "object|freq", "object|idletime", "object|refcount", "pexpiretime", "pttl", "randomkey", "scan", "strlen", "substr", "touch", "ttl", "type"} {
		require.Contains(t, reads, name)
	}
	for _, name := range []string{"set", "del", "config|get", "ping"} {
		require.NotContains(t, reads, name)
	}
	require.True(t, slices.IsSorted(reads))
	require.Empty(t, list("filterby", "aclcat", "@read")) // Redis wants the bare name
	require.Empty(t, list("filterby", "aclcat", "nosuch"))
	require.Empty(t, list("filterby", "module", "nosuch"))
	for _, bad := range [][]any{{"bad"}, {"filterby", "bad"}, {"filterby", "bad", "x"}, {"filterby", "aclcat", "read", "x"}} {
		requireErr(t, f.do(append([]any{"COMMAND", "LIST"}, bad...)...).Err(), "ERR syntax error")
	}
	require.NoError(t, f.rdb.Ping(f.ctx).Err())
}

// TestCommandDocsCarryFactsAndSyntax: COMMAND DOCS is what redis-cli
// builds its hints from; the expected values are the reference's facts.
func TestCommandDocsCarryFactsAndSyntax(t *testing.T) {
	f := newFixture(t)
	got, err := f.do("COMMAND", "DOCS", "get", "nosuch", "getset").Slice()
	require.NoError(t, err)
	require.Equal(t, []any{
		"get", []any{
			"summary", summaries["get"],
			"since", "1.0.0",
			"group", "string",
			"arguments", []any{[]any{"name", "key", "type", "key", "key_spec_index", int64(0), "display_text", "key"}},
		},
		"getset", []any{
			"summary", summaries["getset"],
			"since", "1.0.0",
			"group", "string",
			"doc_flags", []any{"deprecated"},
			"deprecated_since", "6.2.0",
			"arguments", []any{
				[]any{"name", "key", "type", "key", "key_spec_index", int64(0), "display_text", "key"},
				[]any{"name", "value", "type", "string", "display_text", "value"},
			},
		},
	}, got)

	// A oneof nests its choices; optional arguments say so.
	set, err := f.do("COMMAND", "DOCS", "set").Slice()
	require.NoError(t, err)
	docs := set[1].([]any)
	args := docs[len(docs)-1].([]any)
	require.Len(t, args, 5) // key value condition get expiration
	require.Equal(t, []any{
		"name", "condition", "type", "oneof", "since", "2.6.12", "flags", []any{"optional"},
		"arguments", []any{
			[]any{"name", "nx", "type", "pure-token", "token", "NX", "display_text", "nx"},
			[]any{"name", "xx", "type", "pure-token", "token", "XX", "display_text", "xx"},
		},
	}, args[2])

	// Subcommands' docs nest under their container.
	client, err := f.do("COMMAND", "DOCS", "client").Slice()
	require.NoError(t, err)
	cd := client[1].([]any)
	require.Equal(t, "subcommands", cd[len(cd)-2])
	require.Equal(t, "client|getname", cd[len(cd)-1].([]any)[0])
}
