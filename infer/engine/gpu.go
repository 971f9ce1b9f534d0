package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// TensorRTOptions are the tensorrt provider's options (ONNX Runtime's trt_*
// provider options). Zero values are passed on as they are, except where a
// field says otherwise.
type TensorRTOptions struct {
	FP16, INT8 bool
	// CacheDir holds the engine and timing caches; empty keeps no cache.
	CacheDir                 string
	EngineCache, TimingCache bool
	// MaxWorkspaceSize is trt_max_workspace_size in bytes; 0 leaves ONNX Runtime's default.
	MaxWorkspaceSize         int64
	BuilderOptimizationLevel int
	// EPContext writes an EP-context model after a build and opens it on
	// later starts instead of the model (needs EngineCache and CacheDir).
	EPContext bool
}

// CUDAOptions are the cuda provider's options and the GPU both GPU providers use.
type CUDAOptions struct {
	DeviceID int
	// MemoryLimit is gpu_mem_limit in bytes; 0 is no limit.
	MemoryLimit int64
}

// cudaProviderOptions are the CUDA provider's options as ONNX Runtime names them.
func cudaProviderOptions(o CUDAOptions) map[string]string {
	m := map[string]string{"device_id": strconv.Itoa(o.DeviceID)}
	if o.MemoryLimit > 0 {
		m["gpu_mem_limit"] = strconv.FormatInt(o.MemoryLimit, 10)
	}
	return m
}

// trtFiles are where one model's TensorRT files go; empty fields are unused.
type trtFiles struct {
	engineDir string // engine cache for this model, runtime and GPU
	timingDir string // timing cache for this runtime and GPU, shared by models
	context   string // the EP-context model to write (in engineDir), opened by later starts
	profile   string // "name:1x3x128x128,..." per dynamic-batch input; empty: none
	maxShape  string
}

func boolOpt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// tensorRTProviderOptions are the TensorRT provider's options for one model.
func tensorRTProviderOptions(o TensorRTOptions, cuda CUDAOptions, f trtFiles) map[string]string {
	m := map[string]string{
		"device_id":                      strconv.Itoa(cuda.DeviceID),
		"trt_fp16_enable":                boolOpt(o.FP16),
		"trt_int8_enable":                boolOpt(o.INT8),
		"trt_builder_optimization_level": strconv.Itoa(o.BuilderOptimizationLevel),
		"trt_engine_cache_enable":        boolOpt(f.engineDir != ""),
		"trt_timing_cache_enable":        boolOpt(f.timingDir != ""),
	}
	if o.MaxWorkspaceSize > 0 {
		m["trt_max_workspace_size"] = strconv.FormatInt(o.MaxWorkspaceSize, 10)
	}
	if f.timingDir != "" {
		m["trt_timing_cache_path"] = f.timingDir
	}
	switch {
	case f.context != "":
		// The EP keeps the engine beside the context model, which names it by
		// a path relative to itself (embed mode 0): trt_engine_cache_path must
		// then be relative to the context model's folder, and empty is that
		// folder, the model's engine folder.
		m["trt_dump_ep_context_model"] = "1"
		m["trt_ep_context_embed_mode"] = "0"
		m["trt_ep_context_file_path"] = f.context
	case f.engineDir != "":
		m["trt_engine_cache_path"] = f.engineDir
	}
	if f.profile != "" {
		m["trt_profile_min_shapes"] = f.profile
		m["trt_profile_opt_shapes"] = f.maxShape
		m["trt_profile_max_shapes"] = f.maxShape
	}
	return m
}

// gpuKey is what a cached TensorRT engine depends on besides the model.
type gpuKey struct {
	ORT      string // ONNX Runtime's version
	TensorRT string // libnvinfer's version, "unknown" when it cannot be learnt
	GPU      string // the GPU's name, "unknown" when it cannot be learnt
	DeviceID int
}

// slug makes s safe and short as part of a folder name.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 48 {
		out = out[:48]
	}
	if out == "" {
		return "unknown"
	}
	return out
}

// suffix names the runtime and GPU part of a cache folder.
func (k gpuKey) suffix() string {
	return fmt.Sprintf("ort%s-trt%s-%s-dev%d", slug(k.ORT), slug(k.TensorRT), slug(k.GPU), k.DeviceID)
}

// engineDir is the engine cache folder of the model with sha256 sum.
func (k gpuKey) engineDir(root, sum string) string {
	return filepath.Join(root, sum[:16]+"-"+k.suffix())
}

// timingDir is the timing cache folder, shared by every model on this GPU and runtime.
func (k gpuKey) timingDir(root string) string { return filepath.Join(root, "timing-"+k.suffix()) }

var nvinferRe = regexp.MustCompile(`libnvinfer\.so\.([0-9]+(?:\.[0-9]+)*)`)

// tensorRTVersion is the version in the file name of the libnvinfer that maps
// (the text of /proc/self/maps) shows loaded, "" when none is: ONNX Runtime's
// TensorRT provider library loads it when the provider is enabled.
func tensorRTVersion(maps []byte) string {
	best := ""
	for _, m := range nvinferRe.FindAllSubmatch(maps, -1) {
		if v := string(m[1]); len(v) > len(best) {
			best = v // libnvinfer.so.10.3.0 over the libnvinfer.so.10 link
		}
	}
	return best
}

// gpuName names the GPU device id: the model in /proc/driver/nvidia/gpus/*/information
// (the desktop driver; GPUs in PCI order, which is CUDA's order when
// CUDA_DEVICE_ORDER=PCI_BUS_ID and when all GPUs are alike), else the board
// in /proc/device-tree/model (a Jetson, whose integrated GPU the board names),
// else "". root is "/" but for tests.
func gpuName(root string, deviceID int) string {
	infos, _ := filepath.Glob(filepath.Join(root, "proc/driver/nvidia/gpus/*/information"))
	slices.Sort(infos)
	var models []string
	for _, p := range infos {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Model" {
				models = append(models, strings.TrimSpace(v))
				break
			}
		}
	}
	if deviceID >= 0 && deviceID < len(models) {
		return models[deviceID]
	}
	if b, err := os.ReadFile(filepath.Join(root, "proc/device-tree/model")); err == nil {
		if s := strings.TrimSpace(string(bytes.TrimRight(b, "\x00"))); s != "" {
			return s
		}
	}
	return ""
}

// learnGPUKey learns the runtime and GPU a TensorRT engine is built for. Call
// it after the tensorrt provider was enabled once, so libnvinfer is loaded.
func learnGPUKey(deviceID int) gpuKey {
	k := gpuKey{ORT: ort.GetVersion(), DeviceID: deviceID, TensorRT: "unknown", GPU: "unknown"}
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
		if v := tensorRTVersion(maps); v != "" {
			k.TensorRT = v
		}
	}
	if g := gpuName("/", deviceID); g != "" {
		k.GPU = g
	}
	return k
}

// cacheNote is written beside a model's engines so that a person can tell
// what a cache folder is for.
type cacheNote struct {
	Model    string `json:"model"`
	SHA256   string `json:"sha256"`
	ORT      string `json:"onnxruntime"`
	TensorRT string `json:"tensorrt"`
	GPU      string `json:"gpu"`
	DeviceID int    `json:"device_id"`
}

func writeCacheNote(dir string, n cacheNote) error {
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cache.json"), append(b, '\n'), 0o644)
}

// hasEngine reports whether dir holds a built engine.
func hasEngine(dir string) bool {
	if dir == "" {
		return false
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.engine"))
	return len(m) > 0
}

// batchProfile is the TensorRT optimisation profile for models whose inputs
// are dynamic in the batch dimension only: batches of 1 to maxBatch, built
// once at session creation instead of at the first run of each new batch
// size. ok is false when the model has an input with another dynamic
// dimension (TensorRT then builds at the first run).
func batchProfile(ins []ort.InputOutputInfo, maxBatch int) (min, max string, ok bool) {
	if maxBatch < 1 {
		return "", "", false
	}
	var mins, maxs []string
	for _, in := range ins {
		dims := in.Dimensions
		if len(dims) == 0 || dims[0] >= 0 {
			continue // static: no profile needed
		}
		lo, hi := []string{"1"}, []string{strconv.Itoa(maxBatch)}
		for _, d := range dims[1:] {
			if d < 0 {
				return "", "", false
			}
			lo, hi = append(lo, strconv.FormatInt(d, 10)), append(hi, strconv.FormatInt(d, 10))
		}
		mins = append(mins, in.Name+":"+strings.Join(lo, "x"))
		maxs = append(maxs, in.Name+":"+strings.Join(hi, "x"))
	}
	if len(mins) == 0 {
		return "", "", false
	}
	return strings.Join(mins, ","), strings.Join(maxs, ","), true
}
