package track

import (
	"math"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// EventType is the kind of an Event.
type EventType string

// Event types. They are not plain New, Update and End: New is the
// Tracker's constructor.
const (
	EventNew    EventType = contract.EventNew
	EventUpdate EventType = contract.EventUpdate
	EventEnd    EventType = contract.EventEnd
)

// Event is one message about a track. Before is the Info last published for
// the track (nil for EventNew); After is the track now.
type Event struct {
	Type   EventType
	Before *Info
	After  Info
}

// EventOptions choose which tracks make events and how often.
type EventOptions struct {
	// All makes events for every track from its start; otherwise a track
	// makes events from the first frame it is fake until it ends.
	All bool
	// UpdateDelta is the score change since the last published event that
	// makes an update without a state change. At 0 every frame does.
	UpdateDelta float64
}

// open is a track with an open event and what was last published for it.
type open struct {
	id   int64
	last Info
}

// Events turns a Tracker's changes into events. Make it with NewEvents.
type Events struct {
	o    EventOptions
	open []open // few at a time: a slice scanned beats a map's allocations
	// befores holds the Info each event's Before points to; reused by Feed.
	befores []Info
}

// NewEvents returns an Events with no open event.
func NewEvents(o EventOptions) *Events { return &Events{o: o} }

// Feed turns one Update's (or Flush's) changes into events, appended to
// dst[:0]:
//   - New when a track's event opens: on Started under All, else on the first
//     change whose After.State is Fake.
//   - Update while it is open, when After.State differs from the last
//     published state or the score moved by UpdateDelta or more since then.
//     A fake track that turns real keeps its event open: Update with state real.
//   - End on Ended for a track with an open event.
//
// A track whose event never opened makes nothing. Each Before points into
// storage Feed reuses: it is valid until the next call.
func (e *Events) Feed(changes []Change, dst []Event) []Event {
	dst = dst[:0]
	if cap(e.befores) < len(changes) {
		e.befores = make([]Info, len(changes))
	}
	e.befores = e.befores[:len(changes)]
	for k, c := range changes {
		i := e.find(c.After.ID)
		switch {
		case i < 0 && c.Kind == Ended:
			// never opened (or opened before this Events existed): nothing
		case i < 0:
			// Under All a track opens on Started; a Seen one is older than
			// this Events, and opens now rather than never.
			if e.o.All || c.After.State == Fake {
				e.open = append(e.open, open{id: c.After.ID, last: c.After})
				dst = append(dst, Event{Type: EventNew, After: c.After})
			}
		case c.Kind == Ended:
			e.befores[k] = e.open[i].last
			dst = append(dst, Event{Type: EventEnd, Before: &e.befores[k], After: c.After})
			e.open[i] = e.open[len(e.open)-1]
			e.open = e.open[:len(e.open)-1]
		default:
			last := e.open[i].last
			if c.After.State != last.State || math.Abs(c.After.Score-last.Score) >= e.o.UpdateDelta {
				e.befores[k] = last
				dst = append(dst, Event{Type: EventUpdate, Before: &e.befores[k], After: c.After})
				e.open[i].last = c.After
			}
		}
	}
	return dst
}

func (e *Events) find(id int64) int {
	for i := range e.open {
		if e.open[i].id == id {
			return i
		}
	}
	return -1
}

// Camera states CameraState.Update returns.
const (
	cameraFake = contract.CameraFake
	cameraReal = contract.CameraReal
	cameraNone = contract.CameraNone
)

// CameraState sums a camera's live tracks up in one word, holding "fake" for
// a cooldown after the last fake track so that a face flickering in and out
// of detection does not make a storm of alerts.
type CameraState struct {
	cooldown time.Duration
	lastFake time.Time // zero until a fake track was seen
}

// NewCameraState returns a CameraState that stays fake for cooldown after
// the last fake track.
func NewCameraState(cooldown time.Duration) *CameraState {
	return &CameraState{cooldown: cooldown}
}

// Update returns "fake" while any live track is fake, or less than the
// cooldown after the last Update that saw one (it ended or turned real);
// else "real" when any track is live (uncertain ones too: a person is there
// and none is judged fake); else "none".
func (c *CameraState) Update(now time.Time, live []Info) string {
	for _, l := range live {
		if l.State == Fake {
			c.lastFake = now
			return cameraFake
		}
	}
	if !c.lastFake.IsZero() && now.Sub(c.lastFake) < c.cooldown {
		return cameraFake
	}
	if len(live) > 0 {
		return cameraReal
	}
	return cameraNone
}
