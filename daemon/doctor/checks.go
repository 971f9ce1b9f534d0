package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	ort "github.com/yalue/onnxruntime_go"
	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/gst"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/bench"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/mqttc/brokerurl"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/provider"
	"github.com/deepfaked/deepfaked/internal/sysinfo"
	"github.com/deepfaked/deepfaked/setup"
)

// checkCPU says whether INT8 pays on this CPU: ONNX Runtime's INT8 kernels
// are fast with VNNI (x86-64) or the dot-product instructions (arm64); without
// them an INT8 backbone runs little faster than FP32, or slower.
func checkCPU(c sysinfo.CPU) Result {
	found := fmt.Sprintf("%s, %d core(s)", c.Arch, c.Cores)
	if c.Model != "" {
		found += ", " + c.Model
	}
	const compare = "INT8 gains little here: compare the FP32 and INT8 backbones with `deepfaked bench --backbone fp32.onnx --backbone int8.onnx` and keep the faster"
	switch c.Arch {
	case "amd64":
		switch {
		case c.Has("avx512_vnni"):
			return okResult("cpu", "%s, AVX-512 VNNI: INT8 is fast", found)
		case c.Has("avx_vnni"):
			return okResult("cpu", "%s, AVX-VNNI: INT8 is fast", found)
		case c.Has("avx2"):
			return warnResult("cpu", found+", AVX2 without VNNI (AVX-512 VNNI / AVX-VNNI)", compare)
		default:
			return warnResult("cpu", found+", no AVX2: INT8 and FP32 both slow",
				"expect a few faces/s; lower cameras[].fps, or use a machine with AVX2 and VNNI")
		}
	case "arm64":
		if c.Has("asimddp") {
			return okResult("cpu", "%s, dot product (asimddp): INT8 is fast", found)
		}
		return warnResult("cpu", found+", no dot product (asimddp; e.g. Cortex-A72 of the Raspberry Pi 4)", compare)
	}
	return warnResult("cpu", found+": not a tested architecture (amd64, arm64)", "expect ONNX Runtime's generic kernels; check the speed with `deepfaked bench`")
}

// checkRuntime loads the ONNX Runtime library through package engine (as
// run does) asking for every provider, so it reports the providers the
// library really has, whatever the config lists. It returns them too.
func checkRuntime(lib string, cfg *config.Config) (Result, []string) {
	var cuda engine.CUDAOptions
	if cfg != nil {
		cuda = setup.EngineOptions(cfg, nil).CUDA
	}
	eng, err := engine.New(engine.Options{Library: lib, Providers: provider.Known(), CUDA: cuda,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return errResult("runtime", oneLine(err.Error()),
			"run `make deps`, or point model.runtime (or DEEPFAKED_ORT_LIB) at libonnxruntime.so.1"), nil
	}
	defer eng.Close()
	have := eng.Providers()
	// The environment is loaded while eng lives: the version is asked now.
	return okResult("runtime", "ONNX Runtime %s (%s), providers: %s", ort.GetVersion(), lib, strings.Join(have, ", ")), have
}

func hasGPUProvider(ps []string) bool {
	return slices.ContainsFunc(ps, func(p string) bool { return p == provider.TensorRT || p == provider.CUDA })
}

// checkGPU joins the device nodes with the providers: a GPU that the
// runtime or the config does not use is a warning, so is a GPU provider
// configured without a GPU; no GPU at all is fine (CPU inference).
func checkGPU(g sysinfo.GPU, have, configured []string) Result {
	var found []string
	if g.Jetson != "" {
		found = append(found, "Jetson ("+g.Jetson+")")
	}
	if len(g.NVIDIA) > 0 {
		found = append(found, strings.Join(g.NVIDIA, " "))
	}
	if len(g.Render) > 0 {
		found = append(found, strings.Join(g.Render, " "))
	}
	nvidia := g.Jetson != "" || len(g.NVIDIA) > 0
	usable := slices.DeleteFunc(slices.Clone(configured), func(p string) bool { return !slices.Contains(have, p) })
	switch {
	case nvidia && !hasGPUProvider(have):
		return warnResult("gpu", strings.Join(found, "; ")+", but this ONNX Runtime has no CUDA or TensorRT provider",
			"install a GPU build of ONNX Runtime (docs/gpu.md) and point model.runtime at it")
	case nvidia && configured == nil: // no config: what the runtime could use
		return okResult("gpu", "%s, the runtime has %s", strings.Join(found, "; "), strings.Join(have, ", "))
	case nvidia && !hasGPUProvider(usable):
		return warnResult("gpu", strings.Join(found, "; ")+fmt.Sprintf(", the runtime has %s, but model.providers (%s) uses none",
			strings.Join(have, ", "), strings.Join(configured, ", ")), "set model.providers: [tensorrt, cuda, cpu]")
	case nvidia:
		return okResult("gpu", "%s, used through %s", strings.Join(found, "; "), strings.Join(usable, ", "))
	case hasGPUProvider(configured):
		detail := "no NVIDIA GPU"
		if len(found) > 0 {
			detail += " (" + strings.Join(found, "; ") + ")"
		}
		return warnResult("gpu", detail+", but model.providers lists "+strings.Join(configured, ", ")+"; run uses the CPU",
			"set model.providers: [cpu], or check the NVIDIA driver (nvidia-smi)")
	case len(found) > 0:
		return okResult("gpu", "%s (a DRM GPU; the model's providers do not use it); the model runs on the CPU", strings.Join(found, "; "))
	}
	return okResult("gpu", "none; the model runs on the CPU")
}

// checkOpenCV reads the video back-ends from OpenCV's build information:
// FFmpeg opens files and RTSP/HTTP streams, V4L2 USB cameras, GStreamer the
// gst: pipelines (Jetson CSI cameras).
func checkOpenCV(cfg *config.Config) Result {
	return openCVResult(gocv.OpenCVVersion(), sysinfo.VideoBackends(sysinfo.OpenCVBuildInformation()), cfg)
}

func openCVResult(version string, backends []sysinfo.VideoBackend, cfg *config.Config) Result {
	on := func(name string) bool {
		return slices.ContainsFunc(backends, func(b sysinfo.VideoBackend) bool {
			return b.Enabled && strings.Contains(strings.ToLower(b.Name), name)
		})
	}
	var have []string
	for _, b := range backends {
		if b.Enabled {
			have = append(have, b.Name)
		}
	}
	detail := fmt.Sprintf("OpenCV %s, video back-ends: %s", version, strings.Join(have, ", "))
	if len(have) == 0 {
		detail = fmt.Sprintf("OpenCV %s, no video back-ends", version)
	}
	if cfg != nil && !on("gstreamer") {
		for _, c := range cfg.Cameras {
			if src, err := source.Parse(c.Source); err == nil && src.Kind == source.GStreamer {
				return errResult("opencv", detail+"; camera "+c.Name+" is a gst: pipeline but OpenCV has no GStreamer",
					"install an OpenCV built with GStreamer (JetPack's is), or use a /dev/video or rtsp:// source")
			}
		}
	}
	var missing []string
	if !on("ffmpeg") {
		missing = append(missing, "FFmpeg (video files, rtsp://, http://)")
	}
	if !on("v4l") {
		missing = append(missing, "V4L2 (/dev/video cameras)")
	}
	if len(missing) > 0 {
		return warnResult("opencv", detail+"; missing "+strings.Join(missing, ", "),
			"install Debian's libopencv-videoio406 (built with FFmpeg, GStreamer and V4L2)")
	}
	return okResult("opencv", "%s", detail)
}

// checkDecoders says which decoders GStreamer offers here (capture.decoder):
// the board's hardware decoders that auto would take, and the software path
// with the packages it needs when they are missing.
func checkDecoders(probe gst.Probe) Result {
	var hw, missing []string
	for _, h := range gst.Hardwares() {
		if ok, err := probe.Has(h.Element); err != nil {
			return warnResult("decoders", "GStreamer does not start: "+err.Error(), "install gstreamer1.0-plugins-base, or set capture.decoder: ffmpeg")
		} else if ok {
			hw = append(hw, fmt.Sprintf("%s (%s)", h.Element, h.Board))
		}
	}
	for _, e := range []struct{ element, pkg string }{
		{"parsebin", "gstreamer1.0-plugins-base"}, {"avdec_h264", "gstreamer1.0-libav"}, {"rtspsrc", "gstreamer1.0-plugins-good"}, {"v4l2src", "gstreamer1.0-plugins-good"},
	} {
		if ok, _ := probe.Has(e.element); !ok {
			missing = append(missing, fmt.Sprintf("%s (%s)", e.element, e.pkg))
		}
	}
	detail := "hardware: none, auto decodes with FFmpeg"
	if len(hw) > 0 {
		detail = "hardware: " + strings.Join(hw, ", ") + ", which auto takes for their codecs"
	}
	if len(missing) > 0 {
		return warnResult("decoders", detail+"; GStreamer's software path (capture.decoder: gstreamer) lacks "+strings.Join(missing, ", "),
			"apt install the packages named")
	}
	return okResult("decoders", "%s; GStreamer's software decoders (capture.decoder: gstreamer) are here", detail)
}

// checkVideoDevices lists /dev/video* with VIDIOC_QUERYCAP and, for a
// capture node, the default format OpenCV opens it with. A node the daemon
// is streaming from answers the ioctl but does not open: "busy" is said, not
// judged.
func checkVideoDevices(root string) []Result {
	devs, errs := sysinfo.VideoDevices(root)
	var out []Result
	for _, d := range devs {
		name := "device " + d.Path
		what := strings.TrimSpace(d.Card + " (" + d.Driver + ", " + d.Bus + ")")
		if !d.Capture {
			out = append(out, okResult(name, "%s: no video capture (a metadata or output node)", what))
			continue
		}
		out = append(out, okResult(name, "%s: %s", what, openCVFormat(d.Path)))
	}
	for _, err := range errs {
		out = append(out, warnResult("device", oneLine(err.Error()),
			"add the user to the video group (the service's user is), or check the device"))
	}
	if len(out) == 0 {
		out = append(out, warnResult("device", "no /dev/video* camera",
			"plug in a USB camera (or a CSI one: gst:nvarguscamerasrc on a Jetson); network and file sources need none"))
	}
	return out
}

// openCVFormat opens a V4L2 node as run would and reads the size and rate
// it starts with: what the camera delivers without cameras[].width/height.
func openCVFormat(path string) string {
	vc, err := gocv.OpenVideoCaptureWithAPI(path, gocv.VideoCaptureV4L2)
	if err != nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		return "does not open now (in use by a running daemon?)"
	}
	defer vc.Close()
	return fmt.Sprintf("opens at %.0fx%.0f, %.0f fps", vc.Get(gocv.VideoCaptureFrameWidth),
		vc.Get(gocv.VideoCaptureFrameHeight), vc.Get(gocv.VideoCaptureFPS))
}

// checkConfig is check-config's check without its camera opens (checkCameras
// gives each camera a line): the files the config names, and everything run
// loads (models with a trial face, detector, broker and web options).
func checkConfig(cfg *config.Config, log *slog.Logger) Result {
	if err := daemon.CheckFiles(cfg); err != nil {
		return errResult("config", oneLine(err.Error()), "correct or create the file it names")
	}
	if err := daemon.CheckComponents(cfg, log); err != nil {
		return errResult("config", oneLine(err.Error()), "correct what it names; `deepfaked check-config` says the same")
	}
	return okResult("config", "%s: valid (device %s, %d camera(s))", cfg.Path, cfg.DeviceID, len(cfg.Cameras))
}

// checkCameras is check-config's camera check, a line per camera: each
// opened once (daemon.ProbeCameras); one that gives no frame is a warning,
// as run retries it while the other cameras run.
func checkCameras(cfg *config.Config) []Result {
	probes, err := daemon.ProbeCameras(cfg)
	if err != nil {
		return []Result{errResult("cameras", oneLine(err.Error()), "correct capture.io_timeout")}
	}
	out := make([]Result, 0, len(probes))
	for _, p := range probes {
		name := "camera " + p.Name
		switch {
		case p.Err == nil:
			out = append(out, okResult(name, "%s opens, decoded by %s", p.Shown, p.Decoder))
		case errors.Is(p.Err, capture.ErrMissingPlugin):
			out = append(out, errResult(name, oneLine(p.Err.Error()),
				"install the package named (apt install ...), or set cameras[].decoder: ffmpeg"))
		case p.Live:
			out = append(out, warnResult(name, p.Shown+" gives no frames now: "+oneLine(p.Err.Error()),
				"plug it in or check the URL; run retries it meanwhile"))
		default:
			out = append(out, warnResult(name, p.Shown+" gives no frames now: "+oneLine(p.Err.Error()),
				"correct cameras[].source, or let the file be written; run retries it meanwhile"))
		}
	}
	return out
}

// checkModels loads backbone and head as run does (setup.Classifier, with
// its trial face) and times one warm face, from which checkTiming sizes its run.
func checkModels(cfg *config.Config, log *slog.Logger) (Result, time.Duration) {
	eng, err := setup.Engine(cfg, log)
	if err != nil {
		return errResult("models", oneLine(err.Error()), "see the runtime line"), 0
	}
	defer eng.Close()
	clf, err := setup.Classifier(cfg, eng)
	if err != nil {
		return errResult("models", oneLine(err.Error()), "run `make models`, or correct model.backbone / model.head"), 0
	}
	defer clf.Close()
	s := clf.InputSize()
	in, p := make([]float32, 3*s*s), make([]float32, 1)
	// The first run warms up; the next ones, for up to 200 ms, size the
	// timing run (one run alone is too noisy on a busy board).
	var (
		start time.Time
		runs  int
	)
	for runs = -1; runs < 50 && (runs <= 0 || time.Since(start) < 200*time.Millisecond); runs++ {
		if runs == 0 {
			start = time.Now()
		}
		if _, err := clf.Classify(in, 1, p); err != nil {
			return errResult("models", oneLine(err.Error()), "re-export the model (`make models`)"), 0
		}
	}
	perFace := time.Since(start) / time.Duration(runs)
	return okResult("models", "backbone %s (%s, %s), head %s, %dx%d input, on %s",
		clf.BackboneID(), filepath.Base(cfg.Model.Backbone), clf.Precision(), clf.HeadID(), s, s,
		strings.Join(eng.Providers(), ", ")), perFace
}

// brokerTimeout bounds each of the broker check's steps: a board on a
// working network answers in milliseconds.
const brokerTimeout = 3 * time.Second

// checkBroker connects to the broker as a client of its own (never the
// daemon's client id, which would throw a running daemon off): TCP first,
// for a clear reason when nothing answers, then an MQTT session with the
// config's credentials and TLS, subscribing to the status topic.
func checkBroker(ctx context.Context, cfg *config.Config) Result {
	m := cfg.MQTT
	if m.Broker == config.EmbeddedBroker {
		l, err := net.Listen("tcp", m.Listen)
		if err != nil {
			return warnResult("broker", "embedded, on "+m.Listen+", which is taken: "+oneLine(err.Error()),
				"stop what listens there (a running deepfaked is fine), or change mqtt.listen")
		}
		l.Close()
		return okResult("broker", "embedded, on %s (free)", m.Listen)
	}
	o, err := setup.MQTTOptions(cfg)
	if err != nil {
		return errResult("broker", oneLine(err.Error()), "correct mqtt.password_file / mqtt.tls")
	}
	u, err := brokerurl.Parse(m.Broker)
	if err != nil {
		return errResult("broker", oneLine(err.Error()), "correct mqtt.broker")
	}
	start := time.Now()
	d := net.Dialer{Timeout: brokerTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return errResult("broker", fmt.Sprintf("%s: %s", u.Redacted(), oneLine(err.Error())),
			"start the broker (systemctl start mosquitto), open the firewall, or correct mqtt.broker")
	}
	conn.Close()
	o.ClientID, o.StatusTopic, o.Subscriptions, o.Announce = "", "", nil, nil
	o.ConnectTimeout = brokerTimeout
	subscribed := make(chan struct{})
	ctx, cancel := context.WithTimeout(ctx, brokerTimeout)
	defer cancel()
	o.OnSubscribed = func() {
		select {
		case <-subscribed:
		default:
			close(subscribed)
			cancel()
		}
	}
	err = mqttc.Subscribe(ctx, o, []string{contract.Topics{Prefix: m.TopicPrefix}.Status()}, func(string, []byte) {})
	select {
	case <-subscribed:
		return okResult("broker", "%s: MQTT session in %v", u.Redacted(), time.Since(start).Round(time.Millisecond))
	default:
	}
	const sessionFix = "check mqtt.username and its password, mqtt.tls, and the broker's log"
	var refused *mqttc.NoSessionError
	switch {
	case errors.As(err, &refused):
		// The broker's own answer: "not Authorized", a TLS failure, ...
		return errResult("broker", fmt.Sprintf("%s: TCP connects, but no MQTT session in %v: %s",
			u.Redacted(), brokerTimeout, oneLine(refused.Reason.Error())), sessionFix)
	case err != nil:
		return warnResult("broker", u.Redacted()+": connects, but "+oneLine(err.Error()),
			"publishing works; for `deepfaked watch` and MQTT commands let this user read <prefix>/# in the broker's ACL")
	}
	return errResult("broker", fmt.Sprintf("%s: TCP connects, but no MQTT session in %v", u.Redacted(), brokerTimeout), sessionFix)
}

// checkStateDir writes and removes a file where the daemon keeps its
// outbox and snapshots. A directory not there yet is fine if its nearest
// existing parent is writable: run creates it.
func checkStateDir(dir string) Result {
	as := ""
	if os.Geteuid() == 0 {
		as = " (checked as root; the service runs as its own user)"
	}
	probe := dir
	for {
		fi, err := os.Stat(probe)
		if err == nil {
			if !fi.IsDir() {
				return errResult("state_dir", fmt.Sprintf("%s: %s is not a directory", dir, probe), "correct state_dir")
			}
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	f, err := os.CreateTemp(probe, ".doctor-*")
	if err != nil {
		return errResult("state_dir", fmt.Sprintf("%s: not writable: %s", dir, oneLine(err.Error())),
			"chown it to the service's user (systemd's StateDirectory= does), or correct state_dir")
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return warnResult("state_dir", fmt.Sprintf("%s: wrote %s but cannot remove it: %s", dir, name, oneLine(err.Error())), "remove it by hand")
	}
	if probe != dir {
		return okResult("state_dir", "%s: not there yet; run creates it in %s, which is writable%s", dir, probe, as)
	}
	return okResult("state_dir", "%s: writable%s", dir, as)
}

// minFacesPerS is one face at a camera's usual analysis rate: slower than
// this and a live camera's frames are dropped as stale.
const minFacesPerS = 5

// checkTiming runs bench.Model at batch 1 for about d,
// sized by one face's time from checkModels.
func checkTiming(cfg *config.Config, d, perFace time.Duration, log *slog.Logger) Result {
	n := 5
	if perFace > 0 {
		n = max(n, min(100000, int(d/perFace)))
	}
	res, err := bench.Model(cfg, nil, []int{1}, n, log)
	if err != nil || len(res) == 0 {
		return errResult("timing", fmt.Sprintf("model timing failed: %v", err), "see the models line")
	}
	r := res[0]
	detail := fmt.Sprintf("%.1f faces/s, %.2f ms per face (batch 1, %d runs, %s)", r.FacesPerS, r.MSPerFace, n, filepath.Base(r.Backbone))
	if r.FacesPerS < minFacesPerS {
		return warnResult("timing", detail, "lower cameras[].fps, use a GPU provider, or compare FP32 and INT8 with `deepfaked bench`")
	}
	return okResult("timing", "%s", detail)
}
