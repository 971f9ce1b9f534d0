package quantize

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"os"
	"path/filepath"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/onnxpb"
)

// Calibration methods.
const (
	MethodMinMax     = "minmax"
	MethodPercentile = "percentile"
	MethodEntropy    = "entropy"
)

// Methods are the calibration methods, for flags and messages.
var Methods = []string{MethodMinMax, MethodPercentile, MethodEntropy}

// percentileBins is the histogram resolution of the percentile method (ONNX
// Runtime's calibrator uses the same).
const percentileBins = 2048

// CalibrationOptions choose how ranges are found.
type CalibrationOptions struct {
	Method string // MethodMinMax, MethodPercentile or MethodEntropy
	// Percentile is the share of |values| each range keeps, in percent
	// (MethodPercentile), e.g. 99.999; the rest are clipped.
	Percentile float64
	// TempDir holds the float model with the extra outputs while calibrating.
	TempDir string
}

// Calibrator runs the float model with every tensor to calibrate as an extra
// output and keeps their ranges.
type Calibrator struct {
	f       *Float
	opts    CalibrationOptions
	sess    *engine.Session
	tmp     string
	names   []string
	stats   []tensorStats
	inShape []int64 // per item
	hash    hash.Hash
	samples int
}

type tensorStats struct {
	min, max float32
	hist     []float64 // |x| in [0, top) over percentileBins bins
	top      float64
	ch       []Range // per channel (dimension 1) of a 4-D tensor
}

// NewCalibrator writes f with the extra outputs to a temporary file and opens
// it with eng. size is the square input side the samples will have.
func NewCalibrator(eng *engine.Engine, f *Float, size int, opts CalibrationOptions) (*Calibrator, error) {
	if !slices.Contains(Methods, opts.Method) {
		return nil, fmt.Errorf("calibration method %q: want one of %v", opts.Method, Methods)
	}
	if opts.Method == MethodPercentile && !(opts.Percentile > 50 && opts.Percentile <= 100) {
		return nil, fmt.Errorf("calibration percentile %g: want more than 50 and at most 100", opts.Percentile)
	}
	m := proto.Clone(f.Model).(*onnxpb.ModelProto)
	g := m.GetGraph()
	have := map[string]bool{}
	for _, o := range g.GetOutput() {
		have[o.GetName()] = true
	}
	for _, t := range f.Tensors {
		if !have[t] {
			g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(t), Type: &onnxpb.TypeProto{
				Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}})
		}
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("calibration model for %s: %w", f.Path, err)
	}
	tmp, err := os.CreateTemp(opts.TempDir, filepath.Base(f.Path)+".calib-*.onnx")
	if err != nil {
		return nil, fmt.Errorf("calibration model for %s: %w", f.Path, err)
	}
	defer tmp.Close()
	if _, err := tmp.Write(data); err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("calibration model %s: %w", tmp.Name(), err)
	}
	sess, err := eng.Open(tmp.Name(), []string{f.Input}, f.Tensors)
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("calibration model for %s: %w", f.Path, err)
	}
	c := &Calibrator{f: f, opts: opts, sess: sess, tmp: tmp.Name(), names: f.Tensors,
		stats: make([]tensorStats, len(f.Tensors)), inShape: []int64{3, int64(size), int64(size)}, hash: sha256.New()}
	for i := range c.stats {
		c.stats[i].min, c.stats[i].max = float32(math.Inf(1)), float32(math.Inf(-1))
	}
	return c, nil
}

// Add runs n samples (NCHW floats, preprocessed like the daemon's) and
// updates every tensor's statistics.
func (c *Calibrator) Add(input []float32, n int) error {
	per := int(c.inShape[0] * c.inShape[1] * c.inShape[2])
	if n < 1 || len(input) < n*per {
		return fmt.Errorf("calibrate %s: %d floats for a batch of %d (want %d)", c.f.Path, len(input), n, n*per)
	}
	in, err := ort.NewTensor(append(ort.Shape{int64(n)}, c.inShape...), input[:n*per])
	if err != nil {
		return fmt.Errorf("calibrate %s: %w", c.f.Path, err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(c.names))
	if err := c.sess.Run([]ort.Value{in}, outs); err != nil {
		return fmt.Errorf("calibrate %s: run: %w", c.f.Path, err)
	}
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	for i, o := range outs {
		t, ok := o.(*ort.Tensor[float32])
		if !ok {
			return fmt.Errorf("calibrate %s: tensor %q is not float32", c.f.Path, c.names[i])
		}
		c.stats[i].add(t.GetData(), c.opts.Method != MethodMinMax)
		if sh := t.GetShape(); len(sh) == 4 {
			c.stats[i].addChannels(t.GetData(), int(sh[0]), int(sh[1]), int(sh[2]*sh[3]))
		}
	}
	var b [4]byte
	for _, v := range input[:n*per] {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		c.hash.Write(b[:])
	}
	c.samples += n
	return nil
}

func (s *tensorStats) add(x []float32, hist bool) {
	lo, hi := s.min, s.max
	amax := 0.0
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	s.min, s.max = lo, hi
	if !hist {
		return
	}
	amax = max(math.Abs(float64(lo)), math.Abs(float64(hi)))
	if s.hist == nil {
		s.hist, s.top = make([]float64, percentileBins), max(amax, 1e-12)
	} else if amax > s.top { // widen: old bins move into the new ones by their centres
		old, oldTop := s.hist, s.top
		s.hist, s.top = make([]float64, percentileBins), amax
		for i, cnt := range old {
			if cnt > 0 {
				s.hist[s.bin((float64(i)+0.5)*oldTop/percentileBins)] += cnt
			}
		}
	}
	for _, v := range x {
		s.hist[s.bin(math.Abs(float64(v)))]++
	}
}

func (s *tensorStats) addChannels(x []float32, n, ch, hw int) {
	if len(s.ch) != ch {
		s.ch = make([]Range, ch)
		for i := range s.ch {
			s.ch[i] = Range{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
		}
	}
	for b := range n {
		for c := range ch {
			r := s.ch[c]
			for _, v := range x[(b*ch+c)*hw : (b*ch+c+1)*hw] {
				r.Min, r.Max = min(r.Min, v), max(r.Max, v)
			}
			s.ch[c] = r
		}
	}
}

func (s *tensorStats) bin(a float64) int {
	return min(int(a/s.top*percentileBins), percentileBins-1)
}

// Samples is how many samples were added.
func (c *Calibrator) Samples() int { return c.samples }

// SetSHA256 is the sha256 of every sample's floats as added, in order: the
// calibration set after preprocessing.
func (c *Calibrator) SetSHA256() string { return hex.EncodeToString(c.hash.Sum(nil)) }

// Ranges are the calibrated ranges of every tensor in f.Tensors.
func (c *Calibrator) Ranges() (map[string]Range, error) {
	if c.samples == 0 {
		return nil, fmt.Errorf("calibrate %s: no samples", c.f.Path)
	}
	out := make(map[string]Range, len(c.names))
	for i, name := range c.names {
		s := c.stats[i]
		r := Range{Min: s.min, Max: s.max}
		if c.opts.Method == MethodPercentile {
			total := 0.0
			for _, cnt := range s.hist {
				total += cnt
			}
			keep := total * c.opts.Percentile / 100
			cum := 0.0
			k := 0
			for ; k < len(s.hist); k++ {
				cum += s.hist[k]
				if cum >= keep {
					break
				}
			}
			thr := float32(float64(min(k+1, percentileBins)) * s.top / percentileBins)
			r = Range{Min: max(s.min, -thr), Max: min(s.max, thr)}
		}
		if c.opts.Method == MethodEntropy {
			levels := 128 // a signed tensor's 8 bits cover -thr..thr: 128 levels for |x|
			if s.min >= 0 {
				levels = 256
			}
			h := slices.Clone(s.hist)
			h[0] = 0 // exact zeros (Relu floors, padding) are exact at any range
			thr := float32(float64(entropyBins(h, levels)) * s.top / percentileBins)
			r = Range{Min: max(s.min, -thr), Max: min(s.max, thr)}
		}
		out[name] = r
	}
	return out, nil
}

// ChannelRanges are, for every 4-D tensor of f.Tensors, each channel's
// range seen (for equalisation; see Options.Channels).
func (c *Calibrator) ChannelRanges() map[string][]Range {
	out := map[string][]Range{}
	for i, name := range c.names {
		if c.stats[i].ch != nil {
			out[name] = slices.Clone(c.stats[i].ch)
		}
	}
	return out
}

// entropyBins is how many of hist's bins the range should keep so that the
// clipped distribution, quantised to levels levels, is closest to the
// original in Kullback-Leibler divergence (TensorRT's entropy calibration).
func entropyBins(hist []float64, levels int) int {
	if len(hist) <= levels {
		return len(hist)
	}
	best, bestKL := len(hist), math.Inf(1)
	p := make([]float64, len(hist))
	q := make([]float64, len(hist))
	tail := 0.0
	for _, v := range hist {
		tail += v
	}
	for _, v := range hist[:levels-1] {
		tail -= v
	}
	for i := levels; i <= len(hist); i++ {
		tail -= hist[i-1]
		copy(p, hist[:i])
		p[i-1] += tail // outliers clip to the last bin
		// Quantise hist[:i] to levels bins, spread back over the non-empty bins.
		for j := range levels {
			lo, hi := j*i/levels, (j+1)*i/levels
			sum, nonzero := 0.0, 0
			for k := lo; k < hi; k++ {
				sum += hist[k]
				if hist[k] > 0 {
					nonzero++
				}
			}
			for k := lo; k < hi; k++ {
				q[k] = 0
				if hist[k] > 0 {
					q[k] = sum / float64(nonzero)
				}
			}
		}
		var ps, qs float64
		for k := range i {
			ps += p[k]
			qs += q[k]
		}
		if ps == 0 || qs == 0 {
			continue
		}
		kl := 0.0
		for k := range i {
			if p[k] > 0 {
				kl += p[k] / ps * math.Log((p[k]/ps)/max(q[k]/qs, 1e-12))
			}
		}
		if kl < bestKL {
			best, bestKL = i, kl
		}
	}
	return best
}

// Close frees the session and removes the temporary model.
func (c *Calibrator) Close() error {
	err := c.sess.Destroy()
	if rmErr := os.Remove(c.tmp); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}
