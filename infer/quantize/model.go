// Package quantize turns a float backbone into a statically quantised INT8
// model in QDQ form (ONNX Runtime's recommended S8S8: int8 weights per output
// channel, symmetric; int8 activations with scale and zero point from
// calibration; int32 biases), written in Go on the ONNX graph.
//
// The flow: Load reads and checks the float model (refusing what it cannot
// quantise, with the reason); a Calibrator runs the float model through ONNX
// Runtime with the intermediate tensors as extra outputs and collects their
// ranges (minmax or percentile); Quantize writes the QDQ model. The float file
// is only read.
package quantize

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Ops the quantiser knows: MnasNet exported with its batch norms folded is
// Conv, Relu and Add only, and a pooled backbone ends with GlobalAveragePool.
var knownOps = []string{"Conv", "Relu", "Add", "GlobalAveragePool"}

// minOpset is the lowest default-domain opset accepted; the output is raised
// to qdqOpset, the first with per-axis QuantizeLinear/DequantizeLinear (Conv,
// Relu and Add mean the same from 11 to 13 for these graphs).
const (
	minOpset = 11
	qdqOpset = 13
)

// Float is a float model checked for quantisation.
type Float struct {
	Path   string
	SHA256 string // of the file's bytes
	Model  *onnxpb.ModelProto
	Input  string // the graph's one input
	// Tensors are the activations to calibrate, in graph order: the input and
	// every node output except a Conv output only a Relu reads (the Relu is
	// folded into the quantiser, whose range starts at 0).
	Tensors []string
	inits   map[string]*onnxpb.TensorProto
	folded  map[string]string // Relu output → the Conv output it reads
	// pooled are the tensors only a GlobalAveragePool that makes a graph
	// output reads: the feature map a pooled backbone averages, which stays
	// float like the graph output of an unpooled one.
	pooled map[string]bool
}

// Load reads the model at path and checks that every part of it can be
// quantised; the error says what cannot and why.
func Load(path string) (*Float, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	sum := sha256.Sum256(data)
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("quantize: %s is not an ONNX model: %w", path, err)
	}
	if m.GetGraph() == nil || len(m.GetGraph().GetNode()) == 0 {
		return nil, fmt.Errorf("quantize: %s is not an ONNX model: no graph nodes", path)
	}
	if q := Metadata(m)[spec.KeyQuantization]; q != "" {
		return nil, fmt.Errorf("quantize: %s is already quantised (%s from the float model with sha256 %s); quantise that float model", path, q, Metadata(m)[spec.KeySourceModelSHA256])
	}
	f := &Float{Path: path, SHA256: hex.EncodeToString(sum[:]), Model: m}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("quantize: cannot quantise %s: %w", path, err)
	}
	return f, nil
}

func (f *Float) check() error {
	g := f.Model.GetGraph()
	opset := int64(-1)
	for _, o := range f.Model.GetOpsetImport() {
		switch o.GetDomain() {
		case "", "ai.onnx":
			opset = o.GetVersion()
		default:
			return fmt.Errorf("it imports operator domain %q; only the default ONNX domain is supported", o.GetDomain())
		}
	}
	if opset < minOpset {
		return fmt.Errorf("opset %d: need opset %d or later (re-export the model)", opset, minOpset)
	}
	f.inits = map[string]*onnxpb.TensorProto{}
	for _, t := range g.GetInitializer() {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			return fmt.Errorf("initializer %q keeps its data in an external file; save the model with its weights inside", t.GetName())
		}
		if onnxpb.TensorProto_DataType(t.GetDataType()) != onnxpb.TensorProto_FLOAT {
			return fmt.Errorf("initializer %q is %s; only float32 weights are supported", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
		}
		if _, err := floats(t); err != nil {
			return fmt.Errorf("initializer %q: %w", t.GetName(), err)
		}
		f.inits[t.GetName()] = t
	}
	var inputs []*onnxpb.ValueInfoProto
	for _, in := range g.GetInput() {
		if _, ok := f.inits[in.GetName()]; !ok {
			inputs = append(inputs, in)
		}
	}
	if len(inputs) != 1 {
		return fmt.Errorf("it has %d graph inputs; a backbone has one, the image batch [N,3,S,S]", len(inputs))
	}
	tt := inputs[0].GetType().GetTensorType()
	if tt == nil || onnxpb.TensorProto_DataType(tt.GetElemType()) != onnxpb.TensorProto_FLOAT {
		return fmt.Errorf("input %q is not a float32 tensor", inputs[0].GetName())
	}
	if dims := tt.GetShape().GetDim(); len(dims) != 4 {
		return fmt.Errorf("input %q has rank %d; want 4 ([N,3,S,S])", inputs[0].GetName(), len(dims))
	} else if d := dims[1]; d.GetDimParam() == "" && d.GetDimValue() != 3 {
		return fmt.Errorf("input %q has %d channels; want 3", inputs[0].GetName(), d.GetDimValue())
	}
	f.Input = inputs[0].GetName()
	consumers := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			consumers[in]++
		}
	}
	outputs := map[string]bool{}
	for _, o := range g.GetOutput() {
		outputs[o.GetName()] = true
	}
	producer := map[string]*onnxpb.NodeProto{}
	f.folded = map[string]string{}
	for _, n := range g.GetNode() {
		where := fmt.Sprintf("node %q (%s)", n.GetName(), n.GetOpType())
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return fmt.Errorf("%s is in domain %q; only the default ONNX domain is supported", where, d)
		}
		if !slices.Contains(knownOps, n.GetOpType()) {
			return fmt.Errorf("%s: op %s is not one this quantiser knows (it knows %s)", where, n.GetOpType(), strings.Join(knownOps, ", "))
		}
		if len(n.GetOutput()) != 1 {
			return fmt.Errorf("%s has %d outputs; want 1", where, len(n.GetOutput()))
		}
		for _, in := range n.GetInput() {
			if in == "" {
				continue
			}
			if _, ok := f.inits[in]; !ok && in != f.Input && producer[in] == nil {
				return fmt.Errorf("%s reads %q, which no earlier node makes (the graph is not in topological order)", where, in)
			}
		}
		switch n.GetOpType() {
		case "Conv":
			if err := f.checkConv(n, where); err != nil {
				return err
			}
		case "Relu", "Add", "GlobalAveragePool":
			for _, in := range n.GetInput() {
				if _, ok := f.inits[in]; ok {
					return fmt.Errorf("%s reads the constant %q; only activations are supported there", where, in)
				}
			}
			if n.GetOpType() == "Relu" {
				in := n.GetInput()[0]
				if p := producer[in]; p != nil && p.GetOpType() == "Conv" && consumers[in] == 1 && !outputs[in] {
					f.folded[n.GetOutput()[0]] = in
				}
			}
		}
		producer[n.GetOutput()[0]] = n
	}
	for o := range outputs {
		if producer[o] == nil {
			return fmt.Errorf("graph output %q is not made by a node", o)
		}
	}
	f.pooled = map[string]bool{}
	for _, n := range g.GetNode() {
		if n.GetOpType() == "GlobalAveragePool" && outputs[n.GetOutput()[0]] && consumers[n.GetInput()[0]] == 1 {
			f.pooled[n.GetInput()[0]] = true
		}
	}
	foldedConv := map[string]bool{}
	for _, c := range f.folded {
		foldedConv[c] = true
	}
	f.Tensors = []string{f.Input}
	for _, n := range g.GetNode() {
		if o := n.GetOutput()[0]; !foldedConv[o] {
			f.Tensors = append(f.Tensors, o)
		}
	}
	return nil
}

func (f *Float) checkConv(n *onnxpb.NodeProto, where string) error {
	in := n.GetInput()
	if len(in) < 2 {
		return fmt.Errorf("%s has no weight input", where)
	}
	w, ok := f.inits[in[1]]
	if !ok {
		return fmt.Errorf("%s: weight %q is computed, not a constant initializer", where, in[1])
	}
	if len(w.GetDims()) != 4 {
		return fmt.Errorf("%s: weight %q has shape %v; want a 2-D convolution's [M,C/group,kH,kW]", where, in[1], w.GetDims())
	}
	if len(in) > 2 && in[2] != "" {
		b, ok := f.inits[in[2]]
		if !ok {
			return fmt.Errorf("%s: bias %q is computed, not a constant initializer", where, in[2])
		}
		if len(b.GetDims()) != 1 || b.GetDims()[0] != w.GetDims()[0] {
			return fmt.Errorf("%s: bias %q has shape %v; want [%d]", where, in[2], b.GetDims(), w.GetDims()[0])
		}
	}
	return nil
}

// floats decodes a float32 initializer.
func floats(t *onnxpb.TensorProto) ([]float32, error) {
	n := 1
	for _, d := range t.GetDims() {
		n *= int(d)
	}
	if raw := t.GetRawData(); raw != nil {
		if len(raw) != 4*n {
			return nil, fmt.Errorf("raw data holds %d bytes; shape %v needs %d", len(raw), t.GetDims(), 4*n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = float32frombits(raw[4*i:])
		}
		return out, nil
	}
	if len(t.GetFloatData()) != n {
		return nil, fmt.Errorf("holds %d floats; shape %v needs %d", len(t.GetFloatData()), t.GetDims(), n)
	}
	return slices.Clone(t.GetFloatData()), nil
}

// FloatParts are the Convs and activations to leave in float for the nodes
// whose names start with one of prefixes (Options.FloatNodes and Float): the
// nodes, the tensors they make (a folded Relu's output included), and the
// graph input when only they read it.
func (f *Float) FloatParts(prefixes []string) (nodes, tensors []string, err error) {
	for _, p := range prefixes {
		found := false
		for _, n := range f.Model.GetGraph().GetNode() {
			if !strings.HasPrefix(n.GetName(), p) {
				continue
			}
			found = true
			out := n.GetOutput()[0]
			if n.GetOpType() == "Conv" {
				nodes = append(nodes, n.GetName())
			}
			tensors = append(tensors, out)
			for r, c := range f.folded {
				if c == out {
					tensors = append(tensors, r)
				}
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("no node of %s is named %s…", f.Path, p)
		}
	}
	// The graph input stays float too when only float nodes read it.
	readers := 0
	for _, n := range f.Model.GetGraph().GetNode() {
		if slices.Contains(n.GetInput(), f.Input) {
			if !slices.Contains(nodes, n.GetName()) {
				return nodes, tensors, nil
			}
			readers++
		}
	}
	if readers > 0 {
		tensors = append(tensors, f.Input)
	}
	return nodes, tensors, nil
}
