package bench

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestModel: every backbone at every batch size, the first one's ratio 1,
// and the figures consistent with each other; a batch below 1 is refused.
func TestModel(t *testing.T) {
	backbone, head := testenv.Models(t)
	cfg := &config.Config{Model: config.Model{Backbone: backbone, Head: head, Runtime: testenv.ORTLibrary(t)}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	res, err := Model(cfg, []string{backbone, testenv.INT8Backbone(t)}, []int{1, 2}, 3, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 {
		t.Fatalf("%d results, want 2 backbones x 2 batch sizes", len(res))
	}
	for i, r := range res {
		if r.Batch != 1+i/2 || r.MSPerBatch <= 0 || r.MSPerFace != r.MSPerBatch/float64(r.Batch) || r.FacesPerS <= 0 || (i%2 == 0 && r.VsFirst != 1) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if _, err := Model(cfg, nil, []int{0}, 1, log); err == nil {
		t.Error("batch 0 was timed")
	}
}

func TestPercentile(t *testing.T) {
	v := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct{ q, want float64 }{{0, 1}, {0.5, 6}, {0.99, 10}, {1, 10}} {
		if got := percentile(v, tc.q); got != tc.want {
			t.Errorf("percentile(%g) = %g, want %g", tc.q, got, tc.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}

// TestRun without a source times the model only; fewer than one camera is refused.
func TestRun(t *testing.T) {
	backbone, head := testenv.Models(t)
	cfg := &config.Config{Model: config.Model{Backbone: backbone, Head: head, Runtime: testenv.ORTLibrary(t)}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r, err := Run(context.Background(), cfg, Options{Cameras: 1, Batches: []int{1}, Iterations: 2, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Pipeline) != 0 || len(r.Model) != 1 || r.Model[0].Backbone != backbone {
		t.Errorf("report %+v, want the model's timing only", r)
	}
	if _, err := Run(context.Background(), cfg, Options{Cameras: 0, Batches: []int{1}, Iterations: 1, Log: log}); err == nil || !strings.Contains(err.Error(), "cameras 0") {
		t.Errorf("0 cameras: %v", err)
	}
}

// TestWriteTable prints each pipeline, its stages and each model row.
func TestWriteTable(t *testing.T) {
	r := Report{Pipeline: []PipelineResult{{Detector: "haar", Cameras: 2, Frames: 300, FPS: 24.5, Stages: make([]StageResult, len(StageNames))}},
		Model: []ModelResult{{Backbone: "/m/backbone.int8.onnx", Batch: 8, MSPerBatch: 16, MSPerFace: 2, FacesPerS: 500, VsFirst: 1.1}}}
	var out strings.Builder
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"frames/s", "24.5", "stage ms p50/p99", "batch_wait", "backbone.int8.onnx", "500", "1.10x"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
