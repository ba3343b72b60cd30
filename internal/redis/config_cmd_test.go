package redis

import (
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Tests of CONFIG over real sockets with go-redis.

func TestConfigGetPatterns(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	get := func(pats ...any) map[string]string {
		t.Helper()
		// go-redis's ConfigGet takes one pattern and folds the reply into
		// a map, which would hide a duplicate: read the raw array.
		raw, err := f.do(append([]any{"CONFIG", "GET"}, pats...)...).StringSlice()
		require.NoError(t, err)
		require.Zero(t, len(raw)%2)
		out := map[string]string{}
		for i := 0; i < len(raw); i += 2 {
			_, dup := out[raw[i]]
			require.False(t, dup, "%s reported twice in %q", raw[i], raw)
			out[raw[i]] = raw[i+1]
		}
		return out
	}
	// What tools ask on connect.
	require.Equal(t, map[string]string{"save": "", "appendonly": "no", "databases": "1"}, get("save", "APPEND*", "databases"))
	require.Empty(t, get("nothing"))

	// Case-insensitive; several patterns matching one parameter report it once.
	require.Equal(t, map[string]string{"maxclients": "10000"}, get("maxclients", "MAXCLIENTS", "maxcl*", "max?lients"))
	m := get("max*", "*clients")
	require.Equal(t, "10000", m["maxclients"])
	require.Equal(t, "536870912", m["maxmemory-clients"], "sizes are answered in bytes, as Redis does")
	require.Equal(t, "0", m["maxmemory"])

	// Values come from the server's Config: the derived query buffer limit,
	// the value bound, the address it listens on.
	m = get("client-*", "proto-max-bulk-len", "port", "bind", "timeout")
	require.Equal(t, map[string]string{
		"client-query-buffer-limit":  "68157440", // 4 x 16 MiB + 1 MiB
		"client-output-buffer-limit": "normal 134217728 1048576 60",
		"proto-max-bulk-len":         "16777216",
		"port":                       f.srv.Addr().String()[strings.LastIndex(f.srv.Addr().String(), ":")+1:],
		"bind":                       "127.0.0.1",
		"timeout":                    "0",
	}, m)

	// A glob matches aliases too and reports both names; an exact alias is
	// answered under that name.
	m = get("hash-max-*-entries")
	require.Equal(t, map[string]string{"hash-max-listpack-entries": "128", "hash-max-ziplist-entries": "128"}, m)
	require.Equal(t, map[string]string{"zset-max-ziplist-entries": "128"}, get("ZSET-MAX-ZIPLIST-ENTRIES"))

	// go-redis's own helper parses Redis 7.2's reply shape.
	all, err := f.rdb.ConfigGet(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, "10000", all["maxclients"])
	require.Greater(t, len(all), 15)
}

func TestConfigSetSizeFormsRoundTrip(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	for _, c := range []struct{ param, set, get string }{
		{"maxmemory-clients", "512mb", "536870912"},
		{"maxmemory-clients", "1GB", "1073741824"},
		{"maxmemory-clients", "64kb", "65536"},
		{"maxmemory-clients", "2m", "2000000"},
		{"maxmemory-clients", "12345", "12345"},
		{"maxmemory-clients", "0", "0"},
		{"client-query-buffer-limit", "100mb", "104857600"},
		{"client-output-buffer-limit", "normal 256mb 2mb 30", "normal 268435456 2097152 30"},
		{"client-output-buffer-limit", "512mb", "normal 536870912 2097152 30"}, // one size: the hard limit
		{"timeout", "300", "300"},
		{"MaxClients", "77", "77"},
	} {
		require.NoError(t, f.rdb.ConfigSet(ctx, c.param, c.set).Err(), "%s %s", c.param, c.set)
		got, err := f.rdb.ConfigGet(ctx, c.param).Result()
		require.NoError(t, err)
		require.Equal(t, c.get, got[strings.ToLower(c.param)], "%s %s", c.param, c.set)
	}
	// What the server enforces moved too.
	require.Equal(t, int64(77), f.srv.live.maxClients.Load())
	require.Equal(t, int64(300*time.Second), f.srv.live.idleTimeout.Load())
	require.Equal(t, int64(512<<20), f.srv.live.outHard.Load())
	require.Equal(t, int64(0), f.srv.mem.limit.Load())
	require.Contains(t, f.rdb.Info(ctx, "clients").Val(), "maxclients:77\r\n")
}

func TestConfigSetIsAllOrNone(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	before, err := f.rdb.ConfigGet(ctx, "*").Result()
	require.NoError(t, err)
	unchanged := func() {
		t.Helper()
		now, err := f.rdb.ConfigGet(ctx, "*").Result()
		require.NoError(t, err)
		require.Equal(t, before, now, "a failed CONFIG SET changed something")
		require.Equal(t, int64(DefaultMaxClients), f.srv.live.maxClients.Load())
	}
	for _, c := range []struct {
		args []any
		want string
	}{
		// One bad value among good ones.
		{[]any{"maxclients", "5", "maxmemory-clients", "lots", "timeout", "9"},
			"ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - invalid memory size \"lots\""},
		{[]any{"maxclients", "5", "timeout", "-1"},
			"ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and"},
		{[]any{"maxclients", "0"},
			"ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument must be between 1 and"},
		{[]any{"maxclients", "5", "client-output-buffer-limit", "pubsub 32mb 8mb 60"},
			"ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - invalid client-output-buffer-limit"},
		// Valid alone, invalid together: the hard output limit must exceed
		// the largest reply (the query buffer limit) plus the soft limit.
		{[]any{"maxclients", "5", "client-output-buffer-limit", "normal 16mb 1mb 60"},
			"ERR CONFIG SET failed (possibly related to argument 'maxclients') - client-output-buffer-limit: the hard limit"},
		{[]any{"client-query-buffer-limit", "8mb", "maxclients", "5"},
			"ERR CONFIG SET failed (possibly related to argument 'client-query-buffer-limit') - must exceed proto-max-bulk-len"},
		// Names are checked before values.
		{[]any{"maxclients", "bad", "nosuch", "1"}, "ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'"},
		{[]any{"maxclients", "5", "MAXCLIENTS", "6"}, "ERR CONFIG SET failed (possibly related to argument 'MAXCLIENTS') - duplicate parameter"},
		// Immutable and replicated parameters.
		{[]any{"maxclients", "5", "databases", "16"}, "ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config"},
		{[]any{"proto-max-bulk-len", "1mb"}, "ERR CONFIG SET failed (possibly related to argument 'proto-max-bulk-len') - can't set immutable config"},
		{[]any{"maxclients", "5", "active-expire-effort", "5"},
			"ERR CONFIG SET failed (possibly related to argument 'active-expire-effort') - replicated parameter"},
		// Arity.
		{[]any{"maxclients"}, "ERR wrong number of arguments for 'config|set' command"},
		{[]any{"maxclients", "5", "timeout"}, "ERR wrong number of arguments for 'config|set' command"},
	} {
		err := f.do(append([]any{"CONFIG", "SET"}, c.args...)...).Err()
		require.Error(t, err, "%q", c.args)
		require.True(t, strings.HasPrefix(err.Error(), c.want), "%q: got %q, want %q...", c.args, err.Error(), c.want)
		unchanged()
	}
	// Setting an immutable or replicated parameter to the value it has is
	// a no-op, so a client re-applying what CONFIG GET gave it succeeds.
	require.NoError(t, f.do("CONFIG", "SET", "databases", "1", "active-expire-effort", "1", "appendonly", "no").Err())
	unchanged()
	// Several good ones at once all apply.
	require.NoError(t, f.do("CONFIG", "SET", "maxclients", "5", "timeout", "9").Err())
	require.Equal(t, map[string]string{"maxclients": "5", "timeout": "9"}, map[string]string{
		"maxclients": f.rdb.ConfigGet(ctx, "maxclients").Val()["maxclients"],
		"timeout":    f.rdb.ConfigGet(ctx, "timeout").Val()["timeout"],
	})
}

func TestConfigOtherSubcommands(t *testing.T) {
	f := newFixture(t)
	require.Equal(t, "OK", f.rdb.ConfigResetStat(f.ctx).Val())
	requireErr(t, f.rdb.ConfigRewrite(f.ctx).Err(), "ERR The server is running without a config file: elastickv is configured by flags, so persist a change by changing the node's command line")
	help, err := f.do("CONFIG", "HELP").StringSlice()
	require.NoError(t, err)
	require.Contains(t, help[0], "CONFIG <subcommand>")
	require.Contains(t, strings.Join(help, "\n"), "RESETSTAT")
	requireErr(t, f.do("CONFIG", "FROB").Err(), "ERR unknown subcommand 'FROB'. Try CONFIG HELP.")
}

// TestHostileConfigSetMaxClients: lowering maxclients at run time refuses
// the next connection beyond it; raising it admits again. The clients
// already connected keep being served.
func TestHostileConfigSetMaxClients(t *testing.T) {
	f := limitFixture(t, func(*Config) {})
	check := f.acknowledged("k", "v") // the fixture's client is the first
	a := dialRaw(t, f.srv)
	a.ping()
	a.send(cmd("CONFIG", "SET", "maxclients", "2"))
	require.Equal(t, "+OK", a.line())

	over := dialRaw(t, f.srv)
	require.Equal(t, "-ERR max number of clients reached", over.line())
	over.requireClosed()
	require.Equal(t, 1, f.disconnects(reasonMaxClients))
	a.ping()
	check()

	require.NoError(t, f.rdb.ConfigSet(f.ctx, "maxclients", "3").Err())
	b := dialRaw(t, f.srv)
	b.ping()
	a.ping()
	check()
}

// TestHostileConfigSetTimeout: a timeout set at run time closes clients
// that were already idle, blocked in a read with no deadline.
func TestHostileConfigSetTimeout(t *testing.T) {
	f := limitFixture(t, func(*Config) {})
	check := f.acknowledged("k", "v")
	idle := dialRaw(t, f.srv)
	idle.ping()
	stalled := dialRaw(t, f.srv)
	stalled.send("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$10\r\nabc")
	eventually(t, func() bool { return f.srv.registry.len() == 3 }, "all connected")

	require.NoError(t, f.rdb.ConfigSet(f.ctx, "timeout", "1").Err())
	start := time.Now()
	idle.requireClosed()
	stalled.requireClosed()
	require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "closed long before the timeout")
	eventually(t, func() bool { return f.disconnects(reasonIdleTimeout) >= 2 }, "both counted as timeouts")

	// Back to never: a client idle longer than the old timeout stays.
	require.NoError(t, f.rdb.ConfigSet(f.ctx, "timeout", "0").Err())
	calm := dialRaw(t, f.srv)
	calm.ping()
	deadline := time.Now().Add(1500 * time.Millisecond)
	require.NoError(t, calm.c.SetReadDeadline(deadline))
	_, err := calm.rd.ReadByte()
	require.ErrorContains(t, err, "timeout", "the server closed or wrote to an idle client with timeout 0")
	calm.ping()
	check()
	require.Zero(t, f.rdb.Exists(f.ctx, "x").Val(), "the stalled SET never ran")
}

// TestHostileConfigSetOutputLimit: a lowered client-output-buffer-limit
// cuts the next pipeline that passes it, on a connection opened before the
// change.
func TestHostileConfigSetOutputLimit(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 2 << 20
	})
	check := f.acknowledged("k", "v")
	big := strings.Repeat("b", 1<<20)
	require.NoError(t, f.rdb.Set(f.ctx, "big", big, 0).Err())
	other := newClient(t, f.srv, func(o *goredis.Options) { o.MaxRetries = -1; o.PoolSize = 1 })
	pipeline := func() error {
		_, err := other.Pipelined(f.ctx, func(p goredis.Pipeliner) error {
			for range 10 {
				p.Get(f.ctx, "big")
			}
			return nil
		})
		return err
	}
	require.NoError(t, pipeline(), "10 MiB of replies fit the default 128 MiB")

	require.NoError(t, f.rdb.ConfigSet(f.ctx, "client-output-buffer-limit", "normal 4mb 0 10").Err())
	err := pipeline()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "ERR", "cut without a reply, as Redis does")
	eventually(t, func() bool { return f.disconnects(reasonOutputBuffer) == 1 }, "counted")
	eventually(t, func() bool { return f.srv.mem.out.Load() == 0 }, "the dropped replies are released")
	check()
}

// TestHostileConfigSetQueryBufferLimit: a lowered client-query-buffer-limit
// refuses the next command beyond it, on a connection opened before the
// change; MGET replies are bounded by it too.
func TestHostileConfigSetQueryBufferLimit(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 8 << 20
	})
	check := f.acknowledged("k", "v")
	conn := dialRaw(t, f.srv)
	conn.ping()
	require.NoError(t, f.rdb.ConfigSet(f.ctx, "client-query-buffer-limit", "2mb").Err())

	conn.send("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$3000000\r\n") // 3 MB, announced only
	require.Equal(t, "-ERR Protocol error: command too large", conn.line())
	conn.requireClosed()
	eventually(t, func() bool { return f.disconnects(reasonQueryBuffer) == 1 }, "counted")

	// Replies are bounded by the new limit: three 1 MiB values fit 8 MiB,
	// not 2 MiB.
	big := strings.Repeat("b", 1<<20-100)
	require.NoError(t, f.rdb.MSet(f.ctx, "b1", big).Err())
	require.NoError(t, f.rdb.MSet(f.ctx, "b2", big).Err())
	require.NoError(t, f.rdb.MSet(f.ctx, "b3", big).Err())
	requireErr(t, f.rdb.MGet(f.ctx, "b1", "b2", "b3").Err(), string(errReplyTooLarge))
	require.NoError(t, f.rdb.ConfigSet(f.ctx, "client-query-buffer-limit", "8mb").Err())
	require.Len(t, f.rdb.MGet(f.ctx, "b1", "b2", "b3").Val(), 3)
	check()
}
