// Package config loads deepfaked's YAML configuration: strict keys, defaults,
// validation and paths resolved against the config file's folder. Every problem
// is reported with its full key path and line, all at once.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deepfaked/deepfaked/capture/gst"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/infer/provider"
)

// Config is the daemon's whole configuration. After Load or Parse every default
// is filled in and every relative path is resolved.
type Config struct {
	// DeviceID names this device in MQTT topics: [A-Za-z0-9_-]+.
	DeviceID string `yaml:"device_id"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// StateDir holds the daemon's persistent state.
	StateDir string   `yaml:"state_dir"`
	MQTT     MQTT     `yaml:"mqtt"`
	Model    Model    `yaml:"model"`
	Faces    Faces    `yaml:"faces"`
	Cameras  []Camera `yaml:"cameras"`
	Capture  Capture  `yaml:"capture"`
	Watchdog Watchdog `yaml:"watchdog"`
	Metrics  Metrics  `yaml:"metrics"`
	Train    Train    `yaml:"train"`
	Tracks   Tracks   `yaml:"tracks"`
	Events   Events   `yaml:"events"`
	Web      Web      `yaml:"web"`
	Webhook  Webhook  `yaml:"webhook"`

	// Path is the file the config was loaded from (absolute); empty after Parse.
	Path string `yaml:"-"`
}

// MQTT says where verdicts are published.
type MQTT struct {
	// Broker is a URL by package brokerurl's rule (a missing port is the
	// scheme's default), or "embedded" to run a broker inside the daemon.
	Broker string `yaml:"broker"`
	// Listen is the embedded broker's host:port; only used with Broker "embedded".
	Listen string `yaml:"listen"`
	// Embedded configures the embedded broker's clients.
	Embedded     Embedded `yaml:"embedded"`
	ClientID     string   `yaml:"client_id"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	// PasswordEnv names an environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	QoS         int    `yaml:"qos"`
	// TopicPrefix starts every topic the daemon publishes; no wildcards, no trailing /.
	TopicPrefix string   `yaml:"topic_prefix"`
	TLS         TLS      `yaml:"tls"`
	KeepAlive   Duration `yaml:"keepalive"`
	// Commands are the MQTT commands the daemon takes on <topic_prefix>/cmd/<name>.
	Commands Commands `yaml:"commands"`
	// Outbox keeps every published message on disk until the broker has
	// acknowledged it.
	Outbox Outbox `yaml:"outbox"`
	// DrainTimeout is how long the daemon, stopping, waits for the broker to
	// acknowledge what is left in the outbox; the rest waits for the next start.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// StatsInterval is how often the retained <topic_prefix>/stats is
	// published; 0 never.
	StatsInterval Duration `yaml:"stats_interval"`
	// Verdicts publishes a verdict per analysed frame on
	// <topic_prefix>/<camera>/verdict; off for subscribers who only want events.
	Verdicts bool `yaml:"verdicts"`
	// HomeAssistant publishes MQTT discovery configs.
	HomeAssistant HomeAssistant `yaml:"homeassistant"`
}

// Outbox bounds the on-disk outbox (package daemon/outbox).
type Outbox struct {
	Dir      string   `yaml:"dir"`
	MaxBytes int      `yaml:"max_bytes"`
	MaxAge   Duration `yaml:"max_age"` // 0: no age bound
	// Fsync is how long a written message may wait for its fsync; 0 syncs
	// each one before it is handed to the broker.
	Fsync Duration `yaml:"fsync"`
}

// Commands: off unless enabled, since anyone who may publish to the broker
// could otherwise reload models or label crops.
type Commands struct {
	Enabled    bool `yaml:"enabled"`
	MaxPayload int  `yaml:"max_payload"`
}

// TLS configures the connection to an ssl://, tls:// or wss:// broker.
type TLS struct {
	CA                 string `yaml:"ca"`
	Cert               string `yaml:"cert"`
	Key                string `yaml:"key"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Model is the classifier: a backbone and a head, both ONNX files.
type Model struct {
	Backbone string `yaml:"backbone"`
	Head     string `yaml:"head"`
	// BackboneSHA256 and HeadSHA256, when set, pin the files: a file whose
	// sha256 differs is refused at start and on reload.
	BackboneSHA256 string `yaml:"backbone_sha256"`
	HeadSHA256     string `yaml:"head_sha256"`
	// TrustedKeys are minisign public keys (the key's line or a .pub file):
	// when any is listed, only a backbone and a head signed by one of them
	// are loaded, installed or rolled back to (package modelsig).
	TrustedKeys []string `yaml:"trusted_keys,omitempty"`
	// Runtime is libonnxruntime.so: a path, a bare file name for the dynamic
	// linker to find, or empty to search the usual places.
	Runtime   string   `yaml:"runtime"`
	Providers []string `yaml:"providers"`
	// Threads is the intra-op thread count; 0 lets ONNX Runtime choose.
	Threads int `yaml:"threads"`
	// Threshold is the fake-probability cut-off; nil means the head's metadata
	// decides, else 0.5.
	Threshold *float64 `yaml:"threshold"`
	// WatchHead reloads the head when its file changes. SIGHUP and the MQTT
	// reload command work whatever it says.
	WatchHead bool `yaml:"watch_head"`
	// BatchWait is how long a model run waits for other cameras' faces to
	// fill its batch (up to faces.max_faces); 0 runs what is already waiting.
	BatchWait Duration `yaml:"batch_wait"`
	// TTA is the test-time augmentation: none; flip (each face is also
	// classified mirrored and the p_fake averaged; twice the model time);
	// shift (also moved 2 px both ways diagonally; three times); flip-shift
	// (the face, its mirror and two shifted views; four times).
	TTA string `yaml:"tta"`
	// TensorRT configures the tensorrt execution provider; CUDA the cuda one
	// (and the GPU both use). Only read when model.providers lists them.
	TensorRT TensorRT `yaml:"tensorrt"`
	CUDA     CUDA     `yaml:"cuda"`
}

// TensorRT holds the TensorRT execution provider's options; the names follow
// ONNX Runtime's trt_* provider options.
type TensorRT struct {
	// FP16 and INT8 allow TensorRT to pick FP16 and INT8 kernels
	// (trt_fp16_enable, trt_int8_enable). INT8 is needed for a quantised (QDQ) model.
	FP16 bool `yaml:"fp16"`
	INT8 bool `yaml:"int8"`
	// CacheDir holds the engine and timing caches, one folder per model,
	// ONNX Runtime version, TensorRT version and GPU.
	CacheDir string `yaml:"cache_dir"`
	// EngineCache and TimingCache turn the caches on (trt_engine_cache_enable,
	// trt_timing_cache_enable).
	EngineCache bool `yaml:"engine_cache"`
	TimingCache bool `yaml:"timing_cache"`
	// MaxWorkspaceSize bounds TensorRT's scratch memory in bytes (trt_max_workspace_size).
	MaxWorkspaceSize int `yaml:"max_workspace_size"`
	// BuilderOptimizationLevel is trt_builder_optimization_level, 0..5.
	BuilderOptimizationLevel int `yaml:"builder_optimization_level"`
	// EPContext dumps the built engine as an EP-context model
	// (trt_dump_ep_context_model) that later starts load instead of building.
	EPContext bool `yaml:"ep_context"`
}

// CUDA holds the CUDA execution provider's options.
type CUDA struct {
	// DeviceID is the GPU (device_id), for TensorRT as well.
	DeviceID int `yaml:"device_id"`
	// MemoryLimit bounds the CUDA provider's memory arena in bytes (gpu_mem_limit); 0 is none.
	MemoryLimit int `yaml:"memory_limit"`
}

// Faces configures the face detector.
type Faces struct {
	Detector string `yaml:"detector"`
	// Model is the detector's ONNX file (yunet, ultraface) or cascade XML (haar, optional).
	Model    string  `yaml:"model"`
	Margin   float64 `yaml:"margin"`
	MinSize  int     `yaml:"min_size"`
	Score    float64 `yaml:"score"`
	MaxFaces int     `yaml:"max_faces"`
}

// Camera is one video source.
type Camera struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"`
	// FPS is how many frames a second are analysed; 0 means every frame.
	FPS    float64 `yaml:"fps"`
	Loop   bool    `yaml:"loop"`
	Width  int     `yaml:"width"`
	Height int     `yaml:"height"`
	// Decoder overrides capture.decoder for this camera.
	Decoder string `yaml:"decoder"`
}

// Embedded is who may use the embedded broker, and how much they may send.
type Embedded struct {
	// UsersFile holds "name:password" lines; the daemon's own client
	// (mqtt.username with its password) is let in as well.
	UsersFile string `yaml:"users_file"`
	// AllowAnonymous lets clients in without a username; unset, it is true
	// only while the broker listens on a loopback address.
	AllowAnonymous *bool `yaml:"allow_anonymous"`
	// MaxPacketSize bounds every packet a client sends, checked before it
	// is read.
	MaxPacketSize int `yaml:"max_packet_size"`
	// MaxClients bounds the connections open at once, the daemon's own and
	// those that have not logged in yet included.
	MaxClients int `yaml:"max_clients"`
	// CommandUsers may publish the daemon's commands; no one else may.
	CommandUsers []string `yaml:"command_users,omitempty"`
	// MaxRetained and MaxRetainedBytes bound the retained messages other
	// clients than the daemon leave on the broker.
	MaxRetained      int `yaml:"max_retained"`
	MaxRetainedBytes int `yaml:"max_retained_bytes"`
}

// AnonymousAllowed resolves AllowAnonymous for listen (mqtt.listen).
func (e Embedded) AnonymousAllowed(listen string) bool {
	if e.AllowAnonymous != nil {
		return *e.AllowAnonymous
	}
	return isLoopback(listen)
}

// Capture holds what applies to every camera.
type Capture struct {
	// IOTimeout bounds a network camera's connect and each of its reads
	// (FFmpeg's rw_timeout): a stream that stops answering fails after it
	// and is reconnected. 0 leaves OpenCV's own limit, 30 s.
	IOTimeout Duration `yaml:"io_timeout"`
	// Decoder is how cameras are decoded (package capture/gst): auto, ffmpeg,
	// gstreamer or a hardware decoder's GStreamer element.
	Decoder string `yaml:"decoder"`
	// DecoderThreads bounds GStreamer's software decoders' threads; 0 is
	// one per core.
	DecoderThreads int `yaml:"decoder_threads"`
}

// Camera is a camera the config does not list (bench's, eval --videos'),
// decoded as capture.decoder says, as a listed camera without a decoder of
// its own is.
func (c Capture) Camera(name, source string, fps float64) Camera {
	return Camera{Name: name, Source: source, FPS: fps, Decoder: c.Decoder}
}

// Watchdog is the daemon's side of systemd's WatchdogSec=: it pings only
// while nothing (a camera read or open, a face detection, a model run) has
// been stuck for longer than Stall.
type Watchdog struct {
	Stall Duration `yaml:"stall"`
}

// Metrics serves Prometheus metrics, /healthz and /readyz on Listen
// (host:port); empty, the default, serves nothing.
type Metrics struct {
	Listen string `yaml:"listen"`
	// Labels go on every metric, beside MetricsDeviceLabel (the device's
	// id): a site, a building, a customer.
	Labels map[string]string `yaml:"labels,omitempty"`
}

// MetricsDeviceLabel is the label every metric carries with device_id.
const MetricsDeviceLabel = "device"

// metricLabels are the labels the daemon's metrics already have, which
// metrics.labels may not take (daemon/metrics), and Prometheus's own.
var metricLabels = []string{MetricsDeviceLabel, "camera", "reason", "label", "type", "state", "stage", "backbone", "head",
	"precision", "release", "version", "goversion", "le", "quantile", "job", "instance"}

// Duration is a time.Duration written in YAML as a Go duration string ("30s", "1m30s").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration like 30s, got %s", describe(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 500ms, 30s, 2m)", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler so that a Config round-trips.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// Defaults that the documentation (docs/configuration.md) repeats.
const (
	DefaultLogLevel  = "info"
	DefaultStateDir  = "/var/lib/deepfaked"
	DefaultListen    = "127.0.0.1:1883"
	DefaultQoS       = 1
	DefaultKeepAlive = Duration(30 * time.Second)
	// DefaultMaxPayload bounds an MQTT command's payload; commands are small JSON objects.
	DefaultMaxPayload = 1024
	DefaultDetector   = "haar"
	DefaultMargin     = 0.2
	DefaultMinSize    = 40
	DefaultScore      = 0.6
	DefaultMaxFaces   = 8
	// DefaultBatchWait is model.batch_wait: a small part of a frame's time at 25 fps.
	DefaultBatchWait = Duration(5 * time.Millisecond)
	// MaxBatchWait bounds model.batch_wait: longer only adds latency.
	MaxBatchWait = Duration(time.Second)
	// DefaultTRTWorkspace is model.tensorrt.max_workspace_size: 1 GiB, ONNX
	// Runtime's old default, a quarter of the smallest Jetson Orin's memory.
	DefaultTRTWorkspace = 1 << 30
	// DefaultTRTOptLevel is TensorRT's own default builder optimisation level.
	DefaultTRTOptLevel = 3
	// DefaultOutboxBytes is mqtt.outbox.max_bytes: 256 MiB, some 500,000
	// verdicts, hours of a busy device's output.
	DefaultOutboxBytes = 256 << 20
	// DefaultOutboxAge is mqtt.outbox.max_age: a week (a long weekend's outage and then some).
	DefaultOutboxAge = Duration(7 * 24 * time.Hour)
	// DefaultOutboxFsync is mqtt.outbox.fsync: a power cut loses at most a
	// second of verdicts, and an SD card sees one fsync a second, not one a verdict.
	DefaultOutboxFsync = Duration(time.Second)
	// DefaultDrainTimeout is mqtt.drain_timeout, well within systemd's 90 s stop timeout.
	DefaultDrainTimeout = Duration(30 * time.Second)
	// DefaultStatsInterval is mqtt.stats_interval: fresh enough for a
	// dashboard, 1,440 small messages a day.
	DefaultStatsInterval = Duration(time.Minute)
	// DefaultIOTimeout is capture.io_timeout: a stalled stream is noticed in
	// seconds, and a camera on a slow link still connects.
	DefaultIOTimeout = Duration(10 * time.Second)
	// DefaultDecoder is capture.decoder: a board's hardware decoder where
	// GStreamer has one, else FFmpeg.
	DefaultDecoder = gst.Auto
	// DefaultDecoderThreads is capture.decoder_threads: one thread per
	// camera; a core each would hold a decoder context per thread.
	DefaultDecoderThreads = 1
	// DefaultStall is watchdog.stall: well past capture.io_timeout, a model
	// run on the slowest board, and a first TensorRT engine build (which
	// happens before the watchdog starts).
	DefaultStall = Duration(time.Minute)
	// DefaultMaxPacketSize is mqtt.embedded.max_packet_size: a verdict with
	// many faces is a few KiB, a command at most mqtt.commands.max_payload.
	DefaultMaxPacketSize = 256 << 10
	// DefaultMaxClients is mqtt.embedded.max_clients: a home's subscribers
	// with room to spare, far below a process's file limit.
	DefaultMaxClients = 64
	// DefaultMaxRetained and DefaultMaxRetainedBytes are
	// mqtt.embedded.max_retained and max_retained_bytes.
	DefaultMaxRetained      = 1000
	DefaultMaxRetainedBytes = 8 << 20
	// EmbeddedBroker is the mqtt.broker value that runs a broker inside the daemon.
	EmbeddedBroker = "embedded"
)

// defaults is the config before the file is decoded over it; defaults that
// depend on other keys are filled in by derive.
func defaults() Config {
	return Config{
		LogLevel: DefaultLogLevel,
		StateDir: DefaultStateDir,
		MQTT: MQTT{QoS: DefaultQoS, KeepAlive: DefaultKeepAlive, Commands: Commands{MaxPayload: DefaultMaxPayload},
			Embedded: Embedded{MaxPacketSize: DefaultMaxPacketSize, MaxClients: DefaultMaxClients,
				MaxRetained: DefaultMaxRetained, MaxRetainedBytes: DefaultMaxRetainedBytes},
			Outbox:       Outbox{MaxBytes: DefaultOutboxBytes, MaxAge: DefaultOutboxAge, Fsync: DefaultOutboxFsync},
			DrainTimeout: DefaultDrainTimeout, StatsInterval: DefaultStatsInterval,
			Verdicts: true, HomeAssistant: HomeAssistant{DiscoveryPrefix: DefaultDiscovery}},
		Model: Model{WatchHead: true, BatchWait: DefaultBatchWait, TTA: DefaultTTA,
			TensorRT: TensorRT{FP16: true, EngineCache: true, TimingCache: true,
				MaxWorkspaceSize: DefaultTRTWorkspace, BuilderOptimizationLevel: DefaultTRTOptLevel}},
		Train:    DefaultTrain(),
		Tracks:   defaultTracks(),
		Events:   defaultEvents(),
		Capture:  Capture{IOTimeout: DefaultIOTimeout, Decoder: DefaultDecoder, DecoderThreads: DefaultDecoderThreads},
		Watchdog: Watchdog{Stall: DefaultStall},
		Web:      defaultWeb(),
		Webhook:  defaultWebhook(),
		Faces: Faces{
			Detector: DefaultDetector,
			Margin:   DefaultMargin,
			MinSize:  DefaultMinSize,
			Score:    DefaultScore,
			MaxFaces: DefaultMaxFaces,
		},
	}
}

// derive fills in the defaults that depend on other keys. written says
// whether the file wrote a key: a prefix or client id written empty stays
// empty, for check to refuse, instead of quietly becoming the default.
func (c *Config) derive(written func(key string) bool) {
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Train.Dataset == "" {
		c.Train.Dataset = filepath.Join(c.StateDir, "dataset")
	}
	if c.Train.Collect.Dir == "" {
		c.Train.Collect.Dir = filepath.Join(c.StateDir, "collect")
	}
	if c.Events.Snapshots.Dir == "" {
		c.Events.Snapshots.Dir = filepath.Join(c.StateDir, "snapshots")
	}
	if c.Events.Clips.Dir == "" {
		c.Events.Clips.Dir = filepath.Join(c.StateDir, "clips")
	}
	if c.MQTT.Outbox.Dir == "" {
		c.MQTT.Outbox.Dir = filepath.Join(c.StateDir, "outbox")
	}
	if c.Webhook.Dir == "" {
		c.Webhook.Dir = filepath.Join(c.StateDir, "webhook")
	}
	if c.Model.TensorRT.CacheDir == "" {
		c.Model.TensorRT.CacheDir = filepath.Join(c.StateDir, "trt-cache")
	}
	for i := range c.Cameras {
		if c.Cameras[i].Decoder == "" {
			c.Cameras[i].Decoder = c.Capture.Decoder
		}
	}
	if c.MQTT.Broker == EmbeddedBroker && c.MQTT.Listen == "" {
		c.MQTT.Listen = DefaultListen
	}
	if !written("mqtt.client_id") && c.DeviceID != "" {
		c.MQTT.ClientID = "deepfaked-" + c.DeviceID
	}
	if !written("mqtt.topic_prefix") && c.DeviceID != "" {
		c.MQTT.TopicPrefix = "deepfaked/" + c.DeviceID
	}
	if len(c.Model.Providers) == 0 {
		c.Model.Providers = []string{provider.CPU}
	}
	if c.Faces.Detector == "" {
		c.Faces.Detector = DefaultDetector
	}
}

// Load reads, parses and validates the config file at path. Relative paths in it
// are resolved against the file's folder.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// Bounded: a config is a few KiB, and --config /dev/zero must not eat memory.
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("config %s: larger than %d KiB; is it the right file?", path, MaxConfigSize>>10)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c, err := parse(data, filepath.Dir(abs), path)
	if err != nil {
		return nil, err
	}
	c.Path = abs
	return c, nil
}

// Parse parses and validates a config held in memory; relative paths in it are
// resolved against dir.
func Parse(data []byte, dir string) (*Config, error) {
	return parse(data, dir, "")
}

func parse(data []byte, dir, file string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		if file != "" {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return nil, err
	}
	c := defaults()
	d := decoder{problems: problems{file: file}, lines: map[string]int{}}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		if doc.Kind != yaml.MappingNode && doc.ShortTag() != "!!null" {
			// Nothing else can be said about a file that is not key: value lines.
			d.add(doc.Line, "", "the config must be a mapping of keys (key: value lines), got "+describe(doc))
			return nil, d.err()
		}
		d.value(doc, valueOf(&c), "")
	}
	c.derive(func(key string) bool { _, ok := d.lines[key]; return ok })
	c.resolve(dir)
	c.check(&d.problems, d.lines)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// resolve makes the config's relative file paths relative to dir.
func (c *Config) resolve(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, p := range []*string{
		&c.StateDir, &c.MQTT.PasswordFile, &c.MQTT.TLS.CA, &c.MQTT.TLS.Cert, &c.MQTT.TLS.Key,
		&c.Model.Backbone, &c.Model.Head, &c.Faces.Model, &c.Train.Dataset, &c.Train.GateSet, &c.Train.Collect.Dir, &c.Events.Snapshots.Dir,
		&c.Model.TensorRT.CacheDir, &c.MQTT.Outbox.Dir, &c.MQTT.Embedded.UsersFile,
		&c.Web.PasswordFile, &c.Web.TLS.Cert, &c.Web.TLS.Key, &c.Webhook.Dir, &c.Events.Clips.Dir,
	} {
		abs(p)
	}
	if strings.ContainsRune(c.Model.Runtime, '/') {
		abs(&c.Model.Runtime)
	}
	// Devices, indexes, URLs and gst: pipelines are not files; unparsable
	// sources are left as written for check to report.
	for i := range c.Cameras {
		if src, err := source.Parse(c.Cameras[i].Source); err == nil && src.Kind == source.File {
			c.Cameras[i].Source = src.Target
			abs(&c.Cameras[i].Source)
		}
	}
}

// CheckFiles checks that every file the config names exists and is readable:
// models, runtime, detector model, TLS files, password file and camera sources
// that are plain files. Devices are not checked: they may appear later.
func (c *Config) CheckFiles() error {
	type file struct{ key, path string }
	files := []file{
		{"model.backbone", c.Model.Backbone},
		{"model.head", c.Model.Head},
		{"faces.model", c.Faces.Model},
		{"mqtt.password_file", c.MQTT.PasswordFile},
		{"mqtt.embedded.users_file", c.MQTT.Embedded.UsersFile},
		{"mqtt.tls.ca", c.MQTT.TLS.CA},
		{"mqtt.tls.cert", c.MQTT.TLS.Cert},
		{"mqtt.tls.key", c.MQTT.TLS.Key},
		{"web.password_file", c.Web.PasswordFile},
		{"web.tls.cert", c.Web.TLS.Cert},
		{"web.tls.key", c.Web.TLS.Key},
	}
	// A bare library name is the dynamic linker's to find.
	if strings.ContainsRune(c.Model.Runtime, '/') {
		files = append(files, file{"model.runtime", c.Model.Runtime})
	}
	for i, cam := range c.Cameras {
		if src, err := source.Parse(cam.Source); err == nil && src.Kind == source.File {
			files = append(files, file{fmt.Sprintf("cameras[%d].source (%s)", i, cam.Name), cam.Source})
		}
	}
	var errs []error
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.key, err))
		}
	}
	return errors.Join(errs...)
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", path)
	}
	return nil
}
