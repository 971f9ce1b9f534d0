package engine_test

import (
	"bytes"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/provider"
	"github.com/deepfaked/deepfaked/internal/sigguard"
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
	testenv.Long(t)
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

// TestSignalsAfterStart: after the engine starts (GPU providers asked for,
// as on a Jetson), sessions are made and run, SIGHUP and SIGTERM still reach
// signal.Notify, and every handler Go had is still Go's, on the signal stack.
// On a CUDA build the engine puts back what the provider replaced; here, on
// the CPU build, it shows that the guard leaves Go's handling intact.
func TestSignalsAfterStart(t *testing.T) {
	sigs := []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT}
	ch := make(chan os.Signal, len(sigs))
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(ch)
	before := map[syscall.Signal]sigguard.Handler{}
	for _, s := range sigs {
		before[s] = sigguard.Inspect(s)
	}
	var logs bytes.Buffer
	e, err := engine.New(engine.Options{
		Library:   testenv.ORTLibrary(t),
		Providers: []string{provider.TensorRT, provider.CUDA, provider.CPU},
		CUDA:      engine.CUDAOptions{DeviceID: 0, MemoryLimit: 1 << 30},
		TensorRT:  engine.TensorRTOptions{FP16: true, CacheDir: t.TempDir(), EngineCache: true, TimingCache: true, MaxWorkspaceSize: 1 << 30},
		MaxBatch:  4,
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, head := testenv.Models(t)
	s, err := e.Open(head, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(append([]int64{2}, s.Inputs[0].Dimensions[1:]...)...))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out := []ort.Value{nil}
	if err := s.Run([]ort.Value{in}, out); err != nil {
		t.Fatal(err)
	}
	defer out[0].Destroy()

	for _, sig := range sigs {
		if h := sigguard.Inspect(sig); h != before[sig] || !h.OnStack {
			t.Errorf("%v after engine start: %v, before: %v", sig, h, before[sig])
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != sig {
				t.Fatalf("got %v, want %v", got, sig)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not reach signal.Notify after the engine started", sig)
		}
	}
	if strings.Contains(logs.String(), "restored") {
		t.Errorf("the CPU runtime replaced signal handlers:\n%s", logs.String())
	}
}

// TestAvailable is what check-config reports: the CPU runtime has only cpu.
func TestAvailable(t *testing.T) {
	got, err := engine.Available(testenv.ORTLibrary(t), []string{provider.TensorRT, provider.CUDA, provider.CPU}, engine.CUDAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != provider.CPU {
		t.Fatalf("the npm runtime has %v, want [cpu]", got)
	}
	if _, err := engine.Available(filepath.Join(t.TempDir(), "libnone.so"), []string{provider.CPU}, engine.CUDAOptions{}); err == nil {
		t.Fatal("a missing runtime library is available")
	}
}
