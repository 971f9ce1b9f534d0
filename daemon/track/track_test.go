package track

import (
	"image"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/geom"
)

// opts is a valid configuration (the config's defaults) for tests to vary.
func opts() Options {
	return Options{IoU: 0.3, MaxMissed: 10, MinFrames: 5, Rule: Mean, EMAAlpha: 0.2,
		ConfidentHigh: 0.8, ConfidentLow: 0.2, ConfidentCount: 11, Margin: 0.05}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		field string // "" when valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"zeros a user may give", func(o *Options) { o.IoU, o.MaxMissed, o.Margin, o.ConfidentLow = 0, 0, 0, 0 }, ""},
		{"upper bounds", func(o *Options) { o.IoU, o.EMAAlpha, o.Margin, o.ConfidentHigh = 1, 1, 0.5, 1 }, ""},
		{"IoU above 1", func(o *Options) { o.IoU = 1.1 }, "IoU"},
		{"IoU negative", func(o *Options) { o.IoU = -0.1 }, "IoU"},
		{"IoU NaN", func(o *Options) { o.IoU = math.NaN() }, "IoU"},
		{"MaxMissed negative", func(o *Options) { o.MaxMissed = -1 }, "MaxMissed"},
		{"MinFrames 0", func(o *Options) { o.MinFrames = 0 }, "MinFrames"},
		{"Rule empty", func(o *Options) { o.Rule = "" }, "Rule"},
		{"Rule unknown", func(o *Options) { o.Rule = "median" }, "Rule"},
		{"EMAAlpha 0", func(o *Options) { o.EMAAlpha = 0 }, "EMAAlpha"},
		{"EMAAlpha above 1", func(o *Options) { o.EMAAlpha = 1.5 }, "EMAAlpha"},
		{"ConfidentHigh above 1", func(o *Options) { o.ConfidentHigh = 1.2 }, "ConfidentHigh"},
		{"ConfidentLow negative", func(o *Options) { o.ConfidentLow = -0.2 }, "ConfidentLow"},
		{"ConfidentLow equals High", func(o *Options) { o.ConfidentLow = o.ConfidentHigh }, "ConfidentLow"},
		{"ConfidentCount 0", func(o *Options) { o.ConfidentCount = 0 }, "ConfidentCount"},
		{"Margin above 0.5", func(o *Options) { o.Margin = 0.6 }, "Margin"},
		{"Margin NaN", func(o *Options) { o.Margin = math.NaN() }, "Margin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.edit(&o)
			tr, err := New(o)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.field == "" && tr == nil:
				t.Fatal("New returned no tracker")
			case tc.field != "" && err == nil:
				t.Fatalf("New accepted %+v", o)
			case tc.field != "" && !strings.Contains(err.Error(), tc.field+" "):
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func repeat(p float64, n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = p
	}
	return s
}

func cat(ss ...[]float64) []float64 {
	var out []float64
	for _, s := range ss {
		out = append(out, s...)
	}
	return out
}

func TestAggregate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Options)
		ps   []float64
		want float64
	}{
		{"no frames", func(*Options) {}, nil, 0},
		{"mean", func(*Options) {}, []float64{0.1, 0.5, 0.9, 0.3}, 0.45},
		{"ema first frame sets it", func(o *Options) { o.Rule, o.EMAAlpha = EMA, 0.5 }, []float64{0.2}, 0.2},
		{"ema", func(o *Options) { o.Rule, o.EMAAlpha = EMA, 0.5 }, []float64{0.2, 0.6, 1}, 0.7},
		{"ema alpha 1 is the last frame", func(o *Options) { o.Rule, o.EMAAlpha = EMA, 1 }, []float64{0.9, 0.1, 0.3}, 0.3},
		// 3 of 5 above 0.8: more than 5/2.5 = 2 and at least Count 3.
		{"confident: enough confident fakes", func(o *Options) { o.Rule, o.ConfidentCount = Confident, 3 },
			[]float64{0.9, 0.95, 1, 0.1, 0.1}, 0.95},
		// The same frames with Count 4: too few fakes, too few reals: mean of all.
		{"confident: fakes below ConfidentCount", func(o *Options) { o.Rule, o.ConfidentCount = Confident, 4 },
			[]float64{0.9, 0.95, 1, 0.1, 0.1}, 0.61},
		// 2 of 5 above 0.8 is not more than 5/2.5: the fakes do not decide.
		{"confident: fakes not above 40%", func(o *Options) { o.Rule, o.ConfidentCount = Confident, 1 },
			[]float64{0.9, 0.9, 0.5, 0.5, 0.5}, 0.66},
		// 10 of 11 below 0.2 is more than 90 %: the mean of those.
		{"confident: 90% confident reals", func(o *Options) { o.Rule = Confident }, cat(repeat(0.1, 10), []float64{0.6}), 0.1},
		// 9 of 10 is not more than 90 %.
		{"confident: reals at exactly 90%", func(o *Options) { o.Rule = Confident }, cat(repeat(0.1, 9), []float64{0.6}), 0.15},
		{"confident: neither", func(o *Options) { o.Rule = Confident }, []float64{0.1, 0.1, 0.5, 0.9}, 0.4},
		// The DFDC setting: 11 confident fakes among 20 frames decide.
		{"confident: defaults", func(o *Options) { o.Rule = Confident }, cat(repeat(0.9, 11), repeat(0.3, 9)), 0.9},
		{"confident: defaults, 10 fakes", func(o *Options) { o.Rule = Confident }, cat(repeat(0.9, 10), repeat(0.3, 10)), 0.6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			tc.edit(&o)
			if _, err := New(o); err != nil {
				t.Fatal(err)
			}
			a := NewAggregate(o)
			for _, p := range tc.ps {
				a.Add(p)
			}
			if got := a.Score(); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Score = %v, want %v", got, tc.want)
			}
			if a.Frames() != len(tc.ps) {
				t.Errorf("Frames = %d, want %d", a.Frames(), len(tc.ps))
			}
		})
	}
	a := NewAggregate(Options{Rule: "median"})
	a.Add(0.5)
	if s := a.Score(); !math.IsNaN(s) {
		t.Errorf("unknown rule scores %v, want NaN", s)
	}
}

// Hysteresis, through a tracker following one still face. Rule EMA with
// alpha 1 makes the score the frame's p_fake; the band is [0.375, 0.625).
func TestHysteresis(t *testing.T) {
	type step struct {
		p    float64
		want State
	}
	for _, tc := range []struct {
		name      string
		minFrames int
		margin    float64
		steps     []step
	}{
		{"uncertain until MinFrames", 3, 0.125, []step{{1, Uncertain}, {1, Uncertain}, {1, Fake}}},
		{"MinFrames 1 decides the first frame", 1, 0.125, []step{{0.1, Real}}},
		{"wandering inside the band stays uncertain", 1, 0.125,
			[]step{{0.55, Uncertain}, {0.45, Uncertain}, {0.62, Uncertain}, {0.375, Uncertain}, {0.5, Uncertain}}},
		{"fake at the upper edge", 1, 0.125, []step{{0.6249, Uncertain}, {0.625, Fake}}},
		{"real just below the lower edge", 1, 0.125, []step{{0.375, Uncertain}, {0.3749, Real}}},
		{"fake holds in the band, even at its lower edge", 1, 0.125,
			[]step{{0.7, Fake}, {0.45, Fake}, {0.6, Fake}, {0.375, Fake}, {0.55, Fake}, {0.3749, Real}}},
		{"real holds in the band, fake at the upper edge", 1, 0.125,
			[]step{{0.2, Real}, {0.55, Real}, {0.624, Real}, {0.4, Real}, {0.625, Fake}}},
		{"no flapping around the threshold", 1, 0.125,
			[]step{{0.3, Real}, {0.51, Real}, {0.49, Real}, {0.52, Real}, {0.48, Real}, {0.8, Fake}, {0.49, Fake}, {0.51, Fake}, {0.48, Fake}}},
		{"margin 0: the threshold alone", 1, 0, []step{{0.5, Fake}, {0.4999, Real}, {0.5, Fake}}},
		{"before MinFrames a decided score is still uncertain", 2, 0.125, []step{{0.9, Uncertain}, {0.5, Uncertain}, {0.5, Uncertain}, {0.9, Fake}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			o.Rule, o.EMAAlpha, o.MinFrames, o.Margin = EMA, 1, tc.minFrames, tc.margin
			tr, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]int64, 1)
			var ch []Change
			for i, s := range tc.steps {
				ch = tr.Update(int64(i), time.Unix(int64(i), 0), []Face{{Box: image.Rect(100, 100, 160, 160), PFake: s.p}}, 0.5, ids, ch)
				if len(ch) != 1 {
					t.Fatalf("frame %d: %d changes, want 1", i, len(ch))
				}
				if got := ch[0].After.State; got != s.want {
					t.Errorf("frame %d: p %v: state %s, want %s", i, s.p, got, s.want)
				}
			}
		})
	}
}

// A threshold change (a model reload) applies from the frame it comes with.
func TestHysteresisThresholdChange(t *testing.T) {
	o := opts()
	o.Rule, o.EMAAlpha, o.MinFrames, o.Margin = EMA, 1, 1, 0.05
	tr, _ := New(o)
	ids := make([]int64, 1)
	var ch []Change
	for i, s := range []struct {
		thr  float64
		want State
	}{{0.5, Fake}, {0.5, Fake}, {0.7, Fake}, {0.8, Real}, {0.5, Fake}} {
		ch = tr.Update(int64(i), time.Time{}, []Face{{Box: image.Rect(0, 0, 50, 50), PFake: 0.7}}, s.thr, ids, ch)
		if got := ch[0].After.State; got != s.want {
			t.Errorf("frame %d threshold %v: %s, want %s", i, s.thr, got, s.want)
		}
	}
}

// box is a w×h box centred at (cx, cy).
func box(cx, cy, w, h int) image.Rectangle {
	return image.Rect(cx-w/2, cy-h/2, cx-w/2+w, cy-h/2+h)
}

// Two faces crossing paths head on keep their ids: without the velocity
// model each would be taken by the other's track as they pass.
func TestCrossingKeepsIDs(t *testing.T) {
	tr, err := New(opts())
	if err != nil {
		t.Fatal(err)
	}
	const speed = 12
	at := func(k int) (a, b image.Rectangle) {
		return box(20+speed*k, 100, 40, 40), box(320-speed*k, 104, 40, 40)
	}
	ids := make([]int64, 2)
	var ch []Change
	var idA, idB int64
	ambiguous := false
	for k := range 28 {
		a, b := at(k)
		ch = tr.Update(int64(k), time.Time{}, []Face{{Box: a}, {Box: b}}, 0.5, ids, ch)
		if k == 0 {
			idA, idB = ids[0], ids[1]
			if idA == idB {
				t.Fatalf("both faces got track %d", idA)
			}
			continue
		}
		if ids[0] != idA || ids[1] != idB {
			t.Fatalf("frame %d: ids %v, want [%d %d]", k, ids, idA, idB)
		}
		// The test is only worth something if the last boxes alone would swap.
		pa, _ := at(k - 1)
		if geom.IoU(pa, b) > geom.IoU(pa, a) {
			ambiguous = true
		}
	}
	if !ambiguous {
		t.Fatal("the faces never came close enough for last-box matching to swap them")
	}
	if live := tr.Live(nil); len(live) != 2 {
		t.Errorf("%d live tracks, want 2", len(live))
	}
}

// A face missing MaxMissed frames keeps its track; missing one more ends it.
func TestMaxMissed(t *testing.T) {
	for _, maxMissed := range []int{0, 1, 3} {
		for _, gap := range []int{maxMissed, maxMissed + 1} {
			o := opts()
			o.MaxMissed = maxMissed
			tr, _ := New(o)
			ids := make([]int64, 1)
			var ch []Change
			face := []Face{{Box: image.Rect(10, 10, 60, 60), PFake: 0.2}}
			ch = tr.Update(0, time.Time{}, face, 0.5, ids, ch)
			first := ids[0]
			ended := -1
			for k := 1; k <= gap; k++ {
				ch = tr.Update(int64(k), time.Time{}, nil, 0.5, ids, ch)
				for _, c := range ch {
					if c.Kind != Ended || c.After.ID != first {
						t.Fatalf("max_missed %d gap %d frame %d: unexpected change %+v", maxMissed, gap, k, c)
					}
					ended = k
				}
			}
			ch = tr.Update(int64(gap+1), time.Time{}, face, 0.5, ids, ch)
			if gap == maxMissed {
				if ended >= 0 || ids[0] != first || len(ch) != 1 || ch[0].Kind != Seen || ch[0].After.Frames != 2 {
					t.Errorf("max_missed %d, gap %d: ended at %d, id %d (was %d), changes %+v: want the track kept", maxMissed, gap, ended, ids[0], first, ch)
				}
			} else if ended != gap || ids[0] == first || len(ch) != 1 || ch[0].Kind != Started {
				t.Errorf("max_missed %d, gap %d: ended at %d, id %d (was %d), changes %+v: want it ended on frame %d and a new track", maxMissed, gap, ended, ids[0], first, ch, gap)
			}
		}
	}
}

// Ids are unique and increasing, across Flush too; Changes carry the track
// before and after the frame.
func TestIDsAndChanges(t *testing.T) {
	o := opts()
	o.MaxMissed = 0
	tr, _ := New(o)
	ids := make([]int64, 3)
	var ch []Change
	var seen []int64
	t0 := time.Unix(1000, 0)
	// Faces at new places each frame: every one starts a track.
	for k := range 4 {
		faces := []Face{{Box: box(50+200*k, 50, 40, 40)}, {Box: box(50+200*k, 300, 40, 40)}}
		ch = tr.Update(int64(k), t0.Add(time.Duration(k)*time.Second), faces, 0.5, ids, ch)
		seen = append(seen, ids[:2]...)
	}
	ch = tr.Flush(ch)
	if len(ch) != 2 || ch[0].Kind != Ended || ch[1].Kind != Ended {
		t.Fatalf("Flush: %+v, want 2 Ended", ch)
	}
	if live := tr.Live(nil); len(live) != 0 {
		t.Fatalf("Live after Flush: %+v", live)
	}
	ch = tr.Update(9, t0, []Face{{Box: box(50, 50, 40, 40)}}, 0.5, ids, ch)
	seen = append(seen, ids[0])
	for i, id := range seen {
		if id != int64(i+1) {
			t.Fatalf("ids %v, want 1, 2, 3, ...", seen)
		}
	}

	// Before and After of a Seen change, Info fields.
	ch = tr.Update(10, t0.Add(time.Second), []Face{{Box: box(52, 50, 40, 40), PFake: 0.6}}, 0.5, ids, ch)
	if len(ch) != 1 || ch[0].Kind != Seen {
		t.Fatalf("changes %+v, want one Seen", ch)
	}
	b, a := ch[0].Before, ch[0].After
	want := Info{ID: 9, State: Uncertain, Score: 0.3, Frames: 2, FirstFrame: 9, LastFrame: 10, First: t0, Last: t0.Add(time.Second), Box: box(52, 50, 40, 40)}
	if a != want {
		t.Errorf("After %+v\nwant %+v", a, want)
	}
	if b.Frames != 1 || b.LastFrame != 9 || b.Box != box(50, 50, 40, 40) {
		t.Errorf("Before %+v: want the track after its first frame", b)
	}
}

// Greedy matching: the best overlap wins; a face continues at most one track
// and a track takes at most one face; faces too far from any prediction, or
// too different in size, start tracks. IoU is 0.5 here so that the centre
// rule is what keeps a shifted face.
func TestMatching(t *testing.T) {
	for _, tc := range []struct {
		name  string
		first []image.Rectangle // frame 0: one track each
		next  []image.Rectangle // frame 1
		want  []int64           // ids of next
	}{
		{"same place", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(100, 100, 40, 40)}, []int64{1}},
		{"IoU 0.38 < 0.5 but centre inside: kept", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(118, 100, 40, 40)}, []int64{1}},
		{"centre outside: new track", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(122, 100, 40, 40)}, []int64{2}},
		{"twice the size, centre inside: kept", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(100, 100, 80, 80)}, []int64{1}},
		{"more than twice the size: new track", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(100, 100, 84, 84)}, []int64{2}},
		{"half the size: kept", []image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(100, 100, 20, 20)}, []int64{1}},
		{"one face between two tracks goes to the better overlap",
			[]image.Rectangle{box(100, 100, 40, 40), box(150, 100, 40, 40)}, []image.Rectangle{box(140, 100, 40, 40)}, []int64{2}},
		{"two faces near one track: the closer continues it, the other starts one",
			[]image.Rectangle{box(100, 100, 40, 40)}, []image.Rectangle{box(112, 100, 40, 40), box(104, 100, 40, 40)}, []int64{2, 1}},
		{"IoU beats the centre rule",
			[]image.Rectangle{box(100, 100, 40, 40), box(100, 100, 60, 60)}, []image.Rectangle{box(100, 100, 58, 58), box(100, 100, 38, 38)}, []int64{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			o.IoU = 0.5
			tr, _ := New(o)
			ids := make([]int64, 4)
			faces := func(bs []image.Rectangle) []Face {
				f := make([]Face, len(bs))
				for i, b := range bs {
					f[i].Box = b
				}
				return f
			}
			tr.Update(0, time.Time{}, faces(tc.first), 0.5, ids, nil)
			ch := tr.Update(1, time.Time{}, faces(tc.next), 0.5, ids, nil)
			for i, w := range tc.want {
				if ids[i] != w {
					t.Errorf("face %d: track %d, want %d (changes %+v)", i, ids[i], w, ch)
				}
			}
		})
	}
}

// 4 faces moving each frame: the per-frame path should not allocate.
func BenchmarkUpdate(b *testing.B) {
	tr, err := New(opts())
	if err != nil {
		b.Fatal(err)
	}
	faces := make([]Face, 4)
	ids := make([]int64, 4)
	ch := make([]Change, 0, 8)
	ts := time.Unix(0, 0)
	b.ReportAllocs()
	for k := 0; b.Loop(); k++ {
		step := k % 100 // back and forth, so the faces stay the same 4 tracks
		if step >= 50 {
			step = 100 - step
		}
		for i := range faces {
			faces[i] = Face{Box: box(100+200*i+2*step, 200+step, 80, 80), PFake: float64(i) / 4}
		}
		ch = tr.Update(int64(k), ts, faces, 0.5, ids, ch)
	}
	if live := tr.Live(nil); len(live) != 4 {
		b.Fatalf("%d live tracks, want 4", len(live))
	}
}

// TestHysteresisNearTheEnds: a calibrated threshold near 0 or 1 keeps both
// band edges within reach (at most halfway to the end), else a head whose
// threshold is 0.98 could never make a track fake with margin 0.05.
func TestHysteresisNearTheEnds(t *testing.T) {
	for _, tc := range []struct {
		thr, p float64
		want   State
	}{
		{0.98, 0.995, Fake}, // edge 0.99, not 1.03
		{0.98, 0.985, Uncertain},
		{0.98, 0.92, Real},  // lower edge 0.93: the margin still applies
		{0.02, 0.005, Real}, // edge 0.01, not -0.03
		{0.02, 0.015, Uncertain},
		{0.02, 0.07, Fake},
	} {
		o := opts()
		o.Rule, o.EMAAlpha, o.MinFrames, o.Margin = EMA, 1, 1, 0.05
		tr, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		ch := tr.Update(0, time.Unix(0, 0), []Face{{Box: image.Rect(100, 100, 160, 160), PFake: tc.p}}, tc.thr, make([]int64, 1), nil)
		if got := ch[0].After.State; got != tc.want {
			t.Errorf("threshold %g, score %g: %s, want %s", tc.thr, tc.p, got, tc.want)
		}
	}
}
