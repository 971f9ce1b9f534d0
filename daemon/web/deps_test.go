package web

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureGo: the page builds without cgo, so its handler tests need
// neither OpenCV nor ONNX Runtime; the daemon wires those parts in.
func TestPureGo(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gobin, "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}} {{len .CgoFiles}}{{end}}",
		"github.com/deepfaked/deepfaked/daemon/web").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(strings.TrimSpace(string(out)))
	if len(deps) < 2 {
		t.Fatalf("go list printed nothing useful:\n%s", out)
	}
	for i := 0; i+1 < len(deps); i += 2 {
		if pkg, cgo := deps[i], deps[i+1]; cgo != "0" || strings.HasPrefix(pkg, "gocv.io/") || strings.Contains(pkg, "onnxruntime") {
			t.Errorf("web depends on %s (cgo files: %s)", pkg, cgo)
		}
	}
}
