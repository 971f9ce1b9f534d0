package engine

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestCUDAProviderOptions(t *testing.T) {
	for _, tc := range []struct {
		in   CUDAOptions
		want map[string]string
	}{
		{CUDAOptions{}, map[string]string{"device_id": "0"}},
		{CUDAOptions{DeviceID: 1, MemoryLimit: 2 << 30}, map[string]string{"device_id": "1", "gpu_mem_limit": "2147483648"}},
	} {
		if got := cudaProviderOptions(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestTensorRTProviderOptions(t *testing.T) {
	base := map[string]string{"device_id": "0", "trt_fp16_enable": "0", "trt_int8_enable": "0", "trt_builder_optimization_level": "0",
		"trt_engine_cache_enable": "0", "trt_timing_cache_enable": "0"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name  string
		o     TensorRTOptions
		cuda  CUDAOptions
		files trtFiles
		want  map[string]string
	}{
		{"zero values pass as they are; workspace 0 is ORT's default", TensorRTOptions{}, CUDAOptions{}, trtFiles{}, base},
		{"switches, workspace, level, device", TensorRTOptions{FP16: true, INT8: true, MaxWorkspaceSize: 1 << 30, BuilderOptimizationLevel: 5},
			CUDAOptions{DeviceID: 2}, trtFiles{},
			with("device_id", "2", "trt_fp16_enable", "1", "trt_int8_enable", "1", "trt_max_workspace_size", "1073741824", "trt_builder_optimization_level", "5")},
		{"caches", TensorRTOptions{}, CUDAOptions{}, trtFiles{engineDir: "/c/m", timingDir: "/c/t"},
			with("trt_engine_cache_enable", "1", "trt_engine_cache_path", "/c/m", "trt_timing_cache_enable", "1", "trt_timing_cache_path", "/c/t")},
		{"ep context: the engine beside it, no absolute engine cache path", TensorRTOptions{}, CUDAOptions{},
			trtFiles{engineDir: "/c/m", timingDir: "/c/t", context: "/c/m/backbone_ctx.onnx"},
			with("trt_dump_ep_context_model", "1", "trt_ep_context_embed_mode", "0", "trt_ep_context_file_path", "/c/m/backbone_ctx.onnx",
				"trt_engine_cache_enable", "1", "trt_timing_cache_enable", "1", "trt_timing_cache_path", "/c/t")},
		{"batch profile", TensorRTOptions{}, CUDAOptions{}, trtFiles{profile: "input:1x3x128x128", maxShape: "input:8x3x128x128"},
			with("trt_profile_min_shapes", "input:1x3x128x128", "trt_profile_opt_shapes", "input:8x3x128x128", "trt_profile_max_shapes", "input:8x3x128x128")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tensorRTProviderOptions(tc.o, tc.cuda, tc.files); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestBatchProfile(t *testing.T) {
	io := func(name string, dims ...int64) ort.InputOutputInfo {
		return ort.InputOutputInfo{Name: name, Dimensions: ort.NewShape(dims...)}
	}
	for _, tc := range []struct {
		name     string
		ins      []ort.InputOutputInfo
		maxBatch int
		min, max string
		ok       bool
	}{
		{"backbone", []ort.InputOutputInfo{io("input", -1, 3, 128, 128)}, 8, "input:1x3x128x128", "input:8x3x128x128", true},
		{"head", []ort.InputOutputInfo{io("features", -1, 1280, 4, 4)}, 64, "features:1x1280x4x4", "features:64x1280x4x4", true},
		{"no max batch", []ort.InputOutputInfo{io("input", -1, 3, 128, 128)}, 0, "", "", false},
		{"static model", []ort.InputOutputInfo{io("input", 1, 3, 640, 640)}, 8, "", "", false},
		{"dynamic height and width", []ort.InputOutputInfo{io("input", -1, 3, -1, -1)}, 8, "", "", false},
		{"two inputs", []ort.InputOutputInfo{io("a", -1, 2), io("b", -1, 3)}, 4, "a:1x2,b:1x3", "a:4x2,b:4x3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			min, max, ok := batchProfile(tc.ins, tc.maxBatch)
			if min != tc.min || max != tc.max || ok != tc.ok {
				t.Errorf("got %q %q %v, want %q %q %v", min, max, ok, tc.min, tc.max, tc.ok)
			}
		})
	}
}

func TestTensorRTVersion(t *testing.T) {
	for _, tc := range []struct{ maps, want string }{
		{"", ""},
		{"7f00-7f10 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n", ""},
		{"ffff-ffff r-xp 0 b3:02 9 /usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0\nffff-ffff r--p 0 b3:02 9 /usr/lib/aarch64-linux-gnu/libnvinfer.so.10.3.0\n", "10.3.0"},
		{"x /usr/lib/libnvinfer_plugin.so.8.6.2\nx /usr/lib/libnvinfer.so.8.6.2\n", "8.6.2"},
	} {
		if got := tensorRTVersion([]byte(tc.maps)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.maps, got, tc.want)
		}
	}
}

func TestGPUName(t *testing.T) {
	write := func(root, rel, text string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	desktop := t.TempDir()
	write(desktop, "proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: \t\t NVIDIA GeForce RTX 3060\nIRQ: 130\n")
	write(desktop, "proc/driver/nvidia/gpus/0000:02:00.0/information", "Model: \t\t NVIDIA H200\nIRQ: 131\n")
	jetson := t.TempDir()
	write(jetson, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
	for _, tc := range []struct {
		root   string
		device int
		want   string
	}{
		{desktop, 0, "NVIDIA GeForce RTX 3060"},
		{desktop, 1, "NVIDIA H200"},
		{jetson, 0, "NVIDIA Jetson Orin Nano Developer Kit"},
		{t.TempDir(), 0, ""},
	} {
		if got := gpuName(tc.root, tc.device); got != tc.want {
			t.Errorf("%s device %d: %q, want %q", tc.root, tc.device, got, tc.want)
		}
	}
}

func TestCacheFolderNames(t *testing.T) {
	k := gpuKey{ORT: "1.30.0", TensorRT: "10.3.0", GPU: "NVIDIA Jetson Orin Nano Developer Kit", DeviceID: 0}
	sum := strings.Repeat("ab", 32)
	if got, want := k.engineDir("/var/lib/deepfaked/trt-cache", sum),
		"/var/lib/deepfaked/trt-cache/abababababababab-ort1.30.0-trt10.3.0-nvidia-jetson-orin-nano-developer-kit-dev0"; got != want {
		t.Errorf("engine dir %s, want %s", got, want)
	}
	if got, want := k.timingDir("/c"), "/c/timing-ort1.30.0-trt10.3.0-nvidia-jetson-orin-nano-developer-kit-dev0"; got != want {
		t.Errorf("timing dir %s, want %s", got, want)
	}
	if got := (gpuKey{ORT: "1.30.0", TensorRT: "unknown", GPU: "../../etc"}).suffix(); strings.Contains(got, "/") {
		t.Errorf("suffix %q leaves the cache folder", got)
	}
}

// TestPrepareTensorRT: the cache folder follows the model's content, runtime
// and GPU, so an unchanged model reuses its folder (and engine) after a
// restart and a changed one gets a new folder, that is, a new build; an
// EP-context model written by an earlier start is opened instead of the model.
func TestPrepareTensorRT(t *testing.T) {
	root, models := t.TempDir(), t.TempDir()
	model := filepath.Join(models, "backbone.onnx")
	if err := os.WriteFile(model, []byte("model v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	e := &Engine{log: slog.New(slog.NewTextHandler(&logs, nil)),
		opts:   Options{MaxBatch: 8, TensorRT: TensorRTOptions{CacheDir: root, EngineCache: true, TimingCache: true, EPContext: true}},
		trtKey: gpuKey{ORT: "1.30.0", TensorRT: "10.3.0", GPU: "Orin", DeviceID: 0}}
	ins := []ort.InputOutputInfo{{Name: "input", Dimensions: ort.NewShape(-1, 3, 128, 128)}}

	first, open := e.prepareTensorRT(model, ins)
	if open != model {
		t.Fatalf("first start opens %s, want the model", open)
	}
	sum, err := spec.FileSHA256(model)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, sum[:16]+"-ort1.30.0-trt10.3.0-orin-dev0"); first.engineDir != want {
		t.Fatalf("engine dir %s, want %s", first.engineDir, want)
	}
	if first.timingDir != filepath.Join(root, "timing-ort1.30.0-trt10.3.0-orin-dev0") {
		t.Errorf("timing dir %s", first.timingDir)
	}
	if first.context != filepath.Join(first.engineDir, "backbone_ctx.onnx") {
		t.Errorf("context model %s", first.context)
	}
	if first.profile != "input:1x3x128x128" || first.maxShape != "input:8x3x128x128" {
		t.Errorf("profile %q %q", first.profile, first.maxShape)
	}
	var note cacheNote
	if b, err := os.ReadFile(filepath.Join(first.engineDir, "cache.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &note); err != nil || note.Model != model || note.GPU != "Orin" || len(note.SHA256) != 64 {
		t.Fatalf("cache.json %s: %+v %v", b, note, err)
	}

	// A restart with the same model: the same folder; TensorRT wrote an
	// engine and the context model there, so both are reused.
	for _, f := range []string{"TensorrtExecutionProvider_TRTKernel_graph_main_1_0_sm87.engine", "backbone_ctx.onnx"} {
		if err := os.WriteFile(filepath.Join(first.engineDir, f), []byte("built"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	again, open := e.prepareTensorRT(model, ins)
	if again.engineDir != first.engineDir || !hasEngine(again.engineDir) {
		t.Fatalf("restart uses %s, want %s with its engine", again.engineDir, first.engineDir)
	}
	if open != first.context || again.context != "" {
		t.Fatalf("restart opens %s (dump to %q), want the context model %s", open, again.context, first.context)
	}

	// The model changes (a new backbone copied over the old): a new folder, no engine.
	if err := os.WriteFile(model, []byte("model v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, open := e.prepareTensorRT(model, ins)
	if changed.engineDir == first.engineDir || hasEngine(changed.engineDir) || open != model {
		t.Fatalf("a changed model uses %s (engine %v, opens %s), want a new folder without an engine", changed.engineDir, hasEngine(changed.engineDir), open)
	}

	// Another runtime or GPU: another folder.
	e.trtKey.ORT = "1.31.0"
	if other, _ := e.prepareTensorRT(model, ins); other.engineDir == changed.engineDir || other.timingDir == changed.timingDir {
		t.Fatalf("a new runtime reuses %s", other.engineDir)
	}

	// No cache dir: no caches, the model as it is.
	e.opts.TensorRT.CacheDir = ""
	if none, open := e.prepareTensorRT(model, ins); none.engineDir != "" || none.timingDir != "" || none.context != "" || open != model {
		t.Fatalf("without a cache dir: %+v, opens %s", none, open)
	}
	// A cache dir that cannot be made: logged, and TensorRT runs without it.
	e.opts.TensorRT.CacheDir = filepath.Join(model, "sub") // under a file
	if bad, _ := e.prepareTensorRT(model, ins); bad.engineDir != "" || bad.timingDir != "" {
		t.Fatalf("an impossible cache dir is used: %+v", bad)
	}
	if !strings.Contains(logs.String(), "cannot make the TensorRT engine cache") {
		t.Errorf("no warning for the impossible cache dir:\n%s", logs.String())
	}
}

// TestRunGuard: with a GPU provider in use, the first run on each input
// tensor goes through the signal guard and later ones do not; the results
// are those of a plain run. (The CPU runtime stands in for the GPU one.)
func TestRunGuard(t *testing.T) {
	var logs bytes.Buffer
	e, err := New(Options{Library: testenv.ORTLibrary(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.gpu = true // as when cuda or tensorrt is in use
	_, head := testenv.Models(t)
	s, err := e.Open(head, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	var ins []*ort.Tensor[float32]
	for _, n := range []int64{1, 3} {
		in, err := ort.NewEmptyTensor[float32](ort.NewShape(append([]int64{n}, s.Inputs[0].Dimensions[1:]...)...))
		if err != nil {
			t.Fatal(err)
		}
		defer in.Destroy()
		ins = append(ins, in)
	}
	for range 3 {
		for _, in := range ins {
			out := []ort.Value{nil}
			if err := s.Run([]ort.Value{in}, out); err != nil {
				t.Fatal(err)
			}
			if got := out[0].GetShape()[0]; got != in.GetShape()[0] {
				t.Fatalf("batch %d gave %d results", in.GetShape()[0], got)
			}
			out[0].Destroy()
		}
	}
	if len(s.seen) != len(ins) {
		t.Fatalf("%d input tensors guarded, want %d", len(s.seen), len(ins))
	}
	if strings.Contains(logs.String(), "restored") {
		t.Errorf("the CPU runtime replaced signal handlers:\n%s", logs.String())
	}
}
