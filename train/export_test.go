package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestExportONNX trains a head, exports it and runs the file in ONNX Runtime:
// its logits must equal the Go head's eval-mode forward, the metadata must
// round-trip and onnx.checker must accept the model.
func TestExportONNX(t *testing.T) {
	testenv.Long(t)
	py := torchPython(t)
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for _, shape := range [][]int{{16, 2, 2}, {1280, 4, 4}} {
		d := shape[0] * shape[1] * shape[2]
		ds := synth(60, d, 0.5, 2, 1.0, 7)
		cfg := recipe()
		cfg.Epochs, cfg.BatchSize = 2, 16
		all := make([]int, ds.Len())
		for i := range all {
			all[i] = i
		}
		res, err := Fit(context.Background(), ds, all, nil, cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		sha, err := TrainSetSHA256(context.Background(), ds)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Evaluate(ds.Labels, make([]float64, ds.Len()), 0.5)
		if err != nil {
			t.Fatal(err)
		}
		info := ExportInfo{InputSize: 32 * shape[1], FeatureShape: shape, Threshold: 0.42,
			TrainedAt: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC), TrainSetSHA256: sha, Metrics: m}
		path := filepath.Join(t.TempDir(), "head.onnx")
		if err := res.Head.ExportONNX(path, info); err != nil {
			t.Fatal(err)
		}

		sess, err := eng.Open(path, []string{"features"}, []string{"logits"})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 7, ds.Len()} {
			in, err := ort.NewTensor(ort.NewShape(int64(n), int64(shape[0]), int64(shape[1]), int64(shape[2])), ds.X[:n*d])
			if err != nil {
				t.Fatal(err)
			}
			outs := []ort.Value{nil}
			if err := sess.Run([]ort.Value{in}, outs); err != nil {
				t.Fatalf("run %s on %d samples: %v", path, n, err)
			}
			got := outs[0].(*ort.Tensor[float32]).GetData()
			want := make([]float32, n*NumClasses)
			if err := res.Head.Logits(ds.X[:n*d], n, want); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("shape %v, batch %d: ONNX gave %d logits, want %d", shape, n, len(got), len(want))
			}
			for i := range want {
				if math.Abs(float64(got[i]-want[i])) > 1e-4 {
					t.Errorf("shape %v, batch %d, logit %d: onnx %.6g, go %.6g", shape, n, i, got[i], want[i])
				}
			}
			in.Destroy()
			outs[0].Destroy()
		}
		sess.Destroy()

		md, err := engine.Metadata(path)
		if err != nil {
			t.Fatal(err)
		}
		wantMeta := map[string]string{
			spec.KeyRole: "head", spec.KeyInputSize: strconv.Itoa(info.InputSize), spec.KeyClassNames: "real,fake", spec.KeyFormatVersion: "1",
			spec.KeyThreshold: "0.42", spec.KeyTrainedAt: "2025-03-04T05:06:07Z", spec.KeyTrainSetSHA256: sha,
			spec.KeyFeatureShape: joinInts(shape),
		}
		for k, v := range wantMeta {
			if md[k] != v {
				t.Errorf("metadata %s = %q, want %q", k, md[k], v)
			}
		}
		var back Metrics
		if err := json.Unmarshal([]byte(md[spec.KeyMetrics]), &back); err != nil {
			t.Fatalf("metadata %s = %q: %v", spec.KeyMetrics, md[spec.KeyMetrics], err)
		}
		if back.N != m.N || back.Confusion != m.Confusion || back.Accuracy != m.Accuracy {
			t.Errorf("metrics round trip: got %+v, want %+v", back, m)
		}

		if out, err := exec.Command(py, "-c", "import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", path).CombinedOutput(); err != nil {
			t.Errorf("onnx.checker rejects %s: %v\n%s", path, err, out)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Errorf("export left %d files in its folder, want only head.onnx", len(entries))
		}
	}
}

func TestExportONNXRejects(t *testing.T) {
	h := NewHead(48, 1)
	dir := t.TempDir()
	for _, info := range []ExportInfo{
		{InputSize: 128, FeatureShape: []int{3, 4, 5}},
		{InputSize: 128},
		{InputSize: 0, FeatureShape: []int{3, 4, 4}},
		{InputSize: 128, FeatureShape: []int{-3, -4, 4}},
	} {
		if err := h.ExportONNX(filepath.Join(dir, "h.onnx"), info); err == nil {
			t.Errorf("export with %+v succeeded, want an error", info)
		}
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
