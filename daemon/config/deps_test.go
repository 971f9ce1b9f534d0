package config_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPureGo: the config (and so check-config) must build without OpenCV or
// ONNX Runtime, and must not depend on the training code.
func TestPureGo(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(gobin, "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}} {{len .CgoFiles}}{{end}}",
		"github.com/deepfaked/deepfaked/daemon/config").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(strings.TrimSpace(string(out)))
	if len(deps) < 2 {
		t.Fatalf("go list printed nothing useful:\n%s", out)
	}
	for i := 0; i+1 < len(deps); i += 2 {
		pkg, cgo := deps[i], deps[i+1]
		switch {
		case cgo != "0":
			t.Errorf("config depends on %s, which uses cgo", pkg)
		case strings.HasPrefix(pkg, "gocv.io/"), strings.Contains(pkg, "onnxruntime"):
			t.Errorf("config depends on %s", pkg)
		case strings.HasPrefix(pkg, "github.com/deepfaked/deepfaked/train"):
			t.Errorf("config depends on the training code: %s", pkg)
		}
	}
}
