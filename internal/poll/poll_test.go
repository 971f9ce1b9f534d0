package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(50 * time.Millisecond)
		n.Store(1)
	}()
	if !Until(10*time.Second, func() bool { return n.Load() == 1 }) {
		t.Fatal("Until gave up before the condition held")
	}
	calls := 0
	if Until(100*time.Millisecond, func() bool { calls++; return false }) {
		t.Fatal("Until reported a condition that never held")
	}
	if calls < 2 {
		t.Fatalf("cond called %d times in 100ms, want it asked again", calls)
	}
}
