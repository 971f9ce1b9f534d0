package infer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Classifier runs backbone then head on batches of faces and gives p(fake).
// Classify calls are serialised; SwapHead and the accessors may be called from
// any goroutine.
type Classifier struct {
	b    *Backbone
	head atomic.Pointer[Head] // read without mu by HeadID; written only under mu

	// mu is held for a whole batch, so SwapHead waits for the batch in flight
	// and a verdict is never computed with a head that is half swapped or closed.
	mu     sync.Mutex
	closed bool
	feat   []float32
	logits []float32
}

// NewClassifier pairs a backbone with a head that takes its features. The
// classifier owns both from now on: Close closes them.
func NewClassifier(b *Backbone, h *Head) (*Classifier, error) {
	if b == nil || h == nil {
		return nil, errors.New("classifier needs both a backbone and a head")
	}
	if h.FeatureSize() != b.FeatureSize() {
		return nil, fmt.Errorf("head %s takes %d features per face but backbone %s gives %d",
			h.r.sess.Path, h.FeatureSize(), b.r.sess.Path, b.FeatureSize())
	}
	c := &Classifier{b: b}
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

// LoadClassifier loads a backbone and a head that fits it.
func LoadClassifier(eng *engine.Engine, backbonePath, headPath string) (*Classifier, error) {
	b, err := LoadBackbone(eng, backbonePath)
	if err != nil {
		return nil, err
	}
	h, err := LoadHead(eng, headPath, b.FeatureSize())
	if err != nil {
		b.Close()
		return nil, err
	}
	return NewClassifier(b, h)
}

// HeadInfo names the head that made a batch's verdicts: its ID and its stored
// decision threshold, which must go together across a swap. Backbone and Head
// are how long the batch's two runs took (`deepfaked bench` reports them).
type HeadInfo struct {
	ID             string
	Threshold      spec.Threshold
	Backbone, Head time.Duration
}

// Classify runs n faces (NCHW, n*3*S*S floats, preprocessed as Meta says)
// through the backbone and head, one run each, and writes p(fake) for each
// face into pFake[:n]. It returns which head made these verdicts.
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
	if h.FeatureSize() != c.b.FeatureSize() {
		return HeadInfo{}, fmt.Errorf("classify: head %s takes %d features per face but the backbone gives %d", h.id, h.FeatureSize(), c.b.FeatureSize())
	}
	if n < 1 {
		return HeadInfo{}, fmt.Errorf("classify: batch size %d: want at least 1", n)
	}
	if need := n * c.b.FeatureSize(); len(c.feat) < need {
		c.feat = make([]float32, need)
		c.logits = make([]float32, 2*n)
	}
	start := time.Now()
	if err := c.b.Features(input, n, c.feat); err != nil {
		return HeadInfo{}, err
	}
	features := time.Now()
	if err := h.Logits(c.feat, n, c.logits); err != nil {
		return HeadInfo{}, err
	}
	logits := time.Now()
	for i := range n {
		p := spec.PFake(c.logits[2*i], c.logits[2*i+1])
		if math.IsNaN(p) {
			return HeadInfo{}, fmt.Errorf("classify: head %s gave non-finite logits %v for face %d of %d", h.id, c.logits[2*i:2*i+2], i, n)
		}
		pFake[i] = float32(p)
	}
	return HeadInfo{ID: h.id, Threshold: h.Threshold(), Backbone: features.Sub(start), Head: logits.Sub(features)}, nil
}

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
