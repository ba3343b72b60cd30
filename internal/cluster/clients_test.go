package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/elastickv/elastickv/internal/node"
	"github.com/elastickv/elastickv/internal/redis"
)

// TestHostileClientsCannotStopAFollower attacks a follower with the clients
// the client limits exist for, all at once: one that pipelines GETs of a
// large value and never reads, three that stall in the middle of 12 MiB
// commands (past maxmemory-clients together, by less than one of them), and a crowd past maxclients.
// Meanwhile a well-behaved client keeps writing through the same follower:
// it is never refused, and every write it saw acknowledged is there.
func TestHostileClientsCannotStopAFollower(t *testing.T) {
	c := New(t, 3, func(_ int, cfg *node.Config) {
		cfg.RedisClients.MaxClients = 16
		cfg.RedisClients.Output = redis.OutputBufferLimit{Hard: 128 << 20, Soft: 1 << 20, SoftTimeout: time.Second}
		cfg.RedisClients.MaxMemoryClients = 40 << 20
	})
	leader := c.WaitLeader(5 * time.Second)
	f := (leader + 1) % 3
	addr := c.Node(f).RedisAddr()
	ctx := c.Ctx(60 * time.Second)
	require.NoError(t, c.Client(leader).Set(ctx, "big", strings.Repeat("b", 4<<20), 0).Err())

	// The well-behaved writer, connected before the attack.
	writer := c.Client(f)
	require.NoError(t, writer.Incr(ctx, "acked").Err())
	acked := atomic.Int64{}
	acked.Store(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Stop the writer before the cluster closes, even if the test fails.
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := writer.Incr(ctx, "acked").Err(); err != nil {
				select {
				case <-stop: // the test is over (or failed) and closes the cluster
				default:
					t.Errorf("the well-behaved client failed: %v", err)
				}
				return
			}
			acked.Add(1)
		}
	}()

	dial := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	// Never reads: 200 GETs of 4 MiB.
	reader := dial()
	_, err := io.WriteString(reader, strings.Repeat("*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n", 200))
	require.NoError(t, err)
	// Stall inside 12 MiB SETs: 16 MiB buffers each, 48 MiB together, plus
	// the up to 5 MiB of replies the reader holds.
	var stalled []net.Conn
	for i := range 3 {
		conn := dial()
		key := fmt.Sprintf("stalled%d", i)
		_, err := fmt.Fprintf(conn, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s", len(key), key, 16<<20, strings.Repeat("s", 12<<20))
		require.NoError(t, err)
		stalled = append(stalled, conn)
	}
	// A crowd: the writer holds one of the 16 slots all along, so at least
	// 5 of 20 more are refused (more while the others are connected).
	refused := 0
	for range 20 {
		conn := dial()
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n")
		require.NoError(t, err)
		line, err := bufio.NewReader(conn).ReadString('\n')
		require.NoError(t, err)
		if line == "-ERR max number of clients reached\r\n" {
			refused++
		} else {
			require.Equal(t, "+PONG\r\n", line)
		}
	}
	require.GreaterOrEqual(t, refused, 5)

	// The reader is cut once it has accepted nothing for a second; what it
	// reads then ends well short of 800 MiB.
	reg := c.Node(f).Registry()
	require.Eventually(t, func() bool { return disconnects(t, reg, "output_write_timeout") == 1 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, reader.SetReadDeadline(time.Now().Add(30*time.Second)))
	n, err := io.Copy(io.Discard, reader)
	require.True(t, err == nil || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset"), "read: %v", err)
	require.Less(t, n, int64(200<<20))

	// Exactly one stalled client was closed to get back under 40 MiB.
	closed := 0
	for _, conn := range stalled {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
		_, err := conn.Read(make([]byte, 1))
		if errors.Is(err, io.EOF) || (err != nil && strings.Contains(err.Error(), "reset")) {
			closed++
		}
	}
	require.Equal(t, 1, closed)
	require.Equal(t, 1, disconnects(t, reg, "maxmemory_clients"))
	require.Equal(t, refused, disconnects(t, reg, "maxclients"))

	close(stop)
	wg.Wait()
	// Every acknowledged INCR is there, on every node.
	want := acked.Load()
	for i := range 3 {
		require.Eventually(t, func() bool {
			v, err := c.Client(i).Get(ctx, "acked").Int64()
			return err == nil && v == want
		}, 10*time.Second, 10*time.Millisecond, "node %d", i)
	}
}

// disconnects reads elastickv_redis_client_disconnects_total{reason}.
func disconnects(t *testing.T, reg *prometheus.Registry, reason string) int {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "elastickv_redis_client_disconnects_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}
