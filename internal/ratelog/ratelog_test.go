package ratelog

import (
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
