package pipeline_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// recorder subscribes, through a real MQTT broker (the embedded one), to what
// the pipeline publishes, and Publisher is the daemon's own publisher.
type recorder struct {
	mu       sync.Mutex
	payloads map[string][][]byte
	pub      *mqttc.Publisher
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	b, err := mqttc.StartBroker(mqttc.BrokerOptions{Addr: "127.0.0.1:0", AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r := &recorder{payloads: map[string][][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		_ = mqttc.Subscribe(ctx, mqttc.Options{Broker: b.URL(), QoS: 1, OnSubscribed: func() { once.Do(func() { close(ready) }) }},
			[]string{"#"}, func(topic string, payload []byte) {
				r.mu.Lock()
				defer r.mu.Unlock()
				r.payloads[topic] = append(r.payloads[topic], slices.Clone(payload))
			})
	}()
	t.Cleanup(func() { cancel(); <-done })
	<-ready
	if r.pub, err = mqttc.Connect(context.Background(), mqttc.Options{Outbox: testenv.Outbox(t), Broker: b.URL(), ClientID: "pipeline", QoS: 1}, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.pub.Close(context.Background()) })
	return r
}

// verdicts waits until want verdicts arrived on topic (all published ones
// are acknowledged once the publisher is closed) and decodes them.
func (r *recorder) verdicts(t *testing.T, topic string, want int) []contract.Verdict {
	t.Helper()
	var got [][]byte
	poll.Until(10*time.Second, func() bool { // the caller checks the count
		r.mu.Lock()
		defer r.mu.Unlock()
		got = slices.Clone(r.payloads[topic])
		return len(got) >= want
	})
	var out []contract.Verdict
	for _, p := range got {
		var v contract.Verdict
		if err := json.Unmarshal(p, &v); err != nil {
			t.Fatalf("payload is not a verdict: %v: %s", err, p)
		}
		out = append(out, v)
	}
	return out
}

// stageLog keeps each camera's observed stages; the pipeline calls it on its
// inference goroutine, which Run waits for.
type stageLog struct{ byCam map[string][]livestat.Stages }

func (l *stageLog) Observe(st *livestat.Stages) { l.byCam[st.Camera] = append(l.byCam[st.Camera], *st) }

type fixture struct {
	clf  *infer.Classifier
	eng  *engine.Engine
	clip string
}

func setup(t *testing.T) fixture {
	t.Helper()
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	backbone, head := testenv.Models(t)
	clf, err := infer.LoadClassifier(eng, backbone, head, infer.ClassifierOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { clf.Close() })
	return fixture{clf: clf, eng: eng, clip: capturetest.Clip(t)}
}

func (f fixture) camera(t *testing.T, name string, loop bool, detector string) pipeline.Camera {
	t.Helper()
	return f.cameraOn(t, name, f.clip, loop, detector)
}

func (f fixture) cameraOn(t *testing.T, name, source string, loop bool, detector string) pipeline.Camera {
	t.Helper()
	src, err := capture.Open(context.Background(), capture.Options{Name: name, Source: source, Loop: loop}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	det, err := face.New(face.Options{Kind: detector, MinSize: 32, Engine: f.eng})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { det.Close() })
	m := f.clf.Meta()
	pre, err := preprocess.New(preprocess.Params{Size: m.InputSize, Mean: m.Mean, Std: m.Std, ColorOrder: m.ColorOrder, Margin: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pre.Close() })
	return pipeline.Camera{Source: src, Detector: det, Pre: pre, WholeFrame: detector == face.None}
}

// Two cameras on one classifier: every frame of each file gets exactly one
// verdict, in order, with the right camera, and no Mat leaks.
func TestPipelineEveryFrameOnce(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	f := setup(t)
	const limit = 25 // the clip written without ../shared has 30 frames
	rec := newRecorder(t)
	cams := []pipeline.Camera{f.camera(t, "a", false, face.Haar), f.camera(t, "b", false, face.None)}
	p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", Run: "run-1", TopicPrefix: "deepfaked/dev", Threshold: spec.ThresholdOf(0.5), MaxFaces: 4}),
		f.clf, rec.pub, []pipeline.Camera{{Source: &firstN{Source: cams[0].Source, n: limit}, Detector: cams[0].Detector, Pre: cams[0].Pre},
			{Source: &firstN{Source: cams[1].Source, n: limit}, Detector: cams[1].Detector, Pre: cams[1].Pre, WholeFrame: true}})
	if err != nil {
		t.Fatal(err)
	}
	obs := &stageLog{byCam: map[string][]livestat.Stages{}}
	p.Observe(obs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cam := range []string{"a", "b"} {
		sts := obs.byCam[cam]
		if len(sts) != limit {
			t.Fatalf("camera %s: observer saw %d frames, want %d", cam, len(sts), limit)
		}
		for i, st := range sts {
			times := []time.Time{st.Next, st.Read, st.Detected, st.Preprocessed, st.Dequeued, st.Classified, st.Published}
			if st.Frame != int64(i) || slices.ContainsFunc(times, time.Time.IsZero) ||
				!slices.IsSortedFunc(times, func(a, b time.Time) int { return a.Compare(b) }) {
				t.Fatalf("camera %s frame %d: stages out of order or missing: %+v", cam, i, st)
			}
			if (st.Faces > 0) != (st.Backbone > 0 && st.Head > 0) {
				t.Fatalf("camera %s frame %d: %d faces but backbone %v, head %v", cam, i, st.Faces, st.Backbone, st.Head)
			}
		}
		vs := rec.verdicts(t, "deepfaked/dev/"+cam+"/verdict", limit)
		if len(vs) != limit {
			t.Fatalf("camera %s: %d verdicts for %d frames", cam, len(vs), limit)
		}
		faces := 0
		for i, v := range vs {
			if v.Frame != int64(i) || v.Camera != cam || v.Device != "dev" || v.Run != "run-1" || v.Seq != int64(i+1) {
				t.Fatalf("camera %s verdict %d: frame %d camera %s device %s run %s seq %d", cam, i, v.Frame, v.Camera, v.Device, v.Run, v.Seq)
			}
			if v.Model.Backbone != f.clf.BackboneID() || v.Model.Head != f.clf.HeadID() || v.Model.Precision != spec.PrecisionFP32 {
				t.Fatalf("model ids %+v", v.Model)
			}
			faces += len(v.Faces)
			if cam == "b" && (len(v.Faces) != 1 || v.Faces[0].Box[2] == 0) {
				t.Fatalf("detector none: want the whole frame as one face, got %+v", v.Faces)
			}
		}
		if cam == "a" && faces < limit/2 {
			t.Errorf("haar found faces in %d of %d frames of a clip with a face", faces, limit)
		}
	}
}

// Two cameras on two real videos share model runs (model.batch_wait): some
// runs hold faces of both, and yet each camera gets one verdict per frame, in
// order, with the faces and scores its frames get when it runs alone.
func TestPipelineBatchesCameras(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	f := setup(t)
	const frames = 30
	videos := map[string]string{
		"a": testenv.SharedFile(t, "data/videos/real/ffpp_004.mp4"),
		"b": testenv.SharedFile(t, "data/videos/real/ffpp_519.mp4"),
	}
	rec := newRecorder(t)
	run := func(prefix string, wait time.Duration, names ...string) *stageLog {
		var cams []pipeline.Camera
		for _, n := range names {
			c := f.cameraOn(t, n, videos[n], false, face.Haar)
			c.Source = &firstN{Source: c.Source, n: frames}
			cams = append(cams, c)
		}
		p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", TopicPrefix: prefix, Threshold: spec.ThresholdOf(0.5), MaxFaces: 8, BatchWait: wait}),
			f.clf, rec.pub, cams)
		if err != nil {
			t.Fatal(err)
		}
		obs := &stageLog{byCam: map[string][]livestat.Stages{}}
		p.Observe(obs)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return obs
	}
	obs := run("both", 50*time.Millisecond, "a", "b")
	run("alone", 0, "a")
	run("alone", 0, "b")
	shared := 0
	for _, cam := range []string{"a", "b"} {
		for _, st := range obs.byCam[cam] {
			if st.Faces > 0 && st.Batch > st.Faces {
				shared++
			}
		}
		got := rec.verdicts(t, "both/"+cam+"/verdict", frames)
		want := rec.verdicts(t, "alone/"+cam+"/verdict", frames)
		if len(got) != frames || len(want) != frames {
			t.Fatalf("camera %s: %d verdicts batched with the other camera, %d alone, for %d frames", cam, len(got), len(want), frames)
		}
		for i, v := range got {
			w := want[i]
			if v.Frame != int64(i) || v.Camera != cam || len(v.Faces) != len(w.Faces) {
				t.Fatalf("camera %s verdict %d: frame %d camera %s, %d faces; alone: %d faces", cam, i, v.Frame, v.Camera, len(v.Faces), len(w.Faces))
			}
			for k := range v.Faces {
				if v.Faces[k].Box != w.Faces[k].Box || math.Abs(v.Faces[k].PFake-w.Faces[k].PFake) > 1e-4 {
					t.Fatalf("camera %s frame %d face %d: %+v batched, %+v alone", cam, i, k, v.Faces[k], w.Faces[k])
				}
			}
		}
	}
	if shared == 0 {
		t.Errorf("no frame shared a model run with the other camera's faces")
	}
	t.Logf("%d of %d frames shared a model run", shared, 2*frames)
}

// Cancelling stops capture, and every frame that was taken is still published:
// the verdicts of a looping camera are consecutive from 0, one per frame taken.
func TestPipelineCancelPublishesInFlight(t *testing.T) {
	capturetest.CheckMats(t)
	f := setup(t)
	rec := newRecorder(t)
	cam := f.camera(t, "loop", true, face.Haar)
	src := &counted{Source: cam.Source}
	cam.Source = src
	p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", TopicPrefix: "p", Threshold: spec.ThresholdOf(0.5), MaxFaces: 8}),
		f.clf, rec.pub, []pipeline.Camera{cam})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if got := rec.verdicts(t, "p/loop/verdict", 5); len(got) < 5 {
		t.Fatalf("%d verdicts before cancelling, want 5", len(got))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not stop within 30s of cancellation")
	}
	n := src.taken
	vs := rec.verdicts(t, "p/loop/verdict", n)
	if len(vs) != n {
		t.Fatalf("%d verdicts arrived for %d frames taken", len(vs), n)
	}
	for i, v := range vs {
		if v.Frame != int64(i) {
			t.Fatalf("verdict %d is frame %d: a frame in flight was lost", i, v.Frame)
		}
	}
}

// A publish error (here: the publisher is closed) is logged and the pipeline
// carries on with the next frames.
func TestPipelinePublishErrorDoesNotStop(t *testing.T) {
	f := setup(t)
	rec := newRecorder(t)
	if err := rec.pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	cam := f.camera(t, "a", false, face.None)
	cam.Source = &firstN{Source: cam.Source, n: 5}
	logs := &testenv.SyncBuffer{}
	p, err := pipeline.New(withTracks(pipeline.Options{TopicPrefix: "p", Threshold: spec.ThresholdOf(0.5), MaxFaces: 1,
		Log: slog.New(slog.NewTextHandler(logs, nil))}), f.clf, rec.pub, []pipeline.Camera{cam})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every frame was handled; the errors, all alike, are logged once.
	if n := strings.Count(logs.String(), "publish failed"); n != 1 {
		t.Fatalf("%d publish errors logged for 5 frames with the publisher failing, want 1 (rate-limited):\n%s", n, logs)
	}
	if c := p.Analysed(); len(c) != 1 || !c[0].Ended {
		t.Errorf("cameras %+v: want the one camera ended, all its frames handled", c)
	}
}

// Invalid options are refused by New, not replaced by a default.
func TestPipelineNewRefuses(t *testing.T) {
	f := setup(t)
	cam := f.camera(t, "a", false, face.None)
	for _, tc := range []struct {
		name     string
		maxFaces int
		cams     []pipeline.Camera
		want     string
	}{
		{"max faces 0", 0, []pipeline.Camera{cam}, "max faces 0"},
		{"max faces -1", -1, []pipeline.Camera{cam}, "max faces -1"},
		{"no cameras", 1, nil, "no cameras"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.New(withTracks(pipeline.Options{MaxFaces: tc.maxFaces}), f.clf, nil, tc.cams)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// counted counts the frames a source handed out.
type counted struct {
	pipeline.Source
	taken int // read after Run has returned
}

func (s *counted) Next(ctx context.Context) (*capture.Frame, error) {
	f, err := s.Source.Next(ctx)
	if err == nil {
		s.taken++
	}
	return f, err
}

// firstN ends a source after n frames, to keep tests short on long clips.
type firstN struct {
	pipeline.Source
	n, seen int
}

func (s *firstN) Next(ctx context.Context) (*capture.Frame, error) {
	if s.seen >= s.n {
		return nil, io.EOF
	}
	s.seen++
	return s.Source.Next(ctx)
}

// withTracks gives o the default track options (config's) and verdicts on.
func withTracks(o pipeline.Options) pipeline.Options {
	o.Verdicts = true
	o.Tracks = track.Options{IoU: 0.3, MaxMissed: 10, MinFrames: 5, Rule: track.Mean, EMAAlpha: 0.2,
		ConfidentHigh: 0.8, ConfidentLow: 0.2, ConfidentCount: 11, Margin: 0.05}
	return o
}

// discard is a publisher that drops every payload, so that the benchmark
// counts the pipeline's allocations and not an MQTT client's.
type discard struct{}

func (discard) Publish(string, []byte) error         { return nil }
func (discard) PublishRetained(string, []byte) error { return nil }

// BenchmarkPipelineAllocs runs b.N frames of the test clip (looped) through
// one camera with Haar, the classifier and a discarding publisher: allocs/op
// are the allocations per frame from capture to publish, the pipeline's start
// included (amortised over b.N). At 300 frames it reported 11: 4 in
// onnxruntime_go's Run (two per session), 2 in json.Marshal (the payload and
// the timestamp), 1 in gocv's Haar (its boxes), the rest the start; none in
// the pipeline's own code.
func BenchmarkPipelineAllocs(b *testing.B) {
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(b), Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	backbone, head := testenv.Models(b)
	clf, err := infer.LoadClassifier(eng, backbone, head, infer.ClassifierOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer clf.Close()
	src, err := capture.Open(context.Background(), capture.Options{Name: "bench", Source: capturetest.Clip(b), Loop: true}, slog.Default())
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	det, err := face.New(face.Options{Kind: face.Haar, MinSize: 32, Engine: eng})
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	m := clf.Meta()
	pre, err := preprocess.New(preprocess.Params{Size: m.InputSize, Mean: m.Mean, Std: m.Std, ColorOrder: m.ColorOrder, Margin: 0.2})
	if err != nil {
		b.Fatal(err)
	}
	defer pre.Close()
	p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", TopicPrefix: "p", Threshold: spec.ThresholdOf(0.5), MaxFaces: 8}),
		clf, discard{}, []pipeline.Camera{{Source: &firstN{Source: src, n: b.N}, Detector: det, Pre: pre}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// TestVerdictsOff: with Verdicts off and Events on, no verdict is published
// but the camera's retained state and score are, and the frames are still
// analysed and counted.
func TestVerdictsOff(t *testing.T) {
	f := setup(t)
	rec := newRecorder(t)
	cam := f.camera(t, "a", false, face.None)
	cam.Source = &firstN{Source: cam.Source, n: 8}
	o := withTracks(pipeline.Options{Device: "dev", TopicPrefix: "p", Threshold: spec.ThresholdOf(0.5), MaxFaces: 1})
	o.Verdicts = false
	o.Events = pipeline.EventOptions{Enabled: true, Track: track.EventOptions{All: true}}
	p, err := pipeline.New(o, f.clf, rec.pub, []pipeline.Camera{cam})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := rec.pub.Close(context.Background()); err != nil { // everything acknowledged
		t.Fatal(err)
	}
	// Acknowledged by the broker is not yet delivered to the subscriber: wait
	// for the track's end event, the last thing the pipeline publishes.
	poll.Until(10*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		ev := rec.payloads["p/a/events"]
		var e contract.Event
		return len(ev) > 0 && json.Unmarshal(ev[len(ev)-1], &e) == nil && e.Type == "end"
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.payloads["p/a/verdict"]); n != 0 {
		t.Errorf("%d verdicts published with Verdicts off", n)
	}
	// detector none: the whole frame is one face, one track from frame 0.
	if s := rec.payloads["p/a/state"]; len(s) == 0 || string(s[0]) != "real" && string(s[0]) != "fake" {
		t.Errorf("state messages %q; want the tracked face's state", s)
	}
	if len(rec.payloads["p/a/score"]) == 0 {
		t.Error("no score published")
	}
	ev := rec.payloads["p/a/events"]
	if len(ev) < 2 {
		t.Fatalf("events %q; want new … end for the one track (events.tracks: all)", ev)
	}
	var first, last contract.Event
	if json.Unmarshal(ev[0], &first) != nil || json.Unmarshal(ev[len(ev)-1], &last) != nil || first.Type != "new" || last.Type != "end" || last.After.Frames != 8 {
		t.Errorf("events %q; want new … end with 8 frames", ev)
	}
	if c := p.Analysed(); len(c) != 1 || c[0].Frames != 8 {
		t.Errorf("analysed %+v, want 8 frames", c)
	}
}
