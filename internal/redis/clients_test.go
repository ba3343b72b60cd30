package redis

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Tests of the client limits (clients.go), each over real sockets against a
// real Server on a real kv.Store. Every one shows the node stays up, keeps
// serving another client, and keeps what it acknowledged.

// limitFixture is a fixture whose metrics go to their own registry.
func limitFixture(t *testing.T, tweak func(*Config)) *fixture {
	t.Helper()
	return newFixture(t, func(c *Config) {
		c.Registerer = prometheus.NewRegistry()
		tweak(c)
	})
}

// disconnects is how often limit r closed or refused a client.
func (f *fixture) disconnects(r disconnectReason) int {
	var m dto.Metric
	require.NoError(f.t, f.srv.clientMetrics.disconnects[r].Write(&m))
	return int(m.GetCounter().GetValue())
}

// acknowledged writes a key through the fixture's client and returns a
// check, for the end of a test, that the node still serves it.
func (f *fixture) acknowledged(key, val string) func() {
	f.t.Helper()
	require.NoError(f.t, f.rdb.Set(f.ctx, key, val, 0).Err())
	return func() {
		f.t.Helper()
		require.Equal(f.t, val, f.rdb.Get(f.ctx, key).Val(), "an acknowledged write is lost or the node stopped serving")
		require.NoError(f.t, f.rdb.Ping(f.ctx).Err())
	}
}

// ping sends PING on a raw connection and waits for PONG, which proves the
// server accepted and registered it.
func (r *rawConn) ping() {
	r.t.Helper()
	r.send(cmd("PING"))
	require.Equal(r.t, "+PONG", r.line())
}

func TestHostileMaxClients(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.Clients = DefaultClientLimits()
		c.Clients.MaxClients = 3
	})
	check := f.acknowledged("k", "v") // the fixture's client is the first
	a, b := dialRaw(t, f.srv), dialRaw(t, f.srv)
	a.ping()
	b.ping()

	over := dialRaw(t, f.srv)
	require.Equal(t, "-ERR max number of clients reached", over.line())
	over.requireClosed()
	require.Equal(t, 1, f.disconnects(reasonMaxClients))

	// A go-redis client beyond the limit fails too: it sends HELLO at
	// once, so it may see the error or the closed socket (as with Redis).
	extra := newClient(t, f.srv, func(o *goredis.Options) { o.MaxRetries = -1 })
	require.Error(t, extra.Ping(f.ctx).Err())
	eventually(t, func() bool { return f.disconnects(reasonMaxClients) == 2 }, "the go-redis client is refused")

	info := f.rdb.Info(f.ctx, "clients").Val()
	require.Contains(t, info, "maxclients:3\r\n")
	require.Contains(t, info, "connected_clients:3\r\n")

	// Once a client leaves, its slot is free again.
	require.NoError(t, a.c.Close())
	eventually(t, func() bool { return f.srv.registry.len() == 2 }, "the closed client leaves the registry")
	dialRaw(t, f.srv).ping()
	b.ping()
	check()
}

func TestHostileIdleTimeout(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.Clients = DefaultClientLimits()
		c.Clients.IdleTimeout = 300 * time.Millisecond
	})
	check := f.acknowledged("k", "v")
	idle := dialRaw(t, f.srv)
	idle.ping()
	// A client that stops in the middle of a command is idle too.
	stalled := dialRaw(t, f.srv)
	stalled.send("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$10\r\nabc")
	start := time.Now()
	idle.requireClosed()
	stalled.requireClosed()
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "closed long before the timeout")
	eventually(t, func() bool { return f.disconnects(reasonIdleTimeout) >= 2 }, "both counted as timeouts")
	// The fixture's own client was idle as well; go-redis reconnects.
	check()
	require.Zero(t, f.rdb.Exists(f.ctx, "x").Val(), "the stalled SET never ran")
}

// TestHostileQueryBufferStalledCommand: a client that sends a bulk header and
// part of its payload, then stalls, holds about its partial command, which
// is accounted, and nothing more; one that announces more than the limit is
// cut at the header.
func TestHostileQueryBufferStalledCommand(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 2 << 20
	})
	check := f.acknowledged("k", "v")

	stalled := dialRaw(t, f.srv)
	stalled.send("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1048576\r\n" + strings.Repeat("a", 600<<10))
	// redcon holds the 600 KiB in a buffer of 1 MiB (doubled from 4 KiB).
	eventually(t, func() bool { return f.srv.mem.in.Load() == 1<<20-redconBaseBuffer }, "the stalled command is accounted")

	big := dialRaw(t, f.srv)
	big.send("*3\r\n$3\r\nSET\r\n$1\r\ny\r\n$3000000\r\n")
	require.Equal(t, "-ERR Protocol error: command too large", big.line())
	big.requireClosed()
	eventually(t, func() bool { return f.disconnects(reasonQueryBuffer) == 1 }, "counted")

	// The stalled client finishes its command after all. redcon keeps its
	// grown buffer (and it stays accounted) until a command outgrows its
	// base size again, when it starts over from a small one.
	stalled.send(strings.Repeat("a", (1<<20)-(600<<10)) + "\r\n")
	require.Equal(t, "+OK", stalled.line())
	// The whole command is a little over 1 MiB: the buffer doubled to 2.
	eventually(t, func() bool { return f.srv.mem.in.Load() == 2<<20-redconBaseBuffer }, "the command's copy is released once it ran")
	stalled.send(cmd("SET", "z", strings.Repeat("z", 5000)))
	require.Equal(t, "+OK", stalled.line())
	// (Published to within publishStep.)
	eventually(t, func() bool { return f.srv.mem.in.Load() < publishStep }, "the large buffer is released")
	require.Equal(t, int64(1<<20), f.rdb.StrLen(f.ctx, "x").Val())
	check()
}

// TestHostileQueryBufferPartialTails is a client that keeps a partial command
// at the end of every read, which made redcon's reader double its buffer
// without bound (it only shrinks once it has consumed all it read). Past
// half the query buffer limit limitConn holds such tails back, so the heap
// stays within a few times the limit however long the stream.
func TestHostileQueryBufferPartialTails(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 256 << 10
		c.MaxCommandBytes = 1 << 20
	})
	check := f.acknowledged("k", "v")
	r := dialRaw(t, f.srv)
	ping := cmd("PING")
	const (
		perChunk = 4000 // PINGs per write
		rounds   = 300  // 300 * 4000 * 14 bytes: 17 MB in all
	)
	body := strings.Repeat(ping, perChunk)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// Each write is the rest of the last PING, whole PINGs, and the first
	// half of the next one. Waiting for the replies before the next write
	// makes each write arrive as one read.
	half := len(ping) / 2
	r.send(ping[:half])
	chunk := []byte(ping[half:] + body + ping[:half])
	want := []byte(strings.Repeat("+PONG\r\n", perChunk+1))
	got := make([]byte, len(want))
	require.NoError(t, r.c.SetDeadline(time.Now().Add(time.Minute)))
	for range rounds {
		_, err := r.c.Write(chunk)
		require.NoError(t, err)
		_, err = io.ReadFull(r.rd, got)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapInuse) - int64(before.HeapInuse)
	// Without the held-back tails redcon's buffer alone reaches 32 MiB.
	require.Less(t, grew, int64(8<<20), "the heap grew by %d bytes while one client streamed %d bytes", grew, rounds*len(body))
	check()
}

// TestHostileOutputBufferHardLimit: a pipeline of GETs on a large value is
// cut once its replies would pass the hard limit.
func TestHostileOutputBufferHardLimit(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 2 << 20
		c.Clients = DefaultClientLimits()
		c.Clients.Output = OutputBufferLimit{Hard: 4 << 20, SoftTimeout: 10 * time.Second}
	})
	check := f.acknowledged("k", "v")
	big := strings.Repeat("b", 1<<20)
	require.NoError(t, f.rdb.Set(f.ctx, "big", big, 0).Err())

	// One GET fits; so does a pipeline of three.
	require.Equal(t, big, f.rdb.Get(f.ctx, "big").Val())
	other := newClient(t, f.srv, func(o *goredis.Options) { o.MaxRetries = -1 })
	cmds, err := other.Pipelined(f.ctx, func(p goredis.Pipeliner) error {
		for range 3 {
			p.Get(f.ctx, "big")
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 3)

	// Ten GETs would need 10 MiB of pending replies.
	_, err = other.Pipelined(f.ctx, func(p goredis.Pipeliner) error {
		for range 10 {
			p.Get(f.ctx, "big")
		}
		return nil
	})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "ERR", "cut without a reply, as Redis does")
	eventually(t, func() bool { return f.disconnects(reasonOutputBuffer) == 1 }, "counted")
	eventually(t, func() bool { return f.srv.mem.out.Load() == 0 }, "the dropped replies are released")
	check()
}

// TestHostileOutputNeverRead: a client that pipelines GETs on a large value
// and never reads is held at the soft limit, not buffered without bound,
// and cut once it has accepted nothing for the soft limit's seconds.
func TestHostileOutputNeverRead(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 2 << 20
		c.Clients = DefaultClientLimits()
		c.Clients.Output = OutputBufferLimit{Hard: 64 << 20, Soft: 256 << 10, SoftTimeout: time.Second}
	})
	check := f.acknowledged("k", "v")
	require.NoError(t, f.rdb.Set(f.ctx, "big", strings.Repeat("b", 1<<20), 0).Err())

	r := dialRaw(t, f.srv)
	require.NoError(t, r.c.(*net.TCPConn).SetReadBuffer(4<<10))
	r.send(strings.Repeat(cmd("GET", "big"), 500)) // 500 MiB of replies
	deadline := time.Now().Add(10 * time.Second)
	var peak int64
	for f.disconnects(reasonOutputTimeout) == 0 {
		require.True(t, time.Now().Before(deadline), "the client that never reads was not cut")
		peak = max(peak, f.srv.mem.out.Load())
		runtime.Gosched()
	}
	require.LessOrEqual(t, peak, int64(256<<10+1<<20+respOverhead), "pending output passed the soft limit plus one reply")
	eventually(t, func() bool { return f.srv.registry.len() == 1 }, "the cut client leaves")
	check()
}

// TestHostileMaxMemoryClients: once all clients' buffers pass
// maxmemory-clients the largest client is closed, and only as many as
// needed; the others finish their commands.
func TestHostileMaxMemoryClients(t *testing.T) {
	f := limitFixture(t, func(c *Config) {
		c.MaxValueBytes = 1 << 20
		c.MaxCommandBytes = 2 << 20
		c.Clients = DefaultClientLimits()
		c.Clients.Output.Hard = 4 << 20
		c.Clients.MaxMemoryClients = 2 << 20
	})
	check := f.acknowledged("k", "v")
	// stall sends a SET of a size-byte value and stops after sent bytes;
	// redcon then holds a power-of-two buffer: want is what is accounted.
	type stalledSet struct {
		r          *rawConn
		key        string
		size, sent int
	}
	var total int64
	stall := func(key string, size, sent int, want int64) stalledSet {
		r := dialRaw(t, f.srv)
		r.send(fmt.Sprintf("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n", len(key), key, size) + strings.Repeat("v", sent))
		total += want
		eventually(t, func() bool { return f.srv.mem.total() == total }, "client "+key+" accounted")
		return stalledSet{r, key, size, sent}
	}
	const small = 512<<10 - redconBaseBuffer // a buffer of 512 KiB
	a := stall("a", 1<<20, 900<<10, 1<<20-redconBaseBuffer)
	b := stall("b", 310<<10, 300<<10, small)
	c := stall("c", 310<<10, 300<<10, small)
	require.Zero(t, f.disconnects(reasonMaxMemoryClients), "under the limit, by 12 KiB")
	total -= 1<<20 - redconBaseBuffer // a, the largest, will go
	d := stall("d", 310<<10, 300<<10, small)
	a.r.requireClosed()
	eventually(t, func() bool { return f.disconnects(reasonMaxMemoryClients) == 1 }, "counted")

	// Each of the others can finish its command (which briefly holds the
	// command twice: redcon copies it out of its buffer) within the budget.
	for _, s := range []stalledSet{b, c, d} {
		s.r.send(strings.Repeat("v", s.size-s.sent) + "\r\n")
		require.Equal(t, "+OK", s.r.line(), "client %s", s.key)
		require.Equal(t, int64(s.size), f.rdb.StrLen(f.ctx, s.key).Val())
	}
	require.Equal(t, 1, f.disconnects(reasonMaxMemoryClients))
	require.Zero(t, f.rdb.Exists(f.ctx, "a").Val())
	check()
}

func TestClientLimitsAreValidated(t *testing.T) {
	for _, tweak := range []func(*ClientLimits){
		func(l *ClientLimits) { l.MaxClients = 0 },
		func(l *ClientLimits) { l.IdleTimeout = -time.Second },
		func(l *ClientLimits) { l.MaxMemoryClients = -1 },
		// The hard limit must leave room for the largest reply.
		func(l *ClientLimits) { l.Output.Hard = 32 << 20 },
	} {
		l := DefaultClientLimits()
		tweak(&l)
		_, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: &funcBackend{}, Clients: l})
		require.Error(t, err)
	}
}
