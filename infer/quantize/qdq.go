package quantize

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
)

// Range is a calibrated tensor's [Min, Max].
type Range struct{ Min, Max float32 }

// Options choose how weights are quantised. The zero value is ONNX Runtime's
// recommended S8S8 QDQ with per-channel weights at full 8-bit range.
type Options struct {
	// PerTensorWeights uses one weight scale per Conv instead of one per
	// output channel. It exists to show why not: depthwise convolutions'
	// channels differ by orders of magnitude and most round to zero.
	PerTensorWeights bool
	// ReduceRange quantises weights to 7 bits ([-63, 63]), for x86 CPUs
	// without VNNI, whose 8-bit multiply-add (VPMADDUBSW) can saturate its
	// 16-bit sums (see ReduceRangeAdvice).
	ReduceRange bool
	// UnsignedActivations quantises activations to uint8 (U8S8) instead of
	// int8 (S8S8). ONNX Runtime's x86 kernels run U8S8 either way; it turns
	// an S8 Q→DQ pair into U8 only when the quantised tensor has one reader,
	// so with S8 a residual block's tensors (two readers) stay in float.
	UnsignedActivations bool
	// Float names activations to leave in float (as ONNX Runtime's
	// nodes_to_exclude): their readers read them unquantised. Every Conv
	// that reads one runs in float, so it costs speed; it is for finding
	// which tensors lose accuracy.
	Float []string
	// FloatNodes names Convs to leave in float, reading and writing
	// quantised tensors through DequantizeLinear and QuantizeLinear (as
	// ONNX Runtime's nodes_to_exclude).
	FloatNodes []string
	// Metadata is set on the output (metadata_props), replacing the float
	// model's entries of the same keys and keeping the others.
	Metadata map[string]string
}

// Quantize returns the QDQ model, serialised. ranges must hold every tensor
// of f.Tensors (a Calibrator's Ranges).
func Quantize(f *Float, ranges map[string]Range, opts Options) ([]byte, error) {
	for _, t := range f.Tensors {
		if _, ok := ranges[t]; !ok {
			return nil, fmt.Errorf("quantize %s: no calibrated range for tensor %q", f.Path, t)
		}
	}
	m := proto.Clone(f.Model).(*onnxpb.ModelProto)
	g := m.GetGraph()
	q := &builder{f: f, opts: opts, dq: map[string]string{}, quantised: map[string]bool{}, scale: map[string]float32{}}
	if ir := m.GetIrVersion(); ir < 7 {
		m.IrVersion = proto.Int64(7)
	}
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			o.Version = proto.Int64(max(o.GetVersion(), qdqOpset))
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outputs[o.GetName()] = true
	}
	var nodes []*onnxpb.NodeProto
	// quantise emits Q → DQ for tensor t, reading src (t itself, or the Conv
	// output a folded Relu read).
	quantise := func(t, src string) error {
		// Left in float: a graph output (the head reads it in float, so
		// rounding it only loses accuracy; measured on the DFDC MnasNet it
		// costs more than any other tensor), the map a pooled backbone
		// averages into its output (the same tensor, before the average),
		// and opts.Float. A folded Relu comes back.
		if outputs[t] || f.pooled[t] || slices.Contains(opts.Float, t) {
			switch {
			case src != t && f.folded[t] != "":
				nodes = append(nodes, node("Relu", t+"_Relu", []string{src}, []string{t}))
			case src != t:
				nodes = append(nodes, node("Identity", t+"_Identity", []string{src}, []string{t}))
			}
			return nil
		}
		r := ranges[t]
		if _, folded := f.folded[t]; folded && r.Min < 0 {
			r.Min = 0 // a Relu's output; the quantiser's floor does its job
		}
		scale, zp, err := activationParams(r, opts.UnsignedActivations)
		if err != nil {
			return fmt.Errorf("quantize %s: tensor %q: %w", f.Path, t, err)
		}
		q.scale[t] = scale
		sName, zName := t+"_scale", t+"_zero_point"
		q.inits = append(q.inits, floatTensor(sName, nil, []float32{scale}), zeroPoint(zName, zp, opts.UnsignedActivations))
		nodes = append(nodes, node("QuantizeLinear", t+"_QuantizeLinear", []string{src, sName, zName}, []string{t + "_QuantizeLinear_Output"}))
		q.quantised[t] = true
		return nil
	}
	// Each reader gets its own DequantizeLinear, as ONNX Runtime's fusions
	// want: a DQ shared by a Conv and an Add keeps both in float.
	dequantise := func(t, reader string) string {
		out := t + "_DequantizeLinear_Output/" + reader
		nodes = append(nodes, node("DequantizeLinear", t+"_DequantizeLinear/"+reader,
			[]string{t + "_QuantizeLinear_Output", t + "_scale", t + "_zero_point"}, []string{out}))
		q.dq[out] = t
		return out
	}
	if err := quantise(f.Input, f.Input); err != nil {
		return nil, err
	}
	foldedBy := map[string]string{} // Conv output → the Relu output folded into it
	for r, c := range f.folded {
		foldedBy[c] = r
	}
	for _, n := range f.Model.GetGraph().GetNode() {
		out := n.GetOutput()[0]
		if _, ok := f.folded[out]; ok {
			continue // the Relu: its quantiser was emitted after the Conv
		}
		n = proto.Clone(n).(*onnxpb.NodeProto)
		for i, in := range n.GetInput() {
			if q.quantised[in] {
				n.Input[i] = dequantise(in, n.GetName())
			}
		}
		if n.GetOpType() == "Conv" && !slices.Contains(opts.FloatNodes, n.GetName()) {
			if err := q.conv(n); err != nil {
				return nil, fmt.Errorf("quantize %s: node %q: %w", f.Path, n.GetName(), err)
			}
		}
		t, src := out, out
		if r, ok := foldedBy[out]; ok {
			t = r
		}
		if outputs[t] && t == out { // a graph output made here: its DQ takes its name
			src = out + "_float"
			n.Output[0] = src
		}
		nodes = append(nodes, n)
		if err := quantise(t, src); err != nil {
			return nil, err
		}
	}
	g.Node = append(q.nodes, nodes...)
	// Float initializers the Convs read are replaced by their quantised forms.
	var inits []*onnxpb.TensorProto
	for _, t := range g.GetInitializer() {
		if !q.replaced[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = append(inits, q.inits...)
	g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return q.replaced[v.GetName()] })
	g.ValueInfo = nil // shapes of renamed tensors would be stale; ONNX Runtime infers them
	setMetadata(m, opts.Metadata)
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("quantize %s: encode: %w", f.Path, err)
	}
	return data, nil
}

type builder struct {
	f         *Float
	opts      Options
	dq        map[string]string  // a DequantizeLinear output → the activation it reads
	quantised map[string]bool    // activations with a QuantizeLinear
	scale     map[string]float32 // activation → its scale
	nodes     []*onnxpb.NodeProto
	inits     []*onnxpb.TensorProto
	replaced  map[string]bool
	weightDQ  map[string]string // weight initializer → its DequantizeLinear output
	wScale    map[string][]float32
}

// values are initializer name's floats.
func (q *builder) values(name string) []float32 {
	v, _ := floats(q.f.inits[name])
	return v
}

// conv rewires a Conv's weight and bias through DequantizeLinear of their
// int8 and int32 forms. Its input is already the activation's DQ output.
func (q *builder) conv(n *onnxpb.NodeProto) error {
	if q.replaced == nil {
		q.replaced, q.weightDQ, q.wScale = map[string]bool{}, map[string]string{}, map[string][]float32{}
	}
	in := n.GetInput()
	xScale, quantisedInput := q.scale[q.dq[in[0]]]
	wName := in[1]
	w := q.f.inits[wName]
	if _, done := q.weightDQ[wName]; !done {
		vals := q.values(wName)
		qw, scales := quantizeWeights(vals, int(w.GetDims()[0]), q.opts)
		zps := make([]int8, len(scales))
		var sDims []int64
		if !q.opts.PerTensorWeights {
			sDims = []int64{int64(len(scales))}
		}
		qName, sName, zName := wName+"_quantized", wName+"_scale", wName+"_zero_point"
		q.inits = append(q.inits, int8Tensor(qName, w.GetDims(), qw), floatTensor(sName, sDims, scales), int8Tensor(zName, sDims, zps))
		dq := node("DequantizeLinear", wName+"_DequantizeLinear", []string{qName, sName, zName}, []string{wName + "_DequantizeLinear_Output"})
		if !q.opts.PerTensorWeights {
			dq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}
		}
		q.nodes = append(q.nodes, dq)
		q.replaced[wName] = true
		q.weightDQ[wName] = dq.GetOutput()[0]
		ws := scales
		if q.opts.PerTensorWeights {
			ws = slices.Repeat(scales, int(w.GetDims()[0]))
		}
		q.wScale[wName] = ws
	}
	n.Input[1] = q.weightDQ[wName]
	if len(in) > 2 && in[2] != "" && quantisedInput { // with a float input the bias stays float
		bName := in[2]
		b := q.values(bName)
		ws := q.wScale[wName]
		qb := make([]int32, len(b))
		bs := make([]float32, len(b))
		for i, v := range b {
			bs[i] = xScale * ws[i]
			if bs[i] == 0 {
				bs[i] = 1
			}
			qb[i] = int32(clamp(math.RoundToEven(float64(v/bs[i])), math.MinInt32, math.MaxInt32))
		}
		// Bias scales depend on the input's scale, so each Conv gets its own.
		base := n.GetName() + "/" + bName
		qName, sName, zName := base+"_quantized", base+"_scale", base+"_zero_point"
		dims := []int64{int64(len(b))}
		q.inits = append(q.inits, int32Tensor(qName, dims, qb), floatTensor(sName, dims, bs), int32Tensor(zName, dims, make([]int32, len(b))))
		dq := node("DequantizeLinear", base+"_DequantizeLinear", []string{qName, sName, zName}, []string{base + "_DequantizeLinear_Output"})
		dq.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}
		q.nodes = append(q.nodes, dq)
		q.replaced[bName] = true
		n.Input[2] = dq.GetOutput()[0]
	}
	return nil
}

// activationParams are the asymmetric 8-bit scale and zero point for r
// (int8, or uint8 when unsigned), widened to hold 0: zero must be exact for
// padding and Relu floors.
func activationParams(r Range, unsigned bool) (float32, int, error) {
	lo, hi := float64(min(r.Min, 0)), float64(max(r.Max, 0))
	if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
		return 0, 0, fmt.Errorf("calibrated range [%g, %g] is not finite", r.Min, r.Max)
	}
	qmin := -128.0
	if unsigned {
		qmin = 0
	}
	scale := (hi - lo) / 255
	if scale < 1e-12 {
		return 1, int(qmin), nil // an all-zero tensor: any scale is exact
	}
	zp := clamp(math.RoundToEven(qmin-lo/scale), qmin, qmin+255)
	return float32(scale), int(zp), nil
}

func zeroPoint(name string, zp int, unsigned bool) *onnxpb.TensorProto {
	if unsigned {
		return &onnxpb.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), RawData: []byte{byte(zp)}}
	}
	return int8Tensor(name, nil, []int8{int8(zp)})
}

// quantizeWeights quantises a Conv's weights [M, ...] symmetrically, per
// output channel unless opts.PerTensorWeights; it returns the int8 values and
// one scale per channel (or one in all).
func quantizeWeights(w []float32, m int, opts Options) ([]int8, []float32) {
	qmax := 127.0
	if opts.ReduceRange {
		qmax = 63
	}
	per := len(w) / m
	groups := m
	if opts.PerTensorWeights {
		groups, per = 1, len(w)
	}
	out := make([]int8, len(w))
	scales := make([]float32, groups)
	for g := range groups {
		ch := w[g*per : (g+1)*per]
		amax := 0.0
		for _, v := range ch {
			amax = max(amax, math.Abs(float64(v)))
		}
		s := float32(amax / qmax)
		if s == 0 {
			s = 1
		}
		scales[g] = s
		for i, v := range ch {
			out[g*per+i] = int8(clamp(math.RoundToEven(float64(v/s)), -qmax, qmax))
		}
	}
	return out, scales
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

func node(op, name string, in, out []string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: in, Output: out}
}

func floatTensor(name string, dims []int64, v []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

func int8Tensor(name string, dims []int64, v []int8) *onnxpb.TensorProto {
	raw := make([]byte, len(v))
	for i, x := range v {
		raw[i] = byte(x)
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT8)), RawData: raw}
}

func int32Tensor(name string, dims []int64, v []int32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims, DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), RawData: raw}
}

func float32frombits(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }

// setMetadata sets kv on m's metadata_props, replacing entries of the same key.
func setMetadata(m *onnxpb.ModelProto, kv map[string]string) {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	m.MetadataProps = slices.DeleteFunc(m.MetadataProps, func(p *onnxpb.StringStringEntryProto) bool {
		_, ok := kv[p.GetKey()]
		return ok
	})
	for _, k := range keys {
		m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(k), Value: proto.String(kv[k])})
	}
}

// Metadata returns a model file's metadata_props (for tests and reports).
func Metadata(m *onnxpb.ModelProto) map[string]string {
	out := map[string]string{}
	for _, p := range m.GetMetadataProps() {
		out[p.GetKey()] = p.GetValue()
	}
	return out
}
