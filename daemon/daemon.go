// Package daemon wires deepfaked together: configuration, the ONNX Runtime
// engine and models, the MQTT broker connection (or an embedded broker), the
// cameras and the pipeline between them, and systemd readiness.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/collect"
	"github.com/deepfaked/deepfaked/daemon/command"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
)

// Options are the run-time choices that are not configuration.
type Options struct {
	Log *slog.Logger
	// Watch, when set, receives every message under the topic prefix through
	// its own MQTT subscription, made before the cameras start (demo, bench).
	Watch func(topic string, payload []byte)
	// OnVerdict sees each verdict after it is published (bench).
	OnVerdict func(*pipeline.Verdict)
}

const (
	shutdownTimeout = 10 * time.Second
	watchGrace      = 200 * time.Millisecond
)

// Run runs the daemon until every camera has ended or ctx is cancelled. On
// cancellation it stops capture, publishes the verdicts of frames in flight,
// publishes `offline` and returns nil.
func Run(ctx context.Context, cfg *config.Config, opts Options) (err error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	eng, err := engine.New(engine.Options{Library: cfg.Model.Runtime, Providers: cfg.Model.Providers,
		Threads: cfg.Model.Threads, Logger: log})
	if err != nil {
		return fmt.Errorf("model.runtime: %w", err)
	}
	defer eng.Close()

	clf, err := infer.LoadClassifier(eng, cfg.Model.Backbone, cfg.Model.Head)
	if err != nil {
		return err
	}
	defer clf.Close()
	threshold := spec.NoThreshold
	if cfg.Model.Threshold != nil {
		threshold = spec.ThresholdOf(*cfg.Model.Threshold)
	}
	log.Info("models loaded", "backbone", cfg.Model.Backbone, "backbone_id", clf.BackboneID(),
		"head", cfg.Model.Head, "head_id", clf.HeadID(), "input_size", clf.InputSize(),
		"threshold", spec.DecisionThreshold(threshold, clf.Threshold()))

	mo, err := MQTTOptions(cfg)
	if err != nil {
		return err
	}
	if cfg.MQTT.Broker == config.EmbeddedBroker {
		b, err := mqttc.StartBroker(cfg.MQTT.Listen, log)
		if err != nil {
			return fmt.Errorf("mqtt.listen %s: %w", cfg.MQTT.Listen, err)
		}
		defer b.Close()
		mo.Broker = b.URL()
	}
	if opts.Watch != nil {
		// Subscribed before the publisher connects, so it also sees online and offline.
		stop, err := watch(ctx, mo, cfg.MQTT.TopicPrefix+"/#", opts.Watch)
		if err != nil {
			return err
		}
		defer stop()
	}

	var collector *collect.Collector
	if c := cfg.Train.Collect; c.Enabled() {
		m := clf.Meta()
		collector, err = collect.New(collect.Options{Dir: c.Dir, BandLow: c.BandLow, BandHigh: c.BandHigh, EveryN: c.EveryN,
			MaxFiles: c.MaxFiles, MaxBytes: int64(c.MaxBytes), JPEGQuality: c.JPEGQuality, Mean: m.Mean, Std: m.Std}, log)
		if err != nil {
			return fmt.Errorf("train.collect: %w", err)
		}
		// Closed after the pipeline: it writes what is still queued.
		defer func() {
			if cerr := collector.Close(); cerr != nil {
				log.Warn("train.collect: close", "err", cerr)
			}
		}()
		log.Info("collecting face crops for labelling", "dir", c.Dir, "band", []float64{c.BandLow, c.BandHigh}, "every_n", c.EveryN)
	}
	reloader := &headReloader{eng: eng, clf: clf, path: cfg.Model.Head, log: log}
	var cmds *command.Dispatcher
	if cfg.MQTT.Commands.Enabled {
		cmds = command.New(cfg.MQTT.TopicPrefix, cfg.MQTT.Commands.MaxPayload, map[string]command.Handler{
			"reload": func(_ context.Context, payload []byte) (string, error) {
				if err := command.ParseEmpty(payload); err != nil {
					return "", err
				}
				return reloader.Reload("mqtt command")
			},
			"label": func(ctx context.Context, payload []byte) (string, error) {
				lc, err := collect.ParseLabelCommand(payload)
				if err != nil {
					return "", err
				}
				var paths []string
				if collector != nil {
					paths, err = collector.Label(ctx, cfg.Train.Dataset, lc.Camera, lc.Frame, lc.Label)
				} else {
					paths, err = collect.Label(cfg.Train.Collect.Dir, cfg.Train.Dataset, lc.Camera, lc.Frame, lc.Label)
				}
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%d crop(s) of %s frame %d labelled %s", len(paths), lc.Camera, lc.Frame, lc.Label), nil
			},
		}, log)
		mo.Subscriptions = append(mo.Subscriptions, mqttc.Subscription{Filter: cmds.Filter(), Handle: cmds.Handle})
	}
	pub, err := mqttc.Connect(ctx, mo, log)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if cerr := pub.Close(cctx); cerr != nil {
			log.Warn("mqtt close", "err", cerr)
		}
	}()
	cams, err := openCameras(ctx, cfg, eng, clf.Meta(), log)
	if err != nil {
		return err
	}
	defer closeCameras(cams)

	po := pipeline.Options{Device: cfg.DeviceID, TopicPrefix: cfg.MQTT.TopicPrefix, Threshold: threshold,
		MaxFaces: cfg.Faces.MaxFaces, Log: log, OnVerdict: opts.OnVerdict}
	if collector != nil { // not a typed nil in the interface
		po.Collector = collector
	}
	p := pipeline.New(po, clf, pub, pipelineCameras(cams))
	bg, stopBG := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopBG(); wg.Wait() }()
	wg.Go(func() {
		if err := reloader.watch(bg); err != nil {
			log.Error("hot reload on head file change is off", "err", err)
		}
	})
	if cmds != nil {
		wg.Go(func() { cmds.Run(bg, pub) })
		log.Info("mqtt commands enabled", "topic", cmds.Filter())
	}
	if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); err != nil {
		log.Warn("systemd notify", "err", err)
	}
	log.Info("running", "device", cfg.DeviceID, "cameras", len(cams), "topic_prefix", cfg.MQTT.TopicPrefix)
	err = p.Run(ctx)
	_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
	if ctx.Err() != nil {
		log.Info("stopping: signal received; in-flight frames published")
	} else {
		log.Info("stopping: every camera has ended")
	}
	return err
}

type openCamera struct {
	src  *capture.Camera
	det  face.Detector
	pre  *preprocess.Preprocessor
	crop bool
}

func openCameras(ctx context.Context, cfg *config.Config, eng *engine.Engine, meta infer.Metadata, log *slog.Logger) (cams []openCamera, err error) {
	defer func() {
		if err != nil {
			closeCameras(cams)
		}
	}()
	for _, c := range cfg.Cameras {
		det, err := face.New(face.Options{Kind: cfg.Faces.Detector, Model: cfg.Faces.Model, MinSize: cfg.Faces.MinSize,
			Score: float32(cfg.Faces.Score), Engine: eng})
		if err != nil {
			return cams, fmt.Errorf("faces.detector %s: %w", cfg.Faces.Detector, err)
		}
		pre, err := preprocess.New(preprocess.Params{Size: meta.InputSize, Mean: meta.Mean, Std: meta.Std, Margin: cfg.Faces.Margin})
		if err != nil {
			det.Close()
			return cams, fmt.Errorf("camera %s: %w", c.Name, err)
		}
		src, err := capture.Open(ctx, capture.Options{Name: c.Name, Source: c.Source, FPS: c.FPS, Loop: c.Loop,
			Width: c.Width, Height: c.Height}, log.With("camera", c.Name))
		if err != nil {
			det.Close()
			pre.Close()
			return cams, err
		}
		cams = append(cams, openCamera{src: src, det: det, pre: pre, crop: cfg.Faces.Detector != "none"})
	}
	return cams, nil
}

func pipelineCameras(cams []openCamera) []pipeline.Camera {
	out := make([]pipeline.Camera, len(cams))
	for i, c := range cams {
		out[i] = pipeline.Camera{Source: c.src, Detector: c.det, Pre: c.pre, WholeFrame: !c.crop}
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

// MQTTOptions translates the mqtt section; secrets are read here, not kept in config.
func MQTTOptions(cfg *config.Config) (mqttc.Options, error) {
	m := cfg.MQTT
	o := mqttc.Options{Broker: m.Broker, ClientID: m.ClientID, Username: m.Username, QoS: byte(m.QoS),
		StatusTopic: m.TopicPrefix + "/status", KeepAlive: time.Duration(m.KeepAlive), ConnectTimeout: 30 * time.Second}
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

// watch subscribes a second MQTT client to filter and hands it each message.
// It returns once the subscription is in place, so nothing the cameras
// produce afterwards is missed; stop ends it.
func watch(ctx context.Context, o mqttc.Options, filter string, handle func(topic string, payload []byte)) (stop func(), err error) {
	o.ClientID, o.StatusTopic = "", ""
	ready := make(chan struct{})
	var once sync.Once // called again after each reconnect
	o.OnSubscribed = func() { once.Do(func() { close(ready) }) }
	// Not ended by ctx: it outlives the publisher, to show the final offline.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- mqttc.Subscribe(ctx, o, []string{filter}, handle) }()
	select {
	case <-ready:
		return func() {
			time.Sleep(watchGrace) // the broker forwards the last messages after acknowledging them
			cancel()
			<-done
		}, nil
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("watch %s: %w", filter, err)
	case <-time.After(o.ConnectTimeout):
		cancel()
		<-done
		return nil, fmt.Errorf("watch %s: not subscribed after %v", filter, o.ConnectTimeout)
	}
}
