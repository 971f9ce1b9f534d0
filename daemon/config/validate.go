package config

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/deepfaked/deepfaked/capture/gst"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/mqttc/brokerurl"
	"github.com/deepfaked/deepfaked/infer/provider"
)

var (
	promLabel = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	logLevels = []string{"debug", "info", "warn", "error"}
	detectors = []string{"haar", "yunet", "ultraface", "none"}
)

// MaxFaces bounds faces.max_faces, the batch of one frame.
const MaxFaces = 64

// Bounds of the GPU keys: a workspace from 1 MiB to 64 GiB (the largest
// Jetson has 64 GB shared with the CPU), at most 64 GPUs, a CUDA arena of at
// least 16 MiB (below that no model fits) and at most 1 TiB.
// They are int64 so that the checks compile where int has 32 bits.
const (
	MinTRTWorkspace int64 = 1 << 20
	MaxTRTWorkspace int64 = 64 << 30
	MaxGPUs               = 64
	MinCUDAMemory   int64 = 16 << 20
	MaxCUDAMemory   int64 = 1 << 40
)

// Bounds of the outbox keys: at least a few hundred verdicts and at most what
// an edge device's disk could hold; a year; a minute of verdicts at risk in a
// power cut; an hour's wait at shutdown (systemd's stop timeout must cover it).
const (
	MinOutboxBytes  int64 = 64 << 10
	MaxOutboxBytes  int64 = 64 << 30
	MaxOutboxAge          = Duration(365 * 24 * time.Hour)
	MaxOutboxFsync        = Duration(time.Minute)
	MaxDrainTimeout       = Duration(time.Hour)
)

// Upper bounds of the integer keys, names and the file itself.
const (
	MaxThreads    = 256
	MaxNameLen    = contract.MaxNameLen
	MaxClientID   = 128
	MaxPrefixLen  = 256
	MaxFPS        = 1000
	MaxFrameSide  = 16384
	MaxMinSize    = 4096
	MaxBatchSize  = 1 << 16
	MaxEpochs     = 100000
	MaxFolds      = 100
	MaxSelfBlend  = 100
	MaxTeachFaces = 100000
	MaxEveryN     = 1 << 30
	MaxFiles      = 10000000
	MaxCollectB   = 1 << 40
	MaxConfigSize = 1 << 20
)

// MinTeachFaces is the least train.teach.faces: teach.Groups, one face for
// each of the groups a taught camera's faces are split into.
const MinTeachFaces = 20

// Bounds of mqtt.embedded.max_packet_size.
const (
	MinPacketSize = 1 << 10
	MaxPacketSize = 256 << 20
)

// Bounds of mqtt.embedded.max_clients (the daemon and one subscriber at
// least), max_retained and max_retained_bytes.
const (
	MinClients       = 2
	MaxClients       = 10000
	MaxRetained      = 1000000
	MaxRetainedBytes = 1 << 30
)

// Bounds of mqtt.stats_interval (or 0).
const (
	MinStatsInterval = Duration(time.Second)
	MaxStatsInterval = Duration(24 * time.Hour)
)

// MaxDecoderThreads bounds capture.decoder_threads: more than a board has
// cores only costs memory.
const MaxDecoderThreads = 64

// Bounds of capture.io_timeout and watchdog.stall.
const (
	MaxIOTimeout = Duration(5 * time.Minute)
	MinStall     = Duration(time.Second)
	MaxStall     = Duration(time.Hour)
)

// Validate checks a Config whose defaults are filled in (as Load and Parse
// return it, or after changing one in code). It reports every problem at once.
func (c *Config) Validate() error {
	var p problems
	c.check(&p, nil)
	return p.err()
}

// checker reports problems with the line of the key, or of its nearest parent
// that the file mentions.
type checker struct {
	p     *problems
	lines map[string]int
}

func (k checker) line(key string) int {
	for key != "" {
		if l, ok := k.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

func (k checker) fail(key, format string, args ...any) {
	k.p.add(k.line(key), key, key+": "+fmt.Sprintf(format, args...))
}

func (k checker) missing(key string) {
	k.p.add(k.line(key), key, fmt.Sprintf("missing required key %q", key))
}

// required reports a missing key and says whether the value is there.
func (k checker) required(key, v string) bool {
	if v == "" {
		k.missing(key)
		return false
	}
	return true
}

func (k checker) oneOf(key, v string, allowed []string) bool {
	if !slices.Contains(allowed, v) {
		k.fail(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return false
	}
	return true
}

func (k checker) between(key string, v, lo, hi float64) {
	if !(v >= lo && v <= hi) { // also rejects NaN
		k.fail(key, "must be between %g and %g, got %g", lo, hi, v)
	}
}

// inRange checks an integer key. Every numeric key has an upper bound too:
// a value no device could mean (model.threads: 100000000) must fail the
// check, not the daemon an hour later.
func (k checker) inRange(key string, v, lo, hi int) {
	if v < lo || v > hi {
		k.fail(key, "must be %d..%d, got %d", lo, hi, v)
	}
}

// maxLen bounds strings that go into MQTT topics and client ids: a topic may
// hold 65535 bytes, but a name past these bounds is a mistake, not a name.
func (k checker) maxLen(key, v string, n int) bool {
	if len(v) > n {
		k.fail(key, "is %d characters long; at most %d", len(v), n)
		return false
	}
	return true
}

func (k checker) suffix(key, path, ext string) {
	if path != "" && !strings.EqualFold(filepath.Ext(path), ext) {
		k.fail(key, "%q is not a %s file", path, ext)
	}
}

func isEnvName(s string) bool {
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func (c *Config) check(p *problems, lines map[string]int) {
	k := checker{p: p, lines: lines}
	if k.required("device_id", c.DeviceID) && k.maxLen("device_id", c.DeviceID, MaxNameLen) && !contract.ValidName(c.DeviceID) {
		k.fail("device_id", "%q may only hold letters, digits, _ and - (it goes into MQTT topics)", c.DeviceID)
	}
	k.oneOf("log_level", c.LogLevel, logLevels)
	k.required("state_dir", c.StateDir)
	c.MQTT.check(k)
	c.Model.check(k)
	c.Train.check(k)
	c.Tracks.check(k)
	c.Events.check(k)
	c.Faces.check(k)
	if !gst.Valid(c.Capture.Decoder) {
		k.fail("capture.decoder", "%q: want one of %s", c.Capture.Decoder, strings.Join(gst.Names(), ", "))
	}
	k.inRange("capture.decoder_threads", c.Capture.DecoderThreads, 0, MaxDecoderThreads)
	if d := c.Capture.IOTimeout; d < 0 || d > MaxIOTimeout {
		k.fail("capture.io_timeout", "must be from 0s to %s, got %s", MaxIOTimeout, d)
	}
	switch d := c.Watchdog.Stall; {
	case d < MinStall || d > MaxStall:
		k.fail("watchdog.stall", "must be from %s to %s, got %s", MinStall, MaxStall, d)
	case d <= c.Capture.IOTimeout:
		k.fail("watchdog.stall", "%s must be longer than capture.io_timeout (%s): a read may take that long without being stuck", d, c.Capture.IOTimeout)
	}
	if l := c.Metrics.Listen; l != "" {
		if err := checkListen(l); err != nil {
			k.fail("metrics.listen", "%q: %v", l, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Metrics.Labels)) {
		key, v := "metrics.labels."+name, c.Metrics.Labels[name]
		switch {
		case !promLabel.MatchString(name) || strings.HasPrefix(name, "__"):
			k.fail(key, "%q is not a Prometheus label name (letters, digits and _, not first a digit, not starting __)", name)
		case slices.Contains(metricLabels, name):
			k.fail(key, "%q is a label the metrics already have (%s)", name, strings.Join(metricLabels, ", "))
		case v == "" || len(v) > 128 || !utf8.ValidString(v):
			k.fail(key, "%q: want 1 to 128 bytes of UTF-8", v)
		}
	}
	c.Web.check(k)
	c.Webhook.check(k)
	if len(c.Cameras) == 0 {
		k.fail("cameras", "at least one camera is required")
	}
	names := map[string]int{}
	for i, cam := range c.Cameras {
		cam.check(k, fmt.Sprintf("cameras[%d]", i), names, i)
		if cam.Decoder != c.Capture.Decoder && !gst.Valid(cam.Decoder) { // an inherited one is reported once, as capture.decoder
			k.fail(fmt.Sprintf("cameras[%d].decoder", i), "%q: want one of %s", cam.Decoder, strings.Join(gst.Names(), ", "))
		} else if src, err := source.Parse(cam.Source); err == nil && gst.Valid(cam.Decoder) {
			if err := gst.Check(src, cam.Decoder); err != nil {
				k.fail(fmt.Sprintf("cameras[%d].decoder", i), "%v", err)
			}
		}
	}
}

func (m *MQTT) check(k checker) {
	scheme := ""
	if k.required("mqtt.broker", m.Broker) {
		scheme = checkBroker(k, m.Broker)
	}
	k.inRange("mqtt.embedded.max_packet_size", m.Embedded.MaxPacketSize, MinPacketSize, MaxPacketSize)
	k.inRange("mqtt.embedded.max_clients", m.Embedded.MaxClients, MinClients, MaxClients)
	k.inRange("mqtt.embedded.max_retained", m.Embedded.MaxRetained, 0, MaxRetained)
	k.inRange("mqtt.embedded.max_retained_bytes", m.Embedded.MaxRetainedBytes, 0, MaxRetainedBytes)
	for i, u := range m.Embedded.CommandUsers {
		if u == "" {
			k.fail(fmt.Sprintf("mqtt.embedded.command_users[%d]", i), "must not be empty")
		}
	}
	if m.Broker == EmbeddedBroker {
		if err := checkListen(m.Listen); err != nil {
			k.fail("mqtt.listen", "%q: %v", m.Listen, err)
		}
		e := m.Embedded
		switch {
		case e.UsersFile != "" || e.AnonymousAllowed(m.Listen):
		case isLoopback(m.Listen):
			k.fail("mqtt.embedded.allow_anonymous", "false, and no mqtt.embedded.users_file: no client could connect")
		default:
			k.fail("mqtt.listen", "%s is not a loopback address, so clients must log in: set mqtt.embedded.users_file, or mqtt.embedded.allow_anonymous: true to let anyone who can reach it read the daemon's telemetry", m.Listen)
		}
		if e.MaxPacketSize < m.Commands.MaxPayload+MinPacketSize {
			k.fail("mqtt.embedded.max_packet_size", "%d leaves no room for a command of mqtt.commands.max_payload %d", e.MaxPacketSize, m.Commands.MaxPayload)
		}
	} else {
		if m.Listen != "" {
			k.fail("mqtt.listen", "only used when mqtt.broker is %q", EmbeddedBroker)
		}
		if m.Embedded.UsersFile != "" || m.Embedded.AllowAnonymous != nil {
			k.fail("mqtt.embedded", "only used when mqtt.broker is %q; for an external broker, set its own users and message_size_limit", EmbeddedBroker)
		}
	}
	if m.PasswordFile != "" && m.PasswordEnv != "" {
		k.fail("mqtt.password_env", "set only one of mqtt.password_file and mqtt.password_env")
	}
	if m.PasswordEnv != "" && !isEnvName(m.PasswordEnv) {
		k.fail("mqtt.password_env", "%q is not an environment variable name", m.PasswordEnv)
	}
	if (m.PasswordFile != "" || m.PasswordEnv != "") && m.Username == "" {
		k.fail("mqtt.username", "required when mqtt.password_file or mqtt.password_env is set")
	}
	k.maxLen("mqtt.client_id", m.ClientID, MaxClientID)
	k.maxLen("mqtt.topic_prefix", m.TopicPrefix, MaxPrefixLen)
	if m.QoS < 0 || m.QoS > 2 {
		k.fail("mqtt.qos", "must be 0, 1 or 2, got %d", m.QoS)
	}
	// Unwritten and empty, they have no device_id to derive from, and its error says so.
	if _, written := k.lines["mqtt.topic_prefix"]; written || m.TopicPrefix != "" {
		if err := contract.CheckPrefix(m.TopicPrefix); err != nil {
			k.fail("mqtt.topic_prefix", "%q %v", m.TopicPrefix, err)
		}
	}
	if _, written := k.lines["mqtt.client_id"]; written && m.ClientID == "" {
		k.fail("mqtt.client_id", "must not be empty (leave it out for deepfaked-<device_id>)")
	}
	if ha := m.HomeAssistant.DiscoveryPrefix; k.maxLen("mqtt.homeassistant.discovery_prefix", ha, MaxPrefixLen) {
		if err := contract.CheckDiscoveryPrefix(ha); err != nil {
			k.fail("mqtt.homeassistant.discovery_prefix", "%q %v", ha, err)
		}
	}
	if (m.TLS.Cert == "") != (m.TLS.Key == "") {
		if m.TLS.Cert == "" {
			k.fail("mqtt.tls.cert", "required when mqtt.tls.key is set")
		} else {
			k.fail("mqtt.tls.key", "required when mqtt.tls.cert is set")
		}
	}
	if m.TLS != (TLS{}) && scheme != "" && !brokerurl.IsTLS(scheme) {
		k.fail("mqtt.tls", "only used with ssl://, tls://, mqtts:// or wss:// brokers, not %s", m.Broker)
	}
	// MQTT carries the keep-alive as a 16-bit count of seconds.
	if ka := time.Duration(m.KeepAlive); ka < 0 || ka > 65535*time.Second || ka%time.Second != 0 {
		k.fail("mqtt.keepalive", "must be whole seconds from 0s (off) to 65535s, got %s", m.KeepAlive)
	}
	if m.Commands.MaxPayload < 16 || m.Commands.MaxPayload > 65536 {
		k.fail("mqtt.commands.max_payload", "must be 16..65536 bytes, got %d", m.Commands.MaxPayload)
	}
	o := m.Outbox
	if b := int64(o.MaxBytes); b < MinOutboxBytes || b > MaxOutboxBytes {
		k.fail("mqtt.outbox.max_bytes", "must be %d (64 KiB) to %d (64 GiB) bytes, got %d", MinOutboxBytes, MaxOutboxBytes, o.MaxBytes)
	}
	if a := o.MaxAge; a < 0 || a > MaxOutboxAge {
		k.fail("mqtt.outbox.max_age", "must be from 0s (no bound) to %s, got %s", MaxOutboxAge, a)
	}
	if f := o.Fsync; f < 0 || f > MaxOutboxFsync {
		k.fail("mqtt.outbox.fsync", "must be from 0s (every message) to %s, got %s", MaxOutboxFsync, f)
	}
	if d := m.DrainTimeout; d < 0 || d > MaxDrainTimeout {
		k.fail("mqtt.drain_timeout", "must be from 0s to %s, got %s", MaxDrainTimeout, d)
	}
	if d := m.StatsInterval; d != 0 && (d < MinStatsInterval || d > MaxStatsInterval) {
		k.fail("mqtt.stats_interval", "must be 0s (off) or from %s to %s, got %s", MinStatsInterval, MaxStatsInterval, d)
	}
}

// checkBroker returns the broker URL's scheme ("embedded" for the embedded broker),
// or "" after reporting a problem.
func checkBroker(k checker, b string) string {
	if b == EmbeddedBroker {
		return EmbeddedBroker
	}
	u, err := brokerurl.Parse(b)
	if err != nil {
		k.fail("mqtt.broker", "%v; or %q for the embedded broker", err, EmbeddedBroker)
		return ""
	}
	return u.Scheme
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port (e.g. %s)", DefaultListen)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port must be 0..65535")
	}
	return nil
}

func (m *Model) check(k checker) {
	k.oneOf("model.tta", m.TTA, []string{TTANone, TTAFlip, TTAShift, TTAFlipShift})
	if k.required("model.backbone", m.Backbone) {
		k.suffix("model.backbone", m.Backbone, ".onnx")
	}
	if k.required("model.head", m.Head) {
		k.suffix("model.head", m.Head, ".onnx")
	}
	seen := map[string]int{}
	for i, p := range m.Providers {
		key := fmt.Sprintf("model.providers[%d]", i)
		if !k.oneOf(key, p, provider.Known()) {
			continue
		}
		if j, dup := seen[p]; dup {
			k.fail(key, "%q is already listed as model.providers[%d]", p, j)
		}
		seen[p] = i
	}
	for _, p := range []struct{ key, v string }{{"model.backbone_sha256", m.BackboneSHA256}, {"model.head_sha256", m.HeadSHA256}} {
		if p.v != "" && !isSHA256(p.v) {
			k.fail(p.key, "%q is not a sha256 (64 lowercase hex digits, as sha256sum prints)", p.v)
		}
	}
	k.inRange("model.threads", m.Threads, 0, MaxThreads)
	if w := m.BatchWait; w < 0 || w > MaxBatchWait {
		k.fail("model.batch_wait", "must be from 0s to %s, got %s", MaxBatchWait, w)
	}
	if m.Threshold != nil {
		k.between("model.threshold", *m.Threshold, 0, 1)
	}
	t := m.TensorRT
	if w := int64(t.MaxWorkspaceSize); w < MinTRTWorkspace || w > MaxTRTWorkspace {
		k.fail("model.tensorrt.max_workspace_size", "must be %d (1 MiB) to %d (64 GiB) bytes, got %d", MinTRTWorkspace, MaxTRTWorkspace, t.MaxWorkspaceSize)
	}
	if t.BuilderOptimizationLevel < 0 || t.BuilderOptimizationLevel > 5 {
		k.fail("model.tensorrt.builder_optimization_level", "must be 0..5, got %d", t.BuilderOptimizationLevel)
	}
	if t.EPContext && !t.EngineCache {
		k.fail("model.tensorrt.ep_context", "needs model.tensorrt.engine_cache: true (the EP-context model is kept with the engine cache)")
	}
	if m.CUDA.DeviceID < 0 || m.CUDA.DeviceID >= MaxGPUs {
		k.fail("model.cuda.device_id", "must be 0..%d, got %d", MaxGPUs-1, m.CUDA.DeviceID)
	}
	if l := int64(m.CUDA.MemoryLimit); l != 0 && (l < MinCUDAMemory || l > MaxCUDAMemory) {
		k.fail("model.cuda.memory_limit", "must be 0 (no limit) or %d (16 MiB) to %d (1 TiB) bytes, got %d", MinCUDAMemory, MaxCUDAMemory, l)
	}
}

func (f *Faces) check(k checker) {
	if k.oneOf("faces.detector", f.Detector, detectors) {
		switch f.Detector {
		case "yunet", "ultraface":
			if f.Model == "" {
				k.fail("faces.model", "required for detector %s (its .onnx file)", f.Detector)
			}
			k.suffix("faces.model", f.Model, ".onnx")
		case "haar":
			k.suffix("faces.model", f.Model, ".xml")
		case "none":
			if f.Model != "" {
				k.fail("faces.model", "not used by detector none")
			}
		}
	}
	k.between("faces.margin", f.Margin, 0, 1)
	k.inRange("faces.min_size", f.MinSize, 0, MaxMinSize)
	k.between("faces.score", f.Score, 0, 1)
	// All faces of a frame go through the model in one batch: this bounds it.
	if f.MaxFaces < 1 || f.MaxFaces > MaxFaces {
		k.fail("faces.max_faces", "must be between 1 and %d, got %d", MaxFaces, f.MaxFaces)
	}
}

func (c *Camera) check(k checker, key string, names map[string]int, i int) {
	if k.required(key+".name", c.Name) && k.maxLen(key+".name", c.Name, MaxNameLen) {
		if err := contract.CheckCameraName(c.Name); err != nil {
			k.fail(key+".name", "%q %v", c.Name, err)
		} else if j, dup := names[c.Name]; dup {
			k.fail(key+".name", "%q is already used by cameras[%d]", c.Name, j)
		} else {
			names[c.Name] = i
		}
	}
	if k.required(key+".source", c.Source) {
		if _, err := source.Parse(c.Source); err != nil {
			k.fail(key+".source", "%v", err)
		}
	}
	k.between(key+".fps", c.FPS, 0, MaxFPS)
	if (c.Width == 0) != (c.Height == 0) {
		k.fail(key, "set both width and height, or neither")
	}
	k.inRange(key+".width", c.Width, 0, MaxFrameSide)
	k.inRange(key+".height", c.Height, 0, MaxFrameSide)
}

// isLoopback says whether a host:port listens on loopback only.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}
