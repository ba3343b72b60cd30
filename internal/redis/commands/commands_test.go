package commands

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMovableKeysAsRedisDerivesIt uses the commands Redis's own test
// suite (unit/introspection-2) checks.
func TestMovableKeysAsRedisDerivesIt(t *testing.T) {
	for _, name := range []string{"set", "get", "mset", "bitfield", "lmove", "lpop", "blpop", "ping", "memory", "memory|usage", "rename", "georadius_ro"} {
		s := Lookup(name)
		require.NotNil(t, s, name)
		require.Zero(t, s.Flags&FlagMovableKeys, name)
	}
	for _, name := range []string{"zunionstore", "xread", "eval", "sort", "sort_ro", "migrate", "georadius"} {
		s := Lookup(strings.ToUpper(name))
		require.NotNil(t, s, name)
		require.NotZero(t, s.Flags&FlagMovableKeys, name)
		require.Contains(t, s.Flags.Names(), "movablekeys", name)
	}
}

func TestDerivedFactsMatchRedis(t *testing.T) {
	for _, tc := range []struct {
		name              string
		first, last, step int
		flags, cats       []string
	}{
		// Expected values as Redis 7.2's COMMAND INFO reports them.
		{"set", 1, 1, 1, []string{"write", "denyoom"}, []string{"write", "string", "slow"}},
		{"get", 1, 1, 1, []string{"readonly", "fast"}, []string{"read", "string", "fast"}},
		{"mset", 1, -1, 2, []string{"write", "denyoom"}, []string{"write", "string", "slow"}},
		{"del", 1, -1, 1, []string{"write"}, []string{"keyspace", "write", "slow"}},
		{"rename", 1, 2, 1, []string{"write"}, []string{"keyspace", "write", "slow"}},
		{"zunionstore", 1, 1, 1, []string{"write", "denyoom", "movablekeys"}, []string{"write", "sortedset", "slow"}},
		{"eval", 0, 0, 0, []string{"noscript", "stale", "skip_monitor", "no_mandatory_keys", "movablekeys"}, []string{"slow", "scripting"}},
		{"config|set", 0, 0, 0, []string{"admin", "noscript", "loading", "stale"}, []string{"admin", "slow", "dangerous"}},
		{"blpop", 1, -2, 1, []string{"write", "blocking"}, []string{"write", "list", "slow", "blocking"}},
	} {
		s := Lookup(tc.name)
		require.NotNil(t, s, tc.name)
		require.Equal(t, []int{tc.first, tc.last, tc.step}, []int{s.FirstKey, s.LastKey, s.Step}, tc.name)
		require.Equal(t, tc.flags, s.Flags.Names(), tc.name)
		require.Equal(t, tc.cats, s.Categories.Names(), tc.name)
	}
}

func TestKeysFromKeySpecs(t *testing.T) {
	args := func(s string) [][]byte {
		var out [][]byte
		for _, f := range strings.Fields(s) {
			out = append(out, []byte(f))
		}
		return out
	}
	for _, tc := range []struct {
		argv string
		want []KeyRef
		err  error
	}{
		{"get k", []KeyRef{{1, KeyRO | KeyAccess}}, nil},
		{"set k v nx", []KeyRef{{1, KeyOW | KeyUpdate}}, nil},
		{"set k v GET", []KeyRef{{1, KeyRW | KeyAccess | KeyUpdate}}, nil},
		{"mset a 1 b 2", []KeyRef{{1, KeyOW | KeyUpdate}, {3, KeyOW | KeyUpdate}}, nil},
		{"lmove a b left right", []KeyRef{{1, KeyRW | KeyAccess | KeyDelete}, {2, KeyRW | KeyInsert}}, nil},
		// keynum: ZUNIONSTORE and EVAL.
		{"zunionstore dst 2 a b weights 1 2", []KeyRef{{1, KeyOW | KeyUpdate}, {3, KeyRO | KeyAccess}, {4, KeyRO | KeyAccess}}, nil},
		{"eval script 2 k1 k2 arg", []KeyRef{{3, KeyRW | KeyAccess | KeyUpdate}, {4, KeyRW | KeyAccess | KeyUpdate}}, nil},
		{"eval script 0 arg", nil, nil},
		{"eval script x", nil, ErrKeysUnknown},
		{"eval script 5 k1", nil, ErrKeysUnknown},
		// keyword with a limit: XREAD ... STREAMS k1 k2 id1 id2.
		{"xread count 1 streams s1 s2 0 0", []KeyRef{{4, KeyRO | KeyAccess}, {5, KeyRO | KeyAccess}}, nil},
		// MIGRATE: the single-key slot (empty here, as specs cannot tell),
		// then the KEYS keyword, searched from the end.
		{"migrate h p \"\" 0 5 keys a b", []KeyRef{{3, KeyRW | KeyAccess | KeyDelete}, {7, KeyRW | KeyAccess | KeyDelete | KeyIncomplete}, {8, KeyRW | KeyAccess | KeyDelete | KeyIncomplete}}, nil},
		// SORT's STORE cannot be found by a spec: Keys parses it out
		// (sortkeys.go).
		{"sort k store d", []KeyRef{{1, KeyRO | KeyAccess}, {3, KeyOW | KeyUpdate}}, nil},
	} {
		argv := args(tc.argv)
		s := Lookup(string(argv[0]))
		require.NotNil(t, s, tc.argv)
		got, err := s.Keys(argv)
		if tc.err != nil {
			require.ErrorIs(t, err, tc.err, tc.argv)
			continue
		}
		require.NoError(t, err, tc.argv)
		require.Equal(t, tc.want, got, tc.argv)
	}
}

func TestTableShape(t *testing.T) {
	require.Greater(t, len(All()), 390)
	client := Lookup("CLIENT")
	require.NotNil(t, client)
	require.NotNil(t, client.Subcommand("SetName"))
	require.Equal(t, "client", client.Subcommand("setname").Container)
	for i, s := range All() {
		require.Equal(t, strings.ToLower(s.Name), s.Name)
		if i > 0 {
			require.Less(t, All()[i-1].Name, s.Name)
		}
		require.NotZero(t, s.Categories&(CatFast|CatSlow), s.Name) // every command is one or the other
		if s.Container != "" {
			require.Contains(t, Lookup(s.Container).Subcommands(), s, s.Name)
		}
	}
	_, ok := CategoryByName("SortedSet")
	require.True(t, ok)
	_, ok = CategoryByName("@read")
	require.False(t, ok)
}

// TestGeneratedFileIsCurrent regenerates the facts from the reference
// kept beside the repository (../shared, as in CI) and compares.
func TestGeneratedFileIsCurrent(t *testing.T) {
	ref := filepath.Join("..", "..", "..", "..", "shared", "redis-commands", "commands")
	if _, err := os.Stat(ref); err != nil {
		t.Skipf("the command reference is not beside the repository (%v)", err)
	}
	out := filepath.Join(t.TempDir(), "facts_gen.go")
	require.NoError(t, runGen(ref, out))
	want, err := os.ReadFile("facts_gen.go")
	require.NoError(t, err)
	got, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got), "facts_gen.go is stale: run go generate ./internal/redis/commands")
}

func runGen(ref, out string) error {
	cmd := exec.Command("go", "run", "./gen", "-ref", ref, "-out", out)
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

func TestLookupArgsResolvesSubcommands(t *testing.T) {
	argv := func(s ...string) [][]byte {
		out := make([][]byte, len(s))
		for i, a := range s {
			out[i] = []byte(a)
		}
		return out
	}
	require.Equal(t, "client|setname", LookupArgs(argv("CLIENT", "SetName", "x")).Name)
	require.Equal(t, "client", LookupArgs(argv("client")).Name)
	require.Equal(t, "get", LookupArgs(argv("get", "k")).Name) // not a container: argv[1] is an argument
	require.Nil(t, LookupArgs(argv("client", "nosuch")))
	require.Nil(t, LookupArgs(argv("nosuch")))
	require.Nil(t, LookupArgs(nil))
}

// FuzzSpecKeys: key lookup never panics and never names a position
// outside argv, whatever a client sends (ACL will run it on every command).
func FuzzSpecKeys(f *testing.F) {
	for _, seed := range []string{"zunionstore d 2 a b", "eval s 1 k", "eval s -1", "xread streams a 0", "migrate h p k 0 5 keys a", "set k v get", "mset a", "georadius k 1 2 3 m store d", "sort k by p store d", "lmove a b left right", "bitfield k get u8 0", "xreadgroup group g c streams s >"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var argv [][]byte
		for _, a := range strings.Fields(line) {
			argv = append(argv, []byte(a))
		}
		s := LookupArgs(argv)
		if s == nil {
			return
		}
		keys, err := s.Keys(argv)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.Pos < 1 || k.Pos >= len(argv) {
				t.Fatalf("%q: key position %d outside %d arguments", line, k.Pos, len(argv))
			}
		}
	})
}
