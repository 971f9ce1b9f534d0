// Package engine owns the process's ONNX Runtime environment and makes sessions
// that run on the configured execution providers, in order of preference.
package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/provider"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/sigguard"
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
	// TensorRT and CUDA are the GPU providers' options, used when Providers
	// lists them and the runtime has them.
	TensorRT TensorRTOptions
	CUDA     CUDAOptions
	// MaxBatch is the largest batch a session runs: TensorRT builds one
	// engine for batches 1..MaxBatch at session creation. 0 lets TensorRT
	// build at the first run of each new batch size.
	MaxBatch int
	Logger   *slog.Logger
}

// Engine makes sessions. Create one per process; Close it when done.
type Engine struct {
	opts      Options
	log       *slog.Logger
	providers []string // the preferred providers this runtime actually has, cpu last
	gpu       bool     // a GPU provider is in use: guard signal handlers around runs
	trtKey    gpuKey   // what TensorRT engines are built for, when tensorrt is in use
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
// once and skipped; cpu is always the last resort. Signal handlers that the
// runtime's libraries install over Go's are put back (see package sigguard).
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
	e := &Engine{opts: opts, log: log}
	var err error
	e.restored("loading ONNX Runtime", sigguard.Guard(func() { err = acquireEnv(opts.Library) }))
	if err != nil {
		return nil, err
	}
	for _, p := range opts.Providers {
		if p == provider.CPU {
			break
		}
		var perr error
		e.restored("enabling "+p, sigguard.Guard(func() { perr = e.probe(p) }))
		if perr != nil {
			log.Warn("execution provider not available in this ONNX Runtime; skipping it",
				"provider", p, "library", opts.Library, "reason", perr.Error())
			continue
		}
		e.providers = append(e.providers, p)
	}
	e.providers = append(e.providers, provider.CPU)
	e.gpu = len(e.providers) > 1
	attrs := []any{"version", ort.GetVersion(), "library", opts.Library, "providers", e.providers, "threads", opts.Threads}
	if slices.Contains(e.providers, provider.TensorRT) {
		e.trtKey = learnGPUKey(opts.CUDA.DeviceID)
		t := opts.TensorRT
		attrs = append(attrs, "tensorrt", e.trtKey.TensorRT, "gpu", e.trtKey.GPU, "device_id", opts.CUDA.DeviceID,
			"fp16", t.FP16, "int8", t.INT8, "max_workspace_size", t.MaxWorkspaceSize, "cache_dir", t.CacheDir)
	} else if slices.Contains(e.providers, provider.CUDA) {
		attrs = append(attrs, "device_id", opts.CUDA.DeviceID, "memory_limit", opts.CUDA.MemoryLimit)
	}
	log.Info("onnx runtime ready", attrs...)
	return e, nil
}

// restored logs the signals whose handlers sigguard put back after what.
func (e *Engine) restored(what string, sigs []syscall.Signal) {
	if len(sigs) == 0 {
		return
	}
	names := make([]string, len(sigs))
	for i, s := range sigs {
		names[i] = s.String()
	}
	e.log.Warn("native code replaced Go's signal handlers; restored them", "while", what, "signals", names)
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
func (e *Engine) probe(p string) error {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	switch p {
	case provider.TensorRT:
		return appendTensorRT(so, map[string]string{"device_id": fmt.Sprint(e.opts.CUDA.DeviceID)})
	case provider.CUDA:
		return appendCUDA(so, cudaProviderOptions(e.opts.CUDA))
	}
	return nil
}

func appendTensorRT(so *ort.SessionOptions, opts map[string]string) error {
	o, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return err
	}
	defer o.Destroy()
	if err := o.Update(opts); err != nil {
		return err
	}
	return so.AppendExecutionProviderTensorRT(o)
}

func appendCUDA(so *ort.SessionOptions, opts map[string]string) error {
	o, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer o.Destroy()
	if err := o.Update(opts); err != nil {
		return err
	}
	return so.AppendExecutionProviderCUDA(o)
}

// Available says which of the providers a runtime library has: it starts an
// engine on lib and closes it. For `deepfaked check-config`.
func Available(lib string, providers []string, cuda CUDAOptions) ([]string, error) {
	e, err := New(Options{Library: lib, Providers: providers, CUDA: cuda, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	return e.Providers(), nil
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

	eng  *Engine
	mu   sync.Mutex
	seen map[ort.Value]struct{} // input tensors already run once (GPU providers only)
}

// maxSeen bounds Session.seen: past it the set starts over.
const maxSeen = 64

// Run runs the model. With a GPU provider the first run on each input
// tensor (each batch size, for package infer) is guarded: CUDA and TensorRT
// set up kernels, memory and, for a new shape, engines there, and may
// install signal handlers, which are put back; a long first run is logged.
func (s *Session) Run(inputs, outputs []ort.Value) error {
	if s.eng == nil || !s.eng.gpu || len(inputs) == 0 {
		return s.DynamicAdvancedSession.Run(inputs, outputs)
	}
	s.mu.Lock()
	_, seen := s.seen[inputs[0]]
	s.mu.Unlock()
	if seen {
		return s.DynamicAdvancedSession.Run(inputs, outputs)
	}
	var err error
	done := s.eng.progress("the first run of a new input shape (TensorRT may be building an engine)", false, "model", s.Path, "shape", inputs[0].GetShape().String())
	s.eng.restored("the first run of "+s.Path, sigguard.Guard(func() { err = s.DynamicAdvancedSession.Run(inputs, outputs) }))
	done()
	if err == nil {
		s.mu.Lock()
		if s.seen == nil || len(s.seen) >= maxSeen {
			s.seen = map[ort.Value]struct{}{}
		}
		s.seen[inputs[0]] = struct{}{}
		s.mu.Unlock()
	}
	return err
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
	var files trtFiles
	open := path
	trt := slices.Contains(e.providers, provider.TensorRT)
	if trt {
		files, open = e.prepareTensorRT(path, ins)
	}
	// With a profile TensorRT builds while the session is made; without one, at the first run.
	build := trt && open == path && files.profile != "" && !hasEngine(files.engineDir)
	s, err := e.newSession(open, inputs, outputs, files, build)
	if err != nil && open != path {
		e.log.Warn("the TensorRT EP-context model did not load; removing it and building from the model", "context_model", open, "model", path, "err", err)
		_ = os.Remove(open)
		files.context = open
		s, err = e.newSession(path, inputs, outputs, files, trt && files.profile != "")
	}
	if err != nil {
		return nil, err
	}
	return &Session{DynamicAdvancedSession: s, Path: path, Inputs: ins, Outputs: outs, eng: e}, nil
}

// newSession makes a session on the engine's providers; files are where
// TensorRT keeps this model's caches.
// build says TensorRT builds an engine meanwhile, which is logged.
func (e *Engine) newSession(path string, inputs, outputs []string, files trtFiles, build bool) (*ort.DynamicAdvancedSession, error) {
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
	// Worker threads sleep between runs instead of spinning. Every session has
	// a pool of its own (backbone, head, a detector per camera), and after a
	// run ONNX Runtime's workers spin for work by default: on a small CPU they
	// take the cores the next session, decoding and face detection need. On
	// the 2-core test machine backbone + head at batch 8 took 2.2-2.5x as long
	// per face with spinning as without; without it they are within 20 % of a
	// lone backbone session (infer's BenchmarkClassifyVsBare).
	for _, k := range []string{"session.intra_op.allow_spinning", "session.inter_op.allow_spinning"} {
		if err := so.AddSessionConfigEntry(k, "0"); err != nil {
			return nil, fmt.Errorf("session options for %s: %s: %w", path, k, err)
		}
	}
	e.restored("enabling the providers for "+path, sigguard.Guard(func() {
		for _, p := range e.providers {
			switch p {
			case provider.TensorRT:
				err = appendTensorRT(so, tensorRTProviderOptions(e.opts.TensorRT, e.opts.CUDA, files))
			case provider.CUDA:
				err = appendCUDA(so, cudaProviderOptions(e.opts.CUDA))
			}
			if err != nil {
				err = fmt.Errorf("enable %s for %s: %w", p, path, err)
				return
			}
		}
	}))
	if err != nil {
		return nil, err
	}
	var done func()
	if build {
		e.log.Info("building the TensorRT engine; the first build takes minutes on a Jetson, later starts load it from the cache",
			"model", path, "cache", files.engineDir, "fp16", e.opts.TensorRT.FP16, "int8", e.opts.TensorRT.INT8,
			"max_workspace_size", e.opts.TensorRT.MaxWorkspaceSize, "max_batch", e.opts.MaxBatch)
		done = e.progress("building the TensorRT engine", true, "model", path)
	}
	var s *ort.DynamicAdvancedSession
	e.restored("creating a session for "+path, sigguard.Guard(func() {
		s, err = ort.NewDynamicAdvancedSession(path, inputs, outputs, so)
	}))
	if done != nil {
		done()
	}
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return s, nil
}

// prepareTensorRT makes the model's cache folders, keyed by its sha256, the
// runtime and the GPU, and returns them with the path to open: the
// EP-context model when one was written by an earlier start, else path.
// A cache that cannot be made is logged, and TensorRT runs without it.
func (e *Engine) prepareTensorRT(path string, ins []ort.InputOutputInfo) (trtFiles, string) {
	t := e.opts.TensorRT
	var files trtFiles
	if lo, hi, ok := batchProfile(ins, e.opts.MaxBatch); ok {
		files.profile, files.maxShape = lo, hi
	}
	if t.CacheDir == "" || !t.EngineCache && !t.TimingCache {
		return files, path
	}
	sum, err := spec.FileSHA256(path)
	if err != nil {
		e.log.Warn("cannot hash the model for the TensorRT cache; building without a cache", "model", path, "err", err)
		return files, path
	}
	if t.EngineCache {
		dir := e.trtKey.engineDir(t.CacheDir, sum)
		note := cacheNote{Model: path, SHA256: sum, ORT: e.trtKey.ORT, TensorRT: e.trtKey.TensorRT, GPU: e.trtKey.GPU, DeviceID: e.trtKey.DeviceID}
		if err := errors.Join(os.MkdirAll(dir, 0o755), writeCacheNote(dir, note)); err != nil {
			e.log.Warn("cannot make the TensorRT engine cache (model.tensorrt.cache_dir); building without it", "dir", dir, "err", err)
		} else {
			files.engineDir = dir
		}
	}
	if t.TimingCache {
		dir := e.trtKey.timingDir(t.CacheDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			e.log.Warn("cannot make the TensorRT timing cache (model.tensorrt.cache_dir); building without it", "dir", dir, "err", err)
		} else {
			files.timingDir = dir
		}
	}
	if t.EPContext && files.engineDir != "" {
		ctx := filepath.Join(files.engineDir, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))+"_ctx.onnx")
		if _, err := os.Stat(ctx); err == nil {
			e.log.Info("TensorRT EP-context model found; loading it instead of building", "model", path, "context_model", ctx)
			return files, ctx
		}
		files.context = ctx
	}
	if hasEngine(files.engineDir) {
		e.log.Info("TensorRT engine cache found for this model, runtime and GPU; loading it", "model", path, "cache", files.engineDir)
	}
	return files, path
}

// progress logs, while something slow runs, that it still runs: after 10
// seconds and then every 30. The returned done ends it and, when anything
// was logged or always is true, logs how long it took.
func (e *Engine) progress(what string, always bool, args ...any) (done func()) {
	start := time.Now()
	stop, logged := make(chan struct{}), make(chan bool)
	go func() {
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		said := false
		for {
			select {
			case <-stop:
				logged <- said
				return
			case <-t.C:
				said = true
				e.log.Info("still "+what, append(slices.Clone(args), "elapsed", time.Since(start).Round(time.Second))...)
				t.Reset(30 * time.Second)
			}
		}
	}()
	return func() {
		close(stop)
		if <-logged || always {
			e.log.Info(what+": done", append(slices.Clone(args), "took", time.Since(start).Round(time.Millisecond))...)
		}
	}
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
