package infer

import (
	"errors"
	"fmt"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// runner runs one single-input, single-output float32 session on batches of
// any size. It keeps one input and one output buffer sized for the largest
// batch seen and, per batch size, ORT tensors that view a prefix of them, so a
// steady stream of batches allocates nothing here (onnxruntime_go's Run itself
// still makes two small slices per call).
type runner struct {
	sess     *engine.Session
	inShape  []int64 // per item, without the batch dimension
	outShape []int64
	inSize   int // floats per item
	outSize  int

	mu      sync.Mutex // one run at a time; close waits for the run in flight
	closed  bool
	in, out []float32
	byN     []*batchTensors // index: batch size
}

type batchTensors struct {
	in, out   *ort.Tensor[float32]
	ins, outs []ort.Value
}

func newRunner(sess *engine.Session, inShape, outShape []int64) *runner {
	return &runner{sess: sess, inShape: inShape, outShape: outShape, inSize: product(inShape), outSize: product(outShape)}
}

func product(s []int64) int {
	p := 1
	for _, d := range s {
		p *= int(d)
	}
	return p
}

// run copies n items from src into the model, runs it, and copies n results into dst.
func (r *runner) run(src []float32, n int, dst []float32) error {
	if n < 1 {
		return fmt.Errorf("batch size %d: want at least 1", n)
	}
	if len(src) < n*r.inSize {
		return fmt.Errorf("input holds %d floats, a batch of %d needs %d", len(src), n, n*r.inSize)
	}
	if len(dst) < n*r.outSize {
		return fmt.Errorf("output holds %d floats, a batch of %d needs %d", len(dst), n, n*r.outSize)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("model %s is closed", r.sess.Path)
	}
	bt, err := r.tensors(n)
	if err != nil {
		return err
	}
	copy(bt.in.GetData(), src[:n*r.inSize])
	if err := r.sess.Run(bt.ins, bt.outs); err != nil {
		return fmt.Errorf("run %s on a batch of %d: %w", r.sess.Path, n, err)
	}
	copy(dst, bt.out.GetData())
	return nil
}

// tensors returns the cached tensors for batch size n, growing the buffers
// (and dropping every cached tensor, which views the old ones) when n is a new maximum.
func (r *runner) tensors(n int) (*batchTensors, error) {
	if n*r.inSize > len(r.in) {
		r.destroyTensors()
		r.in = make([]float32, n*r.inSize)
		r.out = make([]float32, n*r.outSize)
	}
	if n >= len(r.byN) {
		r.byN = append(r.byN, make([]*batchTensors, n+1-len(r.byN))...)
	}
	if bt := r.byN[n]; bt != nil {
		return bt, nil
	}
	in, err := ort.NewTensor(batchShape(n, r.inShape), r.in)
	if err != nil {
		return nil, fmt.Errorf("input tensor for %s, batch %d: %w", r.sess.Path, n, err)
	}
	out, err := ort.NewTensor(batchShape(n, r.outShape), r.out)
	if err != nil {
		in.Destroy()
		return nil, fmt.Errorf("output tensor for %s, batch %d: %w", r.sess.Path, n, err)
	}
	bt := &batchTensors{in: in, out: out, ins: []ort.Value{in}, outs: []ort.Value{out}}
	r.byN[n] = bt
	return bt, nil
}

func batchShape(n int, item []int64) ort.Shape {
	return append(ort.Shape{int64(n)}, item...)
}

func (r *runner) destroyTensors() {
	for i, bt := range r.byN {
		if bt != nil {
			bt.in.Destroy()
			bt.out.Destroy()
			r.byN[i] = nil
		}
	}
}

// close waits for a run in flight, then frees the tensors and the session.
func (r *runner) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	r.destroyTensors()
	r.in, r.out = nil, nil
	if err := r.sess.Destroy(); err != nil {
		return fmt.Errorf("close %s: %w", r.sess.Path, err)
	}
	return nil
}

// readModel hashes the file and parses its metadata, checking it is not the other role.
func readModel(path, role string) (id string, meta spec.Metadata, err error) {
	sum, err := spec.FileSHA256(path)
	if err != nil {
		return "", meta, fmt.Errorf("%s model: %w", role, err)
	}
	id = sum[:spec.IDLength]
	props, err := engine.Metadata(path)
	if err != nil {
		return "", meta, fmt.Errorf("%s model %s is not a readable ONNX model: %w", role, path, err)
	}
	meta, err = spec.ParseMetadata(props)
	if err != nil {
		return "", meta, fmt.Errorf("%s model %s: %w", role, path, err)
	}
	if meta.Role != "" && meta.Role != role {
		return "", meta, fmt.Errorf("%s is a %s model (metadata %s), not a %s", path, meta.Role, spec.KeyRole, role)
	}
	return id, meta, nil
}

// probe runs one all-zero item through a freshly loaded model, so that a model
// whose real output does not match what its declared shapes promise is refused
// at load time rather than on the first face.
func (r *runner) probe() error {
	return r.run(make([]float32, r.inSize), 1, make([]float32, r.outSize))
}

var errDynamic = errors.New("dynamic dimension")

// staticDims returns dims without the batch dimension, or errDynamic when any is unknown.
func staticDims(dims ort.Shape) ([]int64, error) {
	out := make([]int64, 0, len(dims))
	for _, d := range dims[1:] {
		if d <= 0 {
			return nil, errDynamic
		}
		out = append(out, d)
	}
	return out, nil
}

// dimsOf is the declared shape of the named tensor (engine.Open has checked it exists).
func dimsOf(infos []ort.InputOutputInfo, name string) ort.Shape {
	for _, i := range infos {
		if i.Name == name {
			return i.Dimensions
		}
	}
	return nil
}
