// Package track turns per-frame face scores into per-person decisions.
//
// A Tracker follows the faces of one camera across its analysed frames and
// gives each a track: an id, a running score (Aggregate) and a state (real,
// fake or uncertain, with hysteresis around the threshold). Association is
// SORT-style without a Kalman filter: each track predicts its box with a
// smoothed constant-velocity model and faces are matched greedily by IoU with
// the prediction. Events turns a tracker's changes into the messages
// subscribers see, and CameraState sums a camera's tracks up in one word.
//
// Nothing here is safe for concurrent use: a camera's tracker, events and
// state belong to the goroutine that analyses its frames.
package track

import (
	"cmp"
	"fmt"
	"image"
	"math"
	"slices"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/geom"
)

// State is a track's decision.
type State string

// States.
const (
	Uncertain State = contract.TrackUncertain
	Real      State = contract.TrackReal
	Fake      State = contract.TrackFake
)

// Rule aggregates a track's per-frame p_fake into its score.
type Rule string

// Rules (see Aggregate.Score).
const (
	Mean      Rule = "mean"
	Confident Rule = "confident"
	EMA       Rule = "ema"
)

// Options configure a Tracker. Every field is used as given (a zero is a
// value, not "unset"): the defaults live in the config.
type Options struct {
	// IoU is the least IoU between a track's predicted box and a face for the
	// face to continue the track, 0..1. At 0 any face may continue any track.
	IoU float64
	// MaxMissed is how many analysed frames in a row a track may go unseen;
	// it ends on the next one it misses. >= 0.
	MaxMissed int
	// MinFrames is how many frames a track needs before it is real or fake; >= 1.
	MinFrames int
	// Rule aggregates a track's p_fake: Mean, Confident or EMA.
	Rule Rule
	// EMAAlpha is the newest frame's weight under EMA, (0,1].
	EMAAlpha float64
	// ConfidentHigh and ConfidentLow bound the confident frames of rule
	// Confident, 0..1 with Low < High; ConfidentCount (>= 1) is the least
	// number of confident fakes that decide alone.
	ConfidentHigh, ConfidentLow float64
	ConfidentCount              int
	// Margin is the half-width of the band around the threshold in which a
	// track's state does not change, 0..0.5.
	Margin float64
}

// validate names the first field out of range. The NaN checks are written
// as !(in range) so that NaN fails them.
func (o Options) validate() error {
	switch {
	case !(o.IoU >= 0 && o.IoU <= 1):
		return fmt.Errorf("track options: IoU %v must be in [0,1]", o.IoU)
	case o.MaxMissed < 0:
		return fmt.Errorf("track options: MaxMissed %d must be >= 0", o.MaxMissed)
	case o.MinFrames < 1:
		return fmt.Errorf("track options: MinFrames %d must be >= 1", o.MinFrames)
	case o.Rule != Mean && o.Rule != Confident && o.Rule != EMA:
		return fmt.Errorf("track options: Rule %q must be %s, %s or %s", o.Rule, Mean, Confident, EMA)
	case !(o.EMAAlpha > 0 && o.EMAAlpha <= 1):
		return fmt.Errorf("track options: EMAAlpha %v must be in (0,1]", o.EMAAlpha)
	case !(o.ConfidentHigh >= 0 && o.ConfidentHigh <= 1):
		return fmt.Errorf("track options: ConfidentHigh %v must be in [0,1]", o.ConfidentHigh)
	case !(o.ConfidentLow >= 0 && o.ConfidentLow <= 1):
		return fmt.Errorf("track options: ConfidentLow %v must be in [0,1]", o.ConfidentLow)
	case o.ConfidentLow >= o.ConfidentHigh:
		return fmt.Errorf("track options: ConfidentLow %v must be below ConfidentHigh %v", o.ConfidentLow, o.ConfidentHigh)
	case o.ConfidentCount < 1:
		return fmt.Errorf("track options: ConfidentCount %d must be >= 1", o.ConfidentCount)
	case !(o.Margin >= 0 && o.Margin <= 0.5):
		return fmt.Errorf("track options: Margin %v must be in [0,0.5]", o.Margin)
	}
	return nil
}

// Info is one track as seen from outside.
type Info struct {
	ID                    int64 // unique per Tracker (per camera and run), from 1
	State                 State
	Score                 float64 // the rule's aggregate
	Frames                int     // frames the face was seen in
	FirstFrame, LastFrame int64
	First, Last           time.Time // when first and last seen
	Box                   image.Rectangle
}

// Kind is what happened to a track in one Update.
type Kind int

// Kinds of Change.
const (
	Started Kind = iota // a face no track claimed: a new track
	Seen                // a live track's face was found again
	Ended               // unseen for more than MaxMissed frames, or flushed
)

// Change is what happened to one track in one Update: Before is the track
// before this frame (zero for Started), After after it.
type Change struct {
	Kind          Kind
	Before, After Info
}

// Face is one detected face and the model's p_fake for it.
type Face struct {
	Box   image.Rectangle
	PFake float64
}

// velocityKeep is the weight the smoothed velocity keeps per match: half the
// old estimate, half the newest step, so one jittery detection moves the
// prediction only half as far.
const velocityKeep = 0.5

// sizeFactor is how much larger or smaller a face may be than the predicted
// box and still continue the track on the centre rule (fast motion at low fps).
const sizeFactor = 2

type track struct {
	info Info
	agg  Aggregate
	// Box at the last match as centre and size, and their smoothed velocity
	// per analysed frame.
	cx, cy, w, h   float64
	vx, vy, vw, vh float64
	seenAt         int64 // analysed-frame count at the last match
	missed         int   // analysed frames in a row without a match
	match          int   // this frame's face index, -1 for none; set while matching
}

// pair is a candidate match; key orders them, best first.
type pair struct {
	key         float64
	track, face int
}

// Tracker follows one camera's faces. Make it with New.
type Tracker struct {
	o      Options
	tracks []track // live tracks, oldest first
	nextID int64
	// frames counts Update calls: velocities are per analysed frame, so
	// they do not depend on how the caller numbers frames (sampling, loops).
	frames int64
	// Reused per Update.
	pairs     []pair
	faceTaken []bool
}

// New validates o and returns an empty tracker.
func New(o Options) (*Tracker, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	return &Tracker{o: o, nextID: 1}, nil
}

// Update associates this frame's faces with tracks and returns, appended to
// dst[:0], one Change per track touched: Seen or Ended for live tracks (in
// the order they started), then Started for new ones (in face order). A
// track unseen this frame but not yet past MaxMissed makes no Change. Each
// call is one analysed frame; frame and ts only label it.
//
// ids[i] receives the track id of faces[i]; ids needs room (capacity) for
// len(faces), else Update panics. A NaN p_fake is not checked for: it makes
// the track's score NaN, which never turns real or fake. threshold is the decision threshold in force for this
// frame (the head's; it may change between frames on a model reload).
func (t *Tracker) Update(frame int64, ts time.Time, faces []Face, threshold float64, ids []int64, dst []Change) []Change {
	dst = dst[:0]
	ids = ids[:len(faces)]
	t.frames++

	// Candidate pairs: IoU with the prediction at or above o.IoU first (by
	// IoU), then the centre rule (keyed below every IoU match).
	t.pairs = t.pairs[:0]
	for i := range t.tracks {
		tr := &t.tracks[i]
		pred := tr.predict(t.frames)
		for j := range faces {
			ov := geom.IoU(pred, faces[j].Box)
			switch {
			case ov >= t.o.IoU:
				t.pairs = append(t.pairs, pair{key: ov, track: i, face: j})
			case centreMatch(pred, faces[j].Box):
				t.pairs = append(t.pairs, pair{key: ov - 2, track: i, face: j})
			}
		}
	}
	slices.SortFunc(t.pairs, func(a, b pair) int {
		if c := cmp.Compare(b.key, a.key); c != 0 {
			return c
		}
		if c := cmp.Compare(a.track, b.track); c != 0 {
			return c
		}
		return cmp.Compare(a.face, b.face)
	})

	// Greedy assignment: each track and each face at most once.
	t.faceTaken = slices.Grow(t.faceTaken[:0], len(faces))[:len(faces)]
	clear(t.faceTaken)
	for i := range t.tracks {
		t.tracks[i].match = -1
	}
	for _, p := range t.pairs {
		if tr := &t.tracks[p.track]; !t.faceTaken[p.face] && tr.match < 0 {
			t.faceTaken[p.face] = true
			tr.match = p.face
		}
	}

	// In track order: matched tracks take their face, the others miss a
	// frame and those past MaxMissed end. Compacted in place so the slice
	// is reused.
	live := t.tracks[:0]
	for i := range t.tracks {
		tr := &t.tracks[i]
		if tr.match >= 0 {
			before := tr.info
			tr.see(t.frames, frame, ts, faces[tr.match], threshold, t.o)
			tr.missed = 0
			ids[tr.match] = tr.info.ID
			dst = append(dst, Change{Kind: Seen, Before: before, After: tr.info})
		} else if tr.missed++; tr.missed > t.o.MaxMissed {
			dst = append(dst, Change{Kind: Ended, Before: tr.info, After: tr.info})
			continue
		}
		live = append(live, *tr)
	}
	clear(t.tracks[len(live):]) // drop what ended tracks referenced
	t.tracks = live

	for j := range faces {
		if t.faceTaken[j] {
			continue
		}
		t.tracks = append(t.tracks, track{info: Info{ID: t.nextID, State: Uncertain, FirstFrame: frame, First: ts}, agg: NewAggregate(t.o)})
		t.nextID++
		tr := &t.tracks[len(t.tracks)-1]
		tr.see(t.frames, frame, ts, faces[j], threshold, t.o)
		ids[j] = tr.info.ID
		dst = append(dst, Change{Kind: Started, After: tr.info})
	}
	return dst
}

// Flush ends every live track (the camera ended or the daemon is stopping)
// and returns their Ended changes appended to dst[:0]. Ids keep counting:
// a track after Flush gets a new one.
func (t *Tracker) Flush(dst []Change) []Change {
	dst = dst[:0]
	for _, tr := range t.tracks {
		dst = append(dst, Change{Kind: Ended, Before: tr.info, After: tr.info})
	}
	clear(t.tracks)
	t.tracks = t.tracks[:0]
	return dst
}

// Live returns the live tracks' Info appended to dst[:0], oldest first.
func (t *Tracker) Live(dst []Info) []Info {
	dst = dst[:0]
	for _, tr := range t.tracks {
		dst = append(dst, tr.info)
	}
	return dst
}

// predict extrapolates the last matched box by the smoothed velocity over
// the frames since it was seen.
func (tr *track) predict(now int64) image.Rectangle {
	k := float64(now - tr.seenAt)
	cx, cy := tr.cx+tr.vx*k, tr.cy+tr.vy*k
	w, h := max(tr.w+tr.vw*k, 1), max(tr.h+tr.vh*k, 1)
	return image.Rect(round(cx-w/2), round(cy-h/2), round(cx+w/2), round(cy+h/2))
}

// see adds a matched (or new) face to the track.
func (tr *track) see(now, frame int64, ts time.Time, f Face, threshold float64, o Options) {
	b := f.Box
	cx, cy := float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
	w, h := float64(b.Dx()), float64(b.Dy())
	if tr.info.Frames > 0 {
		k := float64(now - tr.seenAt) // >= 1: the step is spread over the gap
		tr.vx = velocityKeep*tr.vx + (1-velocityKeep)*(cx-tr.cx)/k
		tr.vy = velocityKeep*tr.vy + (1-velocityKeep)*(cy-tr.cy)/k
		tr.vw = velocityKeep*tr.vw + (1-velocityKeep)*(w-tr.w)/k
		tr.vh = velocityKeep*tr.vh + (1-velocityKeep)*(h-tr.h)/k
	}
	tr.cx, tr.cy, tr.w, tr.h, tr.seenAt = cx, cy, w, h, now
	tr.agg.Add(f.PFake)
	tr.info.Frames++
	tr.info.Score = tr.agg.Score()
	tr.info.LastFrame, tr.info.Last, tr.info.Box = frame, ts, b
	tr.info.State = decide(tr.info.State, tr.info.Frames, o.MinFrames, tr.info.Score, threshold, o.Margin)
}

// decide applies hysteresis: outside the band [thr-m, thr+m) the score
// decides; inside it the state stays what it was, so a score wandering
// around the threshold does not flap. Each edge stays at most halfway from
// the threshold to 0 or 1: a calibrated threshold near an end (0.98, say)
// must not put an edge out of the scores' reach.
func decide(prev State, frames, minFrames int, score, thr, m float64) State {
	switch {
	case frames < minFrames:
		return Uncertain
	case score >= min(thr+m, (thr+1)/2):
		return Fake
	case score < max(thr-m, thr/2):
		return Real
	}
	return prev
}

// centreMatch is the fallback when IoU fails, for fast motion at low fps:
// the face's centre lies inside the predicted box and each side is within
// sizeFactor of the prediction's.
func centreMatch(pred, face image.Rectangle) bool {
	c := image.Pt((face.Min.X+face.Max.X)/2, (face.Min.Y+face.Max.Y)/2)
	if !c.In(pred) {
		return false
	}
	within := func(a, b int) bool { return a <= sizeFactor*b && b <= sizeFactor*a }
	return within(face.Dx(), pred.Dx()) && within(face.Dy(), pred.Dy())
}

func round(v float64) int { return int(math.Round(v)) }
