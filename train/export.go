package train

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// ExportInfo is what the head's ONNX file records besides its weights.
type ExportInfo struct {
	InputSize      int   // the backbone's square input side, e.g. 128
	FeatureShape   []int // backbone feature shape C,H,W; its product is the head's D
	Threshold      float64
	TrainedAt      time.Time
	TrainSetSHA256 string
	Metrics        Metrics
}

// ONNX enum values used below (onnx.proto).
const (
	onnxFloat     = 1 // TensorProto.FLOAT
	onnxAttrInt   = 2 // AttributeProto.INT
	onnxIRVersion = 8
	onnxOpset     = 13
)

// ExportONNX writes the eval-mode head as an ONNX model: input "features"
// [N,C,H,W] → Flatten(axis=1) → Gemm(transB=1) with BatchNorm folded into the
// weights → output "logits" [N,2], batch dimension dynamic. The file is
// written atomically (temp file, fsync, rename). The protobuf is encoded by
// hand with protowire, not with generated ONNX bindings, which would add
// megabytes to the edge binary for two nodes; export_test.go runs the file in
// ONNX Runtime against the Go head and through onnx.checker.
func (h *Head) ExportONNX(path string, info ExportInfo) error {
	if len(info.FeatureShape) == 0 {
		return fmt.Errorf("export %s: feature shape is empty", path)
	}
	prod := 1
	for _, s := range info.FeatureShape {
		if s < 1 {
			return fmt.Errorf("export %s: feature shape %v has a non-positive dimension", path, info.FeatureShape)
		}
		prod *= s
	}
	if prod != h.D {
		return fmt.Errorf("export %s: feature shape %v holds %d values but the head has %d inputs", path, info.FeatureShape, prod, h.D)
	}
	if info.InputSize < 1 {
		return fmt.Errorf("export %s: input size must be >= 1, got %d", path, info.InputSize)
	}
	metrics, err := json.Marshal(info.Metrics)
	if err != nil {
		return fmt.Errorf("export %s: metrics: %w", path, err)
	}
	shape := make([]string, len(info.FeatureShape))
	for i, s := range info.FeatureShape {
		shape[i] = strconv.Itoa(s)
	}
	meta := [][2]string{
		{spec.KeyRole, spec.RoleHead},
		{spec.KeyInputSize, strconv.Itoa(info.InputSize)},
		{spec.KeyFeatureShape, strings.Join(shape, ",")},
		{spec.KeyClassNames, "real,fake"}, // the logits' order: Real, Fake
		{spec.KeyFormatVersion, spec.FormatVersion},
		{spec.KeyThreshold, strconv.FormatFloat(info.Threshold, 'g', -1, 64)},
		{spec.KeyTrainedAt, info.TrainedAt.UTC().Format(time.RFC3339)},
		{spec.KeyTrainSetSHA256, info.TrainSetSHA256},
		{spec.KeyMetrics, string(metrics)},
	}
	w, b := h.Fold()
	return atomicfile.Write(path, h.onnxModel(info.FeatureShape, w, b, meta), 0o644)
}

func (h *Head) onnxModel(featShape []int, w, b []float32, meta [][2]string) []byte {
	str := func(buf []byte, num protowire.Number, s string) []byte {
		buf = protowire.AppendTag(buf, num, protowire.BytesType)
		return protowire.AppendString(buf, s)
	}
	msg := func(buf []byte, num protowire.Number, m []byte) []byte {
		buf = protowire.AppendTag(buf, num, protowire.BytesType)
		return protowire.AppendBytes(buf, m)
	}
	varint := func(buf []byte, num protowire.Number, v int64) []byte {
		buf = protowire.AppendTag(buf, num, protowire.VarintType)
		return protowire.AppendVarint(buf, uint64(v))
	}
	tensor := func(name string, dims []int64, vals []float32) []byte {
		var t []byte
		for _, d := range dims {
			t = varint(t, 1, d) // dims
		}
		t = varint(t, 2, onnxFloat) // data_type
		t = str(t, 8, name)         // name
		raw := make([]byte, 0, 4*len(vals))
		for _, v := range vals {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
		return msg(t, 9, raw) // raw_data (little-endian by the spec)
	}
	valueInfo := func(name, batch string, dims []int) []byte {
		var shape []byte
		shape = msg(shape, 1, str(nil, 2, batch)) // dim { dim_param }
		for _, d := range dims {
			shape = msg(shape, 1, varint(nil, 1, int64(d))) // dim { dim_value }
		}
		tt := varint(nil, 1, onnxFloat) // elem_type
		tt = msg(tt, 2, shape)          // shape
		typ := msg(nil, 1, tt)          // TypeProto.tensor_type
		return msg(str(nil, 1, name), 2, typ)
	}
	attrInt := func(name string, v int64) []byte {
		a := str(nil, 1, name)
		a = varint(a, 3, v)
		return varint(a, 20, onnxAttrInt)
	}
	node := func(name, op string, in, out []string, attrs ...[]byte) []byte {
		var n []byte
		for _, s := range in {
			n = str(n, 1, s)
		}
		for _, s := range out {
			n = str(n, 2, s)
		}
		n = str(n, 3, name)
		n = str(n, 4, op)
		for _, a := range attrs {
			n = msg(n, 5, a)
		}
		return n
	}

	var g []byte
	g = msg(g, 1, node("flatten", "Flatten", []string{"features"}, []string{"flat"}, attrInt("axis", 1)))
	g = msg(g, 1, node("linear", "Gemm", []string{"flat", "head.weight", "head.bias"}, []string{"logits"}, attrInt("transB", 1)))
	g = str(g, 2, "deepfaked_head")
	g = msg(g, 5, tensor("head.weight", []int64{NumClasses, int64(h.D)}, w))
	g = msg(g, 5, tensor("head.bias", []int64{NumClasses}, b))
	g = msg(g, 11, valueInfo("features", "n", featShape))
	g = msg(g, 12, valueInfo("logits", "n", []int{NumClasses}))

	var m []byte
	m = varint(m, 1, onnxIRVersion)
	m = str(m, 2, "deepfaked")
	m = msg(m, 7, g)
	m = msg(m, 8, varint(str(nil, 1, ""), 2, onnxOpset)) // opset_import { domain "" version }
	for _, kv := range meta {
		m = msg(m, 14, str(str(nil, 1, kv[0]), 2, kv[1]))
	}
	return m
}

// TrainSetSHA256 identifies a training set: sha256 over its dimension, size
// and every sample's label, group and little-endian features, in order.
func TrainSetSHA256(ctx context.Context, ds Dataset) (string, error) {
	hsh := sha256.New()
	d := ds.Dim()
	x := make([]float32, d)
	buf := make([]byte, 0, 4*d)
	fmt.Fprintf(hsh, "deepfaked-train-set d=%d n=%d\n", d, ds.Len())
	for i := range ds.Len() {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		if err := ds.Features(i, x); err != nil {
			return "", err
		}
		fmt.Fprintf(hsh, "%d %q\n", ds.Label(i), ds.Group(i))
		buf = buf[:0]
		for _, v := range x {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		hsh.Write(buf)
	}
	return hex.EncodeToString(hsh.Sum(nil)), nil
}
