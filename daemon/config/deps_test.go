package config_test

import (
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestPureGo: the config (and so check-config) must build without OpenCV or
// ONNX Runtime, and must not depend on the training code.
func TestPureGo(t *testing.T) {
	for pkg, cgo := range testenv.Deps(t, "github.com/deepfaked/deepfaked/daemon/config") {
		switch {
		case cgo != 0:
			t.Errorf("config depends on %s, which uses cgo", pkg)
		case strings.HasPrefix(pkg, "gocv.io/"), strings.Contains(pkg, "onnxruntime"):
			t.Errorf("config depends on %s", pkg)
		case strings.HasPrefix(pkg, "github.com/deepfaked/deepfaked/train"):
			t.Errorf("config depends on the training code: %s", pkg)
		}
	}
}
