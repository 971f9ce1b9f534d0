// Package metrics exports the daemon to Prometheus and serves /metrics,
// /healthz and /readyz on one listener (metrics.listen). Counters the
// daemon keeps anyway (a contract.Stats) are read when scraped; stage
// latencies and batch sizes are observed per frame, through histograms
// resolved once, so the per-frame path does not allocate.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
)

// Snapshotter is a health.Monitor.
type Snapshotter interface {
	Snapshot(now time.Time) contract.Stats
}

// Stage names, the label of deepfaked_stage_seconds.
const (
	stageDecode = iota
	stageDetect
	stagePreprocess
	stageQueue
	stageBackbone
	stageHead
	stagePublish
	nStages
)

var stageNames = [nStages]string{"decode", "detect", "preprocess", "queue", "backbone", "head", "publish"}

// Metrics is the daemon's Prometheus registry (its own, not the global
// default) and a pipeline.Observer that fills its histograms.
type Metrics struct {
	reg    *prometheus.Registry
	stages [nStages]prometheus.Observer
	batch  prometheus.Observer
}

// New registers the daemon's metrics, read from s when scraped, with Go's
// and the process's own; every one carries labels (the device's id and
// metrics.labels), so that a fleet's series stay apart however they are
// gathered: federation, remote-write, one Prometheus scraping many devices.
func New(s Snapshotter, labels map[string]string) *Metrics {
	reg := prometheus.NewRegistry()
	wrapped := prometheus.WrapRegistererWith(labels, reg)
	stages := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "deepfaked_stage_seconds",
		Help: "Time each published frame spent in each pipeline stage (backbone and head: once per model run).",
		// 0.25 ms to about 4 s: a Haar detection on a Pi to a first TensorRT run.
		Buckets: prometheus.ExponentialBuckets(0.00025, 2, 15),
	}, []string{"stage"})
	batch := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "deepfaked_batch_faces",
		Help:    "Faces per model run (faces of frames from all cameras share runs up to faces.max_faces).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 8),
	})
	wrapped.MustRegister(stages, batch, &snapshotCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg, batch: batch}
	for i, n := range stageNames {
		m.stages[i] = stages.WithLabelValues(n)
	}
	return m
}

// Registry is where the metrics are registered (for /metrics).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Observe takes one published frame's stage times (pipeline.Observer).
func (m *Metrics) Observe(st *livestat.Stages) {
	m.stages[stageDecode].Observe(st.Read.Sub(st.Next).Seconds())
	m.stages[stageDetect].Observe(st.Detected.Sub(st.Read).Seconds())
	m.stages[stagePreprocess].Observe(st.Preprocessed.Sub(st.Detected).Seconds())
	m.stages[stageQueue].Observe(st.Dequeued.Sub(st.Preprocessed).Seconds())
	m.stages[stagePublish].Observe(st.Published.Sub(st.Classified).Seconds())
	if st.FirstInRun && st.Batch > 0 {
		m.stages[stageBackbone].Observe(st.Backbone.Seconds())
		m.stages[stageHead].Observe(st.Head.Seconds())
		m.batch.Observe(float64(st.Batch))
	}
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	framesCaptured  = desc("deepfaked_frames_captured_total", "Frames read from the camera.", "camera")
	framesAnalysed  = desc("deepfaked_frames_analysed_total", "Frames analysed and their verdict published.", "camera")
	framesDropped   = desc("deepfaked_frames_dropped_total", "Frames not analysed: stale (a live frame replaced by a newer one before analysis) or error (detection, preprocessing or inference failed).", "camera", "reason")
	faces           = desc("deepfaked_faces_total", "Faces classified.", "camera")
	verdicts        = desc("deepfaked_verdicts_total", "Frame verdicts published, by label: fake (a face at or above the threshold), real, none (no face).", "camera", "label")
	events          = desc("deepfaked_events_total", "Track events published, by type (new, update, end) and the track's state after it (uncertain, real, fake).", "camera", "type", "state")
	cameraUp        = desc("deepfaked_camera_delivering", "1 while the camera delivers frames, 0 while it connects, reconnects or has ended.", "camera")
	lastVerdict     = desc("deepfaked_last_verdict_timestamp_seconds", "When the camera's last verdict was published (Unix time).", "camera")
	mqttConnected   = desc("deepfaked_mqtt_connected", "1 while connected to the broker.")
	mqttReconnects  = desc("deepfaked_mqtt_reconnects_total", "Connections to the broker after the first.")
	outboxMessages  = desc("deepfaked_outbox_messages", "Messages in the outbox awaiting the broker's acknowledgement.")
	outboxBytes     = desc("deepfaked_outbox_bytes", "Bytes of the messages in the outbox.")
	outboxDropped   = desc("deepfaked_outbox_dropped_total", "Undelivered messages dropped to stay within mqtt.outbox.max_bytes (full) or max_age (age), to make room on a full disk (disk_full), or lost to bad bytes in the outbox's files (corrupt).", "reason")
	outboxRecreated = desc("deepfaked_outbox_recreated_segments_total", "Outbox files deleted or replaced under the daemon and written back from its open files.")
	outboxReplayed  = desc("deepfaked_outbox_replayed_total", "Messages sent again: after a reconnection, or left in the outbox by an earlier run.")
	brokerClients   = desc("deepfaked_broker_clients", "Connections open to the embedded broker, those not logged in yet included.")
	brokerRefused   = desc("deepfaked_broker_refused_total", "Connections the embedded broker closed at once: full (mqtt.embedded.max_clients) or accept_error (out of file descriptors).", "reason")
	webhookPending  = desc("deepfaked_webhook_pending", "Webhook notifications stored and not yet taken by the receiver.")
	webhookSent     = desc("deepfaked_webhook_sent_total", "Webhook notifications the receiver took (2xx).")
	webhookDropped  = desc("deepfaked_webhook_dropped_total", "Webhook notifications refused by the receiver for good (4xx) or dropped by webhook.max_bytes, max_age or a full disk.")
	modelInfo       = desc("deepfaked_model_info", "The models in use (sha256 prefixes, as in verdicts; the release the backbone belongs to, empty if unknown); the head label changes on a reload.", "backbone", "head", "precision", "release")
	uptime          = desc("deepfaked_uptime_seconds", "Seconds since the daemon started.")
	buildInfo       = desc("deepfaked_build_info", "1; the daemon's version and the Go release that built it.", "version", "goversion")
)

// snapshotCollector turns a contract.Stats into metrics at each scrape;
// the daemon's own counters stay the one source, for stats and /readyz too.
type snapshotCollector struct{ s Snapshotter }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{framesCaptured, framesAnalysed, framesDropped, faces, verdicts, events, cameraUp, lastVerdict, buildInfo,
		mqttConnected, mqttReconnects, outboxMessages, outboxBytes, outboxDropped, outboxRecreated, outboxReplayed, brokerClients, brokerRefused, webhookPending, webhookSent, webhookDropped, modelInfo, uptime} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s.Snapshot(time.Now())
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, cam := range s.Cameras {
		counter(framesCaptured, float64(cam.Captured), cam.Name)
		counter(framesAnalysed, float64(cam.Analysed), cam.Name)
		counter(framesDropped, float64(cam.Stale), cam.Name, "stale")
		counter(framesDropped, float64(cam.Skipped), cam.Name, "error")
		counter(faces, float64(cam.Faces), cam.Name)
		for label, n := range cam.Verdicts {
			counter(verdicts, float64(n), cam.Name, label)
		}
		for typ, states := range cam.Events {
			for state, n := range states {
				counter(events, float64(n), cam.Name, typ, state)
			}
		}
		gauge(cameraUp, bool01(cam.Online()), cam.Name)
		if cam.LastVerdict != nil {
			gauge(lastVerdict, float64(cam.LastVerdict.UnixNano())/1e9, cam.Name)
		}
	}
	gauge(mqttConnected, bool01(s.MQTT.Connected))
	counter(mqttReconnects, float64(s.MQTT.Reconnects))
	gauge(outboxMessages, float64(s.Outbox.Messages))
	gauge(outboxBytes, float64(s.Outbox.Bytes))
	counter(outboxDropped, float64(s.Outbox.DroppedFull), "full")
	counter(outboxDropped, float64(s.Outbox.DroppedAge), "age")
	counter(outboxDropped, float64(s.Outbox.DroppedDiskFull), "disk_full")
	counter(outboxDropped, float64(s.Outbox.Corrupt), "corrupt")
	counter(outboxRecreated, float64(s.Outbox.Recreated))
	counter(outboxReplayed, float64(s.MQTT.Replayed))
	if b := s.Broker; b != nil {
		gauge(brokerClients, float64(b.Clients))
		counter(brokerRefused, float64(b.Refused), "full")
		counter(brokerRefused, float64(b.AcceptErrors), "accept_error")
	}
	if w := s.Webhook; w != nil {
		gauge(webhookPending, float64(w.Pending))
		counter(webhookSent, float64(w.Sent))
		counter(webhookDropped, float64(w.Dropped))
	}
	gauge(modelInfo, 1, s.Model.Backbone, s.Model.Head, s.Model.Precision, s.Release)
	gauge(uptime, s.Uptime)
	gauge(buildInfo, 1, buildinfo.Version(), buildinfo.GoVersion())
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
