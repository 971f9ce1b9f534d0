package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/deepfaked/deepfaked/infer/spec"
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
//
// Its forward and backward passes and Adam are written by hand rather than
// taken from a training framework: the head is one layer, and a framework
// would multiply the size of the edge binary that trains it on the device.
// torch_test.go checks them step by step against PyTorch.
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
			p1 := spec.PFake(logits[2*i], logits[2*i+1])
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

// colBlock is the width of the feature-column blocks a training step works
// on: one block of a 64-sample batch (128 KiB) stays in cache through its
// statistics, normalisation and forward pass, and blocks are independent, so
// the step runs them on all cores. Each block draws its dropout from its own
// random stream, so results do not depend on how many cores ran them.
const colBlock = 512

// optimizer is one head's training state: torch.optim.Adam moments and the
// scratch buffers of a step, allocated once per fit.
type optimizer struct {
	h       *Head
	cfg     Config
	cw      [NumClasses]float64
	workers int
	t       int
	rngs    []*rand.PCG // dropout stream of each column block
	params  [][]float32 // h.params()
	grads   [][]float32
	m, v    [][]float32
	mean    []float64 // per-feature batch statistics
	invStd  []float64
	acc     []float64 // gradient accumulators: γ, β, W (float64 so batch sums do not drift)
	mask    []uint8   // dropout: 1 keeps the feature, batch×D
	partial []float64 // per block and sample: the block's share of the two logits
	l1      []float64 // per block: Σ|W| of its columns
	logits  []float32
	dlogits []float32
}

func newOptimizer(h *Head, cfg Config, cw [NumClasses]float64, maxBatch int) *optimizer {
	blocks := (h.D + colBlock - 1) / colBlock
	o := &optimizer{
		h: h, cfg: cfg, cw: cw,
		workers: min(runtime.GOMAXPROCS(0), blocks),
		mean:    make([]float64, h.D),
		invStd:  make([]float64, h.D),
		acc:     make([]float64, (2+NumClasses)*h.D),
		partial: make([]float64, blocks*maxBatch*NumClasses),
		l1:      make([]float64, blocks),
		logits:  make([]float32, maxBatch*NumClasses),
		dlogits: make([]float32, maxBatch*NumClasses),
	}
	if cfg.Dropout > 0 {
		o.mask = make([]uint8, maxBatch*h.D)
		for b := range blocks {
			o.rngs = append(o.rngs, rand.NewPCG(uint64(cfg.Seed), 0x64726f706f7574+uint64(b)<<32))
		}
	}
	o.params = h.params()
	for _, p := range o.params {
		o.grads = append(o.grads, make([]float32, len(p)))
		o.m = append(o.m, make([]float32, len(p)))
		o.v = append(o.v, make([]float32, len(p)))
	}
	return o
}

// eachBlock runs f on every column block, spread over o.workers goroutines.
func (o *optimizer) eachBlock(f func(blk, lo, hi int)) {
	blocks := len(o.l1)
	run := func(blk int) { f(blk, blk*colBlock, min((blk+1)*colBlock, o.h.D)) }
	if o.workers <= 1 {
		for b := range blocks {
			run(b)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for b := int(next.Add(1) - 1); b < blocks; b = int(next.Add(1) - 1) {
				run(b)
			}
		})
	}
	wg.Wait()
}

// step trains on one batch: x (len(y)×D) is overwritten with the normalised
// features. It returns the batch loss, cross-entropy plus the L1 penalty, as
// the notebook reported it.
func (o *optimizer) step(x []float32, y []int) float64 {
	h, n := o.h, len(y)
	o.t++
	o.eachBlock(func(blk, lo, hi int) { o.forward(x, n, blk, lo, hi) })
	logits := o.logits[:n*NumClasses]
	for i := range n {
		s := [NumClasses]float64{float64(h.B[0]), float64(h.B[1])}
		for blk := range len(o.l1) {
			p := o.partial[(blk*n+i)*NumClasses:]
			s[0] += p[0]
			s[1] += p[1]
		}
		logits[2*i], logits[2*i+1] = float32(s[0]), float32(s[1])
	}
	dl := o.dlogits[:n*NumClasses]
	loss := crossEntropy(logits, y, o.cw, dl)
	o.eachBlock(func(blk, lo, hi int) { o.backward(x, n, blk, lo, hi) })
	var dB [NumClasses]float64
	for i := range n {
		dB[0] += float64(dl[2*i])
		dB[1] += float64(dl[2*i+1])
	}
	gb := o.grads[3]
	gb[0], gb[1] = float32(dB[0]), float32(dB[1])
	o.adam(3, 0, NumClasses)
	var l1 float64
	for _, v := range o.l1 {
		l1 += v
	}
	return loss + o.cfg.L1*l1
}

// forward does BatchNorm (train mode), dropout and the block's share of the
// logits for feature columns lo..hi, leaving x̂ in x.
func (o *optimizer) forward(x []float32, n, blk, lo, hi int) {
	h, d := o.h, o.h.D
	// One pass for Σx and Σx² (float64: features are O(1), far from
	// cancelling); mean and invStd hold them until the statistics are done.
	sum, sq := o.mean[lo:hi], o.invStd[lo:hi]
	clear(sum)
	clear(sq)
	for i := range n {
		row := x[i*d+lo : i*d+hi]
		sq := sq[:len(row)]
		sum := sum[:len(row)]
		for k, v := range row {
			f := float64(v)
			sum[k] += f
			sq[k] += f * f
		}
	}
	// Biased batch variance normalises, the unbiased one feeds the running
	// estimate (PyTorch semantics).
	mean, invStd := sum, sq
	rm, rv := h.RunningMean[lo:hi], h.RunningVar[lo:hi]
	for k := range mean {
		mu := sum[k] / float64(n)
		bv := max(sq[k]/float64(n)-mu*mu, 0)
		mean[k] = mu
		rm[k] = float32((1-bnMomentum)*float64(rm[k]) + bnMomentum*mu)
		rv[k] = float32((1-bnMomentum)*float64(rv[k]) + bnMomentum*bv*float64(n)/float64(n-1))
		invStd[k] = 1 / math.Sqrt(bv+bnEps)
	}
	g, be := h.Gamma[lo:hi], h.Beta[lo:hi]
	w0, w1 := h.W[lo:hi], h.W[d+lo:d+hi]
	for i := range n {
		row := x[i*d+lo : i*d+hi]
		mean, invStd, g, be, w0, w1 := mean[:len(row)], invStd[:len(row)], g[:len(row)], be[:len(row)], w0[:len(row)], w1[:len(row)]
		var s0, s1 float64
		if o.mask == nil {
			for k, v := range row {
				xh := float32((float64(v) - mean[k]) * invStd[k])
				row[k] = xh
				z := float64(g[k]*xh + be[k])
				s0 += float64(w0[k]) * z
				s1 += float64(w1[k]) * z
			}
		} else {
			// Two 32-bit draws per Uint64, each from the block's own stream:
			// a feature is dropped when its draw is below Dropout·2³².
			drop := uint32(o.cfg.Dropout * (1 << 32))
			keep := float32(1 / (1 - o.cfg.Dropout))
			rng := o.rngs[blk]
			mask := o.mask[i*d+lo : i*d+hi]
			mask = mask[:len(row)]
			var u uint64
			for k, v := range row {
				if k&1 == 0 {
					u = rng.Uint64()
				} else {
					u >>= 32
				}
				m := b2u(uint32(u) >= drop)
				mask[k] = m
				xh := float32((float64(v) - mean[k]) * invStd[k])
				row[k] = xh
				z := float64((g[k]*xh + be[k]) * (float32(m) * keep))
				s0 += float64(w0[k]) * z
				s1 += float64(w1[k]) * z
			}
		}
		p := o.partial[(blk*n+i)*NumClasses:]
		p[0], p[1] = s0, s1
	}
}

// backward accumulates the gradients of γ, β and W for columns lo..hi (the
// features are frozen: no ∂x), adds the L1 subgradient and takes their Adam
// step.
func (o *optimizer) backward(x []float32, n, blk, lo, hi int) {
	h, d := o.h, o.h.D
	dl := o.dlogits
	dg, db := o.acc[lo:hi], o.acc[d+lo:d+hi]
	dw0, dw1 := o.acc[2*d+lo:2*d+hi], o.acc[3*d+lo:3*d+hi]
	clear(dg)
	clear(db)
	clear(dw0)
	clear(dw1)
	keep := float32(1)
	if o.mask != nil {
		keep = float32(1 / (1 - o.cfg.Dropout))
	}
	g, be := h.Gamma[lo:hi], h.Beta[lo:hi]
	w0, w1 := h.W[lo:hi], h.W[d+lo:d+hi]
	for i := range n {
		row := x[i*d+lo : i*d+hi]
		g0, g1 := float64(dl[2*i]), float64(dl[2*i+1])
		for k, xh := range row {
			m := float32(1)
			if o.mask != nil {
				m = float32(o.mask[i*d+lo+k]) * keep
			}
			z := float64((g[k]*xh + be[k]) * m)
			dw0[k] += g0 * z
			dw1[k] += g1 * z
			dy := (g0*float64(w0[k]) + g1*float64(w1[k])) * float64(m)
			dg[k] += dy * float64(xh)
			db[k] += dy
		}
	}
	gG, gB, gW := o.grads[0], o.grads[1], o.grads[2]
	for k := range dg {
		gG[lo+k], gB[lo+k] = float32(dg[k]), float32(db[k])
	}
	var l1 float64
	for c, dw := range [NumClasses][]float64{dw0, dw1} {
		off := c*d + lo
		for k, w := range h.W[off : off+len(dw)] {
			gr := dw[k]
			if o.cfg.L1 > 0 {
				l1 += math.Abs(float64(w))
				switch {
				case w > 0:
					gr += o.cfg.L1
				case w < 0:
					gr -= o.cfg.L1
				}
			}
			gW[off+k] = float32(gr)
		}
	}
	o.l1[blk] = l1
	o.adam(0, lo, hi)
	o.adam(1, lo, hi)
	o.adam(2, lo, hi)
	o.adam(2, d+lo, d+hi)
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// adam is torch.optim.Adam (betas 0.9/0.999, eps 1e-8, L2 weight_decay added
// to the gradient, bias-corrected moments) on elements lo..hi of parameter k,
// at step o.t.
func (o *optimizer) adam(k, lo, hi int) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	bc1 := 1 - math.Pow(b1, float64(o.t))
	bc2 := math.Sqrt(1 - math.Pow(b2, float64(o.t)))
	stepSize := o.cfg.LR / bc1
	wd := o.cfg.WeightDecay
	p, g, m, v := o.params[k][lo:hi], o.grads[k][lo:hi], o.m[k][lo:hi], o.v[k][lo:hi]
	for i := range p {
		gi := float64(g[i]) + wd*float64(p[i])
		mi := b1*float64(m[i]) + (1-b1)*gi
		vi := b2*float64(v[i]) + (1-b2)*gi*gi
		m[i], v[i] = float32(mi), float32(vi)
		p[i] = float32(float64(p[i]) - stepSize*float64(m[i])/(math.Sqrt(float64(v[i]))/bc2+eps))
	}
}
