package contract

import "time"

// Camera states in the stats report.
const (
	// CameraDelivering: its last read gave a frame. The only state whose
	// availability is online.
	CameraDelivering = "delivering"
	// CameraConnecting: no frame yet since it was opened, or a new attempt after
	// a failure is under way.
	CameraConnecting = "connecting"
	// CameraReconnecting: waiting out the back-off after a failed open or read
	// (unplugged, the stream gone).
	CameraReconnecting = "reconnecting"
	// CameraEnded: a file at its end, or stopped.
	CameraEnded = "ended"
)

// CameraStats is one camera's state and counters since the start.
type CameraStats struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Captured int64  `json:"frames_captured"`
	Analysed int64  `json:"frames_analysed"`
	// Stale: a live source's frames replaced by newer ones before analysis;
	// Skipped: frames whose detection, preprocessing or inference failed.
	Stale       int64      `json:"frames_dropped_stale"`
	Skipped     int64      `json:"frames_dropped_error"`
	Faces       int64      `json:"faces"`
	LastVerdict *time.Time `json:"last_verdict,omitempty"`
	// Decoder is how the camera decodes (capture.decoder's choice), once
	// it has opened.
	Decoder string `json:"decoder,omitempty"`
	// Verdicts counts the frame verdicts by label (VerdictLabels), Events
	// the track events by type and the track's state after each
	// (EventTypes, TrackStates); once the pipeline runs, every key is there,
	// counted from 0.
	Verdicts map[string]int64            `json:"verdicts"`
	Events   map[string]map[string]int64 `json:"events"`
	// FPS is frames analysed per second since the previous stats message;
	// set by the stats publisher, which knows the interval.
	FPS float64 `json:"fps"`
}

// Online says whether the camera's availability is online.
func (c CameraStats) Online() bool { return c.State == CameraDelivering }

// MQTTStats is the broker connection.
type MQTTStats struct {
	Connected  bool   `json:"connected"`
	Reconnects int64  `json:"reconnects"`
	Replayed   uint64 `json:"replayed"`
}

// BrokerStats are the embedded broker's connections (mqtt.broker: embedded).
type BrokerStats struct {
	Clients    int `json:"clients"`     // connections open, those not logged in yet included
	MaxClients int `json:"max_clients"` // mqtt.embedded.max_clients
	// Refused: connections closed at once, the broker full; AcceptErrors:
	// connections it could not take (out of file descriptors).
	Refused      uint64 `json:"refused"`
	AcceptErrors uint64 `json:"accept_errors"`
}

// OutboxStats is the outbox's depth and losses.
type OutboxStats struct {
	Messages    int    `json:"messages"`
	Bytes       int64  `json:"bytes"`
	DroppedFull uint64 `json:"dropped_full"`
	DroppedAge  uint64 `json:"dropped_age"`
	// DroppedDiskFull were dropped to make room on a full disk; Corrupt
	// were lost to bad bytes in the outbox's files.
	DroppedDiskFull uint64 `json:"dropped_disk_full"`
	Corrupt         uint64 `json:"dropped_corrupt"`
	// Recreated are segment files deleted or replaced under the daemon and
	// written back from the open files (nothing lost).
	Recreated uint64 `json:"recreated_segments"`
	Failing   bool   `json:"failing"`
}

// Stats is the daemon's state at one time: the retained <prefix>/stats
// report (daemon/health makes it).
type Stats struct {
	// Schema is SchemaVersion: what a subscriber reads here and on the
	// verdict and event topics.
	Schema int `json:"schema"`
	// Version is the daemon's software version; Release names the model
	// release the backbone belongs to (its signature's, with
	// model.trusted_keys, or the shipped model's card), "" when unknown: what
	// a fleet's centre reads to see which device runs what.
	Version string        `json:"version"`
	Release string        `json:"release,omitempty"`
	Time    time.Time     `json:"ts"`
	Uptime  float64       `json:"uptime_s"`
	Model   ModelIDs      `json:"model"`
	Cameras []CameraStats `json:"cameras"`
	MQTT    MQTTStats     `json:"mqtt"`
	Outbox  OutboxStats   `json:"outbox"`
	Broker  *BrokerStats  `json:"broker,omitempty"`  // only with the embedded broker
	Webhook *WebhookStats `json:"webhook,omitempty"` // only with webhook.url
}
