package pipeline

import (
	"image"
	"math"
	"strconv"
	"time"
)

// Verdict is what is published for one analysed frame. The JSON field names
// are the public MQTT schema (README: "Verdicts").
type Verdict struct {
	Device    string       `json:"device"`
	Camera    string       `json:"camera"`
	Frame     int64        `json:"frame"`
	TS        time.Time    `json:"ts"`
	Label     string       `json:"label"`
	PFake     float64      `json:"p_fake"`
	Threshold float64      `json:"threshold"`
	Faces     []FaceResult `json:"faces"`
	Model     ModelIDs     `json:"model"`
	LatencyMS float64      `json:"latency_ms"`
}

// FaceResult is one face in a verdict; Box is [x, y, w, h] in frame pixels.
type FaceResult struct {
	Box   [4]int  `json:"box"`
	PFake float64 `json:"p_fake"`
	Label string  `json:"label"`
}

// ModelIDs are the first 12 hex characters of each model file's sha256.
type ModelIDs struct {
	Backbone string `json:"backbone"`
	Head     string `json:"head"`
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

// AppendJSON appends v as JSON to dst. Written by hand so that publishing a
// verdict does not allocate per frame; verdict_test.go checks it against
// encoding/json.
func (v *Verdict) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"device":`...)
	dst = strconv.AppendQuote(dst, v.Device)
	dst = append(dst, `,"camera":`...)
	dst = strconv.AppendQuote(dst, v.Camera)
	dst = append(dst, `,"frame":`...)
	dst = strconv.AppendInt(dst, v.Frame, 10)
	dst = append(dst, `,"ts":"`...)
	dst = v.TS.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","label":`...)
	dst = strconv.AppendQuote(dst, v.Label)
	dst = append(dst, `,"p_fake":`...)
	dst = appendFloat(dst, v.PFake)
	dst = append(dst, `,"threshold":`...)
	dst = appendFloat(dst, v.Threshold)
	dst = append(dst, `,"faces":[`...)
	for i := range v.Faces {
		f := &v.Faces[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"box":[`...)
		for j, b := range f.Box {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, int64(b), 10)
		}
		dst = append(dst, `],"p_fake":`...)
		dst = appendFloat(dst, f.PFake)
		dst = append(dst, `,"label":`...)
		dst = strconv.AppendQuote(dst, f.Label)
		dst = append(dst, '}')
	}
	dst = append(dst, `],"model":{"backbone":`...)
	dst = strconv.AppendQuote(dst, v.Model.Backbone)
	dst = append(dst, `,"head":`...)
	dst = strconv.AppendQuote(dst, v.Model.Head)
	dst = append(dst, `},"latency_ms":`...)
	dst = appendFloat(dst, v.LatencyMS)
	return append(dst, '}')
}

// appendFloat writes a finite JSON number; NaN or Inf (which JSON cannot hold)
// become 0 rather than producing an unparsable payload.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
