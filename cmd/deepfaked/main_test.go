package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon/bench"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// binDir holds the binary built for the tests; TestMain makes and removes it.
var binDir string

// buildBinary compiles deepfaked once per test binary run.
var buildBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "deepfaked")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deepfaked-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func deepfaked(t *testing.T) string {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// subscriber records every message under prefix/# on a real broker.
type subscriber struct {
	mu   sync.Mutex
	msgs []message
	c    mqtt.Client
}

type message struct {
	topic    string
	payload  []byte
	retained bool
}

func subscribe(t *testing.T, broker, filter string) *subscriber {
	t.Helper()
	s := &subscriber{}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID(fmt.Sprintf("test-%d", time.Now().UnixNano()))
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test subscriber connect %s: %v", broker, tok.Error())
	}
	tok := s.c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.msgs = append(s.msgs, message{m.Topic(), slices.Clone(m.Payload()), m.Retained()})
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

func (s *subscriber) snapshot() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

func (s *subscriber) waitFor(t *testing.T, what string, timeout time.Duration, ok func([]message) bool) []message {
	t.Helper()
	var m []message
	if !poll.Until(timeout, func() bool { m = s.snapshot(); return ok(m) }) {
		t.Fatalf("timed out after %v waiting for %s; got %d messages", timeout, what, len(m))
	}
	return m
}

func topicCount(msgs []message, topic string) int {
	n := 0
	for _, m := range msgs {
		if m.topic == topic {
			n++
		}
	}
	return n
}

func statuses(msgs []message, topic string) []string {
	var out []string
	for _, m := range msgs {
		if m.topic == topic {
			out = append(out, string(m.payload))
		}
	}
	return out
}

func writeConfig(t *testing.T, broker, source string, fps float64, loop bool) string {
	t.Helper()
	backbone, head := testenv.Models(t)
	cfg := fmt.Sprintf(`device_id: it-dev
log_level: debug
state_dir: %s
mqtt:
  broker: %s
model:
  backbone: %s
  head: %s
  runtime: %s
faces:
  detector: haar
cameras:
  - name: cam1
    source: %s
    fps: %v
    loop: %v
`, t.TempDir(), broker, backbone, head, testenv.ORTLibrary(t), source, fps, loop)
	p := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sampledFrames decodes the whole file and returns the indices that fps
// sampling analyses: one every file-fps/fps frames, by video time.
func sampledFrames(t *testing.T, path string, fps float64) []int64 {
	t.Helper()
	vc, err := gocv.VideoCaptureFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Close()
	step := vc.Get(gocv.VideoCaptureFPS) / fps
	m := gocv.NewMat()
	defer m.Close()
	n := 0
	for vc.Read(&m) && !m.Empty() {
		n++
	}
	var out []int64
	for k := 0.0; ; k++ {
		i := int64(math.Round(k * step))
		if i >= int64(n) {
			return out
		}
		out = append(out, i)
	}
}

func fileID(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}

var hex12 = regexp.MustCompile(`^[0-9a-f]{12}$`)

// checkVerdict checks one payload against docs/verdict.schema.json.
func checkVerdict(t *testing.T, payload []byte, backboneID, headID string) map[string]any {
	t.Helper()
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("verdict is not JSON: %v: %s", err, payload)
	}
	for _, k := range []string{"device", "camera", "frame", "ts", "label", "p_fake", "threshold", "faces", "model", "latency_ms"} {
		if _, ok := v[k]; !ok {
			t.Fatalf("verdict lacks %q: %s", k, payload)
		}
	}
	if v["device"] != "it-dev" || v["camera"] != "cam1" {
		t.Errorf("device/camera = %v/%v", v["device"], v["camera"])
	}
	if _, err := time.Parse(time.RFC3339Nano, v["ts"].(string)); err != nil || !strings.Contains(v["ts"].(string), ".") {
		t.Errorf("ts %q is not RFC 3339 with fractional seconds: %v", v["ts"], err)
	}
	num := func(k string, m map[string]any) float64 {
		f, err := m[k].(json.Number).Float64()
		if err != nil {
			t.Fatalf("%s is not a number in %s", k, payload)
		}
		return f
	}
	p, thr := num("p_fake", v), num("threshold", v)
	if p < 0 || p > 1 || thr <= 0 || thr >= 1 || num("latency_ms", v) < 0 {
		t.Errorf("p_fake %v, threshold %v, latency %v out of range", p, thr, v["latency_ms"])
	}
	faces := v["faces"].([]any)
	switch label := v["label"]; {
	case len(faces) == 0:
		if label != "none" || p != 0 {
			t.Errorf("no faces: label %v p_fake %v, want none and 0", label, p)
		}
	default:
		maxP := 0.0
		for _, f := range faces {
			fm := f.(map[string]any)
			box := fm["box"].([]any)
			if len(box) != 4 {
				t.Fatalf("box %v is not [x,y,w,h]", box)
			}
			fp := num("p_fake", fm)
			maxP = max(maxP, fp)
			if want := map[bool]string{true: "fake", false: "real"}[fp >= thr]; fm["label"] != want {
				t.Errorf("face label %v with p_fake %v threshold %v", fm["label"], fp, thr)
			}
		}
		if p != maxP {
			t.Errorf("p_fake %v is not the max over faces %v", p, maxP)
		}
		if want := map[bool]string{true: "fake", false: "real"}[p >= thr]; label != want {
			t.Errorf("label %v with p_fake %v threshold %v", label, p, thr)
		}
	}
	model := v["model"].(map[string]any)
	if model["backbone"] != backboneID || model["head"] != headID || !hex12.MatchString(model["head"].(string)) {
		t.Errorf("model %v, want backbone %s head %s", model, backboneID, headID)
	}
	return v
}

// TestRunFileToEnd: every analysed frame of a file (sampled at 5 fps of video
// time) gets exactly one verdict, in order, and the daemon exits 0 at end of
// file with online then offline on status. (fps 0, every frame, is covered by
// TestRunSIGTERM.)
func TestRunFileToEnd(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	clip := capturetest.Clip(t)
	frames := sampledFrames(t, clip, 5)
	want := len(frames)
	sub := subscribe(t, broker, "deepfaked/it-dev/#")
	cfg := writeConfig(t, broker, clip, 5, false)

	cmd := exec.Command(deepfaked(t), "run", "--config", cfg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("deepfaked run: %v\n%s", err, stderr.String())
	}
	const vt = "deepfaked/it-dev/cam1/verdict"
	msgs := sub.waitFor(t, "offline status", 10*time.Second, func(m []message) bool {
		s := statuses(m, "deepfaked/it-dev/status")
		return len(s) > 0 && s[len(s)-1] == "offline"
	})
	if got := topicCount(msgs, vt); got != want {
		t.Fatalf("%d verdicts for %d frames", got, want)
	}
	backbone, head := testenv.Models(t)
	bID, hID := fileID(t, backbone), fileID(t, head)
	frame, withFaces := 0, 0
	for _, m := range msgs {
		if m.topic != vt {
			continue
		}
		v := checkVerdict(t, m.payload, bID, hID)
		if got, _ := v["frame"].(json.Number).Int64(); got != frames[frame] {
			t.Fatalf("verdict %d has frame %d, want %d", frame, got, frames[frame])
		}
		if len(v["faces"].([]any)) > 0 {
			withFaces++
		}
		frame++
	}
	if withFaces < want/2 {
		t.Errorf("faces found in only %d of %d frames of a clip with a face", withFaces, want)
	}
	if s := statuses(msgs, "deepfaked/it-dev/status"); s[0] != "online" {
		t.Errorf("status sequence %v: want online first", s)
	}
}

// TestRunSIGTERM: a looping source runs until SIGTERM; then in-flight verdicts
// are published, status goes offline (retained) and the exit status is 0.
func TestRunSIGTERM(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	sub := subscribe(t, broker, "deepfaked/it-dev/#")
	cmd := exec.Command(deepfaked(t), "run", "--config", writeConfig(t, broker, capturetest.Clip(t), 0, true))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	sub.waitFor(t, "online and 5 verdicts", 60*time.Second, func(m []message) bool {
		select {
		case err := <-done:
			t.Fatalf("deepfaked exited before SIGTERM: %v\n%s", err, stderr.String())
		default:
		}
		return slices.Contains(statuses(m, "deepfaked/it-dev/status"), "online") && topicCount(m, "deepfaked/it-dev/cam1/verdict") >= 5
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("deepfaked did not exit within 30s of SIGTERM\n%s", stderr.String())
	}
	msgs := sub.waitFor(t, "offline", 10*time.Second, func(m []message) bool {
		s := statuses(m, "deepfaked/it-dev/status")
		return s[len(s)-1] == "offline"
	})
	// Frames are consecutive: nothing in flight was dropped at shutdown.
	frame := int64(0)
	for _, m := range msgs {
		if m.topic != "deepfaked/it-dev/cam1/verdict" {
			continue
		}
		var v struct{ Frame int64 }
		if err := json.Unmarshal(m.payload, &v); err != nil {
			t.Fatal(err)
		}
		if v.Frame != frame {
			t.Fatalf("frame %d after %d: a verdict was lost", v.Frame, frame-1)
		}
		frame++
	}
	// A late subscriber sees the retained offline.
	late := subscribe(t, broker, "deepfaked/it-dev/status")
	got := late.waitFor(t, "retained status", 10*time.Second, func(m []message) bool { return len(m) > 0 })
	if string(got[0].payload) != "offline" || !got[0].retained {
		t.Errorf("retained status %q (retained=%v), want offline", got[0].payload, got[0].retained)
	}
}

func TestCheckConfig(t *testing.T) {
	testenv.Long(t)
	backbone, head := testenv.Models(t)
	garbage := filepath.Join(t.TempDir(), "garbage.bin")
	if err := os.WriteFile(garbage, []byte("not a model, not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := fmt.Sprintf("device_id: edge-01\nmqtt:\n  broker: tcp://127.0.0.1:1883\nmodel:\n  backbone: %s\n  head: %s\n  runtime: %s\nfaces:\n  detector: haar\ncameras:\n  - name: cam1\n    source: /dev/video0\n    fps: 0\n", backbone, head, testenv.ORTLibrary(t))
	empty := filepath.Join(t.TempDir(), "recording.mp4")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The page's password file and certificate are read as run reads them.
	readable := filepath.Join(t.TempDir(), "web-password")
	if err := os.WriteFile(readable, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	web := func(lines string) string { return good + "web:\n  enabled: true\n" + lines }
	tests := []struct {
		name     string
		cfg      string
		wantCode int
		want     []string
	}{
		// A camera that gives no frames is a warning: run retries it while
		// the other cameras run (TestBadCameraOthersRun).
		{"valid", good, 0, []string{"ok", "warning: cameras[0] (cam1) gives no frames now; run retries it"}},
		{"camera file that is not a video", strings.Replace(good, "/dev/video0", garbage, 1), 0, []string{"ok", "warning: cameras[0] (cam1) gives no frames now; run retries it", garbage}},
		{"empty camera file", strings.Replace(good, "/dev/video0", empty, 1), 0, []string{"ok", "warning: cameras[0] (cam1) gives no frames now; run retries it", empty, "is empty"}},
		{"unknown key", strings.Replace(good, "  broker:", "  brokr:", 1), 2, []string{"brokr"}},
		{"bad value", strings.Replace(good, "fps: 0", "fps: -3", 1), 2, []string{"fps", "-3"}},
		{"bad provider", strings.Replace(good, "  head:", "  providers: [npu]\n  head:", 1), 2, []string{"providers", "npu"}},
		{"missing model file", strings.Replace(good, head, "/nonexistent/head.onnx", 1), 2, []string{"/nonexistent/head.onnx"}},
		// check-config loads the models as run does (and runs a trial face).
		{"corrupt model", strings.Replace(good, head, garbage, 1), 2, []string{garbage}},
		{"head that does not fit", strings.Replace(good, head, backbone, 1), 2, []string{backbone}},
		{"CA that is not PEM", strings.Replace(good, "tcp://127.0.0.1:1883", "ssl://127.0.0.1:8883\n  tls:\n    ca: "+garbage, 1), 2, []string{"mqtt.tls", garbage}},
		{"web password file readable by all", web("  password_file: " + readable + "\n"), 2, []string{"web.password_file", readable, "readable by all users"}},
		{"web certificate that is not PEM", web("  tls:\n    cert: " + garbage + "\n    key: " + garbage + "\n"), 2, []string{"web.tls"}},
		{"web off loopback without a password", web("  listen: 0.0.0.0:9465\n"), 2, []string{"web.listen", "web.password_file"}},
		// The npm runtime is a CPU build: the GPU providers are warned about, not refused.
		{"gpu providers the runtime lacks", strings.Replace(good, "  head:", "  providers: [tensorrt, cuda, cpu]\n  head:", 1), 0,
			[]string{"ok", "warning: model.providers: this ONNX Runtime has no tensorrt provider; run skips it and uses cpu",
				"warning: model.providers: this ONNX Runtime has no cuda provider"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(deepfaked(t), "check-config", "--config", p).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestCheckConfigAndRunAgree: check-config and run make the same file checks,
// so a missing file gets the same message from both, and run reports it
// before starting anything.
func TestCheckConfigAndRunAgree(t *testing.T) {
	testenv.Long(t)
	backbone, head := testenv.Models(t)
	clip := capturetest.Clip(t)

	good := fmt.Sprintf("device_id: edge-01\nmqtt:\n  broker: embedded\n  listen: 127.0.0.1:0\nmodel:\n  backbone: %s\n  head: %s\n  runtime: %s\n"+
		"faces:\n  detector: haar\ncameras:\n  - name: cam1\n    source: %s\n", backbone, head, testenv.ORTLibrary(t), clip)
	for _, tc := range []struct{ name, from, to, key, file string }{
		{"missing head", head, "/nonexistent/head.onnx", "model.head", "/nonexistent/head.onnx"},
		{"missing camera file", clip, "/nonexistent/clip.mp4", "cameras[0].source (cam1)", "/nonexistent/clip.mp4"},
		{"missing password file", "  listen:", "  username: u\n  password_file: /nonexistent/pw\n  listen:", "mqtt.password_file", "/nonexistent/pw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(strings.Replace(good, tc.from, tc.to, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			var msgs []string
			for _, sub := range []string{"check-config", "run"} {
				var stderr bytes.Buffer
				cmd := exec.Command(deepfaked(t), sub, "--config", p)
				cmd.Stderr = &stderr
				if err := cmd.Run(); err == nil {
					t.Fatalf("%s succeeded with %s", sub, tc.name)
				}
				lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
				msgs = append(msgs, lines[len(lines)-1])
			}
			if msgs[0] != msgs[1] {
				t.Fatalf("check-config and run disagree:\n check-config: %s\n run:          %s", msgs[0], msgs[1])
			}
			if !strings.Contains(msgs[0], tc.key) || !strings.Contains(msgs[0], tc.file) || !strings.Contains(msgs[0], p) {
				t.Errorf("message does not name the config, %s and %s: %s", tc.key, tc.file, msgs[0])
			}
		})
	}
}

// shortClip writes a 20-frame clip with a face.
func shortClip(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.avi")
	if err := capturetest.Write(p, 20, 25); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRunWatch: `run --watch` prints, from a subscription of its own, the
// retained online before any verdict, one verdict per frame and, last,
// offline, even with the embedded broker that stops when the daemon does.
func TestRunWatch(t *testing.T) {
	testenv.Long(t)
	cfg := writeConfig(t, "embedded\n  listen: 127.0.0.1:0", shortClip(t), 0, false)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(deepfaked(t), "run", "--watch", "--config", cfg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run --watch: %v\n%s", err, stderr.String())
	}
	// A new subscriber gets the retained messages (online, stats) in the
	// broker's order, not the order they were published in, so online need
	// only come before the first verdict.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	verdicts, onlineFirst := 0, false
	for _, l := range lines {
		switch {
		case l == "deepfaked/it-dev/status online" && verdicts == 0:
			onlineFirst = true
		case strings.HasPrefix(l, "deepfaked/it-dev/cam1/verdict {"):
			verdicts++
		}
	}
	if !onlineFirst || lines[len(lines)-1] != "deepfaked/it-dev/status offline" || verdicts != 20 {
		t.Fatalf("want online before the verdicts, 20 verdicts, offline last; got %d verdicts in:\n%s", verdicts, stdout.String())
	}
}

// TestBench: bench runs the daemon on --source and counts, from the verdicts
// it receives over MQTT, every frame; it reports each stage of the pipeline,
// the process's CPU and memory and the decode and decode+detect bounds under
// the JSON keys below; the model timing covers each --batch.
func TestBench(t *testing.T) {
	testenv.Long(t)
	cfg := writeConfig(t, "tcp://127.0.0.1:1", shortClip(t), 0, false) // bench uses its own embedded broker
	backbone, _ := testenv.Models(t)
	out, err := exec.Command(deepfaked(t), "bench", "--config", cfg, "--source", shortClip(t), "--batch", "1,2",
		"--backbone", backbone, "--backbone", backbone, "--iterations", "2", "--json").Output()
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	var keys struct {
		Pipeline []map[string]json.RawMessage `json:"pipeline"`
		Model    []map[string]json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(out, &keys); err != nil || len(keys.Pipeline) != 1 || len(keys.Model) != 4 {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	for _, k := range []string{"detector", "cameras", "frames", "frames_with_faces", "faces", "faces_per_model_run", "frames_per_s", "faces_per_s",
		"decode_only_frames_per_s", "decode_detect_only_frames_per_s", "fraction_of_decode_detect",
		"latency_p50_ms", "latency_p99_ms", "cpu_percent", "peak_rss_mb", "stages"} {
		if _, ok := keys.Pipeline[0][k]; !ok {
			t.Errorf("bench --json: pipeline has no %q\n%s", k, out)
		}
	}
	for _, k := range []string{"backbone", "batch", "ms_per_batch", "ms_per_face", "faces_per_s", "faces_per_s_vs_first"} {
		if _, ok := keys.Model[0][k]; !ok {
			t.Errorf("bench --json: model has no %q\n%s", k, out)
		}
	}
	var r bench.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	p := r.Pipeline[0]
	if p.Frames != 20 || p.Cameras != 1 || (p.WithFaces > 0 && p.FacesPerRun < 1) || p.FPS <= 0 || p.LatencyP50 <= 0 || p.LatencyP99 < p.LatencyP50 || p.WithFaces > 20 ||
		p.Faces < p.WithFaces || p.DecodeFPS <= 0 || p.DetectFPS <= 0 || p.OfDetectFPS <= 0 || p.CPUPercent <= 0 || p.PeakRSSMB <= 0 {
		t.Errorf("pipeline figures for 20 frames: %+v", p)
	}
	var stages []string
	for _, st := range p.Stages {
		stages = append(stages, st.Stage)
		if st.P99 < st.P50 || st.P50 < 0 {
			t.Errorf("stage %s: p50 %v ms, p99 %v ms", st.Stage, st.P50, st.P99)
		}
	}
	if want := []string{"decode", "detect", "preprocess", "queue", "batch_wait", "backbone", "head", "publish"}; !slices.Equal(stages, want) {
		t.Errorf("stages %v, want %v", stages, want)
	}
	// Two backbones (the same file twice) at batch 1, then both at batch 2.
	if len(r.Model) != 4 || r.Model[0].Batch != 1 || r.Model[1].Batch != 1 || r.Model[3].Batch != 2 ||
		r.Model[3].MSPerFace <= 0 || r.Model[3].FacesPerS <= 0 || r.Model[2].VsFirst != 1 || r.Model[3].VsFirst <= 0 ||
		r.Model[1].Backbone != backbone {
		t.Errorf("model figures: %+v", r.Model)
	}
}

// TestBenchCameras: with --cameras 2 both cameras read the clip, and bench
// counts the verdicts of both.
func TestBenchCameras(t *testing.T) {
	testenv.Long(t)
	clip := shortClip(t)
	cfg := writeConfig(t, "tcp://127.0.0.1:1", clip, 0, false)
	out, err := exec.Command(deepfaked(t), "bench", "--config", cfg, "--source", clip, "--cameras", "2", "--batch", "1",
		"--iterations", "1", "--json").Output()
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	var r bench.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	if len(r.Pipeline) != 1 || r.Pipeline[0].Cameras != 2 || r.Pipeline[0].Frames != 40 {
		t.Errorf("two cameras on 20 frames: %+v", r.Pipeline)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(deepfaked(t), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "deepfaked ") {
		t.Fatalf("version: %q %v", out, err)
	}
}
