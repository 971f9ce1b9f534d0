package infer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Test-time augmentations (ClassifierOptions.TTA): what Classify runs
// besides each face as it is. Each view's p(fake) is averaged.
const (
	// TTANone runs each face once.
	TTANone = "none"
	// TTAFlip also runs each face mirrored left-right: faces are roughly
	// symmetric, a fake's artefacts need not be, and the two views' errors
	// partly cancel. It runs the models on twice the faces.
	TTAFlip = "flip"
	// TTAShift also runs each face moved by ShiftPixels diagonally both
	// ways (down-right and up-left, the edge repeated), as if the detector's
	// box had moved: three times the faces.
	TTAShift = "shift"
	// TTAFlipShift runs the face, its mirror, and the two shifted views of
	// TTAShift mirrored the other way round (one each): four times the faces.
	TTAFlipShift = "flip-shift"
)

// ShiftPixels is how far TTAShift moves a face at the model's input: 2 px at
// 128 is 1.6 % of the crop, a detector box's usual jitter between frames.
const ShiftPixels = 2

// TTAs lists the test-time augmentations in order of cost.
func TTAs() []string { return []string{TTANone, TTAFlip, TTAShift, TTAFlipShift} }

// view writes one test-time view of an NCHW batch of faces of side size
// into dst (the same length as src).
type view struct {
	name string
	fill func(dst, src []float32, size int) // nil: the face as it is
}

// ttaViews are the views a test-time augmentation runs, the face as it is first.
func ttaViews(tta string) []view {
	asIs := view{name: "as is"}
	mirror := view{"mirrored", mirrorRows}
	shiftBy := func(name string, dx, dy int, flip bool) view {
		return view{name, func(dst, src []float32, size int) {
			shiftPlanes(dst, src, size, dx, dy)
			if flip {
				mirrorRowsInPlace(dst, size)
			}
		}}
	}
	s := ShiftPixels
	switch tta {
	case TTAFlip:
		return []view{asIs, mirror}
	case TTAShift:
		return []view{asIs, shiftBy("shifted +x+y", s, s, false), shiftBy("shifted -x-y", -s, -s, false)}
	case TTAFlipShift:
		return []view{asIs, mirror, shiftBy("shifted +x+y", s, s, false), shiftBy("shifted -x-y, mirrored", -s, -s, true)}
	}
	return []view{asIs}
}

// ClassifierOptions are how a Classifier runs its batches.
type ClassifierOptions struct {
	// TTA is TTANone (or "", the same), TTAFlip, TTAShift or TTAFlipShift.
	TTA string
	// MaxBatch is the largest batch one model run may take, the engine's
	// engine.Options.MaxBatch (TensorRT builds its engines for batches up to
	// it); 0 means no limit. With V views a batch of n faces is one run of
	// V*n when V*n fits, else V runs of n.
	MaxBatch int
}

func (o ClassifierOptions) check() (ClassifierOptions, error) {
	if o.TTA == "" {
		o.TTA = TTANone
	}
	if !slices.Contains(TTAs(), o.TTA) {
		return o, fmt.Errorf("classifier: test-time augmentation %q: want one of %v", o.TTA, TTAs())
	}
	if o.MaxBatch < 0 {
		return o, fmt.Errorf("classifier: max batch %d: want 0 (no limit) or more", o.MaxBatch)
	}
	return o, nil
}

// Classifier runs backbone then head on batches of faces and gives p(fake).
// Classify calls are serialised; SwapHead and the accessors may be called from
// any goroutine.
type Classifier struct {
	b    *Backbone
	head atomic.Pointer[Head] // read without mu by HeadID; written only under mu
	opts ClassifierOptions    // checked; fixed at construction

	// mu is held for a whole batch, so SwapHead waits for the batch in flight
	// and a verdict is never computed with a head that is half swapped or closed.
	mu     sync.Mutex
	closed bool
	feat   []float32
	logits []float32
	// tta are the views each face runs as (ttaViews(opts.TTA)).
	tta []view
	// views holds, with more than one view, a batch's faces followed by each
	// other view of them: the caller's input is never written. Grown to the
	// largest batch seen, so a steady stream of batches allocates nothing here.
	views []float32
}

// newClassifier pairs a backbone with a head that takes its features. On
// success the classifier owns b and h (Close closes them); on error the
// caller still does.
func newClassifier(b *Backbone, h *Head, o ClassifierOptions) (*Classifier, error) {
	if b == nil || h == nil {
		return nil, errors.New("classifier needs both a backbone and a head")
	}
	if h.FeatureSize() != b.FeatureSize() {
		return nil, fmt.Errorf("head %s takes %d features per face but backbone %s gives %d",
			h.r.sess.Path, h.FeatureSize(), b.r.sess.Path, b.FeatureSize())
	}
	o, err := o.check()
	if err != nil {
		return nil, err
	}
	c := &Classifier{b: b, opts: o, tta: ttaViews(o.TTA)}
	if err := c.trial(h); err != nil {
		return nil, err
	}
	c.head.Store(h)
	return c, nil
}

// trial runs a grey face through the backbone and h and refuses non-finite
// outputs: a model with NaN or infinite weights loads and runs, but Classify
// would fail on every batch and no verdict would be published.
func (c *Classifier) trial(h *Head) error {
	m := c.b.Meta()
	plane := m.InputSize * m.InputSize
	in := make([]float32, 3*plane)
	for k := range 3 {
		v := (0.5 - m.Mean[k]) / m.Std[k]
		for i := range plane {
			in[k*plane+i] = v
		}
	}
	feat := make([]float32, c.b.FeatureSize())
	if err := c.b.Features(in, 1, feat); err != nil {
		return fmt.Errorf("trial run of backbone %s: %w", c.b.r.sess.Path, err)
	}
	if i := slices.IndexFunc(feat, notFinite); i >= 0 {
		return fmt.Errorf("backbone %s gives a non-finite feature (%v at %d) for a grey test face: its weights are broken", c.b.r.sess.Path, feat[i], i)
	}
	logits := make([]float32, 2)
	if err := h.Logits(feat, 1, logits); err != nil {
		return fmt.Errorf("trial run of head %s: %w", h.r.sess.Path, err)
	}
	if slices.ContainsFunc(logits, notFinite) {
		return fmt.Errorf("head %s gives non-finite logits %v for a grey test face: its weights are broken", h.r.sess.Path, logits)
	}
	return nil
}

func notFinite(v float32) bool { return math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) }

// fixedBatch says whether the named input declares a fixed batch dimension.
// It allocates nothing, so Classify may ask on every batch.
func fixedBatch(infos []ort.InputOutputInfo, name string) bool {
	d := dimsOf(infos, name)
	return len(d) > 0 && d[0] > 0
}

// LoadClassifier loads a backbone and a head that fits it, with options
// (setup.Classifier makes them from the config's model section).
func LoadClassifier(eng *engine.Engine, backbonePath, headPath string, o ClassifierOptions) (*Classifier, error) {
	// Checked before the models load, so a bad option fails at once.
	if _, err := o.check(); err != nil {
		return nil, err
	}
	b, err := LoadBackbone(eng, backbonePath)
	if err != nil {
		return nil, err
	}
	h, err := LoadHead(eng, headPath, b.FeatureSize())
	if err != nil {
		b.Close()
		return nil, err
	}
	c, err := newClassifier(b, h, o)
	if err != nil {
		// A refused pair (e.g. by the trial) would otherwise leak both sessions.
		return nil, errors.Join(err, h.Close(), b.Close())
	}
	return c, nil
}

// HeadInfo names the head that made a batch's verdicts: its ID and its stored
// decision threshold, which must go together across a swap. Backbone and Head
// are how long the batch's runs of each model took, the mirrored faces'
// included (`deepfaked bench` reports them).
type HeadInfo struct {
	ID             string
	Threshold      spec.Threshold
	Backbone, Head time.Duration
}

// Classify runs n faces (NCHW, n*3*S*S floats, preprocessed as Meta says)
// through the backbone and head and writes p(fake) for each face into
// pFake[:n]. It returns which head made these verdicts. Without TTA that is
// one run of each model; with V test-time views each face also runs as its
// other views, in the same run when V times the batch fits MaxBatch (else V
// runs of each model), and its p(fake) is the mean of the views'. input is
// only read.
func (c *Classifier) Classify(input []float32, n int, pFake []float32) (HeadInfo, error) {
	if len(pFake) < n {
		return HeadInfo{}, fmt.Errorf("classify: pFake holds %d values, a batch of %d needs %d", len(pFake), n, n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return HeadInfo{}, errors.New("classify: classifier is closed")
	}
	h := c.head.Load()
	F := c.b.FeatureSize()
	if h.FeatureSize() != F {
		return HeadInfo{}, fmt.Errorf("classify: head %s takes %d features per face but the backbone gives %d", h.id, h.FeatureSize(), F)
	}
	if n < 1 {
		return HeadInfo{}, fmt.Errorf("classify: batch size %d: want at least 1", n)
	}
	views, perRun := len(c.tta), n
	if views > 1 {
		// A model that declares a fixed batch dimension runs only batches of
		// that size: multiplying n would fail where n works. The head is asked
		// here, not at construction, because SwapHead may bring another.
		fixed := fixedBatch(c.b.r.sess.Inputs, "input") || fixedBatch(h.r.sess.Inputs, "features")
		if !fixed && (c.opts.MaxBatch == 0 || views*n <= c.opts.MaxBatch) {
			perRun = views * n
		}
	}
	faces := views * n
	if need := faces * F; len(c.feat) < need {
		c.feat = make([]float32, need)
		c.logits = make([]float32, 2*faces)
	}
	src := input
	if views > 1 {
		in := c.b.r.inSize
		if len(input) < n*in {
			return HeadInfo{}, fmt.Errorf("classify: input holds %d floats, a batch of %d needs %d", len(input), n, n*in)
		}
		if len(c.views) < views*n*in {
			c.views = make([]float32, views*n*in)
		}
		copy(c.views, input[:n*in])
		for v, vw := range c.tta[1:] {
			vw.fill(c.views[(v+1)*n*in:(v+2)*n*in], input[:n*in], c.b.meta.InputSize)
		}
		src = c.views
	}
	start := time.Now()
	for i := 0; i < faces; i += perRun {
		if err := c.b.Features(src[i*c.b.r.inSize:], perRun, c.feat[i*F:]); err != nil {
			return HeadInfo{}, err
		}
	}
	features := time.Now()
	for i := 0; i < faces; i += perRun {
		if err := h.Logits(c.feat[i*F:], perRun, c.logits[2*i:]); err != nil {
			return HeadInfo{}, err
		}
	}
	logits := time.Now()
	for i := range n {
		// Face i's view v is face v*n+i. The views' probabilities are
		// averaged, not their logits: a mean of logits lets one
		// overconfident view decide alone (logits 12 and -2, p 1.00 and
		// 0.12, average to logit 5, p 0.99, where the probabilities give
		// 0.56), and the threshold is calibrated on p(fake), which the mean
		// of the views' p(fake) stays on the scale of.
		var sum float64
		for v := range views {
			f := v*n + i
			p := spec.PFake(c.logits[2*f], c.logits[2*f+1])
			if math.IsNaN(p) {
				view := ""
				if v > 0 {
					view = " (" + c.tta[v].name + ")"
				}
				return HeadInfo{}, fmt.Errorf("classify: head %s gave non-finite logits %v for face %d of %d%s",
					h.id, c.logits[2*f:2*f+2], i, n, view)
			}
			sum += p
		}
		pFake[i] = float32(sum / float64(views))
	}
	return HeadInfo{ID: h.id, Threshold: h.Threshold(), Backbone: features.Sub(start), Head: logits.Sub(features)}, nil
}

// mirrorRows writes src with every row of width w reversed into dst: an NCHW
// batch mirrored left-right, since each channel plane of each face is rows
// of w floats one after the other.
func mirrorRows(dst, src []float32, w int) {
	for r := 0; r+w <= len(src); r += w {
		row, out := src[r:r+w], dst[r:r+w]
		for x, v := range row {
			out[w-1-x] = v
		}
	}
}

// mirrorRowsInPlace reverses every row of width w of buf.
func mirrorRowsInPlace(buf []float32, w int) {
	for r := 0; r+w <= len(buf); r += w {
		slices.Reverse(buf[r : r+w])
	}
}

// shiftPlanes writes src's size×size planes into dst moved by (dx, dy)
// pixels, the edge pixels repeated into the uncovered border, as a crop
// whose box moved by (-dx, -dy) over a frame that continues like its edge.
func shiftPlanes(dst, src []float32, size, dx, dy int) {
	plane := size * size
	for p := 0; p+plane <= len(src); p += plane {
		in, out := src[p:p+plane], dst[p:p+plane]
		for y := range size {
			sy := min(max(y-dy, 0), size-1)
			row := in[sy*size : (sy+1)*size]
			o := out[y*size : (y+1)*size]
			for x := range size {
				o[x] = row[min(max(x-dx, 0), size-1)]
			}
		}
	}
}

// TTA is the test-time augmentation in use (one of TTAs).
func (c *Classifier) TTA() string { return c.opts.TTA }

// Views is how many times each face runs through the models (1 without TTA).
func (c *Classifier) Views() int { return len(c.tta) }

// SwapHead makes h the head for every later batch and returns the previous
// one, which the caller should Close. It waits for the batch in flight, which
// finishes with the head it started with. h must take FeatureSize() features
// (load it with LoadHead(eng, path, c.FeatureSize())); a head that does not
// fit makes Classify fail. A head with non-finite outputs on a trial face is
// refused: the current one stays and the caller keeps h. It panics on a nil
// head.
func (c *Classifier) SwapHead(h *Head) (old *Head, err error) {
	if h == nil {
		panic("infer: SwapHead(nil)")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("swap head: classifier is closed")
	}
	if err := c.trial(h); err != nil {
		return nil, err
	}
	return c.head.Swap(h), nil
}

// Close waits for the batch in flight, then closes the backbone and the current head.
func (c *Classifier) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return errors.Join(c.b.Close(), c.head.Load().Close())
}

// InputSize is the face crop side S the backbone takes.
func (c *Classifier) InputSize() int { return c.b.meta.InputSize }

// Meta is the backbone's metadata: how faces must be preprocessed.
func (c *Classifier) Meta() spec.Metadata { return c.b.meta }

// FeatureSize is the number of features per face a head must take.
func (c *Classifier) FeatureSize() int { return c.b.FeatureSize() }

// BackboneID is the backbone file's sha256 prefix.
func (c *Classifier) BackboneID() string { return c.b.id }

// Precision is the backbone's (spec.Metadata.Precision).
func (c *Classifier) Precision() string { return c.b.meta.Precision() }

// HeadID is the current head file's sha256 prefix.
func (c *Classifier) HeadID() string { return c.head.Load().id }

// Threshold is the current head's stored decision threshold, if any.
func (c *Classifier) Threshold() spec.Threshold { return c.head.Load().Threshold() }
