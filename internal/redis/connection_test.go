package redis

import (
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// go-redis v9 opens every connection with HELLO 3 (its default protocol),
// then pipelines CLIENT SETINFO LIB-NAME and LIB-VER. The server must refuse
// HELLO 3 with an error reply (go-redis then stays on RESP2) and accept
// SETINFO, all without go-redis logging anything.
func TestGoRedisConnectsWithoutWarnings(t *testing.T) {
	f := newFixture(t)
	goredisLog.take()

	// Several connections, so the pool dials more than once.
	rdb := newClient(t, f.srv, func(o *goredis.Options) { o.PoolSize = 4 })
	for range 4 {
		require.NoError(t, rdb.Ping(f.ctx).Err())
	}
	pipe := rdb.Pipeline()
	for range 50 {
		pipe.Incr(f.ctx, "n")
	}
	_, err := pipe.Exec(f.ctx)
	require.NoError(t, err)
	require.Equal(t, "50", rdb.Get(f.ctx, "n").Val())

	// The library announced itself through CLIENT SETINFO.
	info, err := rdb.ClientInfo(f.ctx).Result()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(info.LibName, "go-redis("), "lib-name %q", info.LibName)
	require.Equal(t, goredis.Version(), info.LibVer)

	require.NoError(t, rdb.Close())
	require.Empty(t, goredisLog.take(), "go-redis logged while talking to the server")

	// A client that asks for RESP2 up front gets HELLO's map.
	rdb2 := newClient(t, f.srv, func(o *goredis.Options) { o.Protocol = 2 })
	conn := rdb2.Conn()
	defer func() { _ = conn.Close() }() // returns the connection to the pool
	hello, err := conn.Hello(f.ctx, 2, "", "", "me").Result()
	require.NoError(t, err)
	require.Equal(t, "elastickv", hello["server"])
	require.Equal(t, redisCompatVersion, hello["version"])
	require.EqualValues(t, 2, hello["proto"])
	require.Equal(t, "standalone", hello["mode"])
	require.Equal(t, "master", hello["role"])
	require.Equal(t, []any{}, hello["modules"])
	require.Equal(t, "me", conn.ClientGetName(f.ctx).Val())
	require.Empty(t, goredisLog.take())
}

func TestHello(t *testing.T) {
	f := newFixture(t)
	r := dialRaw(t, f.srv)

	r.send(cmd("HELLO", "3"))
	require.Equal(t, "-NOPROTO sorry, this protocol version is not supported", r.line())
	r.send(cmd("HELLO", "4"))
	require.Equal(t, "-NOPROTO unsupported protocol version", r.line())
	r.send(cmd("HELLO", "x"))
	require.Equal(t, "-ERR Protocol version is not an integer or out of range", r.line())
	r.send(cmd("HELLO", "2", "SETNAME"))
	require.Equal(t, "-ERR Syntax error in HELLO option 'SETNAME'", r.line())

	r.send(cmd("HELLO", "2", "AUTH", "default", "pw", "SETNAME", "raw"))
	hello := r.reply()
	require.Equal(t, []any{
		"server", "elastickv", "version", redisCompatVersion, "proto", int64(2),
		"id", hello.([]any)[7], "mode", "standalone", "role", "master", "modules", []any{},
	}, hello)
	r.send(cmd("CLIENT", "GETNAME"))
	require.Equal(t, "$3", r.line())
	require.Equal(t, "raw", r.line())

	// Followers answer role replica.
	f.backend.setStatus(Status{NodeID: "n1", RaftState: "follower", LeaderID: "n2"})
	conn := newClient(t, f.srv, func(o *goredis.Options) { o.Protocol = 2 }).Conn()
	defer func() { _ = conn.Close() }() // returns the connection to the pool
	m, err := conn.Hello(f.ctx, 2, "", "", "").Result()
	require.NoError(t, err)
	require.Equal(t, "replica", m["role"])
}

func TestPingEchoSelectAuth(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	require.Equal(t, "PONG", f.rdb.Ping(ctx).Val())
	msg, err := f.do("PING", "hi").Text()
	require.NoError(t, err)
	require.Equal(t, "hi", msg)
	requireErr(t, f.do("PING", "a", "b").Err(), "ERR wrong number of arguments for 'ping' command")
	require.Equal(t, "x\r\ny", f.rdb.Echo(ctx, "x\r\ny").Val())

	// Database 0 only, answered as Redis Cluster answers.
	require.NoError(t, f.do("SELECT", "0").Err())
	for _, idx := range []string{"1", "15", "-1", "1000000", "2147483647", "-2147483648"} {
		requireErr(t, f.do("SELECT", idx).Err(), "ERR SELECT is not allowed in cluster mode")
	}
	for _, idx := range []string{"x", "1.5", "", " 1", "01", "-0", "9223372036854775808"} {
		requireErr(t, f.do("SELECT", idx).Err(), "ERR value is not an integer or out of range")
	}
	for _, idx := range []string{"2147483648", "-2147483649", "9223372036854775807"} {
		requireErr(t, f.do("SELECT", idx).Err(), "ERR value is out of range, value must between -2147483648 and 2147483647")
	}
	requireErr(t, f.do("SELECT").Err(), "ERR wrong number of arguments for 'select' command")
	require.NoError(t, f.rdb.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.rdb.Get(ctx, "k").Val(), "a refused SELECT leaves the connection on database 0")
	// A go-redis client configured with another database fails to connect
	// with that error, rather than silently using database 0.
	db1 := newClient(t, f.srv, func(o *goredis.Options) { o.DB = 1 })
	requireErr(t, db1.Ping(ctx).Err(), "ERR SELECT is not allowed in cluster mode")
	db0 := newClient(t, f.srv, func(o *goredis.Options) { o.DB = 0 })
	require.Equal(t, "PONG", db0.Ping(ctx).Val())

	requireErr(t, f.do("AUTH", "pw").Err(),
		"ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
}

func TestClientCommands(t *testing.T) {
	f := newFixture(t)
	ctx := f.ctx
	conn := f.rdb.Conn()
	defer func() { _ = conn.Close() }() // returns the connection to the pool

	require.ErrorIs(t, conn.ClientGetName(ctx).Err(), goredis.Nil)
	require.NoError(t, conn.ClientSetName(ctx, "worker-1").Err())
	require.Equal(t, "worker-1", conn.ClientGetName(ctx).Val())
	requireErr(t, conn.Do(ctx, "CLIENT", "SETNAME", "has space").Err(),
		"ERR Client names cannot contain spaces, newlines or special characters.")

	id, err := conn.ClientID(ctx).Result()
	require.NoError(t, err)
	require.Positive(t, id)
	other, err := f.rdb.ClientID(ctx).Result()
	require.NoError(t, err)
	require.NotEqual(t, id, other, "ids are per connection")

	require.NoError(t, conn.Do(ctx, "CLIENT", "SETINFO", "lib-name", "mylib").Err())
	info, err := conn.ClientInfo(ctx).Result()
	require.NoError(t, err)
	require.Equal(t, "mylib", info.LibName)
	require.Equal(t, "worker-1", info.Name)
	require.Equal(t, id, info.ID)
	requireErr(t, conn.Do(ctx, "CLIENT", "SETINFO", "color", "red").Err(), "ERR Unrecognized option 'color'")
	requireErr(t, conn.Do(ctx, "CLIENT", "SETINFO", "LIB-VER", "1 2").Err(),
		"ERR lib-ver cannot contain spaces, newlines or special characters.")
	requireErr(t, conn.Do(ctx, "CLIENT", "NOPE").Err(), "ERR unknown subcommand 'NOPE'. Try CLIENT HELP.")
	requireErr(t, conn.Do(ctx, "CLIENT", "SETNAME").Err(), "ERR wrong number of arguments for 'client|setname' command")
	requireErr(t, conn.Do(ctx, "CLIENT").Err(), "ERR wrong number of arguments for 'client' command")
}

func TestQuitClosesAfterReplyingAndDropsTheRestOfThePipeline(t *testing.T) {
	f := newFixture(t)
	r := dialRaw(t, f.srv)
	r.send(cmd("SET", "before", "1") + cmd("QUIT") + cmd("SET", "after", "1"))
	require.Equal(t, "+OK", r.line())
	require.Equal(t, "+OK", r.line())
	r.requireClosed()
	require.Equal(t, "1", f.rdb.Get(f.ctx, "before").Val())
	require.ErrorIs(t, f.rdb.Get(f.ctx, "after").Err(), goredis.Nil)
}

func TestUnknownCommandAndArityErrors(t *testing.T) {
	f := newFixture(t)
	r := dialRaw(t, f.srv)

	r.send(cmd("foo", "a", "b"))
	require.Equal(t, "-ERR unknown command 'foo', with args beginning with: 'a' 'b' ", r.line())
	r.send(cmd("FooBar"))
	require.Equal(t, "-ERR unknown command 'FooBar', with args beginning with: ", r.line())
	// Newlines in echoed input cannot break the reply framing.
	r.send(cmd("x\r\ny", "a\nb"))
	require.Equal(t, "-ERR unknown command 'x  y', with args beginning with: 'a b' ", r.line())
	// The echo is bounded.
	long := strings.Repeat("z", 300)
	r.send(cmd(long, long, long))
	want := "-ERR unknown command '" + long[:128] + "', with args beginning with: '" + long[:128] + "' "
	require.Equal(t, want, r.line())

	r.send(cmd("GET"))
	require.Equal(t, "-ERR wrong number of arguments for 'get' command", r.line())
	r.send(cmd("gEt", "a", "b"))
	require.Equal(t, "-ERR wrong number of arguments for 'get' command", r.line())
	r.send(cmd("SET", "k"))
	require.Equal(t, "-ERR wrong number of arguments for 'set' command", r.line())

	// Inline (telnet-style) commands work too.
	r.send("PING\r\n")
	require.Equal(t, "+PONG", r.line())
	r.send("echo hello\r\n")
	require.Equal(t, "$5", r.line())
	require.Equal(t, "hello", r.line())
}

// TestClientAskingForAnotherDatabaseIsRefused: go-redis sends SELECT when
// it connects with DB set; elastickv refuses database 1 with Redis
// Cluster's error, so the client fails loudly instead of writing to
// database 0 believing it wrote to 1. Other clients are unaffected.
func TestClientAskingForAnotherDatabaseIsRefused(t *testing.T) {
	f := newFixture(t)
	other := newClient(t, f.srv, func(o *goredis.Options) { o.DB = 1 })
	err := other.Set(f.ctx, "k", "v", 0).Err()
	require.ErrorContains(t, err, "ERR SELECT is not allowed in cluster mode")
	require.Equal(t, int64(0), f.rdb.Exists(f.ctx, "k").Val())

	zero := newClient(t, f.srv, func(o *goredis.Options) { o.DB = 0 })
	require.NoError(t, zero.Set(f.ctx, "k", "v", 0).Err())
	require.Equal(t, "v", f.rdb.Get(f.ctx, "k").Val())
}
