// Package setup turns a checked configuration into the options each
// component takes. It is the one place where config values reach libraries:
// `deepfaked run`, `train`, `eval` and `bench` all build their engine,
// detector, preprocessing and MQTT options here, so a key means the same
// thing everywhere. Libraries take explicit values; defaults live only in
// daemon/config.
package setup

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/clip"
	"github.com/deepfaked/deepfaked/daemon/command"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/hass"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/snapshot"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/daemon/webhook"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
	"github.com/deepfaked/deepfaked/shipped"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/collect"
	"github.com/deepfaked/deepfaked/train/features"
	"github.com/deepfaked/deepfaked/train/install"
	"github.com/deepfaked/deepfaked/train/teach"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// LogLevel is log_level as a slog level. The config accepts only debug,
// info, warn and error.
func LogLevel(cfg *config.Config) slog.Level {
	switch cfg.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// EngineOptions are the ONNX Runtime engine's options (model.runtime,
// model.providers, model.threads, model.tensorrt, model.cuda). TensorRT
// builds its engines for batches up to faces.max_faces, a frame's batch.
func EngineOptions(cfg *config.Config, log *slog.Logger) engine.Options {
	m := cfg.Model
	t := m.TensorRT
	return engine.Options{Library: m.Runtime, Providers: m.Providers, Threads: m.Threads,
		TensorRT: engine.TensorRTOptions{FP16: t.FP16, INT8: t.INT8, CacheDir: t.CacheDir,
			EngineCache: t.EngineCache, TimingCache: t.TimingCache, MaxWorkspaceSize: int64(t.MaxWorkspaceSize),
			BuilderOptimizationLevel: t.BuilderOptimizationLevel, EPContext: t.EPContext},
		CUDA:     engine.CUDAOptions{DeviceID: m.CUDA.DeviceID, MemoryLimit: int64(m.CUDA.MemoryLimit)},
		MaxBatch: cfg.Faces.MaxFaces, Logger: log}
}

// AvailableProviders says which of model.providers the runtime library
// (model.runtime) has, in the order sessions use them, cpu last. For
// `deepfaked check-config`; it loads the library.
func AvailableProviders(cfg *config.Config) ([]string, error) {
	o := EngineOptions(cfg, nil)
	got, err := engine.Available(o.Library, o.Providers, o.CUDA)
	if err != nil {
		return nil, fmt.Errorf("model.runtime: %w", err)
	}
	return got, nil
}

// Engine starts the ONNX Runtime engine the config describes.
func Engine(cfg *config.Config, log *slog.Logger) (*engine.Engine, error) {
	eng, err := engine.New(EngineOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("model.runtime: %w", err)
	}
	return eng, nil
}

// Classifier loads the backbone and the head (model.backbone, model.head)
// with the test-time augmentation model.tta. A batch with V views runs as one
// model run while V times its faces fit faces.max_faces, the engine's
// MaxBatch (EngineOptions), and as V runs beyond.
func Classifier(cfg *config.Config, eng *engine.Engine) (*infer.Classifier, error) {
	if err := spec.CheckPin(cfg.Model.Backbone, cfg.Model.BackboneSHA256); err != nil {
		return nil, fmt.Errorf("model.backbone_sha256: %w", err)
	}
	if err := spec.CheckPin(cfg.Model.Head, cfg.Model.HeadSHA256); err != nil {
		return nil, fmt.Errorf("model.head_sha256: %w", err)
	}
	keys, err := TrustedKeys(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := modelsig.CheckFile(cfg.Model.Backbone, keys, modelsig.Backbone); err != nil {
		return nil, fmt.Errorf("model.backbone: %w", err)
	}
	if _, err := modelsig.CheckFile(cfg.Model.Head, keys, modelsig.Head); err != nil {
		return nil, fmt.Errorf("model.head: %w", err)
	}
	// model.tta's values are infer's names (config checks them too).
	if t := cfg.Model.TTA; t != "" && !slices.Contains(infer.TTAs(), t) {
		return nil, fmt.Errorf("model.tta %q: want one of %v", t, infer.TTAs())
	}
	return infer.LoadClassifier(eng, cfg.Model.Backbone, cfg.Model.Head,
		infer.ClassifierOptions{TTA: cfg.Model.TTA, MaxBatch: EngineOptions(cfg, nil).MaxBatch})
}

// TrustedKeys are the keys whose signatures make a model loadable
// (model.trusted_keys); none trusts any model, signed or not.
func TrustedKeys(cfg *config.Config) (modelsig.Keys, error) {
	keys, err := modelsig.ParseKeys(cfg.Model.TrustedKeys)
	if err != nil {
		return nil, fmt.Errorf("model.trusted_keys: %w", err)
	}
	return keys, nil
}

// Signing is what installing a head does about signatures: it signs with
// train.signing_key, naming the device in the signature, and refuses a head
// no key in model.trusted_keys signed. A signing key that the trusted keys
// leave out is an error here: every head it signed would be refused.
func Signing(cfg *config.Config) (install.Signing, error) {
	keys, err := TrustedKeys(cfg)
	if err != nil {
		return install.Signing{}, err
	}
	s := install.Signing{Keys: keys, Release: "trained on device " + cfg.DeviceID}
	if cfg.Train.SigningKey == "" {
		return s, nil
	}
	k, err := modelsig.LoadPrivateKey(cfg.Train.SigningKey, "")
	if err != nil {
		return s, fmt.Errorf("train.signing_key: %w (the device's key is read unattended, so it must not be encrypted)", err)
	}
	if id := k.ID(); len(keys) > 0 && !slices.ContainsFunc(keys, func(p minisign.PublicKey) bool { return p.ID() == id }) {
		return s, fmt.Errorf("train.signing_key: key %s is not one of model.trusted_keys (%s): the heads it signs would be refused",
			modelsig.KeyID(id), strings.Join(keys.IDs(), ", "))
	}
	s.Key = &k
	return s, nil
}

// ModelRelease names the release the running backbone (backboneID, its id
// in verdicts) belongs to: with model.trusted_keys the one its signature
// names, else the shipped model's when it is that one; "" when neither says.
func ModelRelease(cfg *config.Config, backboneID string) string {
	if keys, err := TrustedKeys(cfg); err == nil && len(keys) > 0 {
		if s, err := modelsig.CheckFile(cfg.Model.Backbone, keys, modelsig.Backbone); err == nil && s.Release != "" {
			return s.Release
		}
	}
	if r, err := shipped.Get(); err == nil && r.Runs(backboneID) {
		return r.Name
	}
	return ""
}

// DetectorOptions are the face detector's options (the faces: section).
func DetectorOptions(cfg *config.Config, eng *engine.Engine) face.Options {
	f := cfg.Faces
	return face.Options{Kind: f.Detector, Model: f.Model, MinSize: f.MinSize, Score: float32(f.Score), Engine: eng}
}

// Detector makes the configured face detector.
func Detector(cfg *config.Config, eng *engine.Engine) (face.Detector, error) {
	det, err := face.New(DetectorOptions(cfg, eng))
	if err != nil {
		return nil, fmt.Errorf("faces.detector %s: %w", cfg.Faces.Detector, err)
	}
	return det, nil
}

// PreprocessParams are the crop and normalisation parameters: the backbone's
// metadata says what the model takes, faces.margin how much border to keep.
func PreprocessParams(cfg *config.Config, meta spec.Metadata) preprocess.Params {
	return preprocess.Params{Size: meta.InputSize, Mean: meta.Mean, Std: meta.Std, ColorOrder: meta.ColorOrder, Margin: cfg.Faces.Margin}
}

// CameraOptions are one camera's capture options, with what capture says
// for every camera.
func CameraOptions(cp config.Capture, c config.Camera) capture.Options {
	return capture.Options{Name: c.Name, Source: c.Source, FPS: c.FPS, Loop: c.Loop, Width: c.Width, Height: c.Height,
		Decoder: c.Decoder, DecoderThreads: cp.DecoderThreads, IOTimeout: time.Duration(cp.IOTimeout), Registry: capture.Registry{}}
}

// connectTimeout bounds each connection attempt and how long the daemon's
// start waits for the broker before it runs anyway, publishing into the outbox.
const connectTimeout = 10 * time.Second

// MQTTOptions are the broker connection's options; secrets are read here,
// not kept in the config.
func MQTTOptions(cfg *config.Config) (mqttc.Options, error) {
	m := cfg.MQTT
	o := mqttc.Options{Broker: m.Broker, ClientID: m.ClientID, Username: m.Username, QoS: byte(m.QoS),
		StatusTopic: contract.Topics{Prefix: m.TopicPrefix}.Status(), KeepAlive: time.Duration(m.KeepAlive), ConnectTimeout: connectTimeout}
	if m.PasswordFile != "" || m.PasswordEnv != "" {
		pw, err := mqttc.ReadPassword(m.PasswordFile, m.PasswordEnv)
		if err != nil {
			return o, fmt.Errorf("mqtt password: %w", err)
		}
		o.Password = pw
	}
	if m.TLS.CA != "" || m.TLS.Cert != "" || m.TLS.InsecureSkipVerify {
		t, err := mqttc.LoadTLS(m.TLS.CA, m.TLS.Cert, m.TLS.Key, m.TLS.InsecureSkipVerify)
		if err != nil {
			return o, fmt.Errorf("mqtt.tls: %w", err)
		}
		o.TLS = t
	}
	return o, nil
}

// WatchOptions are a watcher's options (`deepfaked watch`): a client of the
// daemon's broker with the config's credentials and TLS, the embedded
// broker reached on mqtt.listen, neither the daemon's client id nor its
// status topic, and an error with the broker's address when no session is
// made within the connect timeout. A nil cfg is a local broker on MQTT's
// port.
func WatchOptions(cfg *config.Config) (mqttc.Options, error) {
	if cfg == nil {
		return mqttc.Options{Broker: "tcp://127.0.0.1:1883", QoS: 1, KeepAlive: time.Duration(config.DefaultKeepAlive), GiveUp: connectTimeout}, nil
	}
	o, err := MQTTOptions(cfg)
	if err != nil {
		return o, err
	}
	if cfg.MQTT.Broker == config.EmbeddedBroker {
		o.Broker = mqttc.LocalURL(cfg.MQTT.Listen)
	}
	o.ClientID, o.StatusTopic, o.GiveUp = "", "", connectTimeout
	return o, nil
}

// OutboxOptions are the on-disk outbox's options (mqtt.outbox); log is
// where it reports torn records and drops.
func OutboxOptions(cfg *config.Config, log *slog.Logger) outbox.Options {
	o := cfg.MQTT.Outbox
	return outbox.Options{Dir: o.Dir, MaxBytes: int64(o.MaxBytes), MaxAge: time.Duration(o.MaxAge), Fsync: time.Duration(o.Fsync), Log: log}
}

// Outbox opens the outbox in mqtt.outbox.dir.
func Outbox(cfg *config.Config, log *slog.Logger) (*outbox.Outbox, error) {
	b, err := outbox.Open(OutboxOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("mqtt.outbox.dir: %w", err)
	}
	return b, nil
}

// IOTimeout bounds network cameras' connects and reads (capture.io_timeout),
// for capture.SetFFmpegEnv.
func IOTimeout(cfg *config.Config) time.Duration { return time.Duration(cfg.Capture.IOTimeout) }

// WatchdogStall is how long a camera read, detection or model run may take
// before the daemon stops feeding systemd's watchdog (watchdog.stall).
func WatchdogStall(cfg *config.Config) time.Duration { return time.Duration(cfg.Watchdog.Stall) }

// DrainTimeout is how long a stopping daemon waits for the broker to
// acknowledge what is left in the outbox (mqtt.drain_timeout).
func DrainTimeout(cfg *config.Config) time.Duration { return time.Duration(cfg.MQTT.DrainTimeout) }

// StatsInterval is how often the retained stats topic is published
// (mqtt.stats_interval); 0 never.
func StatsInterval(cfg *config.Config) time.Duration { return time.Duration(cfg.MQTT.StatsInterval) }

// MetricsListen is where /metrics, /healthz and /readyz are served
// (metrics.listen); "" serves nothing.
func MetricsListen(cfg *config.Config) string { return cfg.Metrics.Listen }

// MetricsLabels go on every metric: device (device_id) and metrics.labels.
func MetricsLabels(cfg *config.Config) map[string]string {
	labels := map[string]string{config.MetricsDeviceLabel: cfg.DeviceID}
	maps.Copy(labels, cfg.Metrics.Labels)
	return labels
}

// EmbeddedBroker starts the broker inside the daemon on mqtt.listen when
// mqtt.broker is embedded; it returns nil when the broker is elsewhere.
func EmbeddedBroker(cfg *config.Config, log *slog.Logger) (*mqttc.Broker, error) {
	if cfg.MQTT.Broker != config.EmbeddedBroker {
		return nil, nil
	}
	o, err := BrokerOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	b, err := mqttc.StartBroker(o)
	if err != nil {
		return nil, fmt.Errorf("mqtt.listen %s: %w", cfg.MQTT.Listen, err)
	}
	return b, nil
}

// BrokerOptions are the embedded broker's options (mqtt.listen,
// mqtt.embedded): the users file's users and the daemon's own client
// (mqtt.username with its password, or a login made for the run), and who
// may write and read what (mqttc.Access).
func BrokerOptions(cfg *config.Config, log *slog.Logger) (mqttc.BrokerOptions, error) {
	m, e := cfg.MQTT, cfg.MQTT.Embedded
	o := mqttc.BrokerOptions{Addr: m.Listen, AllowAnonymous: e.AnonymousAllowed(m.Listen),
		MaxPacketSize: uint32(e.MaxPacketSize), MaxClients: e.MaxClients, ConnectTimeout: connectTimeout, MaxRetained: e.MaxRetained,
		MaxRetainedBytes: int64(e.MaxRetainedBytes), Log: log, Users: map[string]string{},
		Access: mqttc.Access{Daemon: m.Username, ClientID: m.ClientID, Prefix: m.TopicPrefix,
			Discovery: m.HomeAssistant.DiscoveryPrefix, CommandUsers: e.CommandUsers}}
	if m.Username == "" {
		o.Access.Daemon, o.Access.DaemonPassword = mqttc.DaemonUser, mqttc.NewDaemonPassword()
	}
	if f := m.Embedded.UsersFile; f != "" {
		users, err := mqttc.ReadUsers(f)
		if err != nil {
			return o, fmt.Errorf("mqtt.embedded.users_file: %w", err)
		}
		o.Users = users
	}
	if m.Username != "" {
		pw, err := mqttc.ReadPassword(m.PasswordFile, m.PasswordEnv)
		if err != nil {
			return o, fmt.Errorf("mqtt password: %w", err)
		}
		o.Users[m.Username] = pw
	}
	for _, u := range e.CommandUsers {
		if _, ok := o.Users[u]; !ok {
			return o, fmt.Errorf("mqtt.embedded.command_users: %q is not a user of mqtt.embedded.users_file", u)
		}
	}
	return o, nil
}

// Commands is the dispatcher of the MQTT commands (mqtt.commands) to
// handlers, under mqtt.topic_prefix; nil when commands are off.
func Commands(cfg *config.Config, handlers map[string]command.Handler, log *slog.Logger) *command.Dispatcher {
	c := cfg.MQTT.Commands
	if !c.Enabled {
		return nil
	}
	return command.New(cfg.MQTT.TopicPrefix, c.MaxPayload, handlers, log)
}

// Threshold is model.threshold, unset when the config leaves it out.
func Threshold(cfg *config.Config) spec.Threshold {
	if cfg.Model.Threshold == nil {
		return spec.NoThreshold
	}
	return spec.ThresholdOf(*cfg.Model.Threshold)
}

// PipelineOptions are the pipeline's options; the caller adds the logger,
// the run id, the collector and the snapshot store.
func PipelineOptions(cfg *config.Config) pipeline.Options {
	e := cfg.Events
	return pipeline.Options{Device: cfg.DeviceID, TopicPrefix: cfg.MQTT.TopicPrefix,
		Threshold: Threshold(cfg), MaxFaces: cfg.Faces.MaxFaces, BatchWait: time.Duration(cfg.Model.BatchWait),
		Verdicts: cfg.MQTT.Verdicts, Tracks: TrackOptions(cfg),
		Events: pipeline.EventOptions{Enabled: e.Enabled, Cooldown: time.Duration(e.Cooldown),
			Track: track.EventOptions{All: e.Tracks == config.EventsAll, UpdateDelta: cfg.Tracks.UpdateDelta}}}
}

// HomeAssistant is Home Assistant's discovery configs for the cameras
// (mqtt.homeassistant), to announce at every connection; nil when off.
func HomeAssistant(cfg *config.Config) ([]mqttc.Retained, error) {
	ha := cfg.MQTT.HomeAssistant
	if !ha.Enabled {
		return nil, nil
	}
	cams := make([]string, len(cfg.Cameras))
	for i, c := range cfg.Cameras {
		cams[i] = c.Name
	}
	msgs, err := hass.Configs(hass.Options{DiscoveryPrefix: ha.DiscoveryPrefix, TopicPrefix: cfg.MQTT.TopicPrefix,
		DeviceID: cfg.DeviceID, Cameras: cams, Version: buildinfo.Version(), PageURL: PageURL(cfg),
		Events: cfg.Events.Enabled, Snapshots: cfg.Events.Enabled && cfg.Events.Snapshots.Enabled && cfg.Events.Snapshots.Publish})
	if err != nil {
		return nil, fmt.Errorf("mqtt.homeassistant: %w", err)
	}
	out := make([]mqttc.Retained, len(msgs))
	for i, m := range msgs {
		out[i] = mqttc.Retained{Topic: m.Topic, Payload: m.Payload}
	}
	return out, nil
}

// WebhookOptions are the event notifier's options (webhook.*): a failed
// POST is tried again after 1 s, doubling to 5 min.
func WebhookOptions(cfg *config.Config, log *slog.Logger) webhook.Options {
	w := cfg.Webhook
	return webhook.Options{URL: w.URL, All: w.Events == config.WebhookAll, Timeout: time.Duration(w.Timeout),
		PageURL: PageURL(cfg), Outbox: outbox.Options{Dir: w.Dir, MaxBytes: int64(w.MaxBytes), MaxAge: time.Duration(w.MaxAge), Log: log},
		MinBackoff: time.Second, MaxBackoff: 5 * time.Minute, Log: log}
}

// Webhook is the event notifier (webhook.*); nil without webhook.url.
func Webhook(cfg *config.Config, log *slog.Logger) (*webhook.Sender, error) {
	if cfg.Webhook.URL == "" {
		return nil, nil
	}
	s, err := webhook.New(WebhookOptions(cfg, log))
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return s, nil
}

// PageURL is the page's address as others reach it: web.url, else made from
// web.listen (https with web.tls; a wildcard host is this machine's name);
// empty when the page is off.
func PageURL(cfg *config.Config) string {
	w := cfg.Web
	switch {
	case !w.Enabled:
		return ""
	case w.URL != "":
		return w.URL
	}
	host, port, err := net.SplitHostPort(w.Listen)
	if err != nil { // refused by the config's check
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return ""
		}
	}
	scheme := "http"
	if w.TLS.Cert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// TrackOptions are the face tracks' options (tracks.*).
func TrackOptions(cfg *config.Config) track.Options {
	t := cfg.Tracks
	return track.Options{IoU: t.IoU, MaxMissed: t.MaxMissed, MinFrames: t.MinFrames, Rule: track.Rule(t.Rule),
		EMAAlpha: t.EMAAlpha, ConfidentHigh: t.Confident.High, ConfidentLow: t.Confident.Low,
		ConfidentCount: t.Confident.Count, Margin: t.Margin}
}

// SnapshotOptions are the snapshot store's options (events.snapshots); meta
// says how to undo the model input's normalisation; published, when set,
// gets each JPEG (events.snapshots.publish).
func SnapshotOptions(cfg *config.Config, meta spec.Metadata, published func(camera string, jpeg []byte)) snapshot.Options {
	s := cfg.Events.Snapshots
	return snapshot.Options{Dir: s.Dir, MaxCount: s.MaxCount, MaxAge: time.Duration(s.MaxAge),
		Mean: meta.Mean, Std: meta.Std, ColorOrder: meta.ColorOrder, Published: published, Queue: snapshotQueue}
}

// ClipOptions are the clip recorder's options (events.clips); run names the
// files, as it names snapshots.
func ClipOptions(cfg *config.Config, run string, log *slog.Logger) clip.Options {
	c := cfg.Events.Clips
	return clip.Options{Dir: c.Dir, Run: run, Pre: time.Duration(c.Pre), Post: time.Duration(c.Post),
		All: c.Tracks == config.EventsAll, Boxes: c.Boxes, MaxWidth: c.MaxWidth, FPS: c.FPS, MaxAge: time.Duration(c.MaxAge),
		MaxBytes: c.MaxBytes, Log: log}
}

// snapshotQueue is how many snapshots may wait for the disk: events are
// rare, a burst of them a handful.
const snapshotQueue = 16

// CollectOptions are the crop collector's options (train.collect); meta says
// how to undo the model input's normalisation when saving a crop.
func CollectOptions(cfg *config.Config, meta spec.Metadata) collect.Options {
	c := cfg.Train.Collect
	return collect.Options{Dir: c.Dir, BandLow: c.BandLow, BandHigh: c.BandHigh, EveryN: c.EveryN,
		MaxFiles: c.MaxFiles, MaxBytes: int64(c.MaxBytes), JPEGQuality: c.JPEGQuality, Mean: meta.Mean, Std: meta.Std, ColorOrder: meta.ColorOrder}
}

// TeachDir holds the page's "teach this camera" sessions: <state_dir>/teach.
func TeachDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "teach") }

// TeachOptions are "teach this camera"'s: its folder, and crops saved as
// train.collect saves them (JPEG quality, the model input's normalisation).
func TeachOptions(cfg *config.Config, meta spec.Metadata, log *slog.Logger) teach.Options {
	c := CollectOptions(cfg, meta)
	return teach.Options{Dir: TeachDir(cfg), Collect: collect.Options{JPEGQuality: c.JPEGQuality, Mean: c.Mean, Std: c.Std, ColorOrder: c.ColorOrder},
		Log: log}
}

// TeachFaces is how many faces "teach this camera" collects, every
// TeachEveryN-th face of the camera (train.teach).
func TeachFaces(cfg *config.Config) (faces, everyN int) {
	return cfg.Train.Teach.Faces, cfg.Train.Teach.EveryN
}

// GateSet is the operator's trusted labelled folder (train.gate_set) that
// `train --install` also gates on; "" for none.
func GateSet(cfg *config.Config) string { return cfg.Train.GateSet }

// GateSetCrop is how the gate set's images are read when the training data
// is read with dataCrop (train.gate_set_crop).
func GateSetCrop(cfg *config.Config, dataCrop string) string {
	if c := cfg.Train.GateSetCrop; c != config.GateSetCropSame {
		return c
	}
	return dataCrop
}

// LabelFolders are where `deepfaked label` and the MQTT label command take
// crops from (train.collect.dir) and put them (train.dataset).
func LabelFolders(cfg *config.Config) collect.Folders {
	return collect.Folders{Collect: cfg.Train.Collect.Dir, Dataset: cfg.Train.Dataset}
}

// WorkflowOptions are `deepfaked train`'s options from the train: section and
// model.head, the head the install gate compares with and replaces, and how
// the install signs it (Signing); the caller adds the data's and the
// command line's.
func WorkflowOptions(cfg *config.Config) (workflow.Options, error) {
	t := cfg.Train
	signing, err := Signing(cfg)
	if err != nil {
		return workflow.Options{}, err
	}
	return workflow.Options{Train: trainConfig(t), Holdout: t.Holdout, GateMargin: t.GateMargin, Head: cfg.Model.Head,
		Mix: t.Mixes(), Signing: signing}, nil
}

// SelfBlend is `deepfaked train`'s self-blending (train.self_blend, seeded
// by train.seed).
func SelfBlend(cfg *config.Config) features.SelfBlend {
	return features.SelfBlend{Per: cfg.Train.SelfBlend, Seed: uint64(cfg.Train.Seed)}
}

// trainConfig is the head training's configuration (the train: section).
func trainConfig(t config.Train) train.Config {
	return train.Config{LR: t.LR, L1: t.L1, WeightDecay: t.WeightDecay, Dropout: t.Dropout, BatchSize: t.BatchSize,
		Epochs: t.Epochs, Patience: t.Patience, Folds: t.Folds, Seed: int64(t.Seed),
		ClassWeights: t.ClassWeights == config.ClassWeightsBalanced}
}

// WebOptions are the page's options (web.*): the password file read and
// hashed, the TLS certificate loaded. Listen is "" when the page is off.
func WebOptions(cfg *config.Config) (web.Options, error) {
	w := cfg.Web
	if !w.Enabled {
		return web.Options{}, nil
	}
	o := web.Options{Listen: w.Listen}
	if w.PasswordFile != "" {
		h, err := web.ReadPasswordFile(w.PasswordFile)
		if err != nil {
			return o, err
		}
		o.PasswordHash = h
	}
	if w.TLS.Cert != "" {
		pair, err := tls.LoadX509KeyPair(w.TLS.Cert, w.TLS.Key)
		if err != nil {
			return o, fmt.Errorf("web.tls: %w", err)
		}
		o.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	return o, nil
}

// WebShared says whether the page is served by the metrics' HTTP server
// (web.listen equal to metrics.listen).
func WebShared(cfg *config.Config) bool { return cfg.WebShared() }
