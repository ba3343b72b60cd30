package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/elastickv/elastickv/internal/kv"
)

// Expensive reads.
//
// A read whose cost grows with the keyspace or with its arguments (KEYS,
// SCAN, DBSIZE, MGET and EXISTS of many keys, INFO's key count, DEBUG
// DIGEST) runs outside the apply path, on the connection's goroutine, and
// holds a Pebble iterator or snapshot while it works. Each such read
// carries a budget: its deadline is the request's (Config.RequestTimeout
// from the moment the command started; INFO's key count has its own, much
// shorter one), and Server.Close cancels it. The read looks at its budget
// every few dozen keys and every globCheckSteps bytes of pattern matching,
// and once the budget is spent it stops, releases its iterator or snapshot
// (the callback returns, and kv closes them on the way out) and answers an
// error that names the command and the limit. Nothing else is charged:
// a point read under the budget costs one clock read every 64 keys.

// Work units of a budget: it looks at the clock and at the server's
// shutdown once budgetCheckWork units have been spent since its last look.
// A key visited costs keyWork units (a look every 64 keys, about 10 µs of
// scanning), a byte of pattern examined one unit.
const (
	budgetCheckWork = 1 << 14
	keyWork         = budgetCheckWork / 64
)

// Reasons an expensive read was cut, the reason label of
// elastickv_redis_commands_aborted_total.
const (
	abortDeadline = "deadline"
	abortShutdown = "shutdown"
)

// errShuttingDown is the reply to a command cut by Server.Close.
const errShuttingDown = replyError("ERR server is shutting down")

// budget bounds one expensive read. It is used by one goroutine, the
// connection's, but survives the read being retried (kv may run a read
// callback twice), so a spent budget stays spent.
type budget struct {
	cmd      string          // the command's table name, for the error reply and metric
	limit    time.Duration   // for the error reply
	deadline time.Time       // Invariant: start of the command + limit
	base     context.Context // the Server's baseCtx: done once Close starts
	work     int             // units spent since the last look
	examined int64           // keys (or units) visited, for the error reply
	unit     string          // what examined counts, "" for keys
	reason   string          // why the budget was cut; "" while it is not
	err      error           // the reply once cut; sticky
}

// newBudget starts the budget of command cmd, allowing it limit.
func (s *Server) newBudget(cmd string, limit time.Duration) *budget {
	return &budget{cmd: cmd, limit: limit, deadline: time.Now().Add(limit), base: s.baseCtx}
}

// spend charges work units and returns the reply error once the budget is
// spent. A nil budget is never spent.
func (b *budget) spend(work int) error {
	if b == nil {
		return nil
	}
	if b.err != nil {
		return b.err
	}
	if b.work += work; b.work < budgetCheckWork {
		return nil
	}
	b.work = 0
	switch {
	case b.base.Err() != nil:
		b.reason, b.err = abortShutdown, errShuttingDown
	case !time.Now().Before(b.deadline):
		b.reason = abortDeadline
		unit := b.unit
		if unit == "" {
			unit = "keys"
		}
		msg := "ERR " + strings.ToUpper(b.cmd) + " exceeded its time limit of " + b.limit.String() +
			" (request-timeout) after examining " + strconv.FormatInt(b.examined, 10) + " " + unit
		if b.cmd == "keys" {
			msg += "; SCAN walks the keyspace in steps"
		}
		b.err = replyError(msg)
	}
	return b.err
}

// spendKey charges one key visited.
func (b *budget) spendKey() error {
	b.examined++
	return b.spend(keyWork)
}

// boundedView is a kv.View whose every lookup and every key scanned is
// charged to a budget; once the budget is spent, lookups fail and scans
// stop with the budget's error.
type boundedView struct {
	v kv.View
	b *budget
}

var _ kv.View = boundedView{}

func (w boundedView) Get(key []byte) ([]byte, bool, error) {
	if err := w.b.spendKey(); err != nil {
		return nil, false, err
	}
	return w.v.Get(key)
}

func (w boundedView) Exists(key []byte) (bool, error) {
	if err := w.b.spendKey(); err != nil {
		return false, err
	}
	return w.v.Exists(key)
}

func (w boundedView) StrLen(key []byte) (int, bool, error) {
	if err := w.b.spendKey(); err != nil {
		return 0, false, err
	}
	return w.v.StrLen(key)
}

func (w boundedView) ReadString(key []byte, fn func(val []byte)) (bool, error) {
	if err := w.b.spendKey(); err != nil {
		return false, err
	}
	return w.v.ReadString(key, fn)
}

// ScanKeys stops when fn does or the budget is spent, whichever comes
// first; fn may also spend the budget (a glob match does), which stops the
// scan the same way.
func (w boundedView) ScanKeys(start []byte, fn func(key []byte) bool) error {
	err := w.v.ScanKeys(start, func(k []byte) bool {
		if w.b.spendKey() != nil {
			return false
		}
		return fn(k)
	})
	if err != nil {
		return err
	}
	return w.b.err
}

// RandomKey is charged as one lookup: it is a few seeks, never a scan.
func (w boundedView) RandomKey(rnd *rand.Rand) ([]byte, bool, error) {
	if err := w.b.spendKey(); err != nil {
		return nil, false, err
	}
	return w.v.RandomKey(rnd)
}

// DBSize reads the running count at format 2 (charged as one lookup: it is
// O(1) once no v1 rows remain). At format 1 it counts by scanning, so
// that the count is charged key by key (kv's own count could not be
// stopped).
func (w boundedView) DBSize() (int64, error) {
	if w.v.Format() >= 2 {
		if err := w.b.spendKey(); err != nil {
			return 0, err
		}
		return w.v.DBSize()
	}
	var n int64
	err := w.ScanKeys(nil, func([]byte) bool { n++; return true })
	return n, err
}

// readBounded is s.read for an expensive read of command cmd: fn gets a
// view charged to a budget of the request timeout, and the budget itself
// for work of its own (glob matching). A cut read is answered with the
// budget's error and counted.
func (s *Server) readBounded(c *client, cmd string, fn func(v kv.View, b *budget) error) bool {
	b := s.newBudget(cmd, s.cfg.RequestTimeout)
	s.metrics.expensiveInFlight.Inc()
	defer s.metrics.expensiveInFlight.Dec()
	ok := s.read(c, func(v kv.View) error { return fn(boundedView{v: v, b: b}, b) })
	if c.exec != nil {
		// On apply the budget has no deadline; what it examined counts
		// toward the entry's bound instead.
		c.exec.charge(b.examined)
	}
	if !ok && b.reason != "" {
		s.metrics.commandAborted(cmd, b.reason)
	}
	return ok
}

// manyKeys is the number of keys from which MGET and EXISTS run under a
// budget; below it their cost is too small to be worth a clock read.
const manyKeys = 64

// readKeys is s.read for a command of n keys, bounded when n is large.
func (s *Server) readKeys(c *client, cmd string, n int, fn func(v kv.View) error) bool {
	if n < manyKeys {
		return s.read(c, fn)
	}
	return s.readBounded(c, cmd, func(v kv.View, _ *budget) error { return fn(v) })
}

// digestWithin runs a Digester under the request timeout, mapping a cut to
// a reply and a count.
func (s *Server) digestWithin(d Digester) (applied, digest uint64, err error) {
	ctx, cancel := context.WithTimeout(s.baseCtx, s.cfg.RequestTimeout)
	defer cancel()
	s.metrics.expensiveInFlight.Inc()
	defer s.metrics.expensiveInFlight.Dec()
	applied, digest, err = d.Digest(ctx)
	switch {
	case err == nil:
	case s.baseCtx.Err() != nil && errors.Is(err, context.Canceled):
		s.metrics.commandAborted("debug", abortShutdown)
		err = errShuttingDown
	case errors.Is(err, context.DeadlineExceeded):
		s.metrics.commandAborted("debug", abortDeadline)
		err = replyError("ERR DEBUG DIGEST exceeded its time limit of " + s.cfg.RequestTimeout.String() + " (request-timeout)")
	}
	return applied, digest, err
}
