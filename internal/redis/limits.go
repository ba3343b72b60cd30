package redis

import (
	"net"
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

// frameLimits are the per-command bounds enforced by the framing guard.
type frameLimits struct {
	maxCommandBytes int
}

// limitListener wraps every accepted connection in the framing guard.
type limitListener struct {
	net.Listener
	limits frameLimits
}

// Accept implements net.Listener.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &limitConn{Conn: c, scan: frameScanner{limits: l.limits}}, nil
}

// limitConn runs every byte redcon reads through a frameScanner. Read is
// only ever called by the connection's handler goroutine, between flushes
// of its replies, so writing the protocol error from Read cannot interleave
// with a reply.
type limitConn struct {
	net.Conn
	scan    frameScanner
	pending *frameViolation // reported on the next Read
}

// Read implements net.Conn.
func (c *limitConn) Read(p []byte) (int, error) {
	if c.pending != nil {
		return 0, c.fail()
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		if keep, v := c.scan.feed(p[:n]); v != nil {
			// Hand redcon the bytes before the offending one so that
			// earlier pipelined commands still run and are answered; the
			// next Read reports the violation.
			c.pending = v
			if keep == 0 {
				return 0, c.fail()
			}
			return keep, nil
		}
	}
	return n, err
}

// fail tells the client why it is being disconnected and returns the error
// that makes redcon close the connection.
func (c *limitConn) fail() error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(violationWriteTimeout))
	_, _ = c.Conn.Write([]byte("-ERR Protocol error: " + c.pending.msg + "\r\n"))
	return c.pending
}

// frameViolation is a command that exceeds a framing bound.
type frameViolation struct{ msg string }

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

// feed advances the scanner over b. If b contains a violation it returns
// the number of bytes before the offending byte and the violation.
func (f *frameScanner) feed(b []byte) (int, *frameViolation) {
	for i := 0; i < len(b); i++ {
		switch f.state {
		case framePassthru:
			return len(b), nil
		case frameStart:
			switch b[i] {
			case '*':
				f.state, f.line, f.cmdBytes = frameCount, f.line[:0], 1
			case '\n': // an empty inline line
			default:
				f.state, f.inline = frameInline, 1
			}
		case frameInline:
			if b[i] == '\n' {
				f.state = frameStart
				continue
			}
			f.inline++
			if f.inline > maxInlineBytes {
				return i, &frameViolation{"too big inline request"}
			}
		case frameBulkHead:
			if b[i] != '$' {
				f.state = framePassthru
				return len(b), nil
			}
			f.state, f.line = frameBulkLen, f.line[:0]
			f.cmdBytes++
		case frameCount, frameBulkLen:
			if b[i] != '\n' {
				f.line = append(f.line, b[i])
				if len(f.line) > maxHeaderLine {
					return i, &frameViolation{"invalid multibulk or bulk length"}
				}
				continue
			}
			if v := f.endHeader(); v != nil {
				return i, v
			}
		case frameBulkData:
			n := min(f.skip, len(b)-i)
			f.skip -= n
			i += n - 1
			if f.skip == 0 {
				f.argsLeft--
				f.nextArg()
			}
		}
	}
	return len(b), nil
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
			return nil
		}
		if n > maxArgs {
			return &frameViolation{"invalid multibulk length"}
		}
		f.argsLeft = n
		f.nextArg()
		return nil
	}
	if err != nil || n < 0 {
		f.state = framePassthru
		return nil
	}
	if n > f.limits.maxCommandBytes-f.cmdBytes-2 {
		return &frameViolation{"command too large"}
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
