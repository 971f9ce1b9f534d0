package train

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// NumClasses is the head's output width: logit 0 is real, logit 1 is fake.
const NumClasses = 2

// PyTorch's BatchNorm1d defaults.
const (
	bnEps      = 1e-5
	bnMomentum = 0.1
)

// Head is BatchNorm1d(D) → Dropout → Linear(D, 2), stored in float32 like the
// PyTorch module it mirrors. W is row-major [2][D].
type Head struct {
	D           int
	Gamma, Beta []float32 // BatchNorm affine parameters
	RunningMean []float32
	RunningVar  []float32
	W           []float32 // Linear weight, W[c*D+j]
	B           []float32 // Linear bias, len 2
}

// NewHead initialises a head the way PyTorch does: BatchNorm γ=1, β=0, running
// mean 0, running var 1; Linear weight and bias uniform in ±1/√D.
func NewHead(d int, seed int64) *Head {
	h := &Head{
		D: d, Gamma: make([]float32, d), Beta: make([]float32, d),
		RunningMean: make([]float32, d), RunningVar: make([]float32, d),
		W: make([]float32, NumClasses*d), B: make([]float32, NumClasses),
	}
	for j := range d {
		h.Gamma[j], h.RunningVar[j] = 1, 1
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6865616400000000))
	bound := 1 / math.Sqrt(float64(d))
	for i := range h.W {
		h.W[i] = float32((2*rng.Float64() - 1) * bound)
	}
	for i := range h.B {
		h.B[i] = float32((2*rng.Float64() - 1) * bound)
	}
	return h
}

// Clone is a deep copy (a snapshot of the best epoch's weights).
func (h *Head) Clone() *Head {
	c := *h
	for _, p := range []*[]float32{&c.Gamma, &c.Beta, &c.RunningMean, &c.RunningVar, &c.W, &c.B} {
		*p = append([]float32(nil), (*p)...)
	}
	return &c
}

// params are the trainable tensors in a fixed order (Adam state follows it).
func (h *Head) params() [][]float32 { return [][]float32{h.Gamma, h.Beta, h.W, h.B} }

// Fold returns the eval-mode head as one affine map: BatchNorm with its running
// statistics folded into the Linear, W'[c][j] = W[c][j]·γ_j/√(var_j+ε) and
// b'[c] = b[c] + Σ_j W[c][j]·(β_j − mean_j·γ_j/√(var_j+ε)). This is what the
// ONNX export holds, and what Logits computes, so both agree.
func (h *Head) Fold() (w []float32, b []float32) {
	w = make([]float32, NumClasses*h.D)
	b = make([]float32, NumClasses)
	for c := range NumClasses {
		acc := float64(h.B[c])
		for j := range h.D {
			s := float64(h.Gamma[j]) / math.Sqrt(float64(h.RunningVar[j])+bnEps)
			wc := float64(h.W[c*h.D+j])
			w[c*h.D+j] = float32(wc * s)
			acc += wc * (float64(h.Beta[j]) - float64(h.RunningMean[j])*s)
		}
		b[c] = float32(acc)
	}
	return w, b
}

// Logits runs the head in eval mode on n samples x (n×D, row-major) and writes
// n×2 logits to out.
func (h *Head) Logits(x []float32, n int, out []float32) error {
	if len(x) != n*h.D || len(out) != n*NumClasses {
		return fmt.Errorf("head logits: want %d×%d features and %d×2 outputs, got %d and %d values", n, h.D, n, len(x), len(out))
	}
	w, b := h.Fold()
	affine(w, b, x, n, h.D, out)
	return nil
}

func affine(w, b, x []float32, n, d int, out []float32) {
	for i := range n {
		row := x[i*d : (i+1)*d]
		for c := range NumClasses {
			out[i*NumClasses+c] = float32(dot(w[c*d:(c+1)*d], row) + float64(b[c]))
		}
	}
}

func dot(a, b []float32) float64 {
	var s float64
	for j, v := range a {
		s += float64(v) * float64(b[j])
	}
	return s
}

// FakeProb is softmax(logits)[1], the probability that the face is fake.
func FakeProb(l0, l1 float32) float64 {
	return 1 / (1 + math.Exp(float64(l0)-float64(l1)))
}

// crossEntropy returns the class-weighted mean cross-entropy of n×2 logits
// (PyTorch: Σ w_y·ℓ / Σ w_y) and, when grad is non-nil, writes ∂loss/∂logits.
func crossEntropy(logits []float32, y []int, cw [NumClasses]float64, grad []float32) float64 {
	var sum, wsum float64
	for i, yi := range y {
		sum0, sum1 := float64(logits[2*i]), float64(logits[2*i+1])
		m := math.Max(sum0, sum1)
		lse := m + math.Log(math.Exp(sum0-m)+math.Exp(sum1-m))
		l := [2]float64{sum0, sum1}
		sum += cw[yi] * (lse - l[yi])
		wsum += cw[yi]
	}
	if grad != nil {
		for i, yi := range y {
			p1 := FakeProb(logits[2*i], logits[2*i+1])
			p := [2]float64{1 - p1, p1}
			for c := range NumClasses {
				t := 0.0
				if c == yi {
					t = 1
				}
				grad[2*i+c] = float32(cw[yi] / wsum * (p[c] - t))
			}
		}
	}
	return sum / wsum
}

// optimizer is one head's training state: gradients, torch.optim.Adam moments
// and the scratch buffers of a step, allocated once per fit.
type optimizer struct {
	h       *Head
	cfg     Config
	cw      [NumClasses]float64
	rng     *rand.Rand
	t       int
	grads   [][]float32
	m, v    [][]float32
	mean    []float64 // per-feature batch statistics
	invStd  []float64
	acc     []float64 // gradient accumulators: γ, β, W (float64 so batch sums do not drift)
	mask    []float32 // dropout multipliers, batch×D
	logits  []float32
	dlogits []float32
}

func newOptimizer(h *Head, cfg Config, cw [NumClasses]float64, maxBatch int) *optimizer {
	o := &optimizer{
		h: h, cfg: cfg, cw: cw,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x64726f706f7574)),
		mean:    make([]float64, h.D),
		invStd:  make([]float64, h.D),
		acc:     make([]float64, (2+NumClasses)*h.D),
		logits:  make([]float32, maxBatch*NumClasses),
		dlogits: make([]float32, maxBatch*NumClasses),
	}
	if cfg.Dropout > 0 {
		o.mask = make([]float32, maxBatch*h.D)
	}
	for _, p := range h.params() {
		o.grads = append(o.grads, make([]float32, len(p)))
		o.m = append(o.m, make([]float32, len(p)))
		o.v = append(o.v, make([]float32, len(p)))
	}
	return o
}

// step trains on one batch: x (len(y)×D) is overwritten with the normalised
// features. It returns the batch loss, cross-entropy plus the L1 penalty, as
// the notebook reported it.
func (o *optimizer) step(x []float32, y []int) float64 {
	h, d, n := o.h, o.h.D, len(y)
	// BatchNorm in train mode: biased batch variance normalises, the unbiased
	// one feeds the running estimate (PyTorch semantics).
	clear(o.mean)
	clear(o.invStd)
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			o.mean[j] += float64(v)
		}
	}
	for j := range d {
		o.mean[j] /= float64(n)
	}
	for i := range n {
		for j, v := range x[i*d : (i+1)*d] {
			dv := float64(v) - o.mean[j]
			o.invStd[j] += dv * dv
		}
	}
	for j := range d {
		bv := o.invStd[j] / float64(n)
		h.RunningMean[j] = float32((1-bnMomentum)*float64(h.RunningMean[j]) + bnMomentum*o.mean[j])
		h.RunningVar[j] = float32((1-bnMomentum)*float64(h.RunningVar[j]) + bnMomentum*bv*float64(n)/float64(n-1))
		o.invStd[j] = 1 / math.Sqrt(bv+bnEps)
	}
	if o.mask != nil {
		keep := float32(1 / (1 - o.cfg.Dropout))
		for k := range o.mask[:n*d] {
			if o.rng.Float64() < o.cfg.Dropout {
				o.mask[k] = 0
			} else {
				o.mask[k] = keep
			}
		}
	}
	// Forward: x ← x̂, logits = W·(mask∘(γx̂+β)) + b.
	logits := o.logits[:n*NumClasses]
	for i := range n {
		row := x[i*d : (i+1)*d]
		var s0, s1 float64
		for j := range row {
			xh := float32((float64(row[j]) - o.mean[j]) * o.invStd[j])
			row[j] = xh
			z := h.Gamma[j]*xh + h.Beta[j]
			if o.mask != nil {
				z *= o.mask[i*d+j]
			}
			s0 += float64(h.W[j]) * float64(z)
			s1 += float64(h.W[d+j]) * float64(z)
		}
		logits[2*i] = float32(s0 + float64(h.B[0]))
		logits[2*i+1] = float32(s1 + float64(h.B[1]))
	}
	dl := o.dlogits[:n*NumClasses]
	loss := crossEntropy(logits, y, o.cw, dl)

	// Backward to γ, β, W, b (the features are frozen: no ∂x).
	clear(o.acc)
	dg, db, dw := o.acc[:d], o.acc[d:2*d], o.acc[2*d:]
	var dB [NumClasses]float64
	for i := range n {
		row := x[i*d : (i+1)*d]
		g0, g1 := float64(dl[2*i]), float64(dl[2*i+1])
		dB[0] += g0
		dB[1] += g1
		for j, xh := range row {
			m := float32(1)
			if o.mask != nil {
				m = o.mask[i*d+j]
			}
			z := float64((h.Gamma[j]*xh + h.Beta[j]) * m)
			dw[j] += g0 * z
			dw[d+j] += g1 * z
			dy := (g0*float64(h.W[j]) + g1*float64(h.W[d+j])) * float64(m)
			dg[j] += dy * float64(xh)
			db[j] += dy
		}
	}
	gG, gB, gW, gb := o.grads[0], o.grads[1], o.grads[2], o.grads[3]
	for j := range d {
		gG[j], gB[j] = float32(dg[j]), float32(db[j])
	}
	var l1 float64
	for k, w := range h.W {
		g := dw[k]
		if o.cfg.L1 > 0 {
			l1 += math.Abs(float64(w))
			switch {
			case w > 0:
				g += o.cfg.L1
			case w < 0:
				g -= o.cfg.L1
			}
		}
		gW[k] = float32(g)
	}
	gb[0], gb[1] = float32(dB[0]), float32(dB[1])
	o.adam()
	return loss + o.cfg.L1*l1
}

// adam is torch.optim.Adam (betas 0.9/0.999, eps 1e-8, L2 weight_decay added
// to the gradient, bias-corrected moments).
func (o *optimizer) adam() {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	o.t++
	bc1 := 1 - math.Pow(b1, float64(o.t))
	bc2 := math.Sqrt(1 - math.Pow(b2, float64(o.t)))
	stepSize := o.cfg.LR / bc1
	wd := o.cfg.WeightDecay
	for k, p := range o.h.params() {
		g, m, v := o.grads[k], o.m[k], o.v[k]
		for i := range p {
			gi := float64(g[i]) + wd*float64(p[i])
			mi := b1*float64(m[i]) + (1-b1)*gi
			vi := b2*float64(v[i]) + (1-b2)*gi*gi
			m[i], v[i] = float32(mi), float32(vi)
			p[i] = float32(float64(p[i]) - stepSize*float64(m[i])/(math.Sqrt(float64(v[i]))/bc2+eps))
		}
	}
}
