package infer

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// python is Debian's interpreter with python3-torch; the pyenv `python3` has no torch.
const python = "/usr/bin/python3"

func newEngine(t testing.TB) *engine.Engine {
	t.Helper()
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// requireTorch fails (never skips) without PyTorch: it is a project dependency.
func requireTorch(t testing.TB) {
	t.Helper()
	out, err := exec.Command(python, "-c", "import torch, torchvision, onnx").CombinedOutput()
	if err != nil {
		t.Fatalf("%s cannot import torch, torchvision and onnx (run make deps): %v\n%s", python, err, out)
	}
}

// runTool runs tools/<script> with args and fails the test on error.
func runTool(t testing.TB, script string, args ...string) {
	t.Helper()
	requireTorch(t)
	cmd := exec.Command(python, append([]string{filepath.Join(testenv.RepoRoot(t), "tools", script)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", script, args, err, out)
	}
}

// export writes backbone.onnx and head.onnx into a fresh folder and returns their paths.
func export(t testing.TB, args ...string) (backbone, head string) {
	t.Helper()
	dir := t.TempDir()
	runTool(t, "export_model.py", append(args, "--out", dir)...)
	return filepath.Join(dir, "backbone.onnx"), filepath.Join(dir, "head.onnx")
}

// randomBatch is n seeded standard-normal NCHW faces, like normalised crops.
func randomBatch(n, size int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0))
	x := make([]float32, n*3*size*size)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func writeF32(t testing.TB, path string, x []float32) {
	t.Helper()
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t testing.TB, path string, want int) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4*want {
		t.Fatalf("%s holds %d bytes, want %d floats", path, len(b), want)
	}
	x := make([]float32, want)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

// maxAbsDiff is the largest |a[i]-b[i]| and where it is.
func maxAbsDiff(a, b []float32) (float64, int) {
	worst, at := 0.0, -1
	for i := range a {
		if d := math.Abs(float64(a[i]) - float64(b[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at
}
