package web

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestPureGo: the page builds without cgo, so its handler tests need
// neither OpenCV nor ONNX Runtime; the daemon wires those parts in.
func TestPureGo(t *testing.T) {
	for pkg, cgo := range testenv.Deps(t, "github.com/deepfaked/deepfaked/daemon/web") {
		if cgo != 0 || strings.HasPrefix(pkg, "gocv.io/") || strings.Contains(pkg, "onnxruntime") {
			t.Errorf("web depends on %s (cgo files: %d)", pkg, cgo)
		}
	}
}
