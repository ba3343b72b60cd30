package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logEvery is the minimum gap between two logs of the same event for the
// same peer and lane. Hot-path events (drops, send errors, garbage from a
// peer) can fire thousands of times a second; the metrics carry the counts.
const logEvery = 10 * time.Second

// maxLogKeys bounds the rate limiter's state. Keys carry peer ids, some of
// which come off the wire (a stream's x-elastickv-from, a message's From):
// a peer that varied them would otherwise grow the maps without bound.
// Past the bound, stale keys are swept, and if that is not enough a new
// key is logged under peer 0, all such peers sharing one limit.
const maxLogKeys = 1024

// logKey identifies one rate-limited log line.
type logKey struct {
	event string
	peer  uint64
	lane  Lane
}

// limitedLogger wraps a *slog.Logger with per-key rate limiting.
type limitedLogger struct {
	log *slog.Logger

	mu   sync.Mutex
	last map[logKey]time.Time
	skip map[logKey]int
}

func newLimitedLogger(log *slog.Logger) *limitedLogger {
	return &limitedLogger{log: log, last: make(map[logKey]time.Time), skip: make(map[logKey]int)}
}

// logf logs msg at level unless the same key logged less than logEvery ago;
// the next line that does get through says how many were suppressed.
func (l *limitedLogger) logf(level slog.Level, key logKey, msg string, attrs ...slog.Attr) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	if _, ok := l.last[key]; !ok && len(l.last) >= maxLogKeys {
		l.sweep(now)
		if len(l.last) >= maxLogKeys {
			key.peer = 0
		}
	}
	if last, ok := l.last[key]; ok && now.Sub(last) < logEvery {
		l.skip[key]++
		l.mu.Unlock()
		return
	}
	suppressed := l.skip[key]
	l.last[key] = now
	delete(l.skip, key)
	l.mu.Unlock()
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// forget drops the rate-limit state of a removed peer.
func (l *limitedLogger) forget(peer uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.last {
		if k.peer == peer {
			delete(l.last, k)
			delete(l.skip, k)
		}
	}
}

// sweep forgets keys that last logged more than logEvery ago and have no
// suppressed lines to report; l.mu is held.
func (l *limitedLogger) sweep(now time.Time) {
	for k, t := range l.last {
		if now.Sub(t) >= logEvery && l.skip[k] == 0 {
			delete(l.last, k)
			delete(l.skip, k)
		}
	}
}

// keys reports how many keys the limiter holds, for tests.
func (l *limitedLogger) keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}
