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
