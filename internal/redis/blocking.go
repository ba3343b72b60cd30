package redis

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/elastickv/elastickv/internal/kv"
	"github.com/elastickv/elastickv/internal/kv/keyspace"
)

// Blocking commands (issue #16): BLPOP, BRPOP, BLMPOP, BLMOVE,
// BRPOPLPUSH, and CLIENT UNBLOCK.
//
// A blocking command is its non-blocking op (OpListPop, OpListMove)
// tried until it finds something, the timeout passes, CLIENT UNBLOCK asks
// it to stop, the client leaves or the server shuts down:
//
//  1. The client is registered as a waiter on its keys (waiters.go)
//     before anything is read, so that no push can fall between the look
//     and the wait.
//  2. A linearizable read decides whether to try at once: if any key
//     exists, the op is proposed, and its apply replies exactly what the
//     non-blocking command would (the element, or WRONGTYPE). Nothing is
//     proposed for keys that are all missing. A newcomer queued behind
//     another waiter of this node leaves the waiters ahead their turn
//     instead, and looks again itself after blockTurnInterval.
//  3. Otherwise the client waits. An apply event on one of its keys wakes
//     the first idle waiter of that key on this node, which reads its keys
//     on the local store (fresh enough: the event comes after the apply
//     that caused it); if one holds the type it waits for, it proposes the
//     op. The op's apply decides who gets each element, so no element is
//     popped twice: a waiter whose pop finds nothing, because a waiter on
//     another node (or a non-blocking pop) got there first, waits again
//     without losing its place.
//  4. At the timeout, nil is answered only if a last linearizable look
//     finds no key of the waited-for type; otherwise the op is proposed a
//     last time and its reply is the answer. A pop refused with TRYAGAIN
//     until the timeout answers that error. Nil thus always means "there
//     was nothing to pop", however late or lost the events of a lagging
//     follower or of a node cut from its leader are.
//
// Order: first come first served per key on each node; across nodes, in
// the order in which their pops reach the leader's log. A pop whose reply
// is lost (the client left after it was proposed, or its outcome was
// reported unknown) may lose its element, as in Redis; BLMOVE into a
// backup list is the reliable pattern.
//
// A blocked client survives leader changes: its pop is proposed through
// the Backend, which forwards to whichever node leads, and a pop refused
// as certainly not applied (TRYAGAIN) is retried, keeping the client's
// place. Once the server sees the client's connection close
// (blocking_conn.go) it proposes nothing more for it.

// blockRecheckInterval is how often a waiter also reads its keys without
// an event: a follower that installs a snapshot applies its entries
// without events, and this bounds how long a push carried by one waits.
const blockRecheckInterval = time.Second

// blockRetryInterval is the pause before a pop refused with TRYAGAIN
// (certainly not applied: no leader yet) is proposed again.
const blockRetryInterval = 50 * time.Millisecond

// maxBlockWait caps a timer: a timeout longer than this (up to Redis's
// bound, ~292 million years) waits as if for ever.
const maxBlockWait = 100 * 365 * 24 * time.Hour

// errTextUnblocked is the reply of a client CLIENT UNBLOCK ... ERROR ends.
const errTextUnblocked = "UNBLOCKED client unblocked via CLIENT UNBLOCK"

// blockOp is one blocking command, ready to run.
type blockOp struct {
	// keys are the keys whose changes may let cmd succeed.
	keys [][]byte
	// want is the type a woken waiter looks for before it proposes cmd.
	want keyspace.Type
	// cmd is the non-blocking op, proposed as is on every attempt: it
	// answers Nil when it found nothing and any other reply otherwise.
	cmd *kv.Command
	// reply writes a reply other than Nil; nil means c.result.
	reply func(c *client, r kv.Result)
}

// parseBlockTimeout parses a timeout in seconds as Redis does
// (getTimeoutFromObjectOrReply): a float, rounded up to milliseconds, not
// negative; 0 means for ever. It returns the wait (0 for ever) or the
// error reply.
func parseBlockTimeout(arg []byte, now time.Time) (time.Duration, error) {
	s := string(arg)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && isHexFloat(s) {
		// strtold reads hexadecimal without a binary exponent; Go wants
		// one.
		f, err = strconv.ParseFloat(s+"p0", 64)
	}
	if err != nil || math.IsNaN(f) || s == "" || s[0] == ' ' {
		return 0, replyError("ERR timeout is not a float or out of range")
	}
	ms := math.Ceil(f * 1000)
	switch {
	case ms >= math.MaxInt64: // 2^63 as a float64: past LLONG_MAX
		return 0, replyError("ERR timeout is out of range")
	case ms < 0:
		return 0, replyError("ERR timeout is negative")
	case ms == 0:
		return 0, nil
	}
	tval := int64(ms)
	if tval > math.MaxInt64-now.UnixMilli() {
		return 0, replyError("ERR timeout is out of range")
	}
	d := time.Duration(min(tval, int64(maxBlockWait/time.Millisecond))) * time.Millisecond
	return d, nil
}

// isHexFloat reports whether s looks like C's hexadecimal float syntax
// without a binary exponent ("0x1A", "-0X.8").
func isHexFloat(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && !strings.ContainsAny(s, "pP")
}

// cmdBLPop is BLPOP key [key ...] timeout.
func cmdBLPop(s *Server, c *client, args [][]byte) { blockingPop(s, c, args, true) }

// cmdBRPop is BRPOP key [key ...] timeout.
func cmdBRPop(s *Server, c *client, args [][]byte) { blockingPop(s, c, args, false) }

func blockingPop(s *Server, c *client, args [][]byte, left bool) {
	timeout, err := parseBlockTimeout(args[len(args)-1], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	keys := args[1 : len(args)-1]
	s.runBlocking(c, &blockOp{keys: keys, want: keyspace.TypeList, cmd: listKeyedPop(keys, left)}, timeout)
}

// cmdBLMPop is BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count].
func cmdBLMPop(s *Server, c *client, args [][]byte) {
	timeout, err := parseBlockTimeout(args[1], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	cmd, err := ParseMPop(args[2:]) // list.go: LMPOP's arguments and op
	if err != nil {
		c.err(err.Error())
		return
	}
	s.runBlocking(c, &blockOp{keys: cmd.Keys, want: keyspace.TypeList, cmd: cmd}, timeout)
}

// parseMPopArgs parses "numkeys key [key ...] WHERE [COUNT count]" as
// Redis's zmpopGenericCommand does, in its order of checks; where parses
// WHERE (MIN|MAX). It returns the error reply, or "".
func parseMPopArgs(args [][]byte, where func([]byte) (bool, bool)) (keys [][]byte, left bool, count int64, msg string) {
	numkeys, err := kv.ParseInt(args[0])
	if err != nil || numkeys < 1 {
		return nil, false, 0, errTextNumKeys
	}
	// The LEFT|RIGHT argument must follow the keys.
	if numkeys > int64(len(args)-2) {
		return nil, false, 0, errTextSyntax
	}
	keys = args[1 : 1+numkeys]
	rest := args[1+numkeys:]
	left, ok := where(rest[0])
	if !ok {
		return nil, false, 0, errTextSyntax
	}
	count = -1
	for j := 1; j < len(rest); j++ {
		if count == -1 && equalFold(rest[j], "count") && j+1 < len(rest) {
			j++
			n, err := kv.ParseInt(rest[j])
			if err != nil || n < 1 {
				return nil, false, 0, errTextCountPositive
			}
			count = n
			continue
		}
		return nil, false, 0, errTextSyntax
	}
	if count == -1 {
		count = 1
	}
	return keys, left, count, ""
}

// cmdBLMove is BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout.
func cmdBLMove(s *Server, c *client, args [][]byte) {
	from, ok1 := parseListEnd(args[3])
	if !ok1 {
		c.err(errTextSyntax)
		return
	}
	to, ok2 := parseListEnd(args[4])
	if !ok2 {
		c.err(errTextSyntax)
		return
	}
	timeout, err := parseBlockTimeout(args[5], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	s.runBlocking(c, &blockOp{keys: args[1:2], want: keyspace.TypeList, cmd: NewListMove(args[1], args[2], from, to)}, timeout)
}

// cmdBRPopLPush is BRPOPLPUSH source destination timeout: BLMOVE source
// destination RIGHT LEFT.
func cmdBRPopLPush(s *Server, c *client, args [][]byte) {
	timeout, err := parseBlockTimeout(args[3], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	s.runBlocking(c, &blockOp{keys: args[1:2], want: keyspace.TypeList, cmd: NewListMove(args[1], args[2], false, true)}, timeout)
}

// cmdBZPopMin is BZPOPMIN key [key ...] timeout.
func cmdBZPopMin(s *Server, c *client, args [][]byte) { blockingZPop(s, c, args, false) }

// cmdBZPopMax is BZPOPMAX key [key ...] timeout.
func cmdBZPopMax(s *Server, c *client, args [][]byte) { blockingZPop(s, c, args, true) }

// blockingZPop pops one member from the first non-empty sorted set of the
// keys: [key, member, score], the op's own reply with a count of 1.
func blockingZPop(s *Server, c *client, args [][]byte, max bool) {
	timeout, err := parseBlockTimeout(args[len(args)-1], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	keys := args[1 : len(args)-1]
	s.runBlocking(c, &blockOp{keys: keys, want: keyspace.TypeZSet, cmd: kv.ZPopCommand(keys, 1, max)}, timeout)
}

// cmdBZMPop is BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count].
func cmdBZMPop(s *Server, c *client, args [][]byte) {
	timeout, err := parseBlockTimeout(args[1], time.UnixMilli(c.nowMillis()))
	if err != nil {
		c.err(err.Error())
		return
	}
	keys, max, count, msg := parseMPopArgs(args[2:], blockZSetEnd)
	if msg != "" {
		c.err(msg)
		return
	}
	s.runBlocking(c, &blockOp{keys: keys, want: keyspace.TypeZSet, cmd: kv.ZPopCommand(keys, count, max), reply: writeZMPopReply}, timeout)
}

// blockZSetEnd parses MIN or MAX (any case); true for MAX.
func blockZSetEnd(arg []byte) (max bool, ok bool) {
	switch {
	case equalFold(arg, "min"):
		return false, true
	case equalFold(arg, "max"):
		return true, true
	}
	return false, false
}

// clientUnblock is CLIENT UNBLOCK client-id [TIMEOUT|ERROR].
func clientUnblock(s *Server, c *client, args [][]byte) {
	if len(args) != 3 && len(args) != 4 {
		c.err(wrongArity("client|unblock"))
		return
	}
	id, err := kv.ParseInt(args[2])
	if err != nil {
		c.err(kv.ErrTextNotInteger)
		return
	}
	mode := unblockTimeout
	if len(args) == 4 {
		switch {
		case equalFold(args[3], "timeout"):
		case equalFold(args[3], "error"):
			mode = unblockError
		default:
			c.err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
			return
		}
	}
	if id > 0 && s.blocked.unblockClient(uint64(id), mode) {
		c.int(1)
		return
	}
	c.int(0)
}

// runBlocking runs op until it finds something or stops waiting, and
// writes exactly one reply, or none if the client left.
//
// Nil is the reply of a block that ended with nothing to pop, so it is
// written only when this node knows there was nothing: at the timeout,
// a pop refused with TRYAGAIN answers that error (we could not tell), and
// otherwise a last linearizable look (blockExpired) decides, so that a
// wake-up lost to any cause (a lagging follower, a node cut from its
// leader, a snapshot installed without events) costs latency, never a
// wrong nil.
func (s *Server) runBlocking(c *client, op *blockOp, timeout time.Duration) {
	if c.exec != nil {
		// On apply (inside an EXEC) nothing can arrive while the command
		// waits: it is its non-blocking form, nil when there is nothing,
		// as in Redis.
		r, ok := s.write(c, op.cmd)
		switch {
		case !ok:
		case r.Kind == kv.ResultNil && op.cmd.Op == kv.OpListMove:
			// BLMOVE and BRPOPLPUSH run as LMOVE: its nil is the null
			// bulk, not the timeout's null array (Redis 7.2 replies so).
			c.null()
		default:
			s.blockReply(c, op, r)
		}
		return
	}
	w, behind := s.blocked.register(c.id, op.keys)
	defer s.blocked.unregister(w)
	s.blockMetrics.blocked.Inc()
	defer s.blockMetrics.blocked.Dec()

	// The first look is linearizable even behind another waiter of this
	// node: it must not miss a push acknowledged before the command came,
	// and a node that cannot reach a leader must answer an error, not wait
	// for events that will not come and time out with nil.
	exists, mismatch, ok := s.blockCheckLinearizable(c, op)
	if !ok {
		return
	}
	ready := exists
	recheckEvery := blockRecheckInterval
	if behind && !mismatch {
		// Behind another waiter of this node, the newcomer does not pop
		// at once: it would overtake a waiter that is being served
		// (Redis serves blocked clients before it runs the next
		// command). The pops of the waiters ahead emit events that pass
		// the turn on (signalFirstLocked), and what they leave is found
		// then; if the key still holds something after blockTurnInterval
		// (the waiters ahead are stuck, or the element came without an
		// event), the newcomer looks again on its own.
		ready = false
		if exists {
			recheckEvery = blockTurnInterval
		}
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	var watch *closeWatch // started at the first wait
	defer func() { watch.stop() }()
	var recheck *time.Timer
	defer func() {
		if recheck != nil {
			recheck.Stop()
		}
	}()
	for {
		if ready && w.unblock.Load() == int32(unblockNone) && !watch.isGone() {
			r, err := s.blockAttempt(op)
			switch {
			case err == nil && r.Kind != kv.ResultNil:
				s.blockReply(c, op, r)
				return
			case err == nil:
				// Another waiter got there first: wait again.
				s.blockMetrics.emptyPops.Inc()
			case errors.Is(err, ErrTryAgain):
				// Certainly not applied (no leader for the request's
				// whole timeout): propose again later. Should the
				// timeout pass meanwhile, the client gets this error:
				// we could not tell whether there was anything to pop.
				if !s.blockPause(c, op, w, watch, expired, blockRetryInterval, err) {
					return
				}
				s.blocked.claim(w)
				continue
			default:
				s.backendError(c, "write", err)
				return
			}
		}
		if s.blocked.idle(w) {
			// An event came while we looked: look again before waiting.
			ready = s.blockCheckLocal(op)
			continue
		}
		if watch == nil {
			c.flushBeforeBlock()
			if c.cut {
				return // its replies could not be sent
			}
			watch = watchClose(c)
		}
		// CLIENT UNBLOCK may have come while we looked, its signal
		// drained by claim: the flag is what counts.
		if s.blockUnblocked(c, w) {
			return
		}
		if recheck == nil {
			recheck = time.NewTimer(recheckEvery)
		} else {
			recheck.Reset(recheckEvery)
		}
		recheckEvery = blockRecheckInterval
		select {
		case <-w.wake:
		case <-recheck.C:
		case <-expired:
			s.blockExpired(c, op, w, watch)
			return
		case <-watch.gone():
			return // nobody to answer
		case <-s.baseCtx.Done():
			c.err("ERR server is shutting down")
			return
		}
		if s.blockUnblocked(c, w) {
			return
		}
		s.blocked.claim(w)
		ready = s.blockCheckLocal(op)
	}
}

// blockTurnInterval is how long a newcomer queued behind another waiter
// of this node, whose first look found its key holding something, leaves
// the waiters ahead to take it before it looks again itself.
const blockTurnInterval = 250 * time.Millisecond

// blockReply writes the reply of a pop that ended the block: Nil (the
// last look at the timeout found the keys emptied meanwhile) is the
// timeout's null array.
func (s *Server) blockReply(c *client, op *blockOp, r kv.Result) {
	switch {
	case r.Kind == kv.ResultNil:
		c.nullArray()
	case op.reply != nil && r.Kind != kv.ResultError:
		op.reply(c, r)
	default:
		c.result(r)
	}
}

// blockExpired answers a block whose timeout passed while it waited. Its
// local looks may have missed a push (a follower lagging or cut from its
// leader sees events late or never), so a last linearizable look
// decides: keys still without the waited-for type mean nil; one holding
// it means the pop is proposed, and its reply (the element, or Nil if a
// concurrent pop emptied the keys first) is the answer; a look or pop
// that fails answers its error, never nil. It costs one read barrier per
// timed-out block.
func (s *Server) blockExpired(c *client, op *blockOp, w *waiter, watch *closeWatch) {
	if s.blockUnblocked(c, w) {
		return
	}
	if watch.isGone() {
		return // nobody to answer: propose nothing for it
	}
	s.blocked.claim(w)
	ready, ok := s.blockCheckLinearizableWant(c, op)
	if !ok {
		return
	}
	if !ready {
		c.nullArray()
		return
	}
	r, err := s.blockAttempt(op)
	if err != nil {
		s.backendError(c, "write", err)
		return
	}
	s.blockReply(c, op, r)
}

// blockUnblocked replies as CLIENT UNBLOCK asked, if it did, and reports
// whether it did.
func (s *Server) blockUnblocked(c *client, w *waiter) bool {
	switch unblockMode(w.unblock.Load()) {
	case unblockTimeout:
		c.nullArray()
		return true
	case unblockError:
		c.err(errTextUnblocked)
		return true
	case unblockNone:
	}
	return false
}

// blockPause waits d after a pop refused with tryAgain, or less if the
// wait ends otherwise; false if it ended (the reply, if any, written). A
// timeout that passes meanwhile answers tryAgain: the refused pop left it
// unknown whether there was anything to pop.
func (s *Server) blockPause(c *client, op *blockOp, w *waiter, watch *closeWatch, expired <-chan time.Time, d time.Duration, tryAgain error) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-expired:
		if !s.blockUnblocked(c, w) {
			s.backendError(c, "write", tryAgain)
		}
		return false
	case <-watch.gone():
		return false
	case <-s.baseCtx.Done():
		c.err("ERR server is shutting down")
		return false
	}
	return !s.blockUnblocked(c, w)
}

// blockAttempt proposes op's command once.
func (s *Server) blockAttempt(op *blockOp) (kv.Result, error) {
	ctx, cancel := s.requestContext()
	defer cancel()
	s.blockMetrics.attempts.Inc()
	return s.cfg.Backend.Write(ctx, op.cmd)
}

// blockCheckLinearizable reads op's keys linearizably (the first look,
// which must not miss a push acknowledged before the command arrived):
// exists reports that a key exists, of whatever type, which means the op
// must be proposed, so that it replies what the non-blocking command
// would; mismatch that one of those holds another type than the one
// waited for (the op will answer WRONGTYPE or pop from a later key). On
// a failure it writes the error reply and returns ok false.
func (s *Server) blockCheckLinearizable(c *client, op *blockOp) (exists, mismatch, ok bool) {
	ok = s.read(c, func(v kv.View) error {
		exists, mismatch = false, false
		for _, k := range op.keys {
			_, found, err := v.Collection(k, op.want)
			if errors.Is(err, kv.ErrWrongType) {
				exists, mismatch = true, true
				continue
			}
			if err != nil {
				return err
			}
			exists = exists || found
		}
		return nil
	})
	return exists, mismatch, ok
}

// blockCheckLinearizableWant reads op's keys linearizably and reports
// whether one holds the waited-for type (the look at the timeout, which
// counts keys as blockCheckLocal does). On a failure it writes the error
// reply and returns ok false.
func (s *Server) blockCheckLinearizableWant(c *client, op *blockOp) (ready, ok bool) {
	ok = s.read(c, func(v kv.View) error {
		var err error
		ready, err = collectionPresent(v, op)
		return err
	})
	return ready, ok
}

// collectionPresent reports whether one of op's keys holds op's type.
func collectionPresent(v kv.View, op *blockOp) (bool, error) {
	for _, k := range op.keys {
		_, found, err := v.Collection(k, op.want)
		if err != nil && !errors.Is(err, kv.ErrWrongType) {
			return false, err
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// blockCheckLocal reads op's keys on the local store, without a read
// barrier: it only decides whether proposing the op is worth a log entry,
// and the op's apply is what decides the outcome. Only a key of the
// waited-for type counts, as Redis serves a blocked client only from a
// key that became that type. A failed read answers true: the proposal
// will tell.
func (s *Server) blockCheckLocal(op *blockOp) bool {
	ready := false
	fn := func(v kv.View) error {
		var err error
		ready, err = collectionPresent(v, op)
		return err
	}
	var err error
	if lr, isLocal := s.cfg.Backend.(LocalReader); isLocal {
		// Read time 0: the store's own apply time.
		err = lr.ReadLocal(0, fn)
	} else {
		ctx, cancel := s.requestContext()
		err = s.cfg.Backend.Read(ctx, fn)
		cancel()
	}
	return ready || err != nil
}

// blockMetrics count what blocked clients cost.
type blockMetrics struct {
	// attempts counts pops proposed for blocking commands.
	attempts prometheus.Counter
	// emptyPops counts those that found nothing (another waiter won).
	emptyPops prometheus.Counter
	// blocked is the number of clients in a blocking command.
	blocked prometheus.Gauge
}

func newBlockMetrics(reg prometheus.Registerer) (*blockMetrics, error) {
	m := &blockMetrics{
		blocked: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "elastickv_redis_blocked_clients",
			Help: "Clients waiting in a blocking command (BLPOP, BLMOVE, ...) on this node.",
		}),
		attempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastickv_redis_blocked_pops_total",
			Help: "Pops proposed by blocking commands (BLPOP, BLMOVE, ...), the immediate ones included.",
		}),
		emptyPops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "elastickv_redis_blocked_empty_pops_total",
			Help: "Pops proposed by blocked clients that found nothing because another client (on this node or another) popped first; the client kept waiting.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.attempts, err = registerVec(reg, m.attempts); err != nil {
		return nil, err
	}
	if m.emptyPops, err = registerVec(reg, m.emptyPops); err != nil {
		return nil, err
	}
	if m.blocked, err = registerVec(reg, m.blocked); err != nil {
		return nil, err
	}
	return m, nil
}
