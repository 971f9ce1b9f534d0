package track

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// ev is a compact view of an Event for comparison: "new fake 0.70",
// "update fake 0.70 -> real 0.20", "end real 0.20 -> real 0.20".
func ev(e Event) string {
	s := fmt.Sprintf("%s %d %s %.2f", e.Type, e.After.ID, e.After.State, e.After.Score)
	if e.Before != nil {
		s = fmt.Sprintf("%s %d %s %.2f -> %s %.2f", e.Type, e.After.ID, e.Before.State, e.Before.Score, e.After.State, e.After.Score)
	}
	return s
}

// step is one frame of one track for the events tests.
type step struct {
	kind  Kind
	state State
	score float64
}

// changes turns steps of track id into one-change frames, Before being the
// previous step as a Tracker would give it.
func changes(id int64, steps []step) [][]Change {
	var out [][]Change
	var prev Info
	for i, s := range steps {
		after := Info{ID: id, State: s.state, Score: s.score, Frames: i + 1}
		if s.kind == Ended {
			after = prev
		}
		c := Change{Kind: s.kind, After: after}
		if s.kind != Started {
			c.Before = prev
		}
		out = append(out, []Change{c})
		prev = after
	}
	return out
}

func TestEvents(t *testing.T) {
	testenv.Long(t)
	for _, tc := range []struct {
		name  string
		o     EventOptions
		steps []step
		want  []string
	}{
		{"fake-only: a real track makes nothing", EventOptions{UpdateDelta: 0.1},
			[]step{{Started, Uncertain, 0.2}, {Seen, Real, 0.1}, {Seen, Real, 0.4}, {Seen, Uncertain, 0.5}, {Ended, "", 0}}, nil},
		{"fake-only: uncertain, fake, real, end", EventOptions{UpdateDelta: 0.5},
			[]step{{Started, Uncertain, 0.5}, {Seen, Uncertain, 0.55}, {Seen, Fake, 0.7}, {Seen, Fake, 0.65}, {Seen, Real, 0.3}, {Seen, Real, 0.35}, {Ended, "", 0}},
			[]string{"new 7 fake 0.70", "update 7 fake 0.70 -> real 0.30", "end 7 real 0.30 -> real 0.35"}},
		{"fake-only: fake on its first frame", EventOptions{UpdateDelta: 1},
			[]step{{Started, Fake, 0.9}, {Ended, "", 0}},
			[]string{"new 7 fake 0.90", "end 7 fake 0.90 -> fake 0.90"}},
		{"fake-only: back to fake after real is an update", EventOptions{UpdateDelta: 1},
			[]step{{Started, Fake, 0.9}, {Seen, Real, 0.3}, {Seen, Fake, 0.8}},
			[]string{"new 7 fake 0.90", "update 7 fake 0.90 -> real 0.30", "update 7 real 0.30 -> fake 0.80"}},
		{"all: every track from its start", EventOptions{All: true, UpdateDelta: 0.5},
			[]step{{Started, Uncertain, 0.2}, {Seen, Uncertain, 0.25}, {Seen, Real, 0.1}, {Seen, Real, 0.15}, {Ended, "", 0}},
			[]string{"new 7 uncertain 0.20", "update 7 uncertain 0.20 -> real 0.10", "end 7 real 0.10 -> real 0.15"}},
		// Measured from the last published score, not the previous frame's:
		// 0.70 -> 0.75 -> 0.80 is one update at 0.80.
		{"UpdateDelta from the last published score", EventOptions{UpdateDelta: 0.1},
			[]step{{Started, Fake, 0.7}, {Seen, Fake, 0.75}, {Seen, Fake, 0.8}, {Seen, Fake, 0.72}, {Seen, Fake, 0.69}, {Seen, Fake, 0.62}},
			[]string{"new 7 fake 0.70", "update 7 fake 0.70 -> fake 0.80", "update 7 fake 0.80 -> fake 0.69"}},
		{"UpdateDelta 0: every frame", EventOptions{UpdateDelta: 0},
			[]step{{Started, Fake, 0.7}, {Seen, Fake, 0.7}, {Seen, Fake, 0.7}},
			[]string{"new 7 fake 0.70", "update 7 fake 0.70 -> fake 0.70", "update 7 fake 0.70 -> fake 0.70"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEvents(tc.o)
			var got []string
			var dst []Event
			for _, frame := range changes(7, tc.steps) {
				dst = e.Feed(frame, dst)
				for _, x := range dst {
					got = append(got, ev(x))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// Several tracks in one Feed: each event's Before is its own track's, and
// stays put while the rest of the batch is handled.
func TestEventsBatch(t *testing.T) {
	e := NewEvents(EventOptions{UpdateDelta: 0.2})
	info := func(id int64, s State, score float64) Info { return Info{ID: id, State: s, Score: score} }
	dst := e.Feed([]Change{
		{Kind: Started, After: info(1, Fake, 0.9)},
		{Kind: Started, After: info(2, Fake, 0.8)},
		{Kind: Started, After: info(3, Real, 0.1)},
	}, nil)
	dst = e.Feed([]Change{
		{Kind: Seen, Before: info(1, Fake, 0.9), After: info(1, Real, 0.3)},
		{Kind: Ended, Before: info(2, Fake, 0.8), After: info(2, Fake, 0.8)},
		{Kind: Ended, Before: info(3, Real, 0.1), After: info(3, Real, 0.1)},
	}, dst)
	var got []string
	for _, x := range dst {
		got = append(got, ev(x))
	}
	want := []string{"update 1 fake 0.90 -> real 0.30", "end 2 fake 0.80 -> fake 0.80"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A Tracker's changes through Events: a face scored fake, then real, then
// gone, makes new, update (real), end.
func TestTrackerEvents(t *testing.T) {
	o := opts()
	o.MinFrames, o.Rule, o.EMAAlpha, o.MaxMissed = 2, EMA, 1, 1
	tr, _ := New(o)
	e := NewEvents(EventOptions{UpdateDelta: 1})
	ids := make([]int64, 1)
	var ch []Change
	var dst []Event
	var got []string
	for k, p := range []float64{0.9, 0.9, 0.9, 0.1, 0.1, -1, -1} {
		var faces []Face
		if p >= 0 {
			faces = []Face{{Box: box(100, 100, 50, 50), PFake: p}}
		}
		ch = tr.Update(int64(k), time.Time{}, faces, 0.5, ids, ch)
		dst = e.Feed(ch, dst)
		for _, x := range dst {
			got = append(got, ev(x))
		}
	}
	want := []string{"new 1 fake 0.90", "update 1 fake 0.90 -> real 0.10", "end 1 real 0.10 -> real 0.10"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCameraState(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fakeT, realT, unsureT := Info{ID: 1, State: Fake}, Info{ID: 2, State: Real}, Info{ID: 3, State: Uncertain}
	type step struct {
		at   time.Duration
		live []Info
		want string
	}
	for _, tc := range []struct {
		name     string
		cooldown time.Duration
		steps    []step
	}{
		{"nobody", 10 * time.Second, []step{{0, nil, "none"}, {time.Hour, nil, "none"}}},
		{"a real or uncertain person", 10 * time.Second, []step{{0, []Info{realT}, "real"}, {time.Second, []Info{unsureT}, "real"}}},
		{"fake, then the cooldown after it ends", 10 * time.Second, []step{
			{0, []Info{realT}, "real"}, {time.Second, []Info{realT, fakeT}, "fake"}, {2 * time.Second, []Info{realT, fakeT}, "fake"},
			{3 * time.Second, []Info{realT}, "fake"}, {11999 * time.Millisecond, nil, "fake"}, {12 * time.Second, nil, "none"}}},
		{"after the cooldown a real track is real", 10 * time.Second, []step{
			{0, []Info{fakeT}, "fake"}, {5 * time.Second, []Info{realT}, "fake"}, {10 * time.Second, []Info{realT}, "real"}}},
		{"a fake track again restarts the cooldown", 10 * time.Second, []step{
			{0, []Info{fakeT}, "fake"}, {8 * time.Second, nil, "fake"}, {9 * time.Second, []Info{fakeT}, "fake"}, {18 * time.Second, nil, "fake"}, {19 * time.Second, nil, "none"}}},
		{"cooldown 0", 0, []step{{0, []Info{fakeT}, "fake"}, {time.Nanosecond, []Info{realT}, "real"}, {2 * time.Nanosecond, nil, "none"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCameraState(tc.cooldown)
			for _, s := range tc.steps {
				if got := c.Update(t0.Add(s.at), s.live); got != s.want {
					t.Errorf("at %s with %d live: %q, want %q", s.at, len(s.live), got, s.want)
				}
			}
		})
	}
}
