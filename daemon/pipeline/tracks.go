package pipeline

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/track"
)

// EventOptions turn tracks into messages: events on <prefix>/<camera>/events,
// the retained <prefix>/<camera>/state and <prefix>/<camera>/score, and
// snapshots of each event's best face.
type EventOptions struct {
	Enabled bool
	Track   track.EventOptions
	// Cooldown keeps a camera's state fake this long after its last fake track.
	Cooldown time.Duration
	// Snapshots, when set, saves each event's best face (daemon/snapshot).
	Snapshots Snapshotter
	// Sink, when set, is handed every event published (the webhook).
	Sink EventSink
	// Clips, when set, keeps each camera's recent frames and records clips
	// of events (daemon/clip).
	Clips Clipper
}

// Clipper records clips around events (clip.Recorder): Encode keeps an
// analysed frame (camera goroutine, before the frame is released), Frame
// adds its verdict's faces once published (inference goroutine), and Clip
// names the clip of an event's track, starting one when the event calls
// for it.
type Clipper interface {
	Encode(camera string, index int64, ts time.Time, m gocv.Mat) error
	Frame(camera string, index int64, faces []contract.FaceResult)
	Clip(ev contract.Event) string
}

// EventSink takes each published event; it must return quickly (webhook.Sender
// stores it for its own goroutine to send).
type EventSink interface {
	Event(ev contract.Event)
}

// Snapshotter saves a face's model input as a JPEG (snapshot.Store).
type Snapshotter interface {
	Path(camera, run string, track int64) string
	Save(camera, path string, input []float32) bool
}

// tracking is one camera's tracks, events and published state; used only by
// the inference goroutine.
type tracking struct {
	tracker *track.Tracker
	events  *track.Events
	state   *track.CameraState
	faces   []track.Face
	ids     []int64
	changes []track.Change
	evs     []track.Event
	live    []track.Info
	// best is each open event's best face so far (its model input, and how
	// good it was), for its snapshot.
	best map[int64]*bestFace

	topicEvents, topicState, topicScore string
	lastState                           string
	lastScore                           float64
	lastScoreAt                         time.Time
}

type bestFace struct {
	quality float64
	input   []float32
	path    string
	dirty   bool // better than the one last saved
}

func (p *Pipeline) newTracking(camera string) (*tracking, error) {
	tr, err := track.New(p.opts.Tracks)
	if err != nil {
		return nil, fmt.Errorf("camera %q: tracks: %w", camera, err)
	}
	n := p.opts.MaxFaces
	topics := contract.Topics{Prefix: p.opts.TopicPrefix}
	return &tracking{tracker: tr, events: track.NewEvents(p.opts.Events.Track), state: track.NewCameraState(p.opts.Events.Cooldown),
		faces: make([]track.Face, 0, n), ids: make([]int64, n), changes: make([]track.Change, 0, 2*n),
		evs: make([]track.Event, 0, 2*n), live: make([]track.Info, 0, 2*n), best: map[int64]*bestFace{},
		topicEvents: topics.Events(camera), topicState: topics.State(camera), topicScore: topics.Score(camera), lastScore: -1}, nil
}

// scoreStep and scoreEvery bound the retained score topic: a change of at
// least scoreStep, at most once per scoreEvery (or at once with a state change).
const (
	scoreStep  = 0.01
	scoreEvery = time.Second
)

// track assigns j's faces (scored in v) to tracks, sets each face's track id,
// and publishes the events, state and score that follow.
func (p *Pipeline) track(j *job, v *contract.Verdict) {
	t := j.cam.tracking
	t.faces = t.faces[:0]
	for i := range j.n {
		t.faces = append(t.faces, track.Face{Box: j.boxes[i], PFake: v.Faces[i].PFake})
	}
	t.changes = t.tracker.Update(j.frame, j.ts, t.faces, v.Threshold, t.ids, t.changes)
	for i := range v.Faces {
		v.Faces[i].Track = t.ids[i]
	}
	if !p.opts.Events.Enabled {
		return
	}
	t.evs = t.events.Feed(t.changes, t.evs)
	if p.opts.Events.Snapshots != nil {
		p.offerSnapshots(j, t)
	}
	p.publishEvents(j.cam, j.ts)
}

// finishTracks ends a camera's tracks (it ended, or the daemon is stopping).
func (p *Pipeline) finishTracks(cs *camState) {
	t := cs.tracking
	t.changes = t.tracker.Flush(t.changes)
	if !p.opts.Events.Enabled {
		return
	}
	t.evs = t.events.Feed(t.changes, t.evs)
	p.publishEvents(cs, time.Now())
}

// offerSnapshots keeps, for each open event's track, the face with the best
// quality (largest and sharpest); the file is written when the event opens
// and when it ends.
func (p *Pipeline) offerSnapshots(j *job, t *tracking) {
	for _, e := range t.evs {
		if e.Type == track.EventNew {
			t.best[e.After.ID] = &bestFace{quality: -1, input: make([]float32, p.sample),
				path: p.opts.Events.Snapshots.Path(j.cam.name, p.opts.Run, e.After.ID)}
		}
	}
	for i := range j.n {
		b := t.best[t.ids[i]]
		if b == nil {
			continue
		}
		in := j.input[i*p.sample : (i+1)*p.sample]
		if q := faceQuality(j.boxes[i], in); q > b.quality {
			b.quality, b.dirty = q, true
			copy(b.input, in)
		}
	}
}

// faceQuality is the box's area times the sharpness of the model input
// (variance of a Laplacian over its first plane): a big, blurred face loses
// to a slightly smaller sharp one.
func faceQuality(box image.Rectangle, input []float32) float64 {
	s := int(math.Sqrt(float64(len(input) / 3)))
	plane := input[:s*s]
	var sum, sum2 float64
	n := 0
	for y := 1; y < s-1; y++ {
		for x := 1; x < s-1; x++ {
			i := y*s + x
			l := float64(4*plane[i] - plane[i-1] - plane[i+1] - plane[i-s] - plane[i+s])
			sum += l
			sum2 += l * l
			n++
		}
	}
	if n == 0 {
		return 0
	}
	mean := sum / float64(n)
	return float64(box.Dx()*box.Dy()) * (sum2/float64(n) - mean*mean)
}

// publishEvents publishes t.evs, then the camera's state and score when they
// changed. Publish errors are counted like a verdict's.
func (p *Pipeline) publishEvents(cs *camState, ts time.Time) {
	t := cs.tracking
	now := time.Now()
	for k := range t.evs {
		e := &t.evs[k]
		ev := contract.Event{Type: string(e.Type), ID: contract.EventID(p.opts.Run, cs.name, e.After.ID),
			Device: p.opts.Device, Camera: cs.name, TS: ts, After: trackInfo(e.After)}
		b := t.best[e.After.ID]
		if b != nil {
			if b.dirty && (e.Type == track.EventNew || e.Type == track.EventEnd) {
				b.dirty = !p.opts.Events.Snapshots.Save(cs.name, b.path, b.input)
			}
			ev.After.Snapshot = b.path
		}
		if e.Before != nil {
			before := trackInfo(*e.Before)
			if b != nil {
				before.Snapshot = b.path
			}
			ev.Before = &before
		}
		if c := p.opts.Events.Clips; c != nil {
			ev.After.Clip = c.Clip(ev)
		}
		if e.Type == track.EventEnd {
			delete(t.best, e.After.ID)
		}
		p.send(cs, t.topicEvents, ev)
		cs.tally.event(ev.Type, ev.After.State)
		if p.opts.Events.Sink != nil {
			p.opts.Events.Sink.Event(ev)
		}
	}
	t.live = t.tracker.Live(t.live)
	state := t.state.Update(now, t.live)
	score := 0.0
	for _, l := range t.live {
		score = max(score, l.Score)
	}
	score = math.Round(score*100) / 100
	stateChanged := state != t.lastState
	if stateChanged {
		t.lastState = state
		p.sendRaw(cs, t.topicState, []byte(state))
	}
	if math.Abs(score-t.lastScore) >= scoreStep && (stateChanged || now.Sub(t.lastScoreAt) >= scoreEvery) {
		t.lastScore, t.lastScoreAt = score, now
		p.sendRaw(cs, t.topicScore, []byte(fmt.Sprintf("%.2f", score)))
	}
}

func trackInfo(i track.Info) contract.TrackInfo {
	return contract.TrackInfo{Track: i.ID, State: string(i.State), Score: i.Score, Frames: i.Frames,
		FirstSeen: i.First, LastSeen: i.Last, FirstFrame: i.FirstFrame, LastFrame: i.LastFrame, Box: contract.Box(i.Box)}
}

// send publishes v as JSON on topic.
func (p *Pipeline) send(cs *camState, topic string, v any) {
	payload, err := json.Marshal(v)
	if err == nil {
		err = p.pub.Publish(topic, payload)
	}
	p.publishFailed(cs, topic, err)
}

// sendRaw publishes payload, retained, on topic.
func (p *Pipeline) sendRaw(cs *camState, topic string, payload []byte) {
	p.publishFailed(cs, topic, p.pub.PublishRetained(topic, payload))
}

// publishFailed logs err, one line a minute: a full disk fails every
// message's outbox write.
func (p *Pipeline) publishFailed(cs *camState, topic string, err error) {
	if err == nil {
		return
	}
	if ok, left := p.pubFail.Allow(time.Now()); ok {
		p.log.Error("publish failed", "camera", cs.name, "topic", topic, "err", err, "not_logged_since_last", left)
	}
}
