package pipeline

import (
	"image"
	"time"
)

// Verdict is what is published for one analysed frame. The JSON field names
// are the public MQTT schema (README: "Verdicts").
//
// Delivery is at least once, so a subscriber may see a verdict twice (after a
// reconnect or a crash); Run and Seq let it drop repeats and see losses: Run
// names one daemon process, and Seq counts a camera's verdicts in that run
// from 1 without gaps, except where the outbox dropped the oldest.
type Verdict struct {
	Device    string       `json:"device"`
	Camera    string       `json:"camera"`
	Frame     int64        `json:"frame"`
	Run       string       `json:"run"`
	Seq       int64        `json:"seq"`
	TS        time.Time    `json:"ts"`
	Label     string       `json:"label"`
	PFake     float64      `json:"p_fake"`
	Threshold float64      `json:"threshold"`
	Faces     []FaceResult `json:"faces"`
	Model     ModelIDs     `json:"model"`
	LatencyMS float64      `json:"latency_ms"`
}

// FaceResult is one face in a verdict; Box is [x, y, w, h] in frame pixels;
// Track follows the face across frames (unique per camera and run).
type FaceResult struct {
	Box   [4]int  `json:"box"`
	PFake float64 `json:"p_fake"`
	Label string  `json:"label"`
	Track int64   `json:"track"`
}

// ModelIDs are the first 12 hex characters of each model file's sha256, and
// the precision the backbone runs at (fp32, or int8 for a quantised one).
type ModelIDs struct {
	Backbone  string `json:"backbone"`
	Head      string `json:"head"`
	Precision string `json:"precision"`
}

// Labels.
const (
	LabelReal = "real"
	LabelFake = "fake"
	LabelNone = "none"
)

func label(p, threshold float64) string {
	if p >= threshold {
		return LabelFake
	}
	return LabelReal
}

func boxOf(r image.Rectangle) [4]int { return [4]int{r.Min.X, r.Min.Y, r.Dx(), r.Dy()} }
