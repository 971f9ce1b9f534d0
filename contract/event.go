package contract

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is what is published on <prefix>/<camera>/events about one track
// (docs/mqtt.md: "Tracks and events").
type Event struct {
	Type   string     `json:"type"` // EventNew, EventUpdate or EventEnd
	ID     string     `json:"id"`   // EventID: the same for an event's new, updates and end
	Device string     `json:"device"`
	Camera string     `json:"camera"`
	TS     time.Time  `json:"ts"`
	Before *TrackInfo `json:"before"` // the track as last published; null for EventNew
	After  TrackInfo  `json:"after"`
}

// TrackInfo is one track as an event shows it.
type TrackInfo struct {
	Track      int64     `json:"track"`
	State      string    `json:"state"` // TrackUncertain, TrackReal or TrackFake
	Score      float64   `json:"score"`
	Frames     int       `json:"frames"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	FirstFrame int64     `json:"first_frame"`
	LastFrame  int64     `json:"last_frame"`
	Box        [4]int    `json:"box"`
	Snapshot   string    `json:"snapshot,omitempty"` // the best face's JPEG on the device (SnapshotName)
	// Clip is the track's video on the device (ClipName), once one was
	// started; the file is there when it ends (events.clips.post later).
	Clip string `json:"clip,omitempty"`
}

// Event types.
const (
	EventNew    = "new"
	EventUpdate = "update"
	EventEnd    = "end"
)

// Track states.
const (
	TrackUncertain = "uncertain"
	TrackReal      = "real"
	TrackFake      = "fake"
)

// EventTypes and TrackStates are the words above, for counting events.
func EventTypes() []string  { return []string{EventNew, EventUpdate, EventEnd} }
func TrackStates() []string { return []string{TrackUncertain, TrackReal, TrackFake} }

// Camera states, on the retained <prefix>/<camera>/state.
const (
	CameraFake = TrackFake
	CameraReal = TrackReal
	CameraNone = "none" // no live track
)

// EventID names one track's event: <run>-<camera>-<track>.
func EventID(run, camera string, track int64) string {
	return fmt.Sprintf("%s-%s-%d", run, camera, track)
}

// SnapshotName is the file name of a track's best face under its camera's
// folder of snapshots: <run>-<track>.jpg.
func SnapshotName(run string, track int64) string { return fmt.Sprintf("%s-%d.jpg", run, track) }

// ClipName is the file name of a track's clip under its camera's folder of
// clips: <run>-<track>.mp4.
func ClipName(run string, track int64) string { return fmt.Sprintf("%s-%d.mp4", run, track) }

// ParseSnapshotName undoes SnapshotName.
func ParseSnapshotName(name string) (run string, track int64, ok bool) {
	base, ok := strings.CutSuffix(name, ".jpg")
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(base, '-')
	if i <= 0 {
		return "", 0, false
	}
	track, err := strconv.ParseInt(base[i+1:], 10, 64)
	if err != nil || track < 0 {
		return "", 0, false
	}
	return base[:i], track, true
}
