// Package ratelog keeps a repeated failure (a full disk fails every write)
// from flooding the log: the first of a run is logged, then at most one line
// per interval, saying how many were left out.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Limiter decides which of a run of repeated events to log. The zero value
// is not usable: make one with New.
type Limiter struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// New makes a limiter that allows one event per every.
func New(every time.Duration) *Limiter { return &Limiter{every: every} }

// Allow reports whether the event at now should be logged, and how many
// events were not logged since the last one that was.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	l.last, suppressed, l.suppressed = now, l.suppressed, 0
	return true, suppressed
}

// Warn logs msg at warning level when Allow lets it, with the count of the
// lines left out before it.
func (l *Limiter) Warn(log *slog.Logger, msg string, args ...any) {
	l.Log(log, slog.LevelWarn, time.Now(), msg, args...)
}

// Log logs msg at level when Allow lets the event at now, with the count
// of the lines left out before it.
func (l *Limiter) Log(log *slog.Logger, level slog.Level, now time.Time, msg string, args ...any) {
	if ok, left := l.Allow(now); ok {
		log.Log(context.Background(), level, msg, append(args, "not_logged_since_last", left)...)
	}
}
