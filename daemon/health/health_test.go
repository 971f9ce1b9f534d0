package health

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/outbox"
)

// The parts a Monitor reads, as values a test sets.
type camera struct {
	name string
	st   livestat.Status
}

func (c *camera) Name() string            { return c.name }
func (c *camera) Status() livestat.Status { return c.st }

type pipe struct {
	counts []livestat.CameraCount
	stuck  string
}

func (p *pipe) Analysed() []livestat.CameraCount      { return p.counts }
func (p *pipe) Stuck(time.Time, time.Duration) string { return p.stuck }

type pub struct{ st mqttc.Stats }

func (p *pub) Stats() mqttc.Stats { return p.st }

type box struct{ st outbox.Stats }

func (b *box) Stats() outbox.Stats { return b.st }

type models struct{ backbone, head, precision string }

func (m *models) BackboneID() string { return m.backbone }
func (m *models) HeadID() string     { return m.head }
func (m *models) Precision() string  { return m.precision }

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// sources are four cameras, one in each state, a connected broker and an
// outbox with a little in it.
func sources() (Sources, []*camera, *pipe, *box, *models) {
	cams := []*camera{
		{"door", livestat.Status{Delivering: true, Frames: 100, Dropped: 7, Decoder: "avdec_h264"}},
		{"yard", livestat.Status{Retrying: true, Frames: 5}},
		{"hall", livestat.Status{}},
		{"file", livestat.Status{Delivering: true, Frames: 40}},
	}
	p := &pipe{counts: []livestat.CameraCount{
		{Camera: "door", Frames: 90, Faces: 30, Skipped: 2, Last: t0.Add(-time.Second)},
		{Camera: "yard", Frames: 4},
		{Camera: "hall"},
		{Camera: "file", Frames: 40, Ended: true, Last: t0.Add(-time.Minute)},
	}}
	b := &box{outbox.Stats{Pending: 3, Bytes: 1712, DroppedFull: 1}}
	m := &models{"3f2a9c01d4e7", "8b0e55d2c913", "int8"}
	src := Sources{Pipeline: p, Publisher: &pub{mqttc.Stats{Connected: true, Reconnects: 2, Replayed: 41}}, Outbox: b, Models: m,
		Stall: time.Minute, Start: t0.Add(-time.Hour), Version: "1.4.0", Release: "deepfaked-dfdc v2"}
	for _, c := range cams {
		src.Cameras = append(src.Cameras, c)
	}
	return src, cams, p, b, m
}

func TestSnapshot(t *testing.T) {
	src, _, _, _, _ := sources()
	s := New(src).Snapshot(t0)
	if s.Schema != contract.SchemaVersion || s.Version != "1.4.0" || s.Release != "deepfaked-dfdc v2" || s.Uptime != 3600 ||
		s.Model != (contract.ModelIDs{Backbone: "3f2a9c01d4e7", Head: "8b0e55d2c913", Precision: "int8"}) {
		t.Errorf("snapshot %+v", s)
	}
	want := []struct {
		name, state                      string
		captured, analysed, stale, faces int64
		last                             bool
	}{
		{"door", contract.CameraDelivering, 100, 90, 7, 30, true},
		{"yard", contract.CameraReconnecting, 5, 4, 0, 0, false},
		{"hall", contract.CameraConnecting, 0, 0, 0, 0, false},
		{"file", contract.CameraEnded, 40, 40, 0, 0, true},
	}
	for i, w := range want {
		c := s.Cameras[i]
		if c.Name != w.name || c.State != w.state || c.Captured != w.captured || c.Analysed != w.analysed || c.Stale != w.stale ||
			c.Faces != w.faces || (c.LastVerdict != nil) != w.last || c.Online() != (w.state == contract.CameraDelivering) {
			t.Errorf("camera %d: %+v, want %+v", i, c, w)
		}
	}
	if s.Cameras[0].Decoder != "avdec_h264" || s.Cameras[1].Decoder != "" {
		t.Errorf("decoders %q, %q", s.Cameras[0].Decoder, s.Cameras[1].Decoder)
	}
	if s.Cameras[0].Skipped != 2 || s.MQTT != (contract.MQTTStats{Connected: true, Reconnects: 2, Replayed: 41}) ||
		s.Outbox != (contract.OutboxStats{Messages: 3, Bytes: 1712, DroppedFull: 1}) {
		t.Errorf("skipped %d, mqtt %+v, outbox %+v", s.Cameras[0].Skipped, s.MQTT, s.Outbox)
	}
	// Before the pipeline runs it has no counts: the cameras' own states rule.
	src.Pipeline = &pipe{}
	if s := New(src).Snapshot(t0); s.Cameras[3].State != contract.CameraDelivering || s.Cameras[3].Analysed != 0 {
		t.Errorf("without counts: %+v", s.Cameras[3])
	}
}

func TestReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(src *Sources, cams []*camera, p *pipe, b *box, m *models)
		want   string
	}{
		{"ready", func(_ *Sources, cams []*camera, p *pipe, _ *box, _ *models) {
			cams[1].st, cams[2].st = livestat.Status{Delivering: true}, livestat.Status{Delivering: true}
			p.counts[3].Ended = false
		}, ""},
		{"a camera down", func(*Sources, []*camera, *pipe, *box, *models) {}, "camera yard: reconnecting"},
		{"no head", func(_ *Sources, _ []*camera, _ *pipe, _ *box, m *models) { m.head = "" }, "models not loaded"},
		{"outbox failing", func(_ *Sources, _ []*camera, _ *pipe, b *box, _ *models) { b.st.Failing = true }, "the outbox is failing"},
		{"stuck", func(_ *Sources, _ []*camera, p *pipe, _ *box, _ *models) { p.stuck = "camera door: read for 2m" }, "stuck: camera door"},
		{"broker full", func(src *Sources, _ []*camera, _ *pipe, _ *box, _ *models) {
			src.Broker = brokerStats{Open: 64, Max: 64}
		}, "the embedded broker is full: 64 connections"},
		{"broker out of file descriptors", func(src *Sources, _ []*camera, _ *pipe, _ *box, _ *models) {
			src.Broker = brokerStats{Open: 3, Max: 64, AcceptErrors: 5, LastAcceptError: t0.Add(-time.Second)}
		}, "cannot accept connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, cams, p, b, m := sources()
			tc.change(&src, cams, p, b, m)
			got := New(src).Ready(t0)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("Ready = %q, want %q", got, tc.want)
			}
		})
	}
}

// brokerStats is an embedded broker that reports these counts.
type brokerStats mqttc.BrokerStats

func (b brokerStats) Stats() mqttc.BrokerStats { return mqttc.BrokerStats(b) }

// announcer records retained messages; fail makes the next publish fail.
type announcer struct {
	mu   sync.Mutex
	msgs []string
	fail bool
}

func (a *announcer) PublishRetained(topic string, payload []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		a.fail = false
		return errors.New("outbox full")
	}
	a.msgs = append(a.msgs, topic+" "+string(payload))
	return nil
}

func (a *announcer) PublishRetainedNow(_ context.Context, topic string, payload []byte) error {
	return a.PublishRetained(topic, payload)
}

func (a *announcer) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.msgs
	a.msgs = nil
	return m
}

// TestAvailability: every camera's availability at first, then only a
// change; a failed publish is tried again at the next poll.
func TestAvailability(t *testing.T) {
	src, cams, _, _, _ := sources()
	a := &announcer{}
	r := NewReporter(New(src), a, "deepfaked/edge-01", 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Availability(t0)
	topics := contract.Topics{Prefix: "deepfaked/edge-01"}
	want := []string{topics.Availability("door") + " online", topics.Availability("yard") + " offline",
		topics.Availability("hall") + " offline", topics.Availability("file") + " offline"} // ended: offline
	if got := a.take(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("first poll: %v, want %v", got, want)
	}
	r.Availability(t0)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("nothing changed, published %v", got)
	}
	cams[1].st = livestat.Status{Delivering: true}
	a.fail = true
	r.Availability(t0)
	if got := a.take(); len(got) != 0 {
		t.Fatalf("a failed publish recorded %v", got)
	}
	r.Availability(t0)
	if got := a.take(); len(got) != 1 || got[0] != topics.Availability("yard")+" online" {
		t.Fatalf("after the failure: %v", got)
	}
}

// TestStats: the retained stats carry the schema version and each camera's
// analysed frames per second since the previous report.
func TestStats(t *testing.T) {
	src, _, p, _, _ := sources()
	a := &announcer{}
	r := NewReporter(New(src), a, "deepfaked/edge-01", time.Minute, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Stats(t.Context(), t0)
	p.counts[0].Frames += 300 // 5 fps over the next minute
	r.Stats(t.Context(), t0.Add(time.Minute))
	msgs := a.take()
	if len(msgs) != 2 {
		t.Fatalf("published %v", msgs)
	}
	topic, payload, _ := strings.Cut(msgs[1], " ")
	var s contract.Stats
	if err := json.Unmarshal([]byte(payload), &s); err != nil {
		t.Fatal(err)
	}
	if topic != (contract.Topics{Prefix: "deepfaked/edge-01"}).Stats() || s.Schema != contract.SchemaVersion || s.Cameras[0].FPS != 5 || s.Cameras[1].FPS != 0 {
		t.Errorf("%s: schema %d, fps %v %v", topic, s.Schema, s.Cameras[0].FPS, s.Cameras[1].FPS)
	}
	if !strings.Contains(payload, `"schema":1`) {
		t.Errorf("payload %s", payload)
	}
}
