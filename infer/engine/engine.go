// Package engine owns the process's ONNX Runtime environment and makes sessions
// that run on the configured execution providers, in order of preference.
package engine

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/provider"
)

// Options configure an Engine.
type Options struct {
	// Library is the path to libonnxruntime.so; empty means DefaultLibrary().
	Library string
	// Providers is the ordered preference list (package provider's names);
	// cpu is always the last resort, so empty means cpu only.
	Providers []string
	// Threads is the intra-op thread count per session; 0 lets ONNX Runtime choose.
	Threads int
	Logger  *slog.Logger
}

// Engine makes sessions. Create one per process; Close it when done.
type Engine struct {
	opts      Options
	log       *slog.Logger
	providers []string // the preferred providers this runtime actually has, cpu last
	closeOnce sync.Once
}

// ONNX Runtime's environment is global to the process in C; this guards it so
// that several engines (tests, the daemon and a detector) can share it.
var (
	envMu   sync.Mutex
	envRefs int
	envLib  string
)

// DefaultLibrary finds libonnxruntime: $DEEPFAKED_ORT_LIB, then third_party/onnxruntime
// beside or above the executable (a source checkout), then /usr/lib/deepfaked, then the
// dynamic linker's search path.
func DefaultLibrary() string {
	if p := os.Getenv("DEEPFAKED_ORT_LIB"); p != "" {
		return p
	}
	const name = "libonnxruntime.so.1"
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		candidates = append(candidates,
			filepath.Join(dir, "..", "third_party", "onnxruntime", name),
			filepath.Join(dir, "third_party", "onnxruntime", name),
			filepath.Join(dir, "..", "lib", "deepfaked", name))
	}
	if wd, err := os.Getwd(); err == nil {
		candidates = append(candidates, filepath.Join(wd, "third_party", "onnxruntime", name))
	}
	candidates = append(candidates, "/usr/lib/deepfaked/"+name, "/usr/local/lib/deepfaked/"+name)
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			return filepath.Clean(c)
		}
	}
	return name
}

// New initialises ONNX Runtime (once per process) and probes which of the
// requested providers the runtime library has. A missing provider is logged
// once and skipped; cpu is always the last resort.
func New(opts Options) (*Engine, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Library == "" {
		opts.Library = DefaultLibrary()
	}
	for _, p := range opts.Providers {
		if !slices.Contains(provider.Known(), p) {
			return nil, fmt.Errorf("unknown execution provider %q (allowed: %v)", p, provider.Known())
		}
	}
	if err := acquireEnv(opts.Library); err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, log: log}
	for _, p := range opts.Providers {
		if p == provider.CPU {
			break
		}
		if err := probe(p); err != nil {
			log.Warn("execution provider not available in this ONNX Runtime; skipping it",
				"provider", p, "library", opts.Library, "reason", err.Error())
			continue
		}
		e.providers = append(e.providers, p)
	}
	e.providers = append(e.providers, provider.CPU)
	log.Info("onnx runtime ready", "version", ort.GetVersion(), "library", opts.Library, "providers", e.providers, "threads", opts.Threads)
	return e, nil
}

func acquireEnv(lib string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envRefs > 0 {
		if lib != envLib {
			return fmt.Errorf("onnx runtime already loaded from %s; cannot also load %s", envLib, lib)
		}
		envRefs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("load onnx runtime library %s: %w (run `make deps`, or set model.runtime / DEEPFAKED_ORT_LIB)", lib, err)
	}
	_ = ort.DisableTelemetry()
	envRefs, envLib = 1, lib
	return nil
}

// probe asks the runtime to enable provider p on a throw-away options object.
func probe(p string) error {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	return appendProvider(so, p)
}

func appendProvider(so *ort.SessionOptions, p string) error {
	switch p {
	case provider.TensorRT:
		o, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return err
		}
		defer o.Destroy()
		// Engines are cached beside nothing by default; FP16 is what edge GPUs want.
		if err := o.Update(map[string]string{"trt_fp16_enable": "1", "trt_engine_cache_enable": "1", "trt_engine_cache_path": os.TempDir()}); err != nil {
			return err
		}
		return so.AppendExecutionProviderTensorRT(o)
	case provider.CUDA:
		o, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return err
		}
		defer o.Destroy()
		return so.AppendExecutionProviderCUDA(o)
	case provider.CPU:
		return nil
	}
	return fmt.Errorf("unknown execution provider %q", p)
}

// Providers are the providers sessions use, in order; cpu is always last.
func (e *Engine) Providers() []string { return slices.Clone(e.providers) }

// Threads is the configured intra-op thread count (0: runtime default).
func (e *Engine) Threads() int { return e.opts.Threads }

// Close releases this engine's hold on the ONNX Runtime environment.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		envMu.Lock()
		defer envMu.Unlock()
		envRefs--
		if envRefs == 0 {
			err = ort.DestroyEnvironment()
		}
	})
	return err
}

// Session is one loaded model.
type Session struct {
	*ort.DynamicAdvancedSession
	Path    string
	Inputs  []ort.InputOutputInfo
	Outputs []ort.InputOutputInfo
}

// Open loads the ONNX model at path with the engine's providers. inputs and
// outputs name the tensors to bind; nil means all of the model's, in order.
func (e *Engine) Open(path string, inputs, outputs []string) (*Session, error) {
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", path, err)
	}
	if inputs == nil {
		for _, i := range ins {
			inputs = append(inputs, i.Name)
		}
	}
	if outputs == nil {
		for _, o := range outs {
			outputs = append(outputs, o.Name)
		}
	}
	if err := checkNames(path, "input", inputs, ins); err != nil {
		return nil, err
	}
	if err := checkNames(path, "output", outputs, outs); err != nil {
		return nil, err
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options for %s: %w", path, err)
	}
	defer so.Destroy()
	if e.opts.Threads > 0 {
		if err := so.SetIntraOpNumThreads(e.opts.Threads); err != nil {
			return nil, fmt.Errorf("model.threads=%d: %w", e.opts.Threads, err)
		}
		// One inter-op thread: our graphs are sequential, extra threads only spin.
		_ = so.SetInterOpNumThreads(1)
	}
	for _, p := range e.providers {
		if err := appendProvider(so, p); err != nil {
			return nil, fmt.Errorf("enable %s for %s: %w", p, path, err)
		}
	}
	s, err := ort.NewDynamicAdvancedSession(path, inputs, outputs, so)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return &Session{DynamicAdvancedSession: s, Path: path, Inputs: ins, Outputs: outs}, nil
}

func checkNames(path, kind string, want []string, have []ort.InputOutputInfo) error {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(i ort.InputOutputInfo) bool { return i.Name == w }) {
			names := make([]string, len(have))
			for i, h := range have {
				names[i] = h.Name
			}
			return fmt.Errorf("model %s has no %s named %q (it has %v)", path, kind, w, names)
		}
	}
	return nil
}

// Metadata reads a model's custom metadata_props.
func Metadata(path string) (map[string]string, error) {
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return nil, fmt.Errorf("read metadata of %s: %w", path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("read metadata keys of %s: %w", path, err)
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, ok, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return nil, fmt.Errorf("read metadata %q of %s: %w", k, path, err)
		}
		if ok {
			out[k] = v
		}
	}
	return out, nil
}
