package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// DefaultEvents is how many events an EventLog keeps: days of a doorbell's
// fakes, a few hundred KiB.
const DefaultEvents = 500

// EventLog keeps the latest events the daemon published, newest last: the
// events page's list. It is fed with the payloads of
// <prefix>/<camera>/events (contract.Event JSON) and forgets them at a
// restart; the snapshots stay on disk. Safe for concurrent use.
type EventLog struct {
	mu    sync.Mutex
	max   int
	order []string // ids, oldest first
	byID  map[string]*Event
}

// NewEventLog keeps at most n events (at least 1).
func NewEventLog(n int) *EventLog {
	return &EventLog{max: max(n, 1), byID: map[string]*Event{}}
}

// Event is one track's event (contract.Event): its new, updates and end
// folded together, as the events page lists it.
type Event struct {
	ID      string    `json:"id"`
	Camera  string    `json:"camera"`
	Track   int64     `json:"track"`
	Last    string    `json:"last"` // the last message's type: new, update or end
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	State   string    `json:"state"`
	Score   float64   `json:"score"`
	Peak    float64   `json:"peak"`
	Frames  int       `json:"frames"`
	// Snapshot is the JPEG's path as the event gives it.
	Snapshot string `json:"snapshot,omitempty"`
	// Clip is the clip's path as the event gives it.
	Clip string `json:"clip,omitempty"`
	// Past: an event of an earlier run, known by its snapshot file only.
	Past bool `json:"past,omitempty"`
}

// Add folds one event message into the log.
func (l *EventLog) Add(payload []byte) error {
	var m contract.Event
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if m.ID == "" || !contract.ValidName(m.Camera) {
		return fmt.Errorf("event %q: no id or a bad camera %q", m.ID, m.Camera)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byID[m.ID]
	if !ok {
		if len(l.order) >= l.max {
			delete(l.byID, l.order[0])
			l.order = slices.Delete(l.order, 0, 1)
		}
		e = &Event{ID: m.ID, Camera: m.Camera, Started: m.TS}
		l.byID[m.ID] = e
		l.order = append(l.order, m.ID)
	}
	a := m.After
	e.Track, e.Last, e.Updated, e.State, e.Score, e.Frames = a.Track, m.Type, m.TS, a.State, a.Score, a.Frames
	e.Peak = max(e.Peak, a.Score)
	if a.Snapshot != "" {
		e.Snapshot = a.Snapshot
	}
	if a.Clip != "" {
		e.Clip = a.Clip
	}
	return nil
}

// AddPast adds an event of an earlier run that only its snapshot tells of
// (the log starts empty at each start); at is the snapshot's time. Call it
// oldest first, before Add.
func (l *EventLog) AddPast(id, camera string, track int64, at time.Time, snapshot string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.byID[id]; ok || !contract.ValidName(camera) {
		return
	}
	if len(l.order) >= l.max {
		delete(l.byID, l.order[0])
		l.order = slices.Delete(l.order, 0, 1)
	}
	l.byID[id] = &Event{ID: id, Camera: camera, Track: track, Last: contract.EventEnd, Started: at, Updated: at, Snapshot: snapshot, Past: true}
	l.order = append(l.order, id)
}

// EventFilter picks events: of one camera (empty: all), and overlapping
// [Since, Until] (zero: unbounded).
type EventFilter struct {
	Camera       string
	Since, Until time.Time
}

// List returns the events f picks, newest first.
func (l *EventLog) List(f EventFilter) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for i := len(l.order) - 1; i >= 0; i-- {
		e := l.byID[l.order[i]]
		if (f.Camera == "" || e.Camera == f.Camera) && (f.Since.IsZero() || !e.Updated.Before(f.Since)) &&
			(f.Until.IsZero() || !e.Started.After(f.Until)) {
			out = append(out, *e)
		}
	}
	return out
}

// Cameras lists the cameras with events, for the filter.
func (l *EventLog) Cameras() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, e := range l.byID {
		if !slices.Contains(out, e.Camera) {
			out = append(out, e.Camera)
		}
	}
	slices.Sort(out)
	return out
}

// eventView is an event with its snapshot's and its clip's URLs; the clip's
// only once its file is written (it ends events.clips.post after the event).
type eventView struct {
	Event
	Image, Video string
	Recording    bool // the clip is named but not written yet
}

// formTime is how the page's datetime-local inputs write times (local time).
const formTime = "2006-01-02T15:04"

func (s *Server) eventsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := EventFilter{Camera: q.Get("camera")}
	if f.Camera != "" && !contract.ValidName(f.Camera) {
		http.Error(w, fmt.Sprintf("camera %q: a camera name holds letters, digits, _ and -", f.Camera), http.StatusBadRequest)
		return
	}
	for _, p := range []struct {
		key string
		t   *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.key); v != "" {
			t, err := time.ParseInLocation(formTime, v, time.Local)
			if err != nil {
				http.Error(w, fmt.Sprintf("%s %q: want a time like 2026-12-01T14:30", p.key, v), http.StatusBadRequest)
				return
			}
			*p.t = t
		}
	}
	if !f.Until.IsZero() {
		f.Until = f.Until.Add(time.Minute - time.Nanosecond) // the whole minute the input names
	}
	evs := s.parts.Events.List(f)
	views := make([]eventView, len(evs))
	for i, e := range evs {
		views[i] = eventView{Event: e, Image: s.fileURL(s.parts.SnapshotDir, e.Snapshot, "/files/snapshots/", ".jpg")}
		if e.Clip != "" {
			if _, err := os.Stat(e.Clip); err == nil {
				views[i].Video = s.fileURL(s.parts.ClipDir, e.Clip, "/files/clips/", ".mp4")
			} else {
				views[i].Recording = true
			}
		}
	}
	s.render(w, r, http.StatusOK, "events", map[string]any{"Events": views, "Filter": f, "Cameras": s.parts.Events.Cameras(),
		"Trust": s.parts.Status.Status(time.Now()).Trust})
}

// fileURL is where the page serves the file at path under dir (a snapshot
// or a clip), or "" for one outside dir (never served).
func (s *Server) fileURL(dir, path, prefix, ext string) string {
	if path == "" || dir == "" {
		return ""
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return ""
	}
	rel = filepath.ToSlash(rel)
	if _, ok := cleanRel(rel, ext); !ok {
		return ""
	}
	return prefix + rel
}

func (s *Server) snapshotFile(w http.ResponseWriter, r *http.Request) {
	serveFile(w, r, s.parts.SnapshotDir, r.PathValue("path"), ".jpg")
}

func (s *Server) clipFile(w http.ResponseWriter, r *http.Request) {
	serveFile(w, r, s.parts.ClipDir, r.PathValue("path"), ".mp4")
}
