package infer

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestLoadClassifierFromMakeModels(t *testing.T) {
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.InputSize() != 128 || c.FeatureSize() != 1280*4*4 {
		t.Errorf("InputSize %d FeatureSize %d, want 128 and 20480", c.InputSize(), c.FeatureSize())
	}
	m := c.Meta()
	if m.Role != spec.RoleBackbone || m.ColorOrder != "RGB" || m.Mean != [3]float32{0.485, 0.456, 0.406} || !strings.HasPrefix(m.Weights, "random:") || m.Defaulted {
		t.Errorf("Meta = %+v", m)
	}
	for _, id := range []string{c.BackboneID(), c.HeadID()} {
		if len(id) != 12 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Errorf("id %q is not 12 hex digits", id)
		}
	}
	if c.BackboneID() == c.HeadID() {
		t.Errorf("backbone and head share id %s", c.HeadID())
	}

	// Batch of 8 at once must give what the same faces give one by one.
	const n = 8
	size := c.InputSize()
	in := randomBatch(n, size, 1)
	batch := make([]float32, n)
	info, err := c.Classify(in, n, batch)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != c.HeadID() || info.Threshold != c.Threshold() {
		t.Errorf("Classify returned head %s, current head is %s", info.ID, c.HeadID())
	}
	if info.Backbone <= 0 || info.Head <= 0 {
		t.Errorf("Classify says the backbone took %v and the head %v", info.Backbone, info.Head)
	}
	face := 3 * size * size
	for i := range n {
		var one [1]float32
		if _, err := c.Classify(in[i*face:(i+1)*face], 1, one[:]); err != nil {
			t.Fatal(err)
		}
		if !(batch[i] >= 0 && batch[i] <= 1) || math.Abs(float64(one[0]-batch[i])) > 1e-5 {
			t.Errorf("face %d: p=%v in a batch of 8, %v alone", i, batch[i], one[0])
		}
	}
}

func TestClassifyRejectsBadBuffers(t *testing.T) {
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	face := 3 * 128 * 128
	tests := []struct {
		name    string
		input   int
		n       int
		out     int
		wantErr string
	}{
		{"zero batch", face, 0, 1, "batch size 0"},
		{"short input", face, 2, 2, "a batch of 2 needs"},
		{"short output", 2 * face, 2, 1, "pFake holds 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Classify(make([]float32, tt.input), tt.n, make([]float32, tt.out))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Classify(make([]float32, face), 1, make([]float32, 1)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Classify after Close: err = %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	testenv.Long(t)
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("this is not a protobuf at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, head224 := export(t, "--weights", "random", "--size", "224")
	missing := filepath.Join(dir, "missing.onnx")

	tests := []struct {
		name     string
		backbone string
		head     string
		wantErr  []string
	}{
		{"missing backbone", missing, hd, []string{missing, "no such file"}},
		{"missing head", bb, missing, []string{missing, "no such file"}},
		{"corrupt backbone", corrupt, hd, []string{corrupt}},
		{"truncated backbone", truncated, hd, []string{truncated}},
		{"corrupt head", bb, corrupt, []string{corrupt}},
		{"head as backbone", hd, hd, []string{hd, "is a head model"}},
		{"backbone as head", bb, bb, []string{bb, "is a backbone model"}},
		{"head for 224 on a 128 backbone", bb, head224, []string{head224, "62720", "20480", "224x224"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClassifier(eng, tt.backbone, tt.head, ClassifierOptions{})
			if err == nil {
				c.Close()
				t.Fatal("loaded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestSwapHeadDuringClassify(t *testing.T) {
	testenv.Long(t)
	eng := newEngine(t)
	bb, hd := testenv.Models(t)
	_, hd2 := export(t, "--weights", "random", "--seed", "7")
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h2, err := LoadHead(eng, hd2, c.FeatureSize())
	if err != nil {
		t.Fatal(err)
	}
	in := randomBatch(4, 128, 2)
	p := make([]float32, 4)
	id1 := c.HeadID()
	want1 := make([]float32, 4)
	if _, err := c.Classify(in, 4, want1); err != nil {
		t.Fatal(err)
	}

	// Classify keeps running while another goroutine swaps heads and closes
	// the old one; every batch must succeed and come from one head or the other.
	var wg sync.WaitGroup
	seen := map[string]int{}
	wg.Go(func() {
		for range 20 {
			info, err := c.Classify(in, 4, p)
			if err != nil {
				t.Error(err)
				return
			}
			seen[info.ID]++
		}
	})
	old, err := c.SwapHead(h2)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Error(err)
	}
	wg.Wait()
	if old.ID() != id1 || c.HeadID() != h2.ID() || h2.ID() == id1 {
		t.Fatalf("ids: old %s (want %s), current %s (want %s)", old.ID(), id1, c.HeadID(), h2.ID())
	}
	for id := range seen {
		if id != id1 && id != h2.ID() {
			t.Errorf("batch made by unknown head %s", id)
		}
	}
	info, err := c.Classify(in, 4, p)
	if err != nil || info.ID != h2.ID() {
		t.Fatalf("after swap: head %s, err %v", info.ID, err)
	}
	if d, _ := maxAbsDiff(p, want1); d == 0 {
		t.Errorf("the new head gives the same p(fake) as the old one: %v", p)
	}
	if err := old.Logits(make([]float32, c.FeatureSize()), 1, make([]float32, 2)); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Logits on a closed head: err = %v", err)
	}
}

// TestSharedFeatureExtractorMatches checks export_model.py against the feature
// extractor shipped with the DFDC weights, and that a backbone without our
// metadata loads with the defaults.
func TestSharedFeatureExtractorMatches(t *testing.T) {
	testenv.Long(t)
	pth := testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc.pth")
	ref := testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc_features.onnx")
	eng := newEngine(t)
	ours, _ := export(t, "--weights", pth)
	b1, err := LoadBackbone(eng, ours)
	if err != nil {
		t.Fatal(err)
	}
	defer b1.Close()
	b2, err := LoadBackbone(eng, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if !b2.Meta().Defaulted || b2.Meta().InputSize != 128 || b1.Meta().Defaulted {
		t.Errorf("defaulted: ours %v, shared %v (size %d)", b1.Meta().Defaulted, b2.Meta().Defaulted, b2.Meta().InputSize)
	}
	if !strings.HasPrefix(b1.Meta().Weights, "file:mnasnet0_75_dfdc.pth:") {
		t.Errorf("weights = %q", b1.Meta().Weights)
	}
	const n = 4
	in := randomBatch(n, 128, 3)
	f1 := make([]float32, n*b1.FeatureSize())
	f2 := make([]float32, n*b2.FeatureSize())
	if err := b1.Features(in, n, f1); err != nil {
		t.Fatal(err)
	}
	if err := b2.Features(in, n, f2); err != nil {
		t.Fatal(err)
	}
	d, at := maxAbsDiff(f1, f2)
	t.Logf("max |ours - shared| = %.2g (feature %d)", d, at)
	if !(d <= 1e-4) {
		t.Errorf("features differ by %g at %d: %v vs %v", d, at, f1[at], f2[at])
	}
}
