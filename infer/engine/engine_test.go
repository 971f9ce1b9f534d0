package engine_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/provider"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestProvidersFallBackToCPU(t *testing.T) {
	var logs bytes.Buffer
	e, err := engine.New(engine.Options{
		Library:   testenv.ORTLibrary(t),
		Providers: []string{provider.TensorRT, provider.CUDA, provider.CPU},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	got := e.Providers()
	if got[len(got)-1] != provider.CPU {
		t.Fatalf("providers %v: cpu must be last", got)
	}
	// The npm runtime is a CPU build: both GPU providers are logged and skipped.
	for _, p := range []string{provider.TensorRT, provider.CUDA} {
		present := strings.Contains(strings.Join(got, ","), p)
		logged := strings.Contains(logs.String(), "provider="+p)
		if present == logged {
			t.Errorf("provider %s: in use=%v, logged as missing=%v; want exactly one", p, present, logged)
		}
	}
}

func TestUnknownProvider(t *testing.T) {
	_, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t), Providers: []string{"npu"}})
	if err == nil || !strings.Contains(err.Error(), `"npu"`) {
		t.Fatalf("want an error naming npu, got %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	e, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	corrupt := filepath.Join(t.TempDir(), "corrupt.onnx")
	if err := os.WriteFile(corrupt, []byte("not a model"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		inputs     []string
		want       string
	}{
		{"missing file", filepath.Join(t.TempDir(), "nope.onnx"), nil, "nope.onnx"},
		{"corrupt file", corrupt, nil, "corrupt.onnx"},
	}
	// A real model with other tensor names: the backbone that `make models` writes.
	if backbone, _ := testenv.Models(t); backbone != "" {
		tests = append(tests, struct {
			name, path string
			inputs     []string
			want       string
		}{"wrong input name", backbone, []string{"pixels"}, `no input named "pixels"`})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Open(tc.path, tc.inputs, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}
