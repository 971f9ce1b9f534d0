package infer

import (
	"fmt"
	"image"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// ttaModes are the ways a flipped batch of n faces can run: one model run of
// 2n (no batch limit) or, when 2n does not fit MaxBatch, two runs of n.
var ttaModes = []struct {
	name     string
	maxBatch func(n int) int
}{
	{"one run", func(int) int { return 0 }},
	{"two runs", func(n int) int { return n }},
}

func loadTTA(t testing.TB, bb, hd string, o ClassifierOptions) *Classifier {
	t.Helper()
	c, err := LoadClassifier(newEngine(t), bb, hd, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// classify runs in through c and returns p(fake) for its n faces.
func classify(t testing.TB, c *Classifier, in []float32, n int) []float32 {
	t.Helper()
	p := make([]float32, n)
	info, err := c.Classify(in, n, p)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != c.HeadID() || info.Backbone <= 0 || info.Head <= 0 {
		t.Fatalf("HeadInfo %+v: want head %s and both durations > 0", info, c.HeadID())
	}
	return p
}

// mirrored is in with each face's columns reversed, written with plain
// indices rather than mirrorRows.
func mirrored(in []float32, n, size int) []float32 {
	out := make([]float32, len(in))
	for f := range n {
		for ch := range 3 {
			for y := range size {
				for x := range size {
					at := func(x int) int { return ((f*3+ch)*size+y)*size + x }
					out[at(size-1-x)] = in[at(x)]
				}
			}
		}
	}
	return out
}

func TestClassifierOptions(t *testing.T) {
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	bad := nanHead(t, hd)
	tests := []struct {
		name    string
		head    string
		opts    ClassifierOptions
		wantTTA string
		wantErr string
	}{
		{"zero options", hd, ClassifierOptions{}, TTANone, ""},
		{"none", hd, ClassifierOptions{TTA: TTANone}, TTANone, ""},
		{"flip", hd, ClassifierOptions{TTA: TTAFlip, MaxBatch: 4}, TTAFlip, ""},
		{"unknown augmentation", hd, ClassifierOptions{TTA: "rotate"}, "", `test-time augmentation "rotate"`},
		{"negative max batch", hd, ClassifierOptions{TTA: TTAFlip, MaxBatch: -1}, "", "max batch -1"},
		// The grey trial face is its own mirror image: flip changes nothing
		// about which heads the trial refuses.
		{"flip with a NaN head", bad, ClassifierOptions{TTA: TTAFlip}, "", "non-finite logits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClassifier(eng, bb, tt.head, tt.opts)
			if tt.wantErr != "" {
				if err == nil {
					c.Close()
				}
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.TTA() != tt.wantTTA {
				t.Errorf("TTA() = %q, want %q", c.TTA(), tt.wantTTA)
			}
		})
	}
}

// TestFlipOfSymmetricFaces: a face that is its own mirror image gets the
// same p(fake) with flip as without.
func TestFlipOfSymmetricFaces(t *testing.T) {
	bb, hd := testenv.Models(t)
	plain := loadTTA(t, bb, hd, ClassifierOptions{})
	const n = 3
	s := plain.InputSize()
	in := randomBatch(n, s, 11)
	for row := 0; row < len(in); row += s {
		for x := range s / 2 {
			in[row+s-1-x] = in[row+x]
		}
	}
	if d, _ := maxAbsDiff(in, mirrored(in, n, s)); d != 0 {
		t.Fatalf("the test's faces are not symmetric: they differ from their mirror images by %g", d)
	}
	want := classify(t, plain, in, n)
	for _, m := range ttaModes {
		t.Run(m.name, func(t *testing.T) {
			flip := loadTTA(t, bb, hd, ClassifierOptions{TTA: TTAFlip, MaxBatch: m.maxBatch(n)})
			got := classify(t, flip, in, n)
			if d, at := maxAbsDiff(got, want); !(d <= 1e-5) {
				t.Errorf("face %d: p(fake) %v with flip, %v without", at, got[at], want[at])
			}
		})
	}
}

// TestFlipIsMeanOfViews: with flip, p(fake) is the mean of p(fake) of the
// face and of its mirror image, each classified without TTA; the mirror
// images are made by the test, not by the classifier.
func TestFlipIsMeanOfViews(t *testing.T) {
	bb, hd := testenv.Models(t)
	cases := []struct {
		name string
		// faces returns the backbone, n faces and the same faces mirrored.
		faces func(t *testing.T) (backbone string, in, mirror []float32, n int)
	}{
		{"noise, random weights", func(t *testing.T) (string, []float32, []float32, int) {
			const n = 5
			in := randomBatch(n, 128, 12)
			return bb, in, mirrored(in, n, 128), n
		}},
		{"dfdc faces, dfdc weights", func(t *testing.T) (string, []float32, []float32, int) {
			ref := testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc_features.onnx")
			dir := testenv.SharedFile(t, "data/dfdc-faces/test")
			var paths []string
			for _, label := range []string{"real", "fake"} {
				found, err := filepath.Glob(filepath.Join(dir, label, "*.jpg"))
				if err != nil || len(found) < 3 {
					t.Fatalf("%s/%s: %d images, err %v", dir, label, len(found), err)
				}
				slices.Sort(found)
				paths = append(paths, found[:3]...)
			}
			// The shared backbone has no metadata of ours: it gets the defaults.
			in, mirror := dfdcFaces(t, paths, spec.DefaultMetadata())
			return ref, in, mirror, len(paths)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			backbone, in, mirror, n := tc.faces(t)
			plain := loadTTA(t, backbone, hd, ClassifierOptions{})
			orig, flipped := classify(t, plain, in, n), classify(t, plain, mirror, n)
			moved, _ := maxAbsDiff(orig, flipped)
			if moved < 1e-4 {
				t.Fatalf("mirroring moves p(fake) by at most %g: the comparison is too weak (%v vs %v)", moved, orig, flipped)
			}
			want := make([]float32, n)
			for i := range n {
				want[i] = float32((float64(orig[i]) + float64(flipped[i])) / 2)
			}
			for _, m := range ttaModes {
				t.Run(m.name, func(t *testing.T) {
					flip := loadTTA(t, backbone, hd, ClassifierOptions{TTA: TTAFlip, MaxBatch: m.maxBatch(n)})
					got := classify(t, flip, in, n)
					d, at := maxAbsDiff(got, want)
					t.Logf("max |flip - mean of views| = %.2g; mirroring moves p(fake) by up to %.3g", d, moved)
					if !(d <= 1e-5) {
						t.Errorf("face %d: flip gives %v, mean of %v and %v is %v", at, got[at], orig[at], flipped[at], want[at])
					}
				})
			}
		})
	}
}

// dfdcFaces preprocesses face crops as the daemon does for a backbone with
// metadata m (no margin), and also their mirror images, made by gocv.Flip.
// Each image is resized first, so both views are filled from the same
// pixels: mirroring before an area resize could round differently.
func dfdcFaces(t *testing.T, paths []string, m spec.Metadata) (in, mirror []float32) {
	t.Helper()
	pp := preprocessor(t, m)
	defer pp.Close()
	size := m.InputSize
	face := pp.Len()
	in, mirror = make([]float32, len(paths)*face), make([]float32, len(paths)*face)
	small, flipped := gocv.NewMat(), gocv.NewMat()
	defer small.Close()
	defer flipped.Close()
	all := image.Rect(0, 0, size, size)
	for i, p := range paths {
		img := gocv.IMRead(p, gocv.IMReadColor)
		if img.Empty() {
			t.Fatalf("cannot read %s", p)
		}
		gocv.Resize(img, &small, image.Pt(size, size), 0, 0, gocv.InterpolationArea)
		img.Close()
		gocv.Flip(small, &flipped, 1) // 1: around the vertical axis, left-right
		if err := pp.Fill(small, all, in[i*face:]); err != nil {
			t.Fatal(err)
		}
		if err := pp.Fill(flipped, all, mirror[i*face:]); err != nil {
			t.Fatal(err)
		}
	}
	return in, mirror
}

// TestClassifyLeavesInputAlone: the caller's buffer is only read, whatever
// the augmentation.
func TestClassifyLeavesInputAlone(t *testing.T) {
	bb, hd := testenv.Models(t)
	const n = 4
	tests := []struct {
		name string
		opts ClassifierOptions
	}{
		{"none", ClassifierOptions{}},
		{"flip, one run", ClassifierOptions{TTA: TTAFlip}},
		{"flip, two runs", ClassifierOptions{TTA: TTAFlip, MaxBatch: n}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := loadTTA(t, bb, hd, tt.opts)
			in := randomBatch(n, c.InputSize(), 13)
			before := slices.Clone(in)
			classify(t, c, in, n)
			for i := range in {
				if math.Float32bits(in[i]) != math.Float32bits(before[i]) {
					t.Fatalf("input[%d] was %v before Classify, %v after", i, before[i], in[i])
				}
			}
		})
	}
}

// TestFlipAllocations: once warm, flip adds no allocations of its own: only
// onnxruntime_go's per-run ones, as many runs as it makes.
func TestFlipAllocations(t *testing.T) {
	bb, hd := testenv.Models(t)
	const n = 4
	plain := loadTTA(t, bb, hd, ClassifierOptions{})
	in := randomBatch(n, plain.InputSize(), 14)
	p := make([]float32, n)
	allocs := func(c *Classifier) float64 {
		classify(t, c, in, n) // warm-up: buffers and per-batch-size tensors
		return testing.AllocsPerRun(5, func() {
			if _, err := c.Classify(in, n, p); err != nil {
				t.Fatal(err)
			}
		})
	}
	base := allocs(plain)
	for i, m := range ttaModes {
		t.Run(m.name, func(t *testing.T) {
			runs := float64(i + 1)
			got := allocs(loadTTA(t, bb, hd, ClassifierOptions{TTA: TTAFlip, MaxBatch: m.maxBatch(n)}))
			t.Logf("allocs per batch: %v with flip, %v without", got, base)
			if got > runs*base {
				t.Errorf("flip allocates %v per batch, want at most %v (%v runs of %v)", got, runs*base, runs, base)
			}
		})
	}
}

// BenchmarkClassifyTTA sets flip's cost beside none's on the `make models`
// export, in one run so the ratio is read off directly; flip-2runs is a
// flipped batch whose 2n exceeds MaxBatch (TensorRT's profile), run as two
// runs of n. The allocations are onnxruntime_go's, per model run.
func BenchmarkClassifyTTA(b *testing.B) {
	eng := newEngine(b)
	bb, hd := testenv.Models(b)
	batches := []int{1, 8}
	byMode := map[string][]*Classifier{}
	modes := []struct {
		name string
		opts func(n int) ClassifierOptions
	}{
		{"flip-2runs", func(n int) ClassifierOptions { return ClassifierOptions{TTA: TTAFlip, MaxBatch: n} }},
	}
	for _, tta := range TTAs() {
		modes = append(modes, struct {
			name string
			opts func(n int) ClassifierOptions
		}{tta, func(int) ClassifierOptions { return ClassifierOptions{TTA: tta} }})
	}
	for _, mode := range modes {
		// Loaded here, not in the sub-benchmarks, which run once per b.N tried.
		clfs := make([]*Classifier, len(batches))
		for i, n := range batches {
			c, err := LoadClassifier(eng, bb, hd, mode.opts(n))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			clfs[i] = c
		}
		byMode[mode.name] = clfs
		b.Run(mode.name, func(b *testing.B) {
			for i, n := range batches {
				b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchClassify(b, clfs[i], n) })
			}
		})
	}
	// On a shared machine the separate figures drift with the load; run
	// alternately in one loop, every TTA sees the same load, so their ratios
	// to none hold.
	b.Run("interleaved", func(b *testing.B) {
		for i, n := range batches {
			b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
				in := randomBatch(n, byMode[TTANone][i].InputSize(), 1)
				p := make([]float32, n)
				took := make([]time.Duration, len(TTAs()))
				for b.Loop() {
					for k, tta := range TTAs() {
						start := time.Now()
						if _, err := byMode[tta][i].Classify(in, n, p); err != nil {
							b.Fatal(err)
						}
						took[k] += time.Since(start)
					}
				}
				for k, tta := range TTAs() {
					b.ReportMetric(took[k].Seconds()*1e3/float64(b.N*n), tta+"-ms/face")
					if k > 0 {
						b.ReportMetric(took[k].Seconds()/took[0].Seconds(), tta+"/none")
					}
				}
			})
		}
	})
}

// shifted is in with each face moved by (dx, dy), the edge repeated, written
// with plain indices rather than shiftPlanes.
func shifted(in []float32, n, size, dx, dy int) []float32 {
	out := make([]float32, len(in))
	clamp := func(v int) int { return min(max(v, 0), size-1) }
	for f := range n {
		for ch := range 3 {
			at := func(x, y int) int { return ((f*3+ch)*size+y)*size + x }
			for y := range size {
				for x := range size {
					out[at(x, y)] = in[at(clamp(x-dx), clamp(y-dy))]
				}
			}
		}
	}
	return out
}

// TestShiftTTAIsMeanOfViews: with shift and flip-shift, p(fake) is the mean
// of p(fake) of the views the test makes itself, each classified without
// TTA, in one run or in one run per view.
func TestShiftTTAIsMeanOfViews(t *testing.T) {
	bb, hd := testenv.Models(t)
	const n, s = 3, 128
	in := randomBatch(n, s, 21)
	d := ShiftPixels
	views := map[string][][]float32{
		TTAShift:     {in, shifted(in, n, s, d, d), shifted(in, n, s, -d, -d)},
		TTAFlipShift: {in, mirrored(in, n, s), shifted(in, n, s, d, d), mirrored(shifted(in, n, s, -d, -d), n, s)},
	}
	plain := loadTTA(t, bb, hd, ClassifierOptions{})
	for tta, vs := range views {
		want := make([]float32, n)
		for _, v := range vs {
			p := classify(t, plain, v, n)
			for i := range n {
				want[i] += p[i] / float32(len(vs))
			}
		}
		for _, m := range []struct {
			name     string
			maxBatch int
		}{{"one run", 0}, {"one run per view", n}} {
			t.Run(tta+", "+m.name, func(t *testing.T) {
				c := loadTTA(t, bb, hd, ClassifierOptions{TTA: tta, MaxBatch: m.maxBatch})
				if c.Views() != len(vs) {
					t.Fatalf("%s runs %d views, want %d", tta, c.Views(), len(vs))
				}
				got := classify(t, c, in, n)
				if diff, at := maxAbsDiff(got, want); !(diff <= 1e-5) {
					t.Errorf("face %d: %s gives %v, the mean of its views %v", at, tta, got[at], want[at])
				}
			})
		}
	}
	if moved, _ := maxAbsDiff(classify(t, plain, views[TTAShift][1], n), classify(t, plain, in, n)); moved < 1e-5 {
		t.Errorf("shifting moves p(fake) by %g: the comparison is too weak", moved)
	}
}
