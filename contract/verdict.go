package contract

import (
	"image"
	"time"
)

// Verdict is what is published on <prefix>/<camera>/verdict for one analysed
// frame (docs/mqtt.md).
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
	Label     string       `json:"label"` // LabelFake, LabelReal, or LabelNone without faces
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

// Labels of faces and verdicts.
const (
	LabelReal = "real"
	LabelFake = "fake"
	LabelNone = "none" // a verdict without faces
)

// VerdictLabels are a verdict's labels, for counting them.
func VerdictLabels() []string { return []string{LabelReal, LabelFake, LabelNone} }

// IsFake is the decision rule: a score at or above the threshold is fake.
func IsFake(pFake, threshold float64) bool { return pFake >= threshold }

// Label is the label IsFake gives.
func Label(pFake, threshold float64) string {
	if IsFake(pFake, threshold) {
		return LabelFake
	}
	return LabelReal
}

// Box is a rectangle as payloads give it: [x, y, w, h].
func Box(r image.Rectangle) [4]int { return [4]int{r.Min.X, r.Min.Y, r.Dx(), r.Dy()} }
