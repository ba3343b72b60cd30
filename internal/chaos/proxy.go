package chaos

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// CutMode says how a cut link behaves.
type CutMode int

const (
	// CutRefuse closes every open connection and resets new ones at once,
	// like a peer whose port is firewalled with REJECT: senders learn fast.
	CutRefuse CutMode = iota
	// CutStall stops moving bytes but keeps connections open and accepts
	// new ones, like a partition that drops packets: senders only notice
	// through their own timeouts. Bytes already accepted are delivered,
	// late, when the link is restored, as TCP retransmission would.
	CutStall
)

// String names the mode in fault descriptions.
func (m CutMode) String() string {
	if m == CutStall {
		return "stall"
	}
	return "refuse"
}

// Proxy is one directed peer link: the connections one node opens to
// another go through it, so it can cut, delay or flap exactly that
// direction. Both byte directions of a proxied connection share the link's
// fate, since that is what a TCP connection needs to work at all.
type Proxy struct {
	name   string
	target string
	ln     net.Listener
	log    *slog.Logger

	mu   sync.Mutex
	cut  bool
	mode CutMode
	gate chan struct{} // closed when bytes may flow; nil while not cut
	// replyGate, while non-nil, holds the bytes the target sends back
	// (HoldReplies); closed when they may flow again.
	replyGate chan struct{}
	delay     time.Duration
	conns     map[*proxyConn]struct{}
	stop      chan struct{} // closed by Close
	flap      *flapper
	done      bool

	wg sync.WaitGroup
}

// proxyConn is one accepted connection and its upstream.
type proxyConn struct {
	down, up net.Conn
	once     sync.Once
	closed   chan struct{}
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.closed)
		_ = c.down.Close()
		if c.up != nil {
			_ = c.up.Close()
		}
	})
}

// dialTimeout bounds connecting to the proxied node.
const dialTimeout = 2 * time.Second

// writeTimeout bounds one forwarded write. A receiver that takes this long
// to drain a chunk is wedged (e.g. SIGSTOPped past any sane fault window);
// the connection is dropped rather than holding a goroutine forever.
const writeTimeout = 30 * time.Second

// NewProxy listens on a fresh loopback port and forwards every accepted
// connection to target. name labels log lines, e.g. "n1->n2".
func NewProxy(name, target string, log *slog.Logger) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy %s: listen: %w", name, err)
	}
	p := &Proxy{name: name, target: target, ln: ln, log: log.With("link", name),
		conns: map[*proxyConn]struct{}{}, stop: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the source node dials.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Name is the link's label, "from->to".
func (p *Proxy) Name() string { return p.name }

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.stop:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.log.Warn("proxy accept failed; link stops accepting", "err", err)
			return
		}
		p.mu.Lock()
		if p.done || (p.cut && p.mode == CutRefuse) {
			p.mu.Unlock()
			resetConn(c)
			continue
		}
		pc := &proxyConn{down: c, closed: make(chan struct{})}
		p.conns[pc] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(pc)
	}
}

// resetConn closes c with an RST, as a REJECT firewall rule would answer.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// serve connects upstream and pumps both directions until either side
// closes or the proxy drops the connection.
func (p *Proxy) serve(pc *proxyConn) {
	defer p.wg.Done()
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	// A stalled link holds the new connection before dialling, so even the
	// upstream accept is delayed, as with a SYN that is not answered.
	if !p.waitOpen(pc, false) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		// The target is down (killed node): the source sees its
		// connection close, which is what it would see without us.
		resetConn(pc.down)
		return
	}
	p.mu.Lock()
	pc.up = up
	p.mu.Unlock()
	select {
	case <-pc.closed: // cut while dialling
		_ = up.Close()
		return
	default:
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pump(pc, pc.down, up, false) }()
	go func() { defer wg.Done(); p.pump(pc, up, pc.down, true) }()
	wg.Wait()
}

// chunk is a piece of the byte stream and the time it may be delivered.
type chunk struct {
	b  []byte
	at time.Time
}

// pump copies src to dst through a small queue: the reader stamps each
// chunk with its delivery time (now + the link's delay) and the writer
// holds it until then and while the link is stalled. The delay is thus
// latency, not a bandwidth cap, and a stalled writer backs the reader up
// until the sender's kernel buffers fill, as a real partition does. reply
// marks the direction from the target back to the source (HoldReplies).
func (p *Proxy) pump(pc *proxyConn, src, dst net.Conn, reply bool) {
	q := make(chan chunk, 64)
	defer func() {
		// Closing the connection unblocks the reader's Read; draining q
		// waits for the reader to exit, so no goroutine outlives pump.
		pc.close()
		for range q {
		}
	}()
	go func() {
		// The reader's read has no deadline: an idle peer connection is
		// normal, and pc.close (from the writer, the peer, or Close)
		// unblocks it.
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				d := p.delay
				p.mu.Unlock()
				select {
				case q <- chunk{b: buf[:n], at: time.Now().Add(d)}:
				case <-pc.closed:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		if wait := time.Until(c.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-pc.closed:
				t.Stop()
				return
			}
		}
		if !p.waitOpen(pc, reply) {
			return
		}
		_ = dst.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// waitOpen blocks while the link is stalled (and, for reply bytes, while
// replies are held); false when the connection was closed meanwhile.
func (p *Proxy) waitOpen(pc *proxyConn, reply bool) bool {
	for {
		p.mu.Lock()
		g := p.gate
		if g == nil && reply {
			g = p.replyGate
		}
		p.mu.Unlock()
		if g == nil {
			select {
			case <-pc.closed:
				return false
			default:
				return true
			}
		}
		select {
		case <-g:
		case <-pc.closed:
			return false
		}
	}
}

// Cut breaks the link in the given mode until Restore.
func (p *Proxy) Cut(mode CutMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutLocked(mode)
}

func (p *Proxy) cutLocked(mode CutMode) {
	if p.cut && p.mode == mode {
		return
	}
	if p.cut && p.mode == CutStall {
		close(p.gate)
		p.gate = nil
	}
	p.cut, p.mode = true, mode
	switch mode {
	case CutRefuse:
		for pc := range p.conns {
			pc.close()
		}
	case CutStall:
		p.gate = make(chan struct{})
	}
}

// HoldReplies stops the bytes the target sends back from reaching the
// source, until Restore, while the source's bytes still arrive: a request
// is delivered and acted on, but its reply is not seen. Cut(CutRefuse)
// then drops the held replies with the connections, which is a link that
// broke after the request arrived and before the reply left.
func (p *Proxy) HoldReplies() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.replyGate == nil {
		p.replyGate = make(chan struct{})
	}
}

// Restore heals the link; stalled bytes flow again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restoreLocked()
}

func (p *Proxy) restoreLocked() {
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
	if p.replyGate != nil {
		close(p.replyGate)
		p.replyGate = nil
	}
	p.cut = false
}

// SetDelay adds d of latency to every chunk in both directions of the
// link's connections; 0 removes it.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// flapper is a running flap: a goroutine that cuts and restores the link.
type flapper struct {
	stop chan struct{}
	done chan struct{}
}

// StartFlap cuts and restores the link (refusing connections while cut) at
// random intervals between minPeriod and maxPeriod, until StopFlap or
// Close. rng must not be shared with other goroutines.
func (p *Proxy) StartFlap(minPeriod, maxPeriod time.Duration, rng *rand.Rand) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.flap != nil || p.done {
		return
	}
	f := &flapper{stop: make(chan struct{}), done: make(chan struct{})}
	p.flap = f
	go func() {
		defer close(f.done)
		for cut := true; ; cut = !cut {
			p.mu.Lock()
			if cut {
				p.cutLocked(CutRefuse)
			} else {
				p.restoreLocked()
			}
			p.mu.Unlock()
			d := minPeriod + time.Duration(rng.Int64N(int64(maxPeriod-minPeriod)+1))
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-f.stop:
				t.Stop()
				return
			}
		}
	}()
}

// StopFlap ends a flap and leaves the link restored.
func (p *Proxy) StopFlap() {
	p.mu.Lock()
	f := p.flap
	p.flap = nil
	p.mu.Unlock()
	if f != nil {
		close(f.stop)
		<-f.done
	}
	p.Restore()
}

// Heal removes every fault from the link: flapping, cut and delay.
func (p *Proxy) Heal() {
	p.StopFlap()
	p.SetDelay(0)
}

// Close stops the proxy and every connection and goroutine it owns.
func (p *Proxy) Close() error {
	p.StopFlap()
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil
	}
	p.done = true
	close(p.stop)
	p.restoreLocked()
	for pc := range p.conns {
		pc.close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("proxy %s: close: %w", p.name, err)
	}
	return nil
}
