package infer

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestExportSizes loads exports at other input sizes, including one that is
// not a multiple of 32 (MnasNet's feature map is then ceil(S/32) square).
func TestExportSizes(t *testing.T) {
	testenv.Long(t)
	eng := newEngine(t)
	for _, tt := range []struct{ size, cells int }{{224, 7}, {400, 13}} {
		t.Run(strconv.Itoa(tt.size), func(t *testing.T) {
			bb, hd := export(t, "--weights", "random", "--size", strconv.Itoa(tt.size))
			c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.InputSize() != tt.size || c.Meta().FeatureShape != [3]int{1280, tt.cells, tt.cells} || c.FeatureSize() != 1280*tt.cells*tt.cells {
				t.Fatalf("size %d, feature shape %v, feature size %d", c.InputSize(), c.Meta().FeatureShape, c.FeatureSize())
			}
			p := make([]float32, 2)
			if _, err := c.Classify(randomBatch(2, tt.size, 9), 2, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestExportModelWeights runs tools/export_model.py on weights files it must
// refuse with a clear message, and on a checkpoint dict it must accept.
func TestExportModelWeights(t *testing.T) {
	testenv.Long(t)
	requireTorch(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pth")
	if err := os.WriteFile(garbage, []byte("not a pickle"), 0o644); err != nil {
		t.Fatal(err)
	}
	save := func(name, expr string) string {
		p := filepath.Join(dir, name)
		script := "import torch, torchvision\ntorch.manual_seed(1)\nsd = torchvision.models.mnasnet0_75().state_dict()\ntorch.save(" + expr + ", '" + p + "')"
		if out, err := exec.Command(python, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("save %s: %v\n%s", name, err, out)
		}
		return p
	}
	wider := save("mnasnet1_0.pth", "torchvision.models.mnasnet1_0().state_dict()")
	ckpt := save("ckpt.pth", "{'epoch': 3, 'state_dict': {'module.' + k: v for k, v in sd.items()}}")

	tests := []struct {
		name    string
		args    []string
		wantErr string // "" means it must succeed
	}{
		{"size too small", []string{"--size", "16"}, "--size 16: must be at least 32"},
		{"missing weights file", []string{"--weights", filepath.Join(dir, "nope.pth")}, "not 'random', 'imagenet' or an existing .pth file"},
		{"garbage weights file", []string{"--weights", garbage}, "cannot read weights file " + garbage},
		{"mnasnet1_0 weights", []string{"--weights", wider}, "is not a torchvision mnasnet0_75 state_dict"},
		{"checkpoint dict from DataParallel", []string{"--weights", ckpt}, ""},
	}
	eng := newEngine(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			cmd := exec.Command(python, append([]string{filepath.Join(testenv.RepoRoot(t), "tools", "export_model.py"), "--out", out}, tt.args...)...)
			msg, err := cmd.CombinedOutput()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(string(msg), tt.wantErr) {
					t.Fatalf("err %v, output:\n%s\nwant it to say %q", err, msg, tt.wantErr)
				}
				if entries, _ := os.ReadDir(out); len(entries) != 0 {
					t.Errorf("a failed export left %v behind", entries)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, msg)
			}
			b, err := LoadBackbone(eng, filepath.Join(out, "backbone.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if w := b.Meta().Weights; !strings.HasPrefix(w, "file:ckpt.pth:") {
				t.Errorf("weights metadata %q", w)
			}
		})
	}
}
