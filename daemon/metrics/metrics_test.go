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
	m := New(noSnapshot{}, nil)
	t0 := time.Now()
	st := &livestat.Stages{Camera: "cam1", Faces: 2, Batch: 3, FirstInRun: true, Next: t0,
		Read: t0.Add(time.Millisecond), Detected: t0.Add(2 * time.Millisecond), Preprocessed: t0.Add(3 * time.Millisecond),
		Dequeued: t0.Add(4 * time.Millisecond), Classified: t0.Add(9 * time.Millisecond), Published: t0.Add(10 * time.Millisecond),
		Backbone: 4 * time.Millisecond, Head: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { m.Observe(st) }); n != 0 {
		t.Errorf("Observe: %v allocations per frame, want 0", n)
	}
}

type oneCamera struct{}

func (oneCamera) Snapshot(time.Time) contract.Stats {
	return contract.Stats{Release: "r2", Cameras: []contract.CameraStats{{Name: "door", State: contract.CameraDelivering,
		Verdicts: map[string]int64{contract.LabelFake: 1}}}}
}

// TestLabels: every metric, the Go runtime's and the process's included,
// carries the device and the configured labels.
func TestLabels(t *testing.T) {
	m := New(oneCamera{}, map[string]string{"device": "door-7", "site": "shop-3"})
	m.Observe(&livestat.Stages{Camera: "door"})
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, f := range fams {
		for _, met := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range met.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["device"] != "door-7" || got["site"] != "shop-3" {
				t.Errorf("%s %v: want device door-7 and site shop-3", f.GetName(), got)
			}
			seen++
		}
	}
	if seen < 20 {
		t.Errorf("%d metrics gathered, want the daemon's, Go's and the process's", seen)
	}
}
