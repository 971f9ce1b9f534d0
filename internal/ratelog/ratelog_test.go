package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := New(time.Minute)
	t0 := time.Unix(1000, 0)
	for i, tc := range []struct {
		at         time.Duration
		ok         bool
		suppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{30 * time.Second, false, 0},
		{59 * time.Second, false, 0},
		{time.Minute, true, 3},
		{time.Minute + time.Second, false, 0},
		{3 * time.Minute, true, 1},
	} {
		ok, n := l.Allow(t0.Add(tc.at))
		if ok != tc.ok || n != tc.suppressed {
			t.Errorf("event %d at %v: %v, %d; want %v, %d", i, tc.at, ok, n, tc.ok, tc.suppressed)
		}
	}
}

// TestWarn logs the first of a run and leaves out the rest of the interval.
func TestWarn(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	l := New(time.Hour)
	for range 3 {
		l.Warn(log, "guess", "client", "192.0.2.7:1")
	}
	if got := strings.Count(out.String(), "msg=guess"); got != 1 || !strings.Contains(out.String(), "client=192.0.2.7:1 not_logged_since_last=0") {
		t.Errorf("logged %d lines:\n%s", got, out.String())
	}
}
