package metrics

import (
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
)

type noSnapshot struct{}

func (noSnapshot) Snapshot(time.Time) contract.Stats { return contract.Stats{} }

// TestObserveAllocs: observing a frame, as the inference goroutine does
// for every one, allocates nothing.
func TestObserveAllocs(t *testing.T) {
	m := New(noSnapshot{})
	t0 := time.Now()
	st := &livestat.Stages{Camera: "cam1", Faces: 2, Batch: 3, FirstInRun: true, Next: t0,
		Read: t0.Add(time.Millisecond), Detected: t0.Add(2 * time.Millisecond), Preprocessed: t0.Add(3 * time.Millisecond),
		Dequeued: t0.Add(4 * time.Millisecond), Classified: t0.Add(9 * time.Millisecond), Published: t0.Add(10 * time.Millisecond),
		Backbone: 4 * time.Millisecond, Head: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { m.Observe(st) }); n != 0 {
		t.Errorf("Observe: %v allocations per frame, want 0", n)
	}
}
