package redis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/elastickv/elastickv/internal/kv"
)

// Benchmarks of the RESP front end, innermost first: parsing (framing guard
// plus redcon's reader), dispatch of one parsed command, and a whole server
// over loopback TCP. Each reports allocations, the figure the performance
// issue tracks; b.SetBytes or an ops/s metric gives the rate.

// replayConn is the client side of a connection that sends the same bytes
// again whenever the reader has consumed them: one Read never returns more
// than what is left of the current copy, as a client waiting for its replies
// before sending the next request would. Only Read is used.
type replayConn struct {
	net.Conn // nil: any other method panics, which would be a bug here
	data     []byte
	off      int
}

func (c *replayConn) Read(p []byte) (int, error) {
	n := copy(p, c.data[c.off:])
	c.off += n
	if c.off == len(c.data) {
		c.off = 0
	}
	return n, nil
}

// BenchmarkParseCommand measures turning wire bytes into argument slices
// exactly as an accepted connection does: redcon's reader reading through
// the framing guard (limitConn, limits.go). One op is one command.
func BenchmarkParseCommand(b *testing.B) {
	key := "key:000000000001"
	for _, tc := range []struct {
		name string
		wire string
		cmds int
		args int
	}{
		{"set", cmd("SET", key, "value-0123456789"), 1, 3},
		{"pipeline16", strings.Repeat(cmd("SET", key, "value-0123456789"), 16), 16, 3},
		{"value4KiB", cmd("SET", key, strings.Repeat("v", 4<<10)), 1, 3},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg, err := Config{Backend: &fixedBackend{}}.withDefaults()
			if err != nil {
				b.Fatal(err)
			}
			src := &replayConn{data: []byte(tc.wire)}
			conn := &limitConn{Conn: src, scan: frameScanner{limits: frameLimits{maxCommandBytes: cfg.MaxCommandBytes}}}
			rd := redcon.NewReader(conn)
			b.SetBytes(int64(len(tc.wire) / tc.cmds))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				cmds, err := rd.ReadCommands()
				if err != nil {
					b.Fatal(err)
				}
				for _, c := range cmds {
					if len(c.Args) != tc.args || !equalFold(c.Args[0], "set") {
						b.Fatalf("parsed %q", c.Args)
					}
				}
				i += len(cmds)
				// redcon flushes the replies of each batch it read,
				// which tells the guard the batch has run.
				_, _ = conn.Write(nil)
			}
		})
	}
}

// replyConn is a redcon.Conn that buffers replies in a redcon.Writer, for
// running handlers without a socket. Only the reply methods are used.
type replyConn struct {
	redcon.Conn // nil: any other method panics, which would be a bug here
	w           *redcon.Writer
}

func (c *replyConn) WriteError(msg string)    { c.w.WriteError(msg) }
func (c *replyConn) WriteString(s string)     { c.w.WriteString(s) }
func (c *replyConn) WriteBulk(b []byte)       { c.w.WriteBulk(b) }
func (c *replyConn) WriteBulkString(s string) { c.w.WriteBulkString(s) }
func (c *replyConn) WriteInt64(n int64)       { c.w.WriteInt64(n) }
func (c *replyConn) WriteNull()               { c.w.WriteNull() }
func (c *replyConn) WriteArray(n int)         { c.w.WriteArray(n) }

// lastWrite keeps the bytes of the last Write, reusing its buffer
// (redcon.Writer.Buffer would allocate a copy per call).
type lastWrite struct{ b []byte }

func (w *lastWrite) Write(p []byte) (int, error) {
	w.b = append(w.b[:0], p...)
	return len(p), nil
}

// fixedBackend answers every write OK and every read with one fixed value,
// without storage, so that a benchmark over it measures the server alone.
// It is a LocalReader, like the node's backend, so pipelined reads take the
// batched path they take in production.
type fixedBackend struct{ view *fixedView }

type fixedView struct{ val []byte }

func (v *fixedView) Get([]byte) ([]byte, bool, error)           { return v.val, true, nil }
func (v *fixedView) Exists([]byte) (bool, error)                { return true, nil }
func (v *fixedView) ScanKeys([]byte, func([]byte) bool) error   { return nil }
func (v *fixedView) DBSize() (int64, error)                     { return 1, nil }
func (v *fixedView) RandomKey(*rand.Rand) ([]byte, bool, error) { return []byte("k"), true, nil }
func (v *fixedView) StrLen(k []byte) (int, bool, error) {
	val, found, err := v.Get(k)
	return len(val), found, err
}
func (v *fixedView) ReadString(_ []byte, fn func([]byte)) (bool, error) {
	fn(v.val)
	return true, nil
}
func (b *fixedBackend) Status() Status                              { return Status{NodeID: "n1", RaftState: RaftStateLeader} }
func (b *fixedBackend) Barrier(ctx context.Context) (uint64, error) { return 0, ctx.Err() }
func (b *fixedBackend) ReadLocal(_ uint64, fn func(v kv.View) error) error {
	return fn(b.view)
}

func (b *fixedBackend) Write(ctx context.Context, cmd *kv.Command) (kv.Result, error) {
	if err := ctx.Err(); err != nil {
		return kv.Result{}, err
	}
	if cmd.Op == kv.OpBatch {
		// A pipelined run of SETs: one OK per command.
		r := kv.Result{Kind: kv.ResultBatch, Batch: make([]kv.Result, len(cmd.Values))}
		for i := range r.Batch {
			r.Batch[i] = kv.Result{Kind: kv.ResultOK}
		}
		return r, nil
	}
	return kv.Result{Kind: kv.ResultOK}, nil
}

func (b *fixedBackend) Read(ctx context.Context, fn func(v kv.View) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(b.view)
}

// BenchmarkDispatch measures running one parsed command, from the command
// table lookup to the reply in the connection's buffer, against a backend
// that does no work: the per-command cost of the redis package itself
// (metrics, request context, kv.Command, reply encoding).
func BenchmarkDispatch(b *testing.B) {
	val := []byte("value-0123456789")
	backend := &fixedBackend{view: &fixedView{val: val}}
	s, err := NewServer(Config{Addr: "127.0.0.1:0", Backend: backend})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	for _, tc := range []struct {
		name  string
		args  [][]byte
		reply string
	}{
		{"get", [][]byte{[]byte("GET"), []byte("key:000000000001")}, "$16\r\nvalue-0123456789\r\n"},
		{"set", [][]byte{[]byte("SET"), []byte("key:000000000001"), val}, "+OK\r\n"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var out lastWrite
			w := redcon.NewWriter(&out)
			c := &client{id: 1, conn: &replyConn{w: w}}
			want := []byte(tc.reply)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				s.handleArgs(c, tc.args)
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				if !bytes.Equal(out.b, want) {
					b.Fatalf("reply %q, want %q", out.b, want)
				}
			}
		})
	}
}

// localStoreBackend gives storeBackend the LocalReader capability of the
// node's backend (with a free barrier), so that pipelined reads take the
// batched path they take in production.
type localStoreBackend struct{ *storeBackend }

func (b localStoreBackend) Barrier(ctx context.Context) (uint64, error) { return b.now(), ctx.Err() }

func (b localStoreBackend) ReadLocal(now uint64, fn func(v kv.View) error) error {
	return b.store.ReadAt(now, fn)
}

// BenchmarkServerSetGet drives a real Server over loopback TCP with
// pre-encoded commands from a raw connection, so the client side allocates
// nothing and allocs/op is the server's (and its backend's). One op is one
// command; at P=16 each round trip carries 16 pipelined commands.
// backend=store is a real Pebble store without Raft; backend=fixed does no
// work, isolating the server.
func BenchmarkServerSetGet(b *testing.B) {
	const (
		key = "key:000000000001"
		val = "value-0123456789"
	)
	for _, bk := range []string{"store", "fixed"} {
		b.Run("backend="+bk, func(b *testing.B) {
			var backend Backend = &fixedBackend{view: &fixedView{val: []byte(val)}}
			if bk == "store" {
				sb := localStoreBackend{newStoreBackend(b)}
				if _, err := sb.Write(context.Background(), &kv.Command{Op: kv.OpSet, Keys: [][]byte{[]byte(key)}, Values: [][]byte{[]byte(val)}}); err != nil {
					b.Fatal(err)
				}
				backend = sb
			}
			s := startServer(b, Config{Backend: backend})
			for _, op := range []struct {
				name, req, reply string
			}{
				{"GET", cmd("GET", key), fmt.Sprintf("$%d\r\n%s\r\n", len(val), val)},
				{"SET", cmd("SET", key, val), "+OK\r\n"},
			} {
				for _, p := range []int{1, 16} {
					b.Run(fmt.Sprintf("%s/P=%d", op.name, p), func(b *testing.B) {
						benchRoundTrips(b, s, op.req, op.reply, p)
					})
				}
			}
		})
	}
}

// benchRoundTrips sends b.N copies of req, p per round trip, on one raw
// connection and checks every reply is want.
func benchRoundTrips(b *testing.B, s *Server, req, want string, p int) {
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	reqs := []byte(strings.Repeat(req, p))
	wants := []byte(strings.Repeat(want, p))
	got := make([]byte, len(wants))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(p, b.N-done)
		// Every command and reply has the same length, so a prefix holds
		// exactly n of them.
		if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Write(reqs[:n*len(req)]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, got[:n*len(want)]); err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got[:n*len(want)], wants[:n*len(want)]) {
			b.Fatalf("replies %q, want %q", got[:n*len(want)], wants[:n*len(want)])
		}
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
