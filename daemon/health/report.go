package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// Announcer publishes retained messages (an mqttc.Publisher): availability
// through the outbox, so a change made during an outage still arrives, in
// order; stats straight to the broker, since the next one replaces it.
type Announcer interface {
	PublishRetained(topic string, payload []byte) error
	PublishRetainedNow(ctx context.Context, topic string, payload []byte) error
}

// availabilityPoll is how often cameras' states are compared with what was
// last published: a change is on the broker within about this.
const availabilityPoll = time.Second

// statsTimeout bounds one stats publish, so a stalled connection cannot hold
// the reporter past the next availability change for long.
const statsTimeout = 10 * time.Second

// Reporter publishes each camera's retained availability when it changes
// and, every StatsEvery, the retained stats Snapshot. Run and Availability
// are for one goroutine at a time.
type Reporter struct {
	m          *Monitor
	pub        Announcer
	prefix     string
	statsEvery time.Duration // 0: no stats
	log        *slog.Logger

	avail []string       // per camera, what was last published; "" before the first
	prev  contract.Stats // the last stats published, for frames/s
}

// NewReporter publishes m's cameras' availability, and stats every
// statsEvery (0: never), under prefix (mqtt.topic_prefix).
func NewReporter(m *Monitor, pub Announcer, prefix string, statsEvery time.Duration, log *slog.Logger) *Reporter {
	return &Reporter{m: m, pub: pub, prefix: prefix, statsEvery: statsEvery, log: log,
		avail: make([]string, len(m.src.Cameras)), prev: contract.Stats{Time: m.src.Start}}
}

// Run publishes availability (at once, then on change) and stats (at once,
// then every statsEvery) until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	poll := time.NewTicker(availabilityPoll)
	defer poll.Stop()
	var stats <-chan time.Time
	if r.statsEvery > 0 {
		t := time.NewTicker(r.statsEvery)
		defer t.Stop()
		stats = t.C
		r.Stats(ctx, time.Now())
	}
	r.Availability(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-poll.C:
			r.Availability(now)
		case now := <-stats:
			r.Stats(ctx, now)
		}
	}
}

// Availability publishes `online` or `offline` for each camera whose state
// has changed since the last call (every camera on the first).
func (r *Reporter) Availability(now time.Time) {
	for i, c := range r.m.Snapshot(now).Cameras {
		v := contract.Offline
		if c.Online() {
			v = contract.Online
		}
		if r.avail[i] == v {
			continue
		}
		topic := contract.Topics{Prefix: r.prefix}.Availability(c.Name)
		if err := r.pub.PublishRetained(topic, []byte(v)); err != nil {
			r.log.Error("publish camera availability", "camera", c.Name, "topic", topic, "err", err)
			continue // tried again at the next poll
		}
		r.log.Info("camera availability", "camera", c.Name, "availability", v, "state", c.State)
		r.avail[i] = v
	}
}

// Stats publishes the Snapshot, with each camera's frames/s since the last
// one, retained on <prefix>/stats. Without a connection it is skipped: the
// next one replaces it anyway.
func (r *Reporter) Stats(ctx context.Context, now time.Time) {
	s := r.m.Snapshot(now)
	if dt := s.Time.Sub(r.prev.Time).Seconds(); dt > 0 {
		for i := range s.Cameras {
			n := s.Cameras[i].Analysed
			if i < len(r.prev.Cameras) {
				n -= r.prev.Cameras[i].Analysed
			}
			s.Cameras[i].FPS = math.Round(float64(n)/dt*100) / 100
		}
	}
	payload, err := json.Marshal(s)
	if err != nil {
		r.log.Error("stats", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, statsTimeout)
	defer cancel()
	topic := contract.Topics{Prefix: r.prefix}.Stats()
	if err := r.pub.PublishRetainedNow(ctx, topic, payload); err != nil {
		r.log.Debug("stats not published", "topic", topic, "err", err)
		return
	}
	r.prev = s
}
