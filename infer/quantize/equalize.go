package quantize

import (
	"math"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
)

// projectAlpha is how far a Relu output read by a full (group 1) Conv is
// equalised: the reader's per-output-channel weight scales do not absorb the
// change, so only half of it (as SmoothQuant's migration strength 0.5).
const projectAlpha = 0.5

// equalize rescales the channels of every Relu output T = Relu(Conv1(x))
// that one Conv2 reads, so that T's channels use its one 8-bit grid more
// evenly: channel i of Conv1 (weights and bias) is divided by a_i and Conv2's
// weights reading channel i are multiplied by it. Relu(x/a) = Relu(x)/a for
// a > 0 and zero padding stays zero, so the float model computes the same.
// With per-channel weight scales Conv1's quantisation does not change, nor a
// depthwise Conv2's, so there a_i = max_i/max (every channel reaches the
// tensor's range); for a full Conv2, a_i = (max_i/max)^projectAlpha. The
// tensor's range is unchanged: its largest channel keeps a = 1.
// It returns the changed initializers.
func equalize(f *Float, chMax map[string][]float32) map[string][]float32 {
	g := f.Model.GetGraph()
	readers := map[string][]*onnxpb.NodeProto{}
	producer := map[string]*onnxpb.NodeProto{}
	uses := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			readers[in] = append(readers[in], n)
			uses[in]++
		}
		producer[n.GetOutput()[0]] = n
	}
	out := map[string][]float32{}
	get := func(name string) []float32 {
		if v, ok := out[name]; ok {
			return v
		}
		v, _ := floats(f.inits[name])
		out[name] = v
		return v
	}
	for t, c := range f.folded {
		r := readers[t]
		cm := chMax[t]
		if len(r) != 1 || r[0].GetOpType() != "Conv" || r[0].GetInput()[0] != t || len(cm) == 0 {
			continue
		}
		conv1, conv2 := producer[c], r[0]
		w1 := f.inits[conv1.GetInput()[1]]
		w2 := f.inits[conv2.GetInput()[1]]
		ch := len(cm)
		if uses[w1.GetName()] != 1 || uses[w2.GetName()] != 1 || int(w1.GetDims()[0]) != ch {
			continue
		}
		if in := conv1.GetInput(); len(in) > 2 && in[2] != "" && uses[in[2]] != 1 {
			continue
		}
		groups := int64(1)
		for _, a := range conv2.GetAttribute() {
			if a.GetName() == "group" {
				groups = a.GetI()
			}
		}
		d2 := w2.GetDims()
		alpha := projectAlpha
		switch {
		case groups == int64(ch) && d2[1] == 1:
			alpha = 1
		case groups == 1 && int(d2[1]) == ch:
		default:
			continue
		}
		top := float32(0)
		for _, m := range cm {
			top = max(top, m)
		}
		if top <= 0 {
			continue
		}
		a := make([]float32, ch)
		for i, m := range cm {
			a[i] = 1
			if m > 0 {
				a[i] = float32(max(math.Pow(float64(m/top), alpha), 1e-4))
			}
		}
		v1 := get(w1.GetName())
		per1 := len(v1) / ch
		for i := range ch {
			for j := range per1 {
				v1[i*per1+j] /= a[i]
			}
		}
		if len(conv1.GetInput()) > 2 && conv1.GetInput()[2] != "" {
			b1 := get(conv1.GetInput()[2])
			for i := range ch {
				b1[i] /= a[i]
			}
		}
		v2 := get(w2.GetName())
		k := int(d2[2] * d2[3])
		if alpha == 1 { // depthwise: output o reads input o/(outputs per input)
			mult := int(d2[0]) / ch
			for o := range int(d2[0]) {
				for j := range k {
					v2[o*k+j] *= a[o/mult]
				}
			}
		} else {
			for o := range int(d2[0]) {
				for i := range ch {
					for j := range k {
						v2[(o*ch+i)*k+j] *= a[i]
					}
				}
			}
		}
	}
	return out
}
