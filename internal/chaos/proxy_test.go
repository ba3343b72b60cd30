package chaos

import (
	"bufio"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

type lineConn struct {
	net.Conn
	r *bufio.Reader
}

func dialLine(t *testing.T, addr string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &lineConn{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and waits up to limit for the echo.
func (c *lineConn) roundTrip(msg string, limit time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(limit))
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return s[:len(s)-1], nil
}

// tryRoundTrip dials addr and echoes one line; a reset during the dial
// counts as a failure like any other.
func tryRoundTrip(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // the round trip's error is the answer
	_, err = (&lineConn{Conn: c, r: bufio.NewReader(c)}).roundTrip(msg, 500*time.Millisecond)
	return err
}

func TestProxyFaults(t *testing.T) {
	// Registered first, so it runs after every other cleanup (the echo
	// server's) and sees only what the proxy may have leaked.
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	target := echoServer(t)
	p, err := NewProxy("a->b", target, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()

	c := dialLine(t, p.Addr())
	got, err := c.roundTrip("hello", time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello", got)

	// Refuse: the open connection dies and new ones are reset.
	p.Cut(CutRefuse)
	_, err = c.roundTrip("after cut", time.Second)
	require.Error(t, err)
	require.Error(t, tryRoundTrip(p.Addr(), "new while cut"))
	p.Restore()
	c3 := dialLine(t, p.Addr())
	got, err = c3.roundTrip("restored", time.Second)
	require.NoError(t, err)
	require.Equal(t, "restored", got)

	// Stall: nothing moves, but what was sent arrives after the restore.
	p.Cut(CutStall)
	_, err = c3.roundTrip("held", 300*time.Millisecond)
	require.Error(t, err, "a stalled link must not deliver")
	stalledNew := dialLine(t, p.Addr())
	_, err = stalledNew.roundTrip("new while stalled", 200*time.Millisecond)
	require.Error(t, err)
	p.Restore()
	_ = c3.SetDeadline(time.Now().Add(2 * time.Second))
	late, err := c3.r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "held\n", late, "stalled bytes are delivered late, not lost")
	_ = stalledNew.SetDeadline(time.Now().Add(2 * time.Second))
	late, err = stalledNew.r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "new while stalled\n", late)

	// Delay: each direction adds the latency.
	p.SetDelay(100 * time.Millisecond)
	t0 := time.Now()
	got, err = c3.roundTrip("slow", 2*time.Second)
	require.NoError(t, err)
	require.Equal(t, "slow", got)
	require.GreaterOrEqual(t, time.Since(t0), 200*time.Millisecond, "100ms each way")
	p.SetDelay(0)

	// Flap: the link goes down and up; after StopFlap it is up.
	p.StartFlap(20*time.Millisecond, 40*time.Millisecond, rand.New(rand.NewPCG(1, 2)))
	failures := 0
	for range 20 {
		// A reset can already fail the dial.
		cc, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		if err == nil {
			lc := &lineConn{Conn: cc, r: bufio.NewReader(cc)}
			_, err = lc.roundTrip("flap", 200*time.Millisecond)
			_ = cc.Close()
		}
		if err != nil {
			failures++
		}
		time.Sleep(15 * time.Millisecond)
	}
	p.StopFlap()
	require.Positive(t, failures, "a flapping link must drop some connections")
	c4 := dialLine(t, p.Addr())
	got, err = c4.roundTrip("steady", time.Second)
	require.NoError(t, err)
	require.Equal(t, "steady", got)

	// Close ends every connection and goroutine (goleak checks the latter).
	require.NoError(t, p.Close())
	_, err = c4.roundTrip("closed", time.Second)
	require.Error(t, err)
}

// TestProxyOneDirection: cutting a->b leaves b->a working.
func TestProxyOneDirection(t *testing.T) {
	a, b := echoServer(t), echoServer(t)
	log := slog.New(slog.DiscardHandler)
	ab, err := NewProxy("a->b", b, log)
	require.NoError(t, err)
	defer func() { require.NoError(t, ab.Close()) }()
	ba, err := NewProxy("b->a", a, log)
	require.NoError(t, err)
	defer func() { require.NoError(t, ba.Close()) }()
	ab.Cut(CutRefuse)
	require.Error(t, tryRoundTrip(ab.Addr(), "x"))
	got, err := dialLine(t, ba.Addr()).roundTrip("y", time.Second)
	require.NoError(t, err)
	require.Equal(t, "y", got)
}

// TestProxyHoldReplies: with replies held, a request reaches the target
// (it echoes, and the echo is counted) but its reply never reaches the
// client; a refusing cut then drops the connection with the reply unseen,
// and once restored the link carries requests and replies again.
func TestProxyHoldReplies(t *testing.T) {
	baseline := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, baseline) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	got := make(chan string, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer func() { _ = c.Close() }() // an echo peer: its read and write errors end it
				r := bufio.NewReader(c)
				for {
					s, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got <- s
					if _, err := c.Write([]byte(s)); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	p, err := NewProxy("f->l", ln.Addr().String(), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer func() { require.NoError(t, p.Close()) }()

	c := dialLine(t, p.Addr())
	_, err = c.roundTrip("warm", time.Second)
	require.NoError(t, err)
	<-got
	p.HoldReplies()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Write([]byte("incr\n"))
	require.NoError(t, err)
	select {
	case s := <-got:
		require.Equal(t, "incr\n", s, "the request reached the target")
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the target")
	}
	p.Cut(CutRefuse)
	s, err := c.r.ReadString('\n')
	require.Error(t, err, "the held reply %q reached the client", s)
	p.Restore()
	c2 := dialLine(t, p.Addr())
	echo, err := c2.roundTrip("again", time.Second)
	require.NoError(t, err)
	require.Equal(t, "again", echo)
}
