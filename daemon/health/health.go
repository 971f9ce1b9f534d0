// Package health says how a running daemon is doing, from the counters its
// parts keep anyway: a Snapshot (per camera state and counts, the broker
// connection, the outbox, the models) for metrics and the retained stats
// topic, Ready for /readyz, and the retained per-camera availability topic.
// Nothing here is on the per-frame path: it reads atomics when asked.
package health

import (
	"fmt"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/outbox"
)

// Camera is a capture.Camera.
type Camera interface {
	Name() string
	Status() livestat.Status
}

// Pipeline is a pipeline.Pipeline.
type Pipeline interface {
	Analysed() []livestat.CameraCount
	Stuck(now time.Time, stall time.Duration) string
}

// Publisher is an mqttc.Publisher.
type Publisher interface {
	Stats() mqttc.Stats
}

// Outbox is an outbox.Outbox.
type Outbox interface {
	Stats() outbox.Stats
}

// Broker is the embedded broker (mqttc.Broker).
type Broker interface {
	Stats() mqttc.BrokerStats
}

// Webhook is a webhook.Sender.
type Webhook interface {
	Stats() contract.WebhookStats
}

// Models is an infer.Classifier; its head id changes on a reload.
type Models interface {
	BackboneID() string
	HeadID() string
	Precision() string
}

// Sources are the parts a Monitor reads. Cameras are in the pipeline's order.
type Sources struct {
	Cameras   []Camera
	Pipeline  Pipeline
	Publisher Publisher
	Outbox    Outbox
	// Broker is the embedded broker; nil with an external one.
	Broker Broker
	// Webhook is the event notifier; nil without webhook.url.
	Webhook Webhook
	Models  Models
	// Stall is watchdog.stall: a camera read, detection or model run that
	// has not returned for longer is stuck (pipeline.Stuck).
	Stall time.Duration
	Start time.Time // the daemon's start, for the uptime
	// Version and Release go into the stats as they are (contract.Stats).
	Version, Release string
}

// Monitor reads Sources; safe for concurrent use.
type Monitor struct{ src Sources }

// New returns a Monitor of src.
func New(src Sources) *Monitor { return &Monitor{src: src} }

// Snapshot reads every source now. Before the pipeline runs, cameras have
// no analysed counts and none has ended.
func (m *Monitor) Snapshot(now time.Time) contract.Stats {
	s := contract.Stats{Schema: contract.SchemaVersion, Version: m.src.Version, Release: m.src.Release, Time: now, Uptime: now.Sub(m.src.Start).Seconds(),
		Model: contract.ModelIDs{Backbone: m.src.Models.BackboneID(), Head: m.src.Models.HeadID(), Precision: m.src.Models.Precision()}}
	counts := m.src.Pipeline.Analysed()
	s.Cameras = make([]contract.CameraStats, len(m.src.Cameras))
	for i, c := range m.src.Cameras {
		st := c.Status()
		cs := contract.CameraStats{Name: c.Name(), Captured: st.Frames, Stale: st.Dropped, Decoder: st.Decoder}
		var ended bool
		if i < len(counts) {
			n := counts[i]
			cs.Analysed, cs.Skipped, cs.Faces, ended = n.Frames, n.Skipped, n.Faces, n.Ended
			cs.Verdicts, cs.Events = n.Verdicts, n.Events
			if !n.Last.IsZero() {
				cs.LastVerdict = &n.Last
			}
		}
		switch {
		case ended:
			cs.State = contract.CameraEnded
		case st.Retrying:
			cs.State = contract.CameraReconnecting
		case st.Delivering:
			cs.State = contract.CameraDelivering
		default:
			cs.State = contract.CameraConnecting
		}
		s.Cameras[i] = cs
	}
	ps := m.src.Publisher.Stats()
	s.MQTT = contract.MQTTStats{Connected: ps.Connected, Reconnects: ps.Reconnects, Replayed: ps.Replayed}
	os := m.src.Outbox.Stats()
	s.Outbox = contract.OutboxStats{Messages: os.Pending, Bytes: os.Bytes, DroppedFull: os.DroppedFull, DroppedAge: os.DroppedAge,
		DroppedDiskFull: os.DroppedDiskFull, Corrupt: os.Corrupt, Recreated: os.Recreated, Failing: os.Failing}
	if m.src.Webhook != nil {
		ws := m.src.Webhook.Stats()
		s.Webhook = &ws
	}
	if m.src.Broker != nil {
		bs := m.src.Broker.Stats()
		s.Broker = &contract.BrokerStats{Clients: bs.Open, MaxClients: bs.Max, Refused: bs.Refused, AcceptErrors: bs.AcceptErrors}
	}
	return s
}

// acceptWindow is how long a failed accept keeps the daemon not ready.
const acceptWindow = time.Minute

// Ready says why the daemon is not ready, or "" when it is: the models are
// loaded, the broker is connected or the outbox takes messages, nothing is
// stuck (pipeline.Stuck past Stall) and every camera is delivering frames.
func (m *Monitor) Ready(now time.Time) string {
	s := m.Snapshot(now)
	if s.Model.Backbone == "" || s.Model.Head == "" {
		return "models not loaded"
	}
	// Connected or not, every message goes through the outbox first: while
	// it takes them nothing is lost, and when it fails (a full disk) verdicts are.
	if s.Outbox.Failing {
		return fmt.Sprintf("the outbox is failing to store messages (broker connected: %v)", s.MQTT.Connected)
	}
	if m.src.Broker != nil {
		bs := m.src.Broker.Stats()
		switch {
		case bs.Max > 0 && bs.Open >= bs.Max:
			return fmt.Sprintf("the embedded broker is full: %d connections (mqtt.embedded.max_clients)", bs.Open)
		case !bs.LastAcceptError.IsZero() && now.Sub(bs.LastAcceptError) < acceptWindow:
			return "the embedded broker cannot accept connections (out of file descriptors?)"
		}
	}
	if why := m.src.Pipeline.Stuck(now, m.src.Stall); why != "" {
		return "stuck: " + why
	}
	for _, c := range s.Cameras {
		if !c.Online() {
			return fmt.Sprintf("camera %s: %s", c.Name, c.State)
		}
	}
	return ""
}
