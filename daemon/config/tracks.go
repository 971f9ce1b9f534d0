package config

import "time"

// Tracks follow faces across a camera's frames and decide, per track, whether
// the person is real or fake (package daemon/track).
type Tracks struct {
	// IoU is the least overlap between a track's predicted box and a face for
	// the face to continue the track.
	IoU float64 `yaml:"iou"`
	// MaxMissed is how many analysed frames a track may go unseen before it ends.
	MaxMissed int `yaml:"max_missed"`
	// Rule aggregates a track's per-frame p_fake: mean, confident or ema.
	Rule string `yaml:"rule"`
	// MinFrames is how many frames a track needs before it is real or fake.
	MinFrames int `yaml:"min_frames"`
	// EMAAlpha is the weight of the newest frame under rule ema.
	EMAAlpha float64 `yaml:"ema_alpha"`
	// Confident is rule confident's definition of a confident frame.
	Confident Confident `yaml:"confident"`
	// Margin is the half-width of the band around the threshold where a
	// track's state does not change (hysteresis); a new track in it is uncertain.
	Margin float64 `yaml:"margin"`
	// UpdateDelta is the score change since the last event that makes an
	// update event without a state change.
	UpdateDelta float64 `yaml:"update_delta"`
}

// Confident is the DFDC winner's rule: when at least Count frames and more
// than 40 % of them are above High, the score is their mean; when 90 % are
// below Low, the mean of those; else the mean of all.
type Confident struct {
	High  float64 `yaml:"high"`
	Low   float64 `yaml:"low"`
	Count int     `yaml:"count"`
}

// Events are the per-track messages on <prefix>/<camera>/events, the
// retained <prefix>/<camera>/state, and snapshots.
type Events struct {
	Enabled bool `yaml:"enabled"`
	// Tracks says which tracks make events: fake (a track once it is fake,
	// until it ends) or all (every track from its first frame).
	Tracks string `yaml:"tracks"`
	// Cooldown keeps a camera's state fake this long after its last fake
	// track, against alert storms when a face flickers in and out.
	Cooldown  Duration  `yaml:"cooldown"`
	Snapshots Snapshots `yaml:"snapshots"`
	Clips     Clips     `yaml:"clips"`
}

// Clips are short videos of what a camera saw around an event: Pre before
// the moment a track turned fake (or, with Tracks all, appeared) and Post
// after it, as MP4.
type Clips struct {
	Enabled bool `yaml:"enabled"`
	// Tracks is fake (a clip when a track turns fake) or all (when any track
	// appears).
	Tracks   string   `yaml:"tracks"`
	Pre      Duration `yaml:"pre"`
	Post     Duration `yaml:"post"`
	Boxes    bool     `yaml:"boxes"`     // draw the faces' boxes and scores
	MaxWidth int      `yaml:"max_width"` // frames wider are scaled down (memory, disk)
	FPS      float64  `yaml:"fps"`       // frames kept a second; 0: every analysed frame
	Dir      string   `yaml:"dir"`       // default <state_dir>/clips
	MaxAge   Duration `yaml:"max_age"`   // 0: no age bound
	MaxBytes int64    `yaml:"max_bytes"` // all clips together
}

// Snapshots are JPEGs of the best face crop of each event's track.
type Snapshots struct {
	Enabled bool `yaml:"enabled"`
	// Dir holds them; default <state_dir>/snapshots.
	Dir      string   `yaml:"dir"`
	MaxCount int      `yaml:"max_count"`
	MaxAge   Duration `yaml:"max_age"` // 0: no age bound
	// Publish sends each one, retained, as raw JPEG on <prefix>/<camera>/snapshot.
	Publish bool `yaml:"publish"`
}

// HomeAssistant publishes MQTT discovery configs so that each camera shows up
// as a device in Home Assistant.
type HomeAssistant struct {
	Enabled         bool   `yaml:"enabled"`
	DiscoveryPrefix string `yaml:"discovery_prefix"`
}

// Track rules, event track choices and test-time augmentations.
const (
	RuleMean      = "mean"
	RuleConfident = "confident"
	RuleEMA       = "ema"
	EventsFake    = "fake"
	EventsAll     = "all"
	TTANone       = "none"
	TTAFlip       = "flip"
	TTAShift      = "shift"
	TTAFlipShift  = "flip-shift"
)

// Defaults of tracks, events and Home Assistant (docs/configuration.md repeats them).
const (
	DefaultTrackIoU  = 0.3
	DefaultMaxMissed = 10
	// DefaultTrackRule won on ../shared/data/videos (docs/training.md: Evaluating on
	// videos), if narrowly, and follows a live stream.
	DefaultTrackRule      = RuleEMA
	DefaultMinFrames      = 5
	DefaultEMAAlpha       = 0.2
	DefaultConfidentHigh  = 0.8
	DefaultConfidentLow   = 0.2
	DefaultConfidentCount = 11
	DefaultTrackMargin    = 0.05
	DefaultUpdateDelta    = 0.15
	DefaultCooldown       = Duration(30 * time.Second)
	DefaultSnapshotCount  = 200
	DefaultSnapshotAge    = Duration(7 * 24 * time.Hour)
	DefaultClipPre        = Duration(5 * time.Second)
	DefaultClipPost       = Duration(5 * time.Second)
	DefaultClipWidth      = 640
	DefaultClipFPS        = 10
	DefaultClipAge        = Duration(7 * 24 * time.Hour)
	DefaultClipBytes      = 1 << 30
	DefaultDiscovery      = "homeassistant"
	DefaultTTA            = TTANone
	// MaxMissed bounds tracks.max_missed; MaxTrackFrames tracks.min_frames
	// and tracks.confident.count; MaxSnapshots events.snapshots.max_count.
	MaxMissed      = 100000
	MaxTrackFrames = 100000
	MaxSnapshots   = 1000000
	MaxCooldown    = Duration(24 * time.Hour)
	// MaxClipSpan bounds events.clips.pre and post: the frames wait in memory.
	MaxClipSpan = Duration(60 * time.Second)
)

func defaultTracks() Tracks {
	return Tracks{IoU: DefaultTrackIoU, MaxMissed: DefaultMaxMissed, Rule: DefaultTrackRule,
		MinFrames: DefaultMinFrames, EMAAlpha: DefaultEMAAlpha,
		Confident: Confident{High: DefaultConfidentHigh, Low: DefaultConfidentLow, Count: DefaultConfidentCount},
		Margin:    DefaultTrackMargin, UpdateDelta: DefaultUpdateDelta}
}

func defaultEvents() Events {
	return Events{Enabled: true, Tracks: EventsFake, Cooldown: DefaultCooldown,
		Snapshots: Snapshots{Enabled: true, MaxCount: DefaultSnapshotCount, MaxAge: DefaultSnapshotAge},
		Clips: Clips{Enabled: true, Tracks: EventsFake, Pre: DefaultClipPre, Post: DefaultClipPost, Boxes: true,
			MaxWidth: DefaultClipWidth, FPS: DefaultClipFPS, MaxAge: DefaultClipAge, MaxBytes: DefaultClipBytes}}
}

func (t *Tracks) check(k checker) {
	k.between("tracks.iou", t.IoU, 0, 1)
	k.inRange("tracks.max_missed", t.MaxMissed, 0, MaxMissed)
	k.oneOf("tracks.rule", t.Rule, []string{RuleMean, RuleConfident, RuleEMA})
	k.inRange("tracks.min_frames", t.MinFrames, 1, MaxTrackFrames)
	if !(t.EMAAlpha > 0 && t.EMAAlpha <= 1) {
		k.fail("tracks.ema_alpha", "must be above 0 and at most 1, got %g", t.EMAAlpha)
	}
	k.between("tracks.confident.high", t.Confident.High, 0, 1)
	k.between("tracks.confident.low", t.Confident.Low, 0, 1)
	if t.Confident.Low >= t.Confident.High {
		k.fail("tracks.confident.low", "%g must be below tracks.confident.high %g", t.Confident.Low, t.Confident.High)
	}
	k.inRange("tracks.confident.count", t.Confident.Count, 1, MaxTrackFrames)
	k.between("tracks.margin", t.Margin, 0, 0.5)
	k.between("tracks.update_delta", t.UpdateDelta, 0, 1)
}

func (e *Events) check(k checker) {
	k.oneOf("events.tracks", e.Tracks, []string{EventsFake, EventsAll})
	if e.Cooldown < 0 || e.Cooldown > MaxCooldown {
		k.fail("events.cooldown", "must be from 0s to %s, got %s", MaxCooldown, e.Cooldown)
	}
	k.inRange("events.snapshots.max_count", e.Snapshots.MaxCount, 1, MaxSnapshots)
	if e.Snapshots.MaxAge < 0 {
		k.fail("events.snapshots.max_age", "must not be negative, got %s", e.Snapshots.MaxAge)
	}
	if e.Snapshots.Publish && !e.Snapshots.Enabled {
		k.fail("events.snapshots.publish", "needs events.snapshots.enabled: true")
	}
	c := e.Clips
	k.oneOf("events.clips.tracks", c.Tracks, []string{EventsFake, EventsAll})
	for key, d := range map[string]Duration{"events.clips.pre": c.Pre, "events.clips.post": c.Post} {
		if d < 0 || d > MaxClipSpan {
			k.fail(key, "must be from 0s to %s, got %s", MaxClipSpan, d)
		}
	}
	if c.Pre+c.Post <= 0 {
		k.fail("events.clips.post", "events.clips.pre and post are both 0s: a clip would have no frame")
	}
	k.inRange("events.clips.max_width", c.MaxWidth, 64, 7680)
	k.between("events.clips.fps", c.FPS, 0, 60)
	if c.MaxAge < 0 {
		k.fail("events.clips.max_age", "must not be negative, got %s", c.MaxAge)
	}
	if c.MaxBytes < 1<<20 {
		k.fail("events.clips.max_bytes", "must be at least 1048576 (1 MiB), got %d", c.MaxBytes)
	}
}
