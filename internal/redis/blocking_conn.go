package redis

import (
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Seeing a blocked client leave.
//
// redcon reads a connection only between commands, on its handler
// goroutine, so while a handler waits in a blocking command nobody reads
// the socket and a client that hangs up goes unnoticed. A closeWatch reads
// the socket for the time of the wait, on a goroutine the handler starts
// and stops: an error or EOF means the client is gone, and the blocked
// command proposes no pop for it. Whatever the client sends meanwhile
// (Redis buffers commands sent to a blocked client and runs them once it
// is unblocked) is kept, up to maxEarlyInput, and handed to redcon by
// limitConn.Read afterwards, through the framing guard as any input. A
// client that sends more than that while blocked is no longer watched: its
// disconnect is then seen only once the command ends.

// maxEarlyInput bounds what a close watch reads ahead of redcon.
const maxEarlyInput = 64 << 10

// earlyInput is socket input read by a close watch and not yet handed to
// redcon.
type earlyInput struct {
	data []byte
	off  int
	err  error // what the socket reported after data; nil if nothing
}

// readEarly hands on early input: the bytes first, then the socket's
// error on the next call.
func (c *limitConn) readEarly(p []byte) (int, error) {
	e := c.early
	if e.off < len(e.data) {
		n := copy(p, e.data[e.off:])
		e.off += n
		if e.off == len(e.data) && e.err == nil {
			c.early = nil
		}
		return n, nil
	}
	c.early = nil
	return 0, e.err
}

// closeWatch reads a blocked client's socket until stopped. A nil
// *closeWatch watches nothing (a connection not behind a limitConn).
type closeWatch struct {
	lc *limitConn
	// closed is closed once the socket reports the client gone.
	closed chan struct{}
	// done is closed when the reading goroutine has returned.
	done     chan struct{}
	stopping atomic.Bool
	// Owned by the reading goroutine until done.
	data []byte
	err  error
}

// goneClosed is a closed channel, for a watch over a client already gone.
var goneClosed = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// watchClose starts watching c's socket. The caller must call stop
// before its handler returns (stop waits for the goroutine).
func watchClose(c *client) *closeWatch {
	lc, ok := c.conn.NetConn().(*limitConn)
	if !ok || lc.pending != nil {
		return nil
	}
	if lc.early != nil && (lc.early.err != nil || len(lc.early.data)-lc.early.off >= maxEarlyInput) {
		if lc.early.err != nil {
			// The socket already said the client is gone.
			return &closeWatch{closed: goneClosed}
		}
		return nil // over the read-ahead bound already
	}
	w := &closeWatch{lc: lc, closed: make(chan struct{}), done: make(chan struct{})}
	// A blocked client is exempt from the idle timeout, as in Redis: its
	// own timeout bounds the wait. The deadline is re-armed at the next
	// Read after stop.
	_ = lc.Conn.SetReadDeadline(time.Time{})
	lc.readDeadline = 0
	go w.run()
	return w
}

func (w *closeWatch) run() {
	defer close(w.done)
	buf := make([]byte, 4096)
	for len(w.data) < maxEarlyInput {
		n, err := w.lc.Conn.Read(buf)
		w.data = append(w.data, buf[:n]...)
		if err == nil {
			continue
		}
		if w.stopping.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
			return // stop's deadline, not the client
		}
		w.err = err
		close(w.closed)
		return
	}
}

// gone returns a channel closed once the client is known to be gone; nil
// (never ready) for a nil watch.
func (w *closeWatch) gone() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.closed
}

// isGone reports whether the client is known to be gone.
func (w *closeWatch) isGone() bool {
	select {
	case <-w.gone():
		return true
	default:
		return false
	}
}

// stop ends the watch and hands what it read to the connection's next
// Reads. It must be called on the handler goroutine.
func (w *closeWatch) stop() {
	if w == nil || w.lc == nil {
		return
	}
	w.stopping.Store(true)
	// A deadline in the past makes the pending Read return at once.
	_ = w.lc.Conn.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.lc.Conn.SetReadDeadline(time.Time{})
	w.lc.readDeadline = 0
	if len(w.data) == 0 && w.err == nil {
		return
	}
	e := w.lc.early
	if e == nil {
		e = &earlyInput{}
		w.lc.early = e
	}
	e.data = append(e.data[e.off:], w.data...)
	e.off = 0
	e.err = w.err
}

// flushBeforeBlock writes the replies buffered for the commands a client
// pipelined before the one that now blocks: Redis sends them before it
// blocks, and a client may wait for them (e.g. a push's reply) before it
// does anything else. Like client.afterCommand's flush, it is not the end
// of redcon's batch (midFlush).
func (c *client) flushBeforeBlock() {
	if c.cut || c.mute {
		return
	}
	w := redcon.BaseWriter(c.conn)
	if w == nil || len(w.Buffer()) == 0 {
		return
	}
	lc, _ := c.conn.NetConn().(*limitConn)
	if lc != nil {
		lc.midFlush = true
	}
	err := w.Flush()
	if lc != nil {
		lc.midFlush = false
	}
	if a := c.acct; a != nil {
		a.pendingOut = 0
		a.setOut(0)
	}
	if err != nil {
		// redcon's writer keeps the error and ends the connection after
		// this batch: nobody is left to answer.
		c.cut, c.quit = true, true
		c.conn.ReadPipeline()
	}
}
