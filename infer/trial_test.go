package infer

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/deepfaked/deepfaked/infer/onnxpb"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// nanHead writes a copy of head with its output bias (the [2] initializer)
// set to NaN: a file that loads and runs, and whose every logit is NaN.
func nanHead(t *testing.T, head string) string {
	t.Helper()
	data, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, in := range m.GetGraph().GetInitializer() {
		if d := in.GetDims(); len(d) == 1 && d[0] == 2 && onnxpb.TensorProto_DataType(in.GetDataType()) == onnxpb.TensorProto_FLOAT {
			raw := make([]byte, 8)
			binary.LittleEndian.PutUint32(raw, math.Float32bits(float32(math.NaN())))
			binary.LittleEndian.PutUint32(raw[4:], math.Float32bits(float32(math.NaN())))
			in.RawData, in.FloatData = raw, nil
			found = true
		}
	}
	if !found {
		t.Fatalf("%s has no [2] float initializer to break", head)
	}
	if data, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "nan-head.onnx")
	if err := os.WriteFile(out, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNonFiniteHeadRefused: a head whose logits are NaN is refused at start,
// and a swap to one is refused with the current head still serving.
func TestNonFiniteHeadRefused(t *testing.T) {
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	bad := nanHead(t, hd)
	if c, err := LoadClassifier(eng, bb, bad, ClassifierOptions{}); err == nil || !strings.Contains(err.Error(), "non-finite logits") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("classifier with a NaN head: %v; want it refused for non-finite logits", err)
	}
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := c.HeadID()
	h, err := LoadHead(eng, bad, c.FeatureSize())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if old, err := c.SwapHead(h); err == nil || old != nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("swap to a NaN head: old %v, err %v; want it refused naming %s", old, err, bad)
	}
	p := make([]float32, 2)
	info, err := c.Classify(randomBatch(2, 128, 3), 2, p)
	if err != nil || info.ID != before || c.HeadID() != before {
		t.Fatalf("after the refused swap: head %s (want %s), err %v", info.ID, before, err)
	}
}
