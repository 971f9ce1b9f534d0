package config_test

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/configdoc"
)

// minimal is the smallest config the daemon accepts; defaults fill the rest.
const minimal = `device_id: edge-01
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: models/backbone.onnx
  head: models/head.onnx
faces:
  detector: haar
cameras:
  - name: cam1
    source: /path/to/video.mp4
    fps: 0
`

func TestMinimalDefaults(t *testing.T) {
	c, err := config.Parse([]byte(minimal), "/etc/deepfaked")
	if err != nil {
		t.Fatalf("minimal config rejected: %v", err)
	}
	for _, tc := range []struct {
		key       string
		got, want any
	}{
		{"device_id", c.DeviceID, "edge-01"},
		{"log_level", c.LogLevel, "info"},
		{"state_dir", c.StateDir, "/var/lib/deepfaked"},
		{"mqtt.broker", c.MQTT.Broker, "tcp://127.0.0.1:1883"},
		{"mqtt.listen", c.MQTT.Listen, ""},
		{"mqtt.client_id", c.MQTT.ClientID, "deepfaked-edge-01"},
		{"mqtt.qos", c.MQTT.QoS, 1},
		{"mqtt.topic_prefix", c.MQTT.TopicPrefix, "deepfaked/edge-01"},
		{"mqtt.tls", c.MQTT.TLS, config.TLS{}},
		{"mqtt.keepalive", time.Duration(c.MQTT.KeepAlive), 30 * time.Second},
		{"model.backbone", c.Model.Backbone, "/etc/deepfaked/models/backbone.onnx"},
		{"model.head", c.Model.Head, "/etc/deepfaked/models/head.onnx"},
		{"model.runtime", c.Model.Runtime, ""},
		{"model.providers", c.Model.Providers, []string{"cpu"}},
		{"model.threads", c.Model.Threads, 0},
		{"model.threshold", c.Model.Threshold, (*float64)(nil)},
		{"model.watch_head", c.Model.WatchHead, true},
		{"model.batch_wait", time.Duration(c.Model.BatchWait), 5 * time.Millisecond},
		{"faces.detector", c.Faces.Detector, "haar"},
		{"faces.model", c.Faces.Model, ""},
		{"faces.margin", c.Faces.Margin, 0.2},
		{"faces.min_size", c.Faces.MinSize, 40},
		{"faces.score", c.Faces.Score, 0.6},
		{"faces.max_faces", c.Faces.MaxFaces, 8},
		{"cameras", c.Cameras, []config.Camera{{Name: "cam1", Source: "/path/to/video.mp4", Decoder: "auto"}}},
		{"capture.decoder", c.Capture.Decoder, "auto"},
		{"capture.decoder_threads", c.Capture.DecoderThreads, 1},
		{"Path", c.Path, ""},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.key, tc.got, tc.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate of a parsed config: %v", err)
	}
}

// TestExplicitValues checks that values equal to Go's zero value are kept when
// written, and that defaults depending on other keys follow them.
func TestExplicitValues(t *testing.T) {
	for _, tc := range []struct {
		path  string
		value any
		check func(c *config.Config) any
		want  any
	}{
		{"mqtt.qos", 0, func(c *config.Config) any { return c.MQTT.QoS }, 0},
		{"faces.margin", 0, func(c *config.Config) any { return c.Faces.Margin }, 0.0},
		{"faces.score", 0, func(c *config.Config) any { return c.Faces.Score }, 0.0},
		{"faces.min_size", 0, func(c *config.Config) any { return c.Faces.MinSize }, 0},
		{"mqtt.keepalive", "0s", func(c *config.Config) any { return c.MQTT.KeepAlive }, config.Duration(0)},
		{"mqtt.keepalive", "1m30s", func(c *config.Config) any { return c.MQTT.KeepAlive }, config.Duration(90 * time.Second)},
		{"model.threshold", 0, func(c *config.Config) any { return *c.Model.Threshold }, 0.0},
		{"model.threshold", 0.73, func(c *config.Config) any { return *c.Model.Threshold }, 0.73},
		{"model.watch_head", false, func(c *config.Config) any { return c.Model.WatchHead }, false},
		{"model.providers", []string{"tensorrt", "cuda", "cpu"}, func(c *config.Config) any { return c.Model.Providers }, []string{"tensorrt", "cuda", "cpu"}},
		{"model.providers", []string{}, func(c *config.Config) any { return c.Model.Providers }, []string{"cpu"}},
		{"mqtt.broker", "embedded", func(c *config.Config) any { return c.MQTT.Listen }, "127.0.0.1:1883"},
		{"mqtt.topic_prefix", "site/a", func(c *config.Config) any { return c.MQTT.TopicPrefix }, "site/a"},
		{"mqtt.client_id", "me", func(c *config.Config) any { return c.MQTT.ClientID }, "me"},
		{"device_id", "pi_7", func(c *config.Config) any { return c.MQTT.TopicPrefix }, "deepfaked/pi_7"},
		{"log_level", "", func(c *config.Config) any { return c.LogLevel }, "info"},
		{"log_level", "debug", func(c *config.Config) any { return c.LogLevel }, "debug"},
		{"faces", nil, func(c *config.Config) any { return c.Faces.Detector }, "haar"},
		{"cameras[0].source", 0, func(c *config.Config) any { return c.Cameras[0].Source }, "0"},
		{"cameras[0].loop", true, func(c *config.Config) any { return c.Cameras[0].Loop }, true},
		{"cameras[0].fps", 2.5, func(c *config.Config) any { return c.Cameras[0].FPS }, 2.5},
		{"capture.decoder", "gstreamer", func(c *config.Config) any { return c.Cameras[0].Decoder }, "gstreamer"}, // a camera inherits it
		{"cameras[0].decoder", "ffmpeg", func(c *config.Config) any { return c.Cameras[0].Decoder }, "ffmpeg"},
		{"cameras[0].decoder", "", func(c *config.Config) any { return c.Cameras[0].Decoder }, "auto"},
	} {
		t.Run(tc.path+"="+yamlText(t, tc.value), func(t *testing.T) {
			c, err := config.Parse(mutate(t, tc.path, tc.value), "/etc/deepfaked")
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.check(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// del removes a key in mutate.
type del = configdoc.Delete

func TestInvalid(t *testing.T) {
	for _, tc := range []struct {
		path  string
		value any
		want  string
	}{
		{"device_id", del{}, `missing required key "device_id"`},
		{"device_id", "edge/01", `device_id: "edge/01" may only hold letters, digits, _ and -`},
		{"devise_id", "x", `unknown key "devise_id" (allowed: device_id, log_level, state_dir, mqtt, model, faces, cameras, capture, watchdog, metrics, train, tracks, events, web, webhook)`},
		{"mqtt.embedded.max_packet_size", 100, `mqtt.embedded.max_packet_size: must be 1024..268435456, got 100`},
		{"model.head_sha256", "ABC", `model.head_sha256: "ABC" is not a sha256`},
		{"capture.io_timeout", "-1s", `capture.io_timeout: must be from 0s to 5m0s, got -1s`},
		{"capture.decoder", "omx", `capture.decoder: "omx": want one of auto, ffmpeg, gstreamer, nvv4l2decoder, v4l2h264dec, v4l2slh265dec`},
		{"cameras[0].decoder", "nvdec", `cameras[0].decoder: "nvdec": want one of auto, ffmpeg, gstreamer, nvv4l2decoder`},
		{"capture.decoder_threads", -1, `capture.decoder_threads: must be`},
		{"cameras[0]", map[string]any{"name": "door", "source": "http://cam/video.mjpg", "decoder": "gstreamer"},
			`cameras[0].decoder: decoder gstreamer decodes files, RTSP cameras and V4L2 devices, not http://cam/video.mjpg: use auto or ffmpeg for it`},
		{"capture.decoder_threads", 65, `capture.decoder_threads: must be`},
		{"capture.io_timeout", "6m", `capture.io_timeout: must be from 0s to 5m0s, got 6m0s`},
		{"watchdog.stall", "0s", `watchdog.stall: must be from 1s to 1h0m0s, got 0s`},
		{"watchdog.stall", "2h", `watchdog.stall: must be from 1s to 1h0m0s, got 2h0m0s`},
		{"watchdog.stall", "5s", `watchdog.stall: 5s must be longer than capture.io_timeout (10s)`},
		{"log_level", "trace", `log_level: "trace" is not one of debug, info, warn, error`},
		{"mqtt.brokr", "x", `unknown key "mqtt.brokr" (allowed: broker, listen, embedded, client_id, username, password_file, password_env, qos, topic_prefix, tls, keepalive, commands, outbox, drain_timeout, stats_interval, verdicts, homeassistant)`},
		{"mqtt", "tcp://x", `mqtt: expected a mapping of keys, got "tcp://x"`},
		{"mqtt.commands.max_payload", 8, `mqtt.commands.max_payload: must be 16..65536 bytes, got 8`},
		{"mqtt.outbox.max_bytes", 0, `mqtt.outbox.max_bytes: must be 65536 (64 KiB) to 68719476736 (64 GiB) bytes, got 0`},
		{"mqtt.outbox.max_bytes", 1 << 40, `mqtt.outbox.max_bytes: must be 65536 (64 KiB) to 68719476736 (64 GiB) bytes, got 1099511627776`},
		{"mqtt.outbox.max_age", "-1s", `mqtt.outbox.max_age: must be from 0s (no bound) to 8760h0m0s, got -1s`},
		{"mqtt.outbox.max_age", "9000h", `mqtt.outbox.max_age: must be from 0s (no bound) to 8760h0m0s, got 9000h0m0s`},
		{"mqtt.outbox.fsync", "2m", `mqtt.outbox.fsync: must be from 0s (every message) to 1m0s, got 2m0s`},
		{"mqtt.drain_timeout", "-1s", `mqtt.drain_timeout: must be from 0s to 1h0m0s, got -1s`},
		{"mqtt.drain_timeout", "2h", `mqtt.drain_timeout: must be from 0s to 1h0m0s, got 2h0m0s`},
		{"mqtt.stats_interval", "500ms", `mqtt.stats_interval: must be 0s (off) or from 1s to 24h0m0s, got 500ms`},
		{"mqtt.stats_interval", "25h", `mqtt.stats_interval: must be 0s (off) or from 1s to 24h0m0s, got 25h0m0s`},
		{"metrics.listen", "9464", `metrics.listen: "9464": must be host:port`},
		{"metrics.listen", "127.0.0.1:70000", `metrics.listen: "127.0.0.1:70000": port must be 0..65535`},
		{"metrics.labels", map[string]string{"9site": "a"}, `metrics.labels.9site: "9site" is not a Prometheus label name`},
		{"metrics.labels", map[string]string{"__site": "a"}, `metrics.labels.__site: "__site" is not a Prometheus label name`},
		{"metrics.labels", map[string]string{"camera": "a"}, `metrics.labels.camera: "camera" is a label the metrics already have`},
		{"metrics.labels", map[string]string{"device": "a"}, `metrics.labels.device: "device" is a label the metrics already have`},
		{"metrics.labels", map[string]string{"site": ""}, `metrics.labels.site: "": want 1 to 128 bytes of UTF-8`},
		{"metrics.labels", []string{"site"}, `metrics.labels: expected map[string]string, got a list`},
		{"mqtt.commands.enabled", "yes please", `mqtt.commands.enabled`},
		{"mqtt.commands.run", true, `unknown key "mqtt.commands.run" (allowed: enabled, max_payload)`},
		{"mqtt.broker", del{}, `missing required key "mqtt.broker"`},
		{"mqtt.broker", "http://h:1883", `mqtt.broker: "http://h:1883": scheme must be one of tcp, mqtt, ssl, tls, mqtts, ws, wss (e.g. tcp://broker.local:1883); or "embedded" for the embedded broker`},
		{"mqtt.broker", "127.0.0.1:1883", `mqtt.broker: "127.0.0.1:1883" is not a URL`},
		{"mqtt.broker", "broker.local", `mqtt.broker: "broker.local": scheme must be one of`},
		{"mqtt.broker", "tcp://h:", `mqtt.broker: "tcp://h:": empty port after the colon`},
		{"mqtt.broker", "tcp://", `mqtt.broker: "tcp://" has no host`},
		{"mqtt.broker", "tcp://h:70000", `mqtt.broker: "tcp://h:70000": port must be 1..65535`},
		{"mqtt.listen", "127.0.0.1:1884", `mqtt.listen: only used when mqtt.broker is "embedded"`},
		{"mqtt.qos", 3, `mqtt.qos: must be 0, 1 or 2, got 3`},
		{"mqtt.qos", -1, `mqtt.qos: must be 0, 1 or 2, got -1`},
		{"mqtt.qos", "high", `mqtt.qos: expected a whole number, got "high"`},
		{"mqtt.qos", 1.5, `mqtt.qos: expected a whole number, got "1.5"`},
		{"mqtt.topic_prefix", "a/+/b", `mqtt.topic_prefix: "a/+/b" must not contain the wildcards + or #`},
		{"mqtt.topic_prefix", "a/#", `mqtt.topic_prefix: "a/#" must not contain`},
		{"mqtt.topic_prefix", "a/b/", `mqtt.topic_prefix: "a/b/" must not end with /`},
		{"mqtt.topic_prefix", "$SYS/x", `mqtt.topic_prefix: "$SYS/x" must not start with $`},
		{"mqtt.topic_prefix", "", `mqtt.topic_prefix: "" must not be empty`},
		{"mqtt.topic_prefix", "/a//b", `mqtt.topic_prefix: "/a//b" must not hold an empty level (//)`},
		{"mqtt.client_id", "", `mqtt.client_id: must not be empty`},
		{"cameras[0].name", "cmd", `cameras[0].name: "cmd" is reserved: <prefix>/cmd is the daemon's own topic`},
		{"mqtt.password_file", "pw", `mqtt.username: required when mqtt.password_file or mqtt.password_env is set`},
		{"mqtt.password_env", "1PW", `mqtt.password_env: "1PW" is not an environment variable name`},
		{"mqtt.tls.cert", "c.pem", `mqtt.tls.key: required when mqtt.tls.cert is set`},
		{"mqtt.tls.key", "k.pem", `mqtt.tls.cert: required when mqtt.tls.key is set`},
		{"mqtt.tls.ca", "ca.pem", `mqtt.tls: only used with ssl://, tls://, mqtts:// or wss:// brokers, not tcp://127.0.0.1:1883`},
		{"mqtt.tls.insecure", true, `unknown key "mqtt.tls.insecure" (allowed: ca, cert, key, insecure_skip_verify)`},
		{"mqtt.tls.insecure_skip_verify", "sure", `mqtt.tls.insecure_skip_verify: expected true or false, got "sure"`},
		{"mqtt.keepalive", 30, `mqtt.keepalive: "30" is not a duration (use e.g. 500ms, 30s, 2m)`},
		{"mqtt.keepalive", "-1s", `mqtt.keepalive: must be whole seconds from 0s (off) to 65535s, got -1s`},
		{"mqtt.keepalive", "500ms", `mqtt.keepalive: must be whole seconds from 0s (off) to 65535s, got 500ms`},
		{"mqtt.keepalive", "1.5s", `mqtt.keepalive: must be whole seconds from 0s (off) to 65535s, got 1.5s`},
		{"mqtt.keepalive", "18h12m16s", `mqtt.keepalive: must be whole seconds from 0s (off) to 65535s, got 18h12m16s`},
		{"mqtt.keepalive", []int{1}, `mqtt.keepalive: expected a duration like 30s, got a list`},
		{"model.backbone", del{}, `missing required key "model.backbone"`},
		{"model.head", "head.pth", `model.head: "/etc/deepfaked/head.pth" is not a .onnx file`},
		{"model.head", map[string]int{"a": 1}, `model.head: expected a string, got a mapping`},
		{"model.providers", []string{"cpu", "npu"}, `model.providers[1]: "npu" is not one of tensorrt, cuda, cpu`},
		{"model.providers", []string{"cuda", "cpu", "cuda"}, `model.providers[2]: "cuda" is already listed as model.providers[0]`},
		{"model.providers", "cpu", `model.providers: expected a list, got "cpu"`},
		{"model.threads", -1, `model.threads: must be 0..256, got -1`},
		{"model.threads", 100000000, `model.threads: must be 0..256, got 100000000`},
		{"device_id", strings.Repeat("d", 70000), `device_id: is 70000 characters long; at most 64`},
		{"mqtt.client_id", strings.Repeat("c", 129), `mqtt.client_id: is 129 characters long; at most 128`},
		{"mqtt.topic_prefix", strings.Repeat("t", 257), `mqtt.topic_prefix: is 257 characters long; at most 256`},
		{"cameras[0].name", strings.Repeat("n", 65), `cameras[0].name: is 65 characters long; at most 64`},
		{"train.epochs", 1000000000, `train.epochs: must be 1..100000, got 1000000000`},
		{"train.batch_size", 1 << 20, `train.batch_size: must be 2..65536, got 1048576`},
		{"train.folds", 1000, `train.folds: must be 2..100, got 1000`},
		{"train.collect.max_files", 1 << 30, `train.collect.max_files: must be 1..10000000, got 1073741824`},
		{"faces.min_size", 100000, `faces.min_size: must be 0..4096, got 100000`},
		{"cameras[0].fps", 1e9, `cameras[0].fps: must be between 0 and 1000, got 1e+09`},
		{"model.batch_wait", "-1ms", `model.batch_wait: must be from 0s to 1s, got -1ms`},
		{"model.batch_wait", "2s", `model.batch_wait: must be from 0s to 1s, got 2s`},
		{"model.threshold", 1.5, `model.threshold: must be between 0 and 1, got 1.5`},
		{"model.threshold", math.NaN(), `model.threshold: must be between 0 and 1, got NaN`},
		{"model.threshold", "half", `model.threshold: expected a number, got "half"`},
		{"faces.max_faces", 65, `faces.max_faces: must be between 1 and 64, got 65`},
		{"model.gpu", true, `unknown key "model.gpu" (allowed: backbone, head, backbone_sha256, head_sha256, trusted_keys, runtime, providers, threads, threshold, watch_head, batch_wait, tta, tensorrt, cuda)`},
		{"model.tensorrt.fp32", true, `unknown key "model.tensorrt.fp32" (allowed: fp16, int8, cache_dir, engine_cache, timing_cache, max_workspace_size, builder_optimization_level, ep_context)`},
		{"model.tensorrt.fp16", "yes please", `model.tensorrt.fp16: expected true or false, got "yes please"`},
		{"model.tensorrt.max_workspace_size", 0, `model.tensorrt.max_workspace_size: must be 1048576 (1 MiB) to 68719476736 (64 GiB) bytes, got 0`},
		{"model.tensorrt.max_workspace_size", 1 << 40, `model.tensorrt.max_workspace_size: must be 1048576 (1 MiB) to 68719476736 (64 GiB) bytes, got 1099511627776`},
		{"model.tensorrt.max_workspace_size", "1GiB", `model.tensorrt.max_workspace_size: expected a whole number, got "1GiB"`},
		{"model.tensorrt.builder_optimization_level", 6, `model.tensorrt.builder_optimization_level: must be 0..5, got 6`},
		{"model.tensorrt.builder_optimization_level", -1, `model.tensorrt.builder_optimization_level: must be 0..5, got -1`},
		{"model.tensorrt", map[string]any{"ep_context": true, "engine_cache": false}, `model.tensorrt.ep_context: needs model.tensorrt.engine_cache: true`},
		{"model.cuda.device_id", -1, `model.cuda.device_id: must be 0..63, got -1`},
		{"model.cuda.device_id", 64, `model.cuda.device_id: must be 0..63, got 64`},
		{"model.cuda.memory_limit", 1 << 20, `model.cuda.memory_limit: must be 0 (no limit) or 16777216 (16 MiB) to 1099511627776 (1 TiB) bytes, got 1048576`},
		{"model.cuda.memory_limit", -1, `model.cuda.memory_limit: must be 0 (no limit) or 16777216 (16 MiB) to 1099511627776 (1 TiB) bytes, got -1`},
		{"model.cuda.gpu_mem_limit", 1, `unknown key "model.cuda.gpu_mem_limit" (allowed: device_id, memory_limit)`},
		{"faces.detector", "hog", `faces.detector: "hog" is not one of haar, yunet, ultraface, none`},
		{"faces.detector", "yunet", `faces.model: required for detector yunet`},
		{"faces.detector", "ultraface", `faces.model: required for detector ultraface`},
		{"faces.model", "cascade.onnx", `faces.model: "/etc/deepfaked/cascade.onnx" is not a .xml file`},
		{"faces.margin", 1.5, `faces.margin: must be between 0 and 1, got 1.5`},
		{"faces.margin", -0.1, `faces.margin: must be between 0 and 1, got -0.1`},
		{"faces.min_size", -1, `faces.min_size: must be 0..4096, got -1`},
		{"faces.score", 2, `faces.score: must be between 0 and 1, got 2`},
		{"faces.max_faces", 0, `faces.max_faces: must be between 1 and 64, got 0`},
		{"faces.minsize", 3, `unknown key "faces.minsize" (allowed: detector, model, margin, min_size, score, max_faces)`},
		{"cameras", del{}, `cameras: at least one camera is required`},
		{"cameras", []any{}, `cameras: at least one camera is required`},
		{"cameras", map[string]any{"name": "x"}, `cameras: expected a list, got a mapping`},
		{"cameras[0].name", del{}, `missing required key "cameras[0].name"`},
		{"cameras[0].name", "cam 1", `cameras[0].name: "cam 1" may only hold letters, digits, _ and -`},
		{"cameras[0].source", del{}, `missing required key "cameras[0].source"`},
		{"cameras[0].source", "gst:videotestsrc ! autovideosink", `cameras[0].source: camera source "gst:videotestsrc ! autovideosink": GStreamer pipeline must end in appsink`},
		{"cameras[0].source", "ftp://h/v.mp4", `cameras[0].source: camera source "ftp://h/v.mp4": unsupported URL scheme "ftp"`},
		{"cameras[0].source", "videos/", `cameras[0].source: camera source "videos/": is a folder`},
		{"cameras[0].fps", -1, `cameras[0].fps: must be between 0 and 1000, got -1`},
		{"cameras[0].fps", math.Inf(1), `cameras[0].fps: must be between 0 and 1000, got +Inf`},
		{"cameras[0].fps", "fast", `cameras[0].fps: expected a number, got "fast"`},
		{"cameras[0].loop", "maybe", `cameras[0].loop: expected true or false, got "maybe"`},
		{"cameras[0].width", 640, `cameras[0]: set both width and height, or neither`},
		{"cameras[0].height", -480, `cameras[0].height: must be 0..16384, got -480`},
		{"cameras[0].width", 100000, `cameras[0].width: must be 0..16384, got 100000`},
		{"cameras[0].url", "x", `unknown key "cameras[0].url" (allowed: name, source, fps, loop, width, height, decoder)`},
	} {
		t.Run(tc.path+"="+yamlText(t, tc.value), func(t *testing.T) {
			data := mutate(t, tc.path, tc.value)
			c, err := config.Parse(data, "/etc/deepfaked")
			if err == nil {
				t.Fatalf("accepted:\n%s\nas %+v", data, c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s", err, tc.want)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
		})
	}
}

func TestMutuallyExclusive(t *testing.T) {
	data := `device_id: d
mqtt:
  broker: ssl://broker.example:8883
  username: u
  password_file: pw
  password_env: PW
  listen: ":1883"
model: {backbone: b.onnx, head: h.onnx}
faces: {detector: none, model: x.xml}
cameras: [{name: a, source: a.mp4}, {name: a, source: b.mp4}]
`
	_, err := config.Parse([]byte(data), "/x")
	for _, want := range []string{
		`line 6: mqtt.password_env: set only one of mqtt.password_file and mqtt.password_env`,
		`line 7: mqtt.listen: only used when mqtt.broker is "embedded"`,
		`line 9: faces.model: not used by detector none`,
		`line 10: cameras[1].name: "a" is already used by cameras[0]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\ndoes not contain %s", err, want)
		}
	}
}

// TestLoadReportsAllWithLines checks the file name, line numbers and that every
// problem is reported at once, in line order.
func TestLoadReportsAllWithLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.yaml")
	body := `device_id: edge-01
mqtt:
  broker: tcp://127.0.0.1:1883
  brokr: tcp://oops
  qos: 1
  qos: 2
model:
  backbone: b.onnx
  head: h.onnx
  providers: [cpu, npu]
cameras:
  - name: cam1
    source: v.mp4
    fps: -1
`
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		path + `: line 4: unknown key "mqtt.brokr" (allowed: broker, listen, embedded, client_id, username, password_file, password_env, qos, topic_prefix, tls, keepalive, commands, outbox, drain_timeout, stats_interval, verdicts, homeassistant)`,
		path + `: line 6: duplicate key "mqtt.qos" (first at line 5)`,
		path + `: line 10: model.providers[1]: "npu" is not one of tensorrt, cuda, cpu`,
		path + `: line 14: cameras[0].fps: must be between 0 and 1000, got -1`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "mqtt.brokr" || ce.Line != 4 || ce.File != path {
		t.Errorf("first error = %+v, want key mqtt.brokr at %s line 4", ce, path)
	}
}

func TestDocumentErrors(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"syntax", "device_id: [", "line 1"},
		{"list", "- a\n- b\n", `line 1: the config must be a mapping of keys (key: value lines), got a list`},
		{"scalar", "hello", `the config must be a mapping of keys (key: value lines), got "hello"`},
		{"empty", "", `missing required key "device_id"`},
		{"complex key", "? [a]\n: 1\n", `keys must be plain names, got a list`},
		{"merge key", "base: &b {detector: haar}\nfaces:\n  <<: *b\n", `unknown key "base"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.data), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v does not contain %q", err, tc.want)
			}
		})
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	data := minimal + `  - &cam {name: cam2, source: "0", fps: 2}
`
	c, err := config.Parse([]byte(data), "/x")
	if err != nil {
		t.Fatal(err)
	}
	data = strings.Replace(minimal, "device_id: edge-01", "device_id: &id edge-01", 1) +
		"  - {name: *id, source: /dev/video0}\n"
	if c, err = config.Parse([]byte(data), "/x"); err != nil {
		t.Fatal(err)
	}
	if c.Cameras[1].Name != "edge-01" {
		t.Errorf("alias not followed: camera name %q", c.Cameras[1].Name)
	}
}

func TestRelativePaths(t *testing.T) {
	data := `device_id: d
state_dir: state
mqtt:
  broker: tls://broker:8883
  username: u
  password_file: secrets/pw
  tls: {ca: ../tls/ca.pem, cert: /etc/ssl/c.pem, key: k.pem}
model:
  backbone: models/b.onnx
  head: /opt/h.onnx
  runtime: lib/libonnxruntime.so.1
faces: {detector: yunet, model: ./face/yunet.onnx}
cameras:
  - {name: file, source: videos/a.mp4}
  - {name: parent, source: ../b.mp4}
  - {name: abs, source: /srv/c.mp4}
  - {name: dev, source: /dev/video0}
  - {name: index, source: 1}
  - {name: rtsp, source: "rtsp://cam.local/stream"}
  - {name: http, source: "http://cam.local/mjpg"}
  - {name: gst, source: "gst:videotestsrc ! videoconvert ! appsink"}
  - {name: gstupper, source: "GST:videotestsrc ! appsink"}
  - {name: spaced, source: " videos/a.mp4 "}
`
	c, err := config.Parse([]byte(data), "/etc/deepfaked")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, got, want string }{
		{"state_dir", c.StateDir, "/etc/deepfaked/state"},
		{"mqtt.password_file", c.MQTT.PasswordFile, "/etc/deepfaked/secrets/pw"},
		{"mqtt.tls.ca", c.MQTT.TLS.CA, "/etc/tls/ca.pem"},
		{"mqtt.tls.cert", c.MQTT.TLS.Cert, "/etc/ssl/c.pem"},
		{"mqtt.tls.key", c.MQTT.TLS.Key, "/etc/deepfaked/k.pem"},
		{"model.backbone", c.Model.Backbone, "/etc/deepfaked/models/b.onnx"},
		{"model.head", c.Model.Head, "/opt/h.onnx"},
		{"model.runtime", c.Model.Runtime, "/etc/deepfaked/lib/libonnxruntime.so.1"},
		{"faces.model", c.Faces.Model, "/etc/deepfaked/face/yunet.onnx"},
		{"cameras[0].source", c.Cameras[0].Source, "/etc/deepfaked/videos/a.mp4"},
		{"cameras[1].source", c.Cameras[1].Source, "/etc/b.mp4"},
		{"cameras[2].source", c.Cameras[2].Source, "/srv/c.mp4"},
		{"cameras[3].source", c.Cameras[3].Source, "/dev/video0"},
		{"cameras[4].source", c.Cameras[4].Source, "1"},
		{"cameras[5].source", c.Cameras[5].Source, "rtsp://cam.local/stream"},
		{"cameras[6].source", c.Cameras[6].Source, "http://cam.local/mjpg"},
		{"cameras[7].source", c.Cameras[7].Source, "gst:videotestsrc ! videoconvert ! appsink"},
		{"cameras[8].source", c.Cameras[8].Source, "GST:videotestsrc ! appsink"},
		{"cameras[9].source", c.Cameras[9].Source, "/etc/deepfaked/videos/a.mp4"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.key, tc.got, tc.want)
		}
	}

	// A bare library name is left for the dynamic linker.
	c, err = config.Parse(mutate(t, "model.runtime", "libonnxruntime.so.1"), "/etc/deepfaked")
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Runtime != "libonnxruntime.so.1" {
		t.Errorf("model.runtime = %q, want the bare name kept", c.Model.Runtime)
	}
}

// TestLoadRelativeConfigPath loads a config named by a relative path: its paths
// resolve against its own folder, not the working directory's.
func TestLoadRelativeConfigPath(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "d.yaml"), []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	c, err := config.Load("etc/d.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "etc", "models", "backbone.onnx"); c.Model.Backbone != want {
		t.Errorf("model.backbone = %q, want %q", c.Model.Backbone, want)
	}
	if want := filepath.Join(dir, "etc", "d.yaml"); c.Path != want {
		t.Errorf("Path = %q, want %q", c.Path, want)
	}
	if _, err := config.Load("etc/missing.yaml"); err == nil || !strings.Contains(err.Error(), "etc/missing.yaml") {
		t.Errorf("missing file: error %v does not name it", err)
	}
}

func TestValidateAfterChange(t *testing.T) {
	c, err := config.Parse([]byte(minimal), "/x")
	if err != nil {
		t.Fatal(err)
	}
	c.Faces.MaxFaces = 0
	c.Cameras = append(c.Cameras, c.Cameras[0])
	err = c.Validate()
	for _, want := range []string{
		"faces.max_faces: must be between 1 and 64, got 0",
		`cameras[1].name: "cam1" is already used by cameras[0]`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not contain %q", err, want)
		}
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.onnx", "h.onnx", "v.mp4", "pw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "ca.pem"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := `device_id: d
mqtt: {broker: "ssl://b:8883", username: u, password_file: pw}
model: {backbone: b.onnx, head: h.onnx, runtime: libonnxruntime.so.1}
cameras:
  - {name: a, source: v.mp4}
  - {name: b, source: /dev/video9}
`
	for _, tc := range []struct {
		name  string
		extra string
		want  []string
	}{
		{"all present", "", nil},
		{"missing", "faces: {detector: yunet, model: yunet.onnx}\n", []string{
			"faces.model: open " + filepath.Join(dir, "yunet.onnx") + ": no such file or directory"}},
		{"directory", "", []string{"mqtt.tls.ca: " + filepath.Join(dir, "ca.pem") + " is a directory"}},
		{"camera file", "", []string{"cameras[2].source (c): open " + filepath.Join(dir, "c.mp4")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := base + tc.extra
			switch tc.name {
			case "directory":
				data = strings.Replace(data, "password_file: pw", "password_file: pw, tls: {ca: ca.pem}", 1)
			case "camera file":
				data += "  - {name: c, source: c.mp4}\n"
			}
			c, err := config.Parse([]byte(data), dir)
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckFiles()
			if tc.want == nil {
				if err != nil {
					t.Errorf("CheckFiles: %v", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("CheckFiles error %v does not contain %q", err, w)
				}
			}
		})
	}
}

// mutate returns the minimal config with the value at path (dots and [i]) set,
// or removed when value is del{}.
func mutate(t testing.TB, path string, value any) []byte {
	t.Helper()
	return mutateYAML(t, []byte(minimal), path, value)
}

// mutateYAML is mutate on the config src.
func mutateYAML(t testing.TB, src []byte, path string, value any) []byte {
	t.Helper()
	out, err := configdoc.Set(src, path, value)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func yamlText(t testing.TB, v any) string {
	if _, ok := v.(del); ok {
		return "<deleted>"
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestLoadTooLarge: a file that is not a config (here endless) is refused
// after MaxConfigSize bytes, not read until memory runs out.
func TestLoadTooLarge(t *testing.T) {
	_, err := config.Load("/dev/zero")
	if err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Fatalf("Load(/dev/zero): %v", err)
	}
}

// TestEmbeddedBrokerRules: off loopback the embedded broker needs users or an
// explicit allow_anonymous; refusing anonymous clients needs users; users
// with anonymous refused need the daemon's own username.
func TestEmbeddedBrokerRules(t *testing.T) {
	base := "device_id: d\nmodel:\n  backbone: b.onnx\n  head: h.onnx\ncameras:\n  - name: c\n    source: /dev/video0\nmqtt:\n  broker: embedded\n"
	for _, tc := range []struct{ mqtt, want string }{
		{"  listen: 127.0.0.1:1883\n", ""},
		{"  listen: 0.0.0.0:1883\n", "mqtt.listen: 0.0.0.0:1883 is not a loopback address, so clients must log in"},
		{"  listen: 0.0.0.0:1883\n  embedded:\n    allow_anonymous: true\n", ""},
		{"  listen: 127.0.0.1:1883\n  embedded:\n    allow_anonymous: false\n", "mqtt.embedded.allow_anonymous: false, and no mqtt.embedded.users_file"},
		// The daemon logs in with a login made for each run (mqttc.DaemonUser): no mqtt.username needed.
		{"  listen: 0.0.0.0:1883\n  embedded:\n    users_file: /etc/deepfaked/users\n", ""},
		{"  listen: 0.0.0.0:1883\n  username: edge\n  password_file: /etc/deepfaked/pw\n  embedded:\n    users_file: /etc/deepfaked/users\n", ""},
		{"  listen: '[::1]:1883'\n", ""},
	} {
		_, err := config.Parse([]byte(base+tc.mqtt), "/etc/deepfaked")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.mqtt, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v; want %q", tc.mqtt, err, tc.want)
		}
	}
}
