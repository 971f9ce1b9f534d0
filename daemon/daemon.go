// Package daemon wires deepfaked together: configuration, the ONNX Runtime
// engine and models, the MQTT broker connection (or an embedded broker), the
// cameras and the pipeline between them, head reloads and systemd readiness.
//
// New starts everything that can fail at start, so a bad model, broker or
// camera is reported before anything runs; Run analyses until the cameras end
// or ctx is cancelled; Close releases what New took.
package daemon

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/clip"
	"github.com/deepfaked/deepfaked/daemon/command"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/health"
	"github.com/deepfaked/deepfaked/daemon/metrics"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/outbox"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/snapshot"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/daemon/webhook"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/train/collect"
	"github.com/deepfaked/deepfaked/train/teach"
)

// Daemon is a started deepfaked: models loaded, broker connected, cameras open.
type Daemon struct {
	cfg  *config.Config
	log  *slog.Logger
	mqtt mqttc.Options // as connected: the embedded broker's real address

	hup       chan os.Signal
	eng       *engine.Engine
	clf       *infer.Classifier
	broker    *mqttc.Broker
	collector *collect.Collector
	teacher   *teach.Teacher // the page's "teach this camera", or nil
	snaps     *snapshot.Store
	reloader  *headReloader
	headWatch *headWatcher // nil when model.watch_head is off or the watch failed
	cmds      *command.Dispatcher
	box       *outbox.Outbox
	pub       *mqttc.Publisher
	cams      []openCamera
	pipe      *pipeline.Pipeline
	mon       *health.Monitor
	metrics   *metrics.Server // nil unless metrics.listen, and not shared with the page
	web       *web.Server     // nil unless web.enabled
	hook      *webhook.Sender // nil unless webhook.url
	clips     *clip.Recorder  // nil unless events and events.clips are on
	live      *liveView       // nil unless web.enabled
	webSrv    *web.HTTPServer

	ran       atomic.Bool // Run was called
	closeOnce sync.Once
	closeErr  error
}

// CheckFiles is the file check `deepfaked check-config` and New share: every
// file the config names exists and is readable. The error names the config file.
func CheckFiles(cfg *config.Config) error {
	if err := cfg.CheckFiles(); err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	return nil
}

// New starts a daemon for cfg: it checks the files cfg names, registers for
// SIGHUP (reload the head) before anything else, loads the engine and models,
// starts the embedded broker when configured, connects to the broker and
// opens the cameras. ctx bounds the start and the life of live cameras. On
// error everything taken so far is released. log nil is slog.Default().
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (d *Daemon, err error) {
	if log == nil {
		log = slog.Default()
	}
	start := time.Now()
	// From here on SIGHUP is a reload request, never the default "terminate",
	// whatever becomes of the file watch: systemd may send it as soon as it
	// has READY=1, and counts a death by SIGHUP as a clean exit.
	d = &Daemon{cfg: cfg, log: log, hup: make(chan os.Signal, 1)}
	signal.Notify(d.hup, syscall.SIGHUP)
	defer func() {
		if err != nil {
			_ = d.Close()
			d = nil
		}
	}()
	if err := CheckFiles(cfg); err != nil {
		return d, err
	}
	webOpts, err := setup.WebOptions(cfg) // the password file and certificate, before the slow parts
	if err != nil {
		return d, err
	}
	if d.eng, err = setup.Engine(cfg, log); err != nil {
		return d, err
	}
	if d.clf, err = setup.Classifier(cfg, d.eng); err != nil {
		return d, err
	}
	log.Info("models loaded", "backbone", cfg.Model.Backbone, "backbone_id", d.clf.BackboneID(),
		"head", cfg.Model.Head, "head_id", d.clf.HeadID(), "input_size", d.clf.InputSize(),
		"threshold", spec.DecisionThreshold(setup.Threshold(cfg), d.clf.Threshold()))
	signing, err := setup.Signing(cfg) // Classifier checked both files against its keys
	if err != nil {
		return d, err
	}
	if len(signing.Keys) > 0 {
		log.Info("models signed by a trusted key", "trusted_keys", signing.Keys.IDs())
	}
	d.reloader = &headReloader{eng: d.eng, clf: d.clf, path: cfg.Model.Head, pin: cfg.Model.HeadSHA256, keys: signing.Keys, log: log}

	if d.mqtt, err = setup.MQTTOptions(cfg); err != nil {
		return d, err
	}
	if d.broker, err = setup.EmbeddedBroker(cfg, log); err != nil {
		return d, err
	}
	if d.broker != nil {
		d.mqtt.Broker = d.broker.URL()
		if user, pw, ok := d.broker.DaemonLogin(); ok { // the only client that may write under the prefix
			d.mqtt.Username, d.mqtt.Password = user, pw
		}
	}
	if cfg.Train.Collect.Enabled() {
		c := cfg.Train.Collect
		if d.collector, err = collect.New(setup.CollectOptions(cfg, d.clf.Meta()), log); err != nil {
			return d, fmt.Errorf("train.collect: %w", err)
		}
		log.Info("collecting face crops for labelling", "dir", c.Dir, "band", []float64{c.BandLow, c.BandHigh}, "every_n", c.EveryN)
	}
	mo := d.mqtt
	if d.cmds = setup.Commands(cfg, d.commands(setup.LabelFolders(cfg)), log); d.cmds != nil {
		mo.Subscriptions = append(mo.Subscriptions, mqttc.Subscription{Filter: d.cmds.Filter(), Handle: d.cmds.Handle})
	}
	if mo.Announce, err = setup.HomeAssistant(cfg); err != nil {
		return d, err
	}
	if d.box, err = setup.Outbox(cfg, log); err != nil {
		return d, err
	}
	mo.Outbox = d.box
	if d.pub, err = mqttc.Connect(ctx, mo, log); err != nil {
		return d, err
	}
	if err := retireDiscovery(cfg, d.pub, log); err != nil {
		return d, err
	}
	if err := capture.SetFFmpegEnv(setup.IOTimeout(cfg)); err != nil {
		return d, fmt.Errorf("capture.io_timeout: %w", err)
	}
	if err := d.openCameras(ctx); err != nil {
		return d, err
	}
	po := setup.PipelineOptions(cfg)
	po.Log = log
	po.Run = runID()
	log.Info("verdicts carry this run's id", "run", po.Run)
	// The page's "teach this camera" takes faces as train.collect does,
	// when the page can train (the config was read from a file).
	if webOpts.Listen != "" && cfg.Path != "" {
		d.teacher = teach.New(setup.TeachOptions(cfg, d.clf.Meta(), log))
	}
	po.Collector = collectorsOf(d.collector, d.teacher)
	if cfg.Events.Enabled && cfg.Events.Snapshots.Enabled {
		var published func(string, []byte)
		if cfg.Events.Snapshots.Publish {
			published = func(camera string, jpeg []byte) {
				if err := d.pub.PublishRetained(contract.Topics{Prefix: cfg.MQTT.TopicPrefix}.Snapshot(camera), jpeg); err != nil {
					log.Warn("publish snapshot", "camera", camera, "err", err)
				}
			}
		}
		if d.snaps, err = snapshot.New(setup.SnapshotOptions(cfg, d.clf.Meta(), published), log); err != nil {
			return d, fmt.Errorf("events.snapshots: %w", err)
		}
		po.Events.Snapshots = d.snaps
	}
	if cfg.Events.Enabled && cfg.Events.Clips.Enabled {
		names := make([]string, len(cfg.Cameras))
		for i, c := range cfg.Cameras {
			names[i] = c.Name
		}
		if d.clips, err = clip.New(setup.ClipOptions(cfg, po.Run, log), names); err != nil {
			return d, fmt.Errorf("events.clips: %w", err)
		}
		po.Events.Clips = d.clips
	}
	if d.hook, err = setup.Webhook(cfg, log); err != nil {
		return d, err
	}
	if d.hook != nil {
		po.Events.Sink = d.hook
	}
	var pub pipeline.Publisher = d.pub
	var tap *publishTap
	if webOpts.Listen != "" { // the page shows the events, last verdicts and live frames
		names := make([]string, len(cfg.Cameras))
		for i, c := range cfg.Cameras {
			names[i] = c.Name
		}
		d.live = newLiveView(names)
		tap = newPublishTap(d.pub, contract.Topics{Prefix: cfg.MQTT.TopicPrefix}, d.live, log)
		pub = tap
	}
	if d.pipe, err = pipeline.New(po, d.clf, pub, pipelineCameras(d.cams, d.live)); err != nil {
		return d, err
	}
	if err := d.observe(start, webOpts, tap); err != nil {
		return d, err
	}
	if cfg.Model.WatchHead {
		// Optional: without it (inotify limits on small boards), SIGHUP and
		// the MQTT reload command still reload the head.
		if d.headWatch, err = watchHead(cfg.Model.Head, log); err != nil {
			log.Error("hot reload on head file change is off; SIGHUP still reloads", "err", err)
			err = nil
		}
	}
	return d, nil
}

// ObserveStages shows o every published frame's stage times (see
// pipeline.Observer), beside the metrics' own observer; call it before Run.
// It is for `deepfaked bench`, which otherwise measures the daemon from
// outside, through its verdicts.
func (d *Daemon) ObserveStages(o pipeline.Observer) { d.pipe.Observe(o) }

// commands are the MQTT commands (mqtt.commands); label moves crops between folders.
func (d *Daemon) commands(folders collect.Folders) map[string]command.Handler {
	return map[string]command.Handler{
		contract.CommandReload: func(_ context.Context, payload []byte) (string, error) {
			if err := command.ParseEmpty(payload); err != nil {
				return "", err
			}
			return d.reloader.Reload("mqtt command")
		},
		contract.CommandLabel: func(ctx context.Context, payload []byte) (string, error) {
			lc, err := collect.ParseLabelCommand(payload)
			if err != nil {
				return "", err
			}
			var paths []string
			if d.collector != nil {
				paths, err = d.collector.Label(ctx, folders.Dataset, lc.Camera, lc.Frame, lc.Label)
			} else {
				paths, err = folders.Label(lc.Camera, lc.Frame, lc.Label)
			}
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d crop(s) of %s frame %d labelled %s", len(paths), lc.Camera, lc.Frame, lc.Label), nil
		},
	}
}

// MQTTOptions are the options of the daemon's own broker connection, with the
// address it really uses (the embedded broker's port when listen asks for 0),
// for a client that watches what the daemon publishes: give it a ClientID of
// its own. StatusTopic says where the daemon publishes online and offline.
func (d *Daemon) MQTTOptions() mqttc.Options { return d.mqtt }

// Run analyses frames until every camera has ended or ctx is cancelled; then
// it publishes the verdicts of frames in flight, publishes `offline` (so a
// watcher can see it before Close stops an embedded broker) and returns. It
// sends READY=1 to systemd once running. Run runs once.
func (d *Daemon) Run(ctx context.Context) error {
	if d.ran.Swap(true) {
		return errors.New("daemon: Run called twice")
	}

	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.reloads(bg) })
	rep := d.reporter()
	wg.Go(func() { rep.Run(bg) })
	if d.hook != nil {
		wg.Go(func() { _ = d.hook.Run(bg) }) // ends with bg; what is left waits on disk
	}
	if d.cmds != nil {
		wg.Go(func() { d.cmds.Run(bg, d.pub) })
		d.log.Info("mqtt commands enabled", "topic", d.cmds.Filter())
	}
	if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); err != nil {
		d.log.Warn("systemd notify", "err", err)
	}
	if every, err := sddaemon.SdWatchdogEnabled(false); err != nil {
		d.log.Warn("systemd watchdog", "err", err)
	} else if every > 0 {
		stall := setup.WatchdogStall(d.cfg)
		d.log.Info("systemd watchdog on", "ping_every", every/2, "stall", stall)
		wg.Go(func() {
			watchdog(bg, d.pipe, every/2, stall, func(s string) error { _, err := sddaemon.SdNotify(false, s); return err }, d.log)
		})
	}
	d.log.Info("running", "device", d.cfg.DeviceID, "cameras", len(d.cams), "topic_prefix", d.cfg.MQTT.TopicPrefix)
	err := d.pipe.Run(ctx)
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	if ctx.Err() != nil {
		d.log.Info("stopping: signal received; in-flight frames published")
	} else {
		d.log.Info("stopping: every camera has ended")
	}
	if d.hook != nil { // as the broker gets mqtt.drain_timeout; what is left waits on disk
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), setup.DrainTimeout(d.cfg))
		if err := d.hook.Drain(dctx); err != nil {
			d.log.Warn("webhook: notifications left for the next start", "pending", d.hook.Stats().Pending)
		}
		cancel()
	}
	stopBG()
	wg.Wait()
	rep.Availability(time.Now())
	if d.snaps != nil { // its last snapshots may be published
		d.snaps.Close()
	}
	if d.clips != nil { // the clips still taking frames, with what they have
		d.clips.Close()
	}
	return errors.Join(err, d.closePublisher())
}

// reloads reloads the head on SIGHUP and, when watched, when its file changes.
func (d *Daemon) reloads(ctx context.Context) {
	var changed <-chan struct{}
	if d.headWatch != nil {
		changed = d.headWatch.changed
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.hup:
			_, _ = d.reloader.Reload("SIGHUP")
		case <-changed:
			_, _ = d.reloader.Reload("head file changed")
		}
	}
}

// closePublisher waits up to mqtt.drain_timeout for the broker to
// acknowledge what is in the outbox and publishes `offline`. What is left is
// safe on disk for the next start, so that is logged, not an error.
func (d *Daemon) closePublisher() error {
	if d.pub == nil {
		return nil
	}
	drain := setup.DrainTimeout(d.cfg)
	if n := d.box.Stats().Pending; n > 0 {
		d.log.Info("waiting for the broker to acknowledge the outbox", "messages", n, "drain_timeout", drain)
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := d.pub.Close(ctx)
	if n := d.box.Stats().Pending; n > 0 {
		d.log.Warn("messages not delivered within mqtt.drain_timeout stay in the outbox for the next start",
			"messages", n, "outbox", d.cfg.MQTT.Outbox.Dir, "drain_timeout", drain)
		if errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("mqtt close: %w", err)
	}
	return nil
}

// runID names this process's verdicts (Verdict.Run): its start time, for
// people, and random bits, so that two starts in one second differ.
func runID() string {
	return time.Now().UTC().Format("20060102T150405Z") + "-" + rand.Text()[:8]
}

// Close releases everything New took, in the reverse order; it may be called
// more than once and returns the first call's result. Call it after Run has
// returned (or instead of Run).
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() {
		signal.Stop(d.hup)
		errs := []error{d.closeMetrics(), d.closeWeb()}
		if d.headWatch != nil {
			d.headWatch.close()
		}
		closeCameras(d.cams)
		if d.live != nil { // after the cameras: their readers copy into it
			d.live.close()
		}
		errs = append(errs, d.closePublisher())
		if d.box != nil { // after the publisher, which reads it until closed
			if err := d.box.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mqtt.outbox: close: %w", err))
			}
		}
		if d.snaps != nil { // after the pipeline: it writes what is still queued
			d.snaps.Close()
		}
		if d.clips != nil { // after the pipeline: it writes what is still open
			d.clips.Close()
		}
		if d.hook != nil { // after the pipeline, its one writer
			if err := d.hook.Close(); err != nil {
				errs = append(errs, fmt.Errorf("webhook: close: %w", err))
			}
		}
		if d.collector != nil { // after the pipeline: it writes what is still queued
			if err := d.collector.Close(); err != nil {
				errs = append(errs, fmt.Errorf("train.collect: close: %w", err))
			}
		}
		if d.broker != nil {
			if err := d.broker.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mqtt broker: close: %w", err))
			}
		}
		if d.clf != nil {
			if err := d.clf.Close(); err != nil {
				errs = append(errs, fmt.Errorf("models: close: %w", err))
			}
		}
		if d.eng != nil {
			d.eng.Close()
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

type openCamera struct {
	src  *capture.Camera
	det  face.Detector
	pre  *preprocess.Preprocessor
	crop bool
}

// openCameras opens each camera with its own detector and preprocessor;
// whatever it opened is in d.cams for Close, even on error.
func (d *Daemon) openCameras(ctx context.Context) error {
	for _, c := range d.cfg.Cameras {
		det, err := setup.Detector(d.cfg, d.eng)
		if err != nil {
			return err
		}
		pre, err := preprocess.New(setup.PreprocessParams(d.cfg, d.clf.Meta()))
		if err != nil {
			det.Close()
			return fmt.Errorf("camera %s: %w", c.Name, err)
		}
		src, err := capture.Open(ctx, setup.CameraOptions(d.cfg.Capture, c), d.log) // it adds camera= and source=
		if err != nil {
			det.Close()
			pre.Close()
			return err
		}
		d.cams = append(d.cams, openCamera{src: src, det: det, pre: pre, crop: d.cfg.Faces.Detector != face.None})
	}
	return nil
}

// pipelineCameras are the cameras for the pipeline; with live, each
// source also offers its frames to the live view.
func pipelineCameras(cams []openCamera, live *liveView) []pipeline.Camera {
	out := make([]pipeline.Camera, len(cams))
	for i, c := range cams {
		var src pipeline.Source = c.src
		if live != nil {
			src = liveSource{Camera: c.src, cam: live.cams[c.src.Name()]}
		}
		out[i] = pipeline.Camera{Source: src, Detector: c.det, Pre: c.pre, WholeFrame: !c.crop}
	}
	return out
}

func closeCameras(cams []openCamera) {
	for _, c := range cams {
		c.src.Close()
		c.det.Close()
		c.pre.Close()
	}
}
