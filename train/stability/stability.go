// Package stability measures how a model's verdicts move when the same face
// is seen a little differently: mirrored, its box shifted or scaled as a face
// detector's box moves from frame to frame, or compressed harder. A face
// should get one verdict however the detector boxed it; the share of
// verdicts a view changes is how far it falls short.
//
// Each labelled crop is scored as it is and under every view, with the
// caller's classifier (the daemon's backbone, head and test-time
// augmentation), so the figures are the shipped configuration's.
package stability

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train"
)

// View is one change to a crop. Apply writes the changed BGR image into dst
// (the same size as src).
type View struct {
	Name  string
	Apply func(src gocv.Mat, dst *gocv.Mat) error
}

// None is the crop as it is: the reference every other view is compared with.
const None = "none"

// Views are the changes the model card reports, at a 128 px model input
// (shifts scale with the crop, so they are the same share of the face at any
// resolution): mirror; the box moved 2.3 px (1.8 % of its side, a detector's
// frame-to-frame jitter) and 8 px right; scaled to 90 % and 110 % about the
// centre; and JPEG at quality 50. Moved and scaled crops reflect their
// border: a crop holds no more of the frame.
func Views() []View {
	return []View{
		{None, nil},
		{"mirror", func(src gocv.Mat, dst *gocv.Mat) error { gocv.Flip(src, dst, 1); return nil }},
		{"shift2.3", affine(2.3/128, 0, 1)},
		{"shift8", affine(8.0/128, 0, 1)},
		{"scale90", affine(0, 0, 0.9)},
		{"scale110", affine(0, 0, 1.1)},
		{"jpeg50", jpeg(50)},
	}
}

// ByName picks views by name, None first whether asked for or not.
func ByName(names []string) ([]View, error) {
	all := Views()
	out := []View{all[0]}
	for _, n := range names {
		if n == None {
			continue
		}
		found := false
		for _, v := range all {
			if v.Name == n {
				out, found = append(out, v), true
				break
			}
		}
		if !found {
			known := make([]string, len(all))
			for i, v := range all {
				known[i] = v.Name
			}
			return nil, fmt.Errorf("stability: no view %q (views: %v)", n, known)
		}
	}
	return out, nil
}

// affine moves the content by (dx, dy) of the side and scales it about the
// centre, bilinear, border reflected.
func affine(dx, dy, scale float64) func(src gocv.Mat, dst *gocv.Mat) error {
	return func(src gocv.Mat, dst *gocv.Mat) error {
		w, h := float64(src.Cols()), float64(src.Rows())
		m := gocv.GetRotationMatrix2D(image.Pt(0, 0), 0, 1)
		defer m.Close()
		// x' = s*x + (1-s)*cx + dx*w, with the centre at (w-1)/2 as OpenCV's.
		cx, cy := (w-1)/2, (h-1)/2
		vals := [2][3]float64{{scale, 0, (1-scale)*cx + dx*w}, {0, scale, (1-scale)*cy + dy*h}}
		for r := range 2 {
			for c := range 3 {
				m.SetDoubleAt(r, c, vals[r][c])
			}
		}
		gocv.WarpAffineWithParams(src, dst, m, image.Pt(src.Cols(), src.Rows()),
			gocv.InterpolationLinear, gocv.BorderReflect101, color.RGBA{})
		return nil
	}
}

func jpeg(quality int) func(src gocv.Mat, dst *gocv.Mat) error {
	return func(src gocv.Mat, dst *gocv.Mat) error {
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, []int{gocv.IMWriteJpegQuality, quality})
		if err != nil {
			return fmt.Errorf("jpeg %d: %w", quality, err)
		}
		defer buf.Close()
		back, err := gocv.IMDecode(buf.GetBytes(), gocv.IMReadColor)
		if err != nil {
			return fmt.Errorf("jpeg %d: %w", quality, err)
		}
		defer back.Close()
		back.CopyTo(dst)
		return nil
	}
}

// Scorer turns a batch of preprocessed faces into p(fake) and says the
// decision threshold those verdicts are made at (the daemon's
// infer.Classifier with spec.DecisionThreshold, through a small adapter).
type Scorer interface {
	Score(input []float32, n int, pFake []float32) (threshold float64, err error)
}

// Filler preprocesses a whole BGR image into one model input (the daemon's
// capture/preprocess with the crop set to the image).
type Filler interface {
	Fill(img gocv.Mat, crop image.Rectangle, dst []float32) error
	Len() int
}

// Options are a measurement's inputs; every field is used as given.
type Options struct {
	Views []View // the first must be None
	// Confident is the distance from the threshold beyond which a verdict
	// counts as confident: the figures also report the changes among faces
	// scored at least this far from it as they are.
	Confident float64
	Batch     int // faces per model run
}

// ViewResult is one view's figures against the crop as it is.
type ViewResult struct {
	Name    string        `json:"view"`
	Metrics train.Metrics `json:"metrics"`
	// Changed is the share of faces whose verdict differs from the crop as
	// it is; ChangedConfident the same among the faces whose p(fake) as it is
	// lies at least Options.Confident from the threshold (nil when none).
	Changed          float64  `json:"changed"`
	ChangedConfident *float64 `json:"changed_confident"`
	// MedianDelta and P90Delta are the median and 90th percentile of
	// |p(fake) - p(fake) as it is|.
	MedianDelta float64 `json:"median_delta"`
	P90Delta    float64 `json:"p90_delta"`
}

// Result is a measurement over one folder.
type Result struct {
	N         int               `json:"n"`
	Confident int               `json:"confident"` // faces at least Options.Confident from the threshold
	Threshold float64           `json:"threshold"`
	Views     []ViewResult      `json:"views"`
	Skipped   []dataset.Skipped `json:"skipped,omitempty"`
	// Scores[v][i] is face i's p(fake) under view v (Views' order).
	Scores [][]float64 `json:"-"`
	Labels []int       `json:"-"`
}

// Progress is reported after each batch.
type Progress struct{ Done, Total int }

// Run scores every image of f under every view. Images that cannot be read
// are skipped and listed; it fails when none can be.
func Run(ctx context.Context, f *dataset.Folder, s Scorer, pre Filler, o Options, progress func(Progress)) (*Result, error) {
	if len(o.Views) == 0 || o.Views[0].Name != None {
		return nil, fmt.Errorf("stability: the first view must be %q", None)
	}
	if o.Batch < 1 {
		return nil, fmt.Errorf("stability: batch %d: want at least 1", o.Batch)
	}
	V, in := len(o.Views), pre.Len()
	res := &Result{Skipped: append([]dataset.Skipped(nil), f.Skipped...),
		Scores: make([][]float64, V)}
	input := make([]float32, o.Batch*V*in)
	out := make([]float32, o.Batch*V)
	var labels []int
	queued := 0
	flush := func() error {
		if queued == 0 {
			return nil
		}
		thr, err := s.Score(input[:queued*V*in], queued*V, out[:queued*V])
		if err != nil {
			return fmt.Errorf("stability: %w", err)
		}
		if len(res.Scores[0]) > 0 && thr != res.Threshold {
			return fmt.Errorf("stability: the threshold moved from %g to %g during the run (was the head swapped?)", res.Threshold, thr)
		}
		res.Threshold = thr
		for k := range queued {
			for v := range V {
				res.Scores[v] = append(res.Scores[v], float64(out[k*V+v]))
			}
		}
		queued = 0
		if progress != nil {
			progress(Progress{Done: len(res.Scores[0]) + len(res.Skipped) - len(f.Skipped), Total: len(f.Samples)})
		}
		return nil
	}
	view := gocv.NewMat()
	defer view.Close()
	for _, smp := range f.Samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(f.Dir, filepath.FromSlash(smp.Path))
		if err := fill(path, o.Views, pre, &view, input[queued*V*in:(queued+1)*V*in]); err != nil {
			res.Skipped = append(res.Skipped, dataset.Skipped{Path: smp.Path, Reason: err.Error()})
			continue
		}
		label := train.Real
		if smp.Label == dataset.Fake {
			label = train.Fake
		}
		labels = append(labels, label)
		if queued++; queued == o.Batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(labels) == 0 {
		return nil, fmt.Errorf("stability: no readable image in %s", f.Dir)
	}
	res.N, res.Labels = len(labels), labels
	base := res.Scores[0]
	for _, p := range base {
		if math.Abs(p-res.Threshold) >= o.Confident {
			res.Confident++
		}
	}
	for v, vw := range o.Views {
		m, err := train.Evaluate(labels, res.Scores[v], res.Threshold)
		if err != nil {
			return nil, fmt.Errorf("stability: view %s: %w", vw.Name, err)
		}
		r := ViewResult{Name: vw.Name, Metrics: m}
		if v > 0 {
			r.Changed, r.ChangedConfident, r.MedianDelta, r.P90Delta = compare(base, res.Scores[v], res.Threshold, o.Confident)
		}
		res.Views = append(res.Views, r)
	}
	return res, nil
}

// fill reads one image and writes its model input under every view.
func fill(path string, views []View, pre Filler, tmp *gocv.Mat, dst []float32) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil {
		return fmt.Errorf("not an image: %w", err)
	}
	defer img.Close()
	if img.Empty() {
		return fmt.Errorf("not an image OpenCV can decode")
	}
	whole := image.Rect(0, 0, img.Cols(), img.Rows())
	in := pre.Len()
	for v, vw := range views {
		src := img
		if vw.Apply != nil {
			if err := vw.Apply(img, tmp); err != nil {
				return fmt.Errorf("view %s: %w", vw.Name, err)
			}
			src = *tmp
		}
		if err := pre.Fill(src, whole, dst[v*in:(v+1)*in]); err != nil {
			return fmt.Errorf("view %s: %w", vw.Name, err)
		}
	}
	return nil
}

// compare gives the share of verdicts that differ, the same among confident
// reference scores, and the median and 90th percentile of |difference|.
func compare(ref, other []float64, thr, confident float64) (changed float64, changedConf *float64, median, p90 float64) {
	var n, nc, cc int
	d := make([]float64, len(ref))
	for i, p := range ref {
		q := other[i]
		differ := contract.IsFake(p, thr) != contract.IsFake(q, thr)
		if differ {
			n++
		}
		if math.Abs(p-thr) >= confident {
			nc++
			if differ {
				cc++
			}
		}
		d[i] = math.Abs(q - p)
	}
	sort.Float64s(d)
	if nc > 0 {
		c := float64(cc) / float64(nc)
		changedConf = &c
	}
	return float64(n) / float64(len(ref)), changedConf, quantile(d, 0.5), quantile(d, 0.9)
}

// quantile of sorted values, linear between order statistics.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}
