package quantize

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
)

// readerAlpha is how far a tensor read by a full (group 1) Conv is
// equalised: that Conv's per-output-channel weight scales do not absorb the
// change, so it takes half of it (as SmoothQuant's migration strength 0.5).
const readerAlpha = 0.5

// equalize rescales activation channels so that each 8-bit tensor's grid
// serves its small channels too, without changing what the float model
// computes. Channel i of a tensor is divided by a_i <= 1 where it is made
// (the producing Convs' weights and biases of output channel i) and
// multiplied back where it is read (the reading Convs' weights of input
// channel i). With per-channel weight scales the producers' quantisation does
// not change, nor a depthwise reader's.
//
//   - A Relu output T = Relu(Conv1(x)) read by one Conv2: Relu(x/a) =
//     Relu(x)/a for a > 0, and zero padding stays zero. A depthwise Conv2
//     absorbs a_i whole, so a_i = max_i/max; a full one, a_i = (max_i/max)^0.5.
//     T's range does not change (its largest channel keeps a = 1).
//   - A residual stream: tensors joined by Adds (or a Conv output alone),
//     made by Convs without a Relu and read by full Convs and the Adds.
//     Every tensor of the stream takes the same a_i = (absmax_i/absmax)^0.5
//     (the Adds then add alike scaled channels).
//
// The tensors' distributions change, so ranges are calibrated afterwards, on
// the equalised model. It returns the changed initializers.
func equalize(f *Float, channels map[string][]Range) map[string][]float32 {
	e := newEqualizer(f)
	// In graph order, not map order: in a chain Conv→Relu→Conv→Relu→Conv the
	// middle Conv is scaled by both pairs, so the order decides the result and
	// the same model must quantise to the same file every time.
	for _, n := range f.Model.GetGraph().GetNode() {
		if len(n.GetOutput()) == 0 {
			continue
		}
		t := n.GetOutput()[0]
		c, ok := f.folded[t]
		if !ok {
			continue
		}
		r := e.readers[t]
		cr := channels[t]
		if len(r) != 1 || r[0].GetOpType() != "Conv" || r[0].GetInput()[0] != t || len(cr) == 0 {
			continue
		}
		conv1, conv2 := e.producer[c], r[0]
		alpha, ok := e.readerAlpha(conv2, len(cr))
		if !ok || !e.scalable(conv1, len(cr)) {
			continue
		}
		top := float32(0)
		for _, x := range cr {
			top = max(top, x.Max)
		}
		a := make([]float32, len(cr))
		for i, x := range cr {
			a[i] = factor(x.Max, top, alpha)
		}
		e.scaleOutputs(conv1, a)
		e.scaleInputs(conv2, a)
	}
	for _, g := range e.streams(channels) {
		ch := len(channels[g.tensors[0]])
		top := float32(0)
		absmax := make([]float32, ch)
		for _, t := range g.tensors {
			for i, x := range channels[t] {
				absmax[i] = max(absmax[i], -x.Min, x.Max)
				top = max(top, absmax[i])
			}
		}
		a := make([]float32, ch)
		for i := range a {
			a[i] = factor(absmax[i], top, readerAlpha)
		}
		for _, p := range g.producers {
			e.scaleOutputs(p, a)
		}
		for _, r := range g.readers {
			e.scaleInputs(r, a)
		}
	}
	return e.vals
}

// Equalized is f with its channels equalised (see equalize) by the channel
// ranges calibrated on it (Calibrator.ChannelRanges). It computes what f
// computes; only its weights differ.
func Equalized(f *Float, channels map[string][]Range) (*Float, error) {
	vals := equalize(f, channels)
	m := proto.Clone(f.Model).(*onnxpb.ModelProto)
	for _, t := range m.GetGraph().GetInitializer() {
		if v, ok := vals[t.GetName()]; ok {
			e := floatTensor(t.GetName(), t.GetDims(), v)
			t.RawData, t.FloatData = e.RawData, nil
		}
	}
	out := &Float{Path: f.Path, SHA256: f.SHA256, Model: m}
	if err := out.check(); err != nil {
		return nil, fmt.Errorf("quantize: equalised %s: %w", f.Path, err)
	}
	return out, nil
}

func factor(m, top float32, alpha float64) float32 {
	if m <= 0 || top <= 0 {
		return 1
	}
	return float32(max(math.Pow(float64(m/top), alpha), 1e-4))
}

type equalizer struct {
	f        *Float
	readers  map[string][]*onnxpb.NodeProto
	producer map[string]*onnxpb.NodeProto
	uses     map[string]int
	outputs  map[string]bool
	vals     map[string][]float32
}

func newEqualizer(f *Float) *equalizer {
	e := &equalizer{f: f, readers: map[string][]*onnxpb.NodeProto{}, producer: map[string]*onnxpb.NodeProto{},
		uses: map[string]int{}, outputs: map[string]bool{}, vals: map[string][]float32{}}
	for _, n := range f.Model.GetGraph().GetNode() {
		for _, in := range n.GetInput() {
			e.readers[in] = append(e.readers[in], n)
			e.uses[in]++
		}
		e.producer[n.GetOutput()[0]] = n
	}
	for _, o := range f.Model.GetGraph().GetOutput() {
		e.outputs[o.GetName()] = true
	}
	return e
}

func (e *equalizer) get(name string) []float32 {
	if v, ok := e.vals[name]; ok {
		return v
	}
	v, _ := floats(e.f.inits[name])
	e.vals[name] = v
	return v
}

func group(n *onnxpb.NodeProto) int64 {
	for _, a := range n.GetAttribute() {
		if a.GetName() == "group" {
			return a.GetI()
		}
	}
	return 1
}

// scalable says a Conv's output channels can be rescaled: it makes ch
// channels and its weight and bias are its own.
func (e *equalizer) scalable(conv *onnxpb.NodeProto, ch int) bool {
	in := conv.GetInput()
	w := e.f.inits[in[1]]
	if e.uses[in[1]] != 1 || int(w.GetDims()[0]) != ch {
		return false
	}
	return len(in) < 3 || in[2] == "" || e.uses[in[2]] == 1
}

// readerAlpha says how far a Conv reading a ch-channel tensor as its input
// can take equalisation: 1 when depthwise, readerAlpha when full.
func (e *equalizer) readerAlpha(conv *onnxpb.NodeProto, ch int) (float64, bool) {
	w := e.f.inits[conv.GetInput()[1]]
	if e.uses[w.GetName()] != 1 {
		return 0, false
	}
	d := w.GetDims()
	switch g := group(conv); {
	case g == int64(ch) && d[1] == 1 && int(d[0])%ch == 0:
		return 1, true
	case g == 1 && int(d[1]) == ch:
		return readerAlpha, true
	}
	return 0, false
}

// scaleOutputs divides a Conv's output channel i (weights and bias) by a[i].
func (e *equalizer) scaleOutputs(conv *onnxpb.NodeProto, a []float32) {
	in := conv.GetInput()
	w := e.get(in[1])
	per := len(w) / len(a)
	for i := range a {
		for j := range per {
			w[i*per+j] /= a[i]
		}
	}
	if len(in) > 2 && in[2] != "" {
		b := e.get(in[2])
		for i := range a {
			b[i] /= a[i]
		}
	}
}

// scaleInputs multiplies the weights a Conv applies to input channel i by a[i].
func (e *equalizer) scaleInputs(conv *onnxpb.NodeProto, a []float32) {
	name := conv.GetInput()[1]
	d := e.f.inits[name].GetDims()
	w := e.get(name)
	k := int(d[2] * d[3])
	ch := len(a)
	if group(conv) != 1 { // depthwise: output o reads input o/(outputs per input)
		mult := int(d[0]) / ch
		for o := range int(d[0]) {
			for j := range k {
				w[o*k+j] *= a[o/mult]
			}
		}
		return
	}
	for o := range int(d[0]) {
		for i := range ch {
			for j := range k {
				w[(o*ch+i)*k+j] *= a[i]
			}
		}
	}
}

type stream struct {
	tensors   []string
	producers []*onnxpb.NodeProto // Convs writing into the stream
	readers   []*onnxpb.NodeProto // full Convs reading from it
}

// streams finds residual streams: sets of tensors joined by Adds (or one
// Conv output alone), where
// every tensor is made by a Conv (without a folded Relu) or by one of the
// Adds, and read only by the Adds and by full Convs as their input.
func (e *equalizer) streams(channels map[string][]Range) []stream {
	parent := map[string]string{}
	var find func(string) string
	find = func(x string) string {
		if p, ok := parent[x]; ok && p != x {
			r := find(p)
			parent[x] = r
			return r
		}
		parent[x] = x
		return x
	}
	var order []string
	seen := map[string]bool{}
	for _, n := range e.f.Model.GetGraph().GetNode() {
		if n.GetOpType() != "Add" {
			continue
		}
		all := append([]string{n.GetOutput()[0]}, n.GetInput()...)
		for _, t := range all {
			if !seen[t] {
				seen[t] = true
				order = append(order, t)
			}
			parent[find(t)] = find(all[0])
		}
	}
	for _, n := range e.f.Model.GetGraph().GetNode() { // a Conv output outside Adds: a stream of its own
		if t := n.GetOutput()[0]; n.GetOpType() == "Conv" && !seen[t] {
			seen[t] = true
			order = append(order, t)
		}
	}
	byRoot := map[string]*stream{}
	var roots []string
	bad := map[string]bool{}
	for _, t := range order {
		r := find(t)
		g, ok := byRoot[r]
		if !ok {
			g = &stream{}
			byRoot[r] = g
			roots = append(roots, r)
		}
		g.tensors = append(g.tensors, t)
		ch := len(channels[t])
		if ch == 0 || ch != len(channels[g.tensors[0]]) || e.outputs[t] || t == e.f.Input {
			bad[r] = true
			continue
		}
		switch p := e.producer[t]; {
		case p == nil:
			bad[r] = true
		case p.GetOpType() == "Conv":
			if !e.scalable(p, ch) {
				bad[r] = true
			}
			g.producers = append(g.producers, p)
		case p.GetOpType() != "Add":
			bad[r] = true
		}
		for _, rd := range e.readers[t] {
			switch {
			case rd.GetOpType() == "Add":
			case rd.GetOpType() == "Conv" && rd.GetInput()[0] == t:
				if alpha, ok := e.readerAlpha(rd, ch); !ok || alpha != readerAlpha {
					bad[r] = true
				}
				g.readers = append(g.readers, rd)
			default:
				bad[r] = true
			}
		}
	}
	var out []stream
	for _, r := range roots {
		if !bad[r] {
			out = append(out, *byRoot[r])
		}
	}
	return out
}
