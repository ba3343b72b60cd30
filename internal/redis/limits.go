package redis

import (
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// redcon buffers a whole command before handing it over and never bounds
// that buffer: a client announcing "$10000000000" would make it grow until
// the process dies. The framing guard below watches the raw byte stream as
// redcon reads it and cuts the connection, with a protocol error, as soon as
// a command announces more than the configured bound — before the bytes are
// buffered. It only enforces bounds; redcon stays the authority on what is
// well-formed, and where the guard meets malformed framing it stops looking
// and lets redcon reject the connection.

// Framing bounds that do not depend on configuration.
const (
	// maxInlineBytes bounds an inline (telnet-style) command line.
	maxInlineBytes = 64 << 10
	// maxArgs bounds the number of arguments of one command. Every argument
	// costs redcon and the handler a few slice headers beyond its wire bytes,
	// so the count needs its own bound.
	maxArgs = 1 << 20
	// maxHeaderLine bounds a "*<count>" or "$<length>" line; any valid one is
	// far shorter.
	maxHeaderLine = 32
	// violationWriteTimeout bounds writing the protocol error to a client
	// that does not read.
	violationWriteTimeout = time.Second
)

// frameLimits are the per-connection bounds enforced by the framing guard.
type frameLimits struct {
	// maxCommandBytes is client-query-buffer-limit: the most input one
	// connection may have buffered, a command being received included.
	maxCommandBytes int
	// idleTimeout is timeout: a read that waits longer fails.
	idleTimeout time.Duration
	// writeTimeout bounds a write to a client that does not read
	// (client-output-buffer-limit's seconds).
	writeTimeout time.Duration
}

// limitListener wraps every accepted connection in the framing guard.
type limitListener struct {
	net.Listener
	live *liveLimits // the limits as CONFIG SET last left them
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, live: l.live}
	lc.refresh()
	return lc, nil
}

// maxKeptTail is the largest array for held-back tails a connection keeps
// between reads.
const maxKeptTail = 16 << 10

// redconBaseBuffer is the size redcon's reader starts with and returns to
// whenever it has consumed everything it read.
const redconBaseBuffer = 4096

// limitConn runs every byte redcon reads through a frameScanner. Read and
// Write are only ever called by the connection's handler goroutine (Read
// between batches of commands, Write when redcon or the output limit
// flushes replies), so writing the protocol error from Read cannot
// interleave with a reply; Close may come from any goroutine.
//
// redcon's reader grows its buffer by doubling whenever the buffer is full
// and ends inside a command, and only shrinks it back once it has consumed
// everything it read; a client keeping a partial command at the end of every
// read could make it double forever. So once redcon has been handed half the
// query buffer limit since it last drained, limitConn hands it whole
// commands: a read that ends inside a command is cut after the last command
// it completes, and the tail is held back for the next Read, so redcon
// drains after that batch. Below that mark reads pass through whole, which
// lets a pipeline of large writes reach redcon together and share one
// proposal. As a backstop, a client whose undrained input passes twice the
// limit is disconnected.
type limitConn struct {
	net.Conn
	scan    frameScanner
	pending *frameViolation // reported on the next Read
	held    []byte          // scanned bytes after the last command boundary, for the next Read
	heldOff int
	// acct is the client's accounting, set when redcon accepts the
	// connection; nil only in benchmarks that drive a limitConn directly.
	acct *clientAcct
	// live is where scan.limits are refreshed from before each socket
	// read, so CONFIG SET reaches connections already open; nil in tests
	// that drive a limitConn with fixed limits.
	live *liveLimits
	// midFlush marks a Write that flushes part of a batch's replies
	// (client.afterCommand) rather than redcon's end-of-batch flush.
	midFlush bool
	// Deadlines last set, in unix nanoseconds: they are refreshed lazily,
	// when less than 7/8 of the timeout is left, to spare a timer update
	// per read or write.
	readDeadline, writeDeadline int64

	// Estimate of what redcon's reader holds (see inputBytes).
	cycle     int  // bytes handed to redcon since its buffer last drained
	partial   int  // bytes of the current, incomplete command handed to redcon
	grown     bool // redcon reallocated its buffer since it last drained
	readerCap int  // estimated capacity of redcon's read buffer

	// early is what the socket delivered while the client was blocked
	// and the close watch read it (blocking_conn.go): the next Reads hand
	// it on as if it came from the socket then. nil when there is none.
	early *earlyInput
}

// Read implements net.Conn.
func (c *limitConn) Read(p []byte) (int, error) {
	if c.pending != nil {
		return 0, c.fail()
	}
	if c.heldOff < len(c.held) {
		// The tail held back never contains a command boundary.
		n := copy(p, c.held[c.heldOff:])
		c.heldOff += n
		if c.heldOff == len(c.held) {
			c.held, c.heldOff = c.held[:0], 0
			if cap(c.held) > maxKeptTail {
				c.held = nil // a rare large tail: do not keep its array
			}
		}
		c.handed(n, 0)
		return n, nil
	}
	c.refresh()
	var n int
	var err error
	if c.early != nil {
		// Read from the socket while the client was blocked (blocking_conn.go).
		n, err = c.readEarly(p)
	} else {
		c.armRead()
		n, err = c.Conn.Read(p)
	}
	if c.live != nil {
		// The read may have waited long: measure what arrived against
		// the bound as it is now.
		c.scan.limits.maxCommandBytes = int(c.live.queryLimit.Load())
	}
	if err != nil && c.acct != nil && c.scan.limits.idleTimeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
		c.acct.reason.CompareAndSwap(uint32(reasonNone), uint32(reasonIdleTimeout))
	}
	if n == 0 {
		return 0, err
	}
	keep, last, v := c.scan.feed(p[:n])
	if v != nil {
		// Hand redcon the bytes before the offending one so that
		// earlier pipelined commands still run and are answered; the
		// next Read reports the violation.
		c.pending = v
		if keep == 0 {
			return 0, c.fail()
		}
		c.handed(keep, min(last, keep))
		return keep, nil
	}
	if err == nil && last > 0 && last < n && c.cycle+n > c.scan.limits.maxCommandBytes/2 {
		c.held = append(c.held[:0], p[last:n]...)
		n = last
	}
	c.handed(n, last)
	if c.cycle+len(c.held)-c.heldOff > 2*c.scan.limits.maxCommandBytes {
		c.pending = &frameViolation{msg: "query buffer limit reached", queryLimit: true}
	}
	return n, err
}

// Write implements net.Conn. Every write has a deadline, so a client that
// never reads cannot hold its handler (and its replies) forever.
func (c *limitConn) Write(b []byte) (int, error) {
	if !c.midFlush {
		// redcon flushes once it has run every command it read: its
		// reader has nothing complete left.
		c.drained()
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.refresh()
	c.armWrite()
	n, err := c.Conn.Write(b)
	if err != nil && c.acct != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.acct.reason.CompareAndSwap(uint32(reasonNone), uint32(reasonOutputTimeout))
	}
	if c.acct != nil && !c.midFlush {
		c.acct.flushed()
	}
	return n, err
}

// refresh loads the current limits. A changed timeout re-arms the
// deadline at once rather than when 7/8 of the old one has passed.
func (c *limitConn) refresh() {
	if c.live == nil {
		return
	}
	l := &c.scan.limits
	l.maxCommandBytes = int(c.live.queryLimit.Load())
	if d := time.Duration(c.live.idleTimeout.Load()); d != l.idleTimeout {
		l.idleTimeout, c.readDeadline = d, 0
		if d == 0 {
			_ = c.Conn.SetReadDeadline(time.Time{})
		}
	}
	if d := time.Duration(c.live.outTimeout.Load()); d != l.writeTimeout {
		l.writeTimeout, c.writeDeadline = d, 0
		if d == 0 {
			_ = c.Conn.SetWriteDeadline(time.Time{})
		}
	}
}

// armRead refreshes the idle deadline before a socket read.
func (c *limitConn) armRead() {
	if d := c.scan.limits.idleTimeout; d > 0 {
		now := time.Now().UnixNano()
		if c.readDeadline-now < int64(d)/8*7 {
			c.readDeadline = now + int64(d)
			_ = c.Conn.SetReadDeadline(time.Unix(0, c.readDeadline))
		}
	}
}

// armWrite refreshes the write deadline before a socket write.
func (c *limitConn) armWrite() {
	if d := c.scan.limits.writeTimeout; d > 0 {
		now := time.Now().UnixNano()
		if c.writeDeadline-now < int64(d)/8*7 {
			c.writeDeadline = now + int64(d)
			_ = c.Conn.SetWriteDeadline(time.Unix(0, c.writeDeadline))
		}
	}
}

// handed records n bytes given to redcon, of which the first last end a
// command (0 if none ends within them).
func (c *limitConn) handed(n, last int) {
	c.cycle += n
	if last > 0 {
		c.partial = n - last
	} else {
		c.partial += n
	}
	// redcon's buffer holds the cycle's bytes from its start; it doubles
	// from redconBaseBuffer as they arrive, and the first doubling of a
	// cycle replaces the (possibly large) array it kept from before.
	need := redconBaseBuffer
	for need < c.cycle {
		need *= 2
	}
	if c.cycle > redconBaseBuffer && !c.grown {
		c.grown, c.readerCap = true, need
	} else {
		c.readerCap = max(c.readerCap, need)
	}
	c.publishIn()
}

// drained records that redcon has run every complete command it was given.
func (c *limitConn) drained() {
	if c.partial == 0 {
		c.cycle, c.grown = 0, false
	}
	c.publishIn()
}

// inputBytes estimates the memory redcon's reader holds for this client
// beyond its fixed buffers: its read buffer past the base size, a copy of
// every complete command not yet run (redcon copies each command out of
// its buffer), and the tail held back here.
func (c *limitConn) inputBytes() int64 {
	return int64(max(c.readerCap, redconBaseBuffer) - redconBaseBuffer + c.cycle - c.partial + cap(c.held))
}

// publishIn publishes the input estimate when it has moved by publishStep
// or dropped to its base, so small commands never touch shared counters.
func (c *limitConn) publishIn() {
	if c.acct == nil {
		return
	}
	n := c.inputBytes()
	old := c.acct.in.Load()
	if d := n - old; d >= publishStep || d <= -publishStep || (n == 0 && old != 0) {
		c.acct.setIn(n)
	}
}

// fail tells the client why it is being disconnected and returns the error
// that makes redcon close the connection.
func (c *limitConn) fail() error {
	if c.pending.queryLimit && c.acct != nil {
		c.acct.reason.CompareAndSwap(uint32(reasonNone), uint32(reasonQueryBuffer))
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(violationWriteTimeout))
	_, _ = c.Conn.Write([]byte("-ERR Protocol error: " + c.pending.msg + "\r\n"))
	return c.pending
}

// frameViolation is a command that exceeds a framing bound.
type frameViolation struct {
	msg string
	// queryLimit marks a violation of client-query-buffer-limit, as opposed
	// to a fixed protocol bound.
	queryLimit bool
}

func (v *frameViolation) Error() string { return "protocol error: " + v.msg }

// frameState is where the scanner is inside the RESP stream.
type frameState uint8

const (
	frameStart    frameState = iota // at a command boundary
	frameInline                     // inside an inline command line
	frameCount                      // inside "*<count>\r\n", after the '*'
	frameBulkHead                   // expecting the '$' of a bulk header
	frameBulkLen                    // inside "$<length>\r\n", after the '$'
	frameBulkData                   // skipping a bulk payload and its CRLF
	framePassthru                   // framing is malformed; redcon will reject it
)

// frameScanner follows RESP framing incrementally, one chunk at a time, to
// account each command's size as it is announced.
type frameScanner struct {
	limits   frameLimits
	state    frameState
	line     []byte // the header line being accumulated, after '*' or '$'
	inline   int    // bytes of the current inline line
	argsLeft int    // bulk strings still expected in the current command
	skip     int    // payload bytes (plus CRLF) still to skip
	cmdBytes int    // wire bytes announced so far by the current command
}

// feed advances the scanner over b. It returns the number of bytes to
// hand on (all of b, or, if b contains a violation, the bytes before the
// offending byte, with the violation) and the offset just past the last
// command that ends within them (0 if none does).
func (f *frameScanner) feed(b []byte) (keep, last int, v *frameViolation) {
	for i := 0; i < len(b); i++ {
		switch f.state {
		case framePassthru:
			return len(b), last, nil
		case frameStart:
			switch b[i] {
			case '*':
				f.state, f.line, f.cmdBytes = frameCount, f.line[:0], 1
			case '\n': // an empty inline line
				last = i + 1
			default:
				f.state, f.inline = frameInline, 1
			}
		case frameInline:
			if b[i] == '\n' {
				f.state, last = frameStart, i+1
				continue
			}
			f.inline++
			if f.inline > maxInlineBytes {
				return i, last, &frameViolation{msg: "too big inline request"}
			}
		case frameBulkHead:
			if b[i] != '$' {
				f.state = framePassthru
				return len(b), last, nil
			}
			f.state, f.line = frameBulkLen, f.line[:0]
			f.cmdBytes++
		case frameCount, frameBulkLen:
			if b[i] != '\n' {
				f.line = append(f.line, b[i])
				if len(f.line) > maxHeaderLine {
					return i, last, &frameViolation{msg: "invalid multibulk or bulk length"}
				}
				continue
			}
			if v := f.endHeader(); v != nil {
				return i, last, v
			}
		case frameBulkData:
			n := min(f.skip, len(b)-i)
			f.skip -= n
			i += n - 1
			if f.skip == 0 {
				f.argsLeft--
				f.nextArg()
				if f.state == frameStart {
					last = i + 1
				}
			}
		}
	}
	return len(b), last, nil
}

// endHeader finishes a "*<count>" or "$<length>" line at its '\n'.
func (f *frameScanner) endHeader() *frameViolation {
	line := f.line
	f.cmdBytes += len(line) + 1
	if len(line) == 0 || line[len(line)-1] != '\r' {
		f.state = framePassthru
		return nil
	}
	// redcon parses these numbers with strconv.Atoi; do the same so that
	// both sides agree on the framing.
	n, err := strconv.Atoi(string(line[:len(line)-1]))
	if f.state == frameCount {
		if err != nil || n <= 0 {
			f.state = framePassthru
			return nil //nolint:nilerr // no bound applies to a count the guard cannot read: redcon judges it
		}
		if n > maxArgs {
			return &frameViolation{msg: "invalid multibulk length"}
		}
		f.argsLeft = n
		f.nextArg()
		return nil
	}
	if err != nil || n < 0 {
		f.state = framePassthru
		return nil //nolint:nilerr // no bound applies to a length the guard cannot read: redcon judges it
	}
	if n > f.limits.maxCommandBytes-f.cmdBytes-2 {
		return &frameViolation{msg: "command too large", queryLimit: true}
	}
	f.cmdBytes += n + 2
	f.state, f.skip = frameBulkData, n+2
	return nil
}

// nextArg moves to the next bulk header, or to the next command.
func (f *frameScanner) nextArg() {
	if f.argsLeft == 0 {
		f.state = frameStart
		return
	}
	f.state = frameBulkHead
}
