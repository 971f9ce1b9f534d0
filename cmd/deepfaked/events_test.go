package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// Segments of the spliced test video, in frames.
const (
	segFrames = 60
	gapFrames = 8 // black frames between segments, more than tracks.max_missed (5)
)

// splicedVideo writes real, gap, fake, gap, real into dir/spliced.avi: the
// real segments are Megamind's first frames with a face, the fake one is a
// later part of it mirrored, blurred and with red and blue swapped (another
// face position, colour and sharpness, which a head trained on both tells
// apart). It also
// writes every second frame of a real and of the fake segment into
// dir/data/{real,fake} for that head. It returns the video and the fake
// segment's first and last frame index.
func splicedVideo(t *testing.T, dir string) (video string, fakeFirst, fakeLast int64) {
	t.Helper()
	if _, err := os.Stat(capturetest.Megamind); err != nil {
		t.Skipf("needs %s (Debian's opencv-doc, installed by make deps): %v", capturetest.Megamind, err)
	}
	src, err := gocv.VideoCaptureFile(capturetest.Megamind)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var frames []gocv.Mat
	defer func() {
		for _, m := range frames {
			m.Close()
		}
	}()
	for len(frames) < 200 {
		m := gocv.NewMat()
		if !src.Read(&m) || m.Empty() {
			m.Close()
			break
		}
		if s := m.Mean(); len(frames) == 0 && s.Val1+s.Val2+s.Val3 < 3 {
			m.Close() // Megamind opens on black frames
			continue
		}
		// A man sits in the background: black him out, so that each
		// segment shows one face.
		gocv.Rectangle(&m, image.Rect(432, 140, 560, 300), color.RGBA{}, -1)
		frames = append(frames, m)
	}
	if len(frames) < 100+segFrames {
		t.Fatalf("%s: %d frames, want %d", capturetest.Megamind, len(frames), 100+segFrames)
	}
	w, h := frames[0].Cols(), frames[0].Rows()
	video = filepath.Join(dir, "spliced.avi")
	vw, err := gocv.VideoWriterFile(video, "MJPG", 25, w, h, true)
	if err != nil {
		t.Fatal(err)
	}
	defer vw.Close()
	black := gocv.NewMatWithSize(h, w, gocv.MatTypeCV8UC3)
	defer black.Close()
	fake := gocv.NewMat()
	defer fake.Close()
	for _, c := range []string{"real", "fake"} {
		if err := os.MkdirAll(filepath.Join(dir, "data", c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := int64(0)
	write := func(m gocv.Mat, class string, i int) {
		t.Helper()
		if err := vw.Write(m); err != nil {
			t.Fatal(err)
		}
		n++
		if class != "" && i%2 == 0 && !gocv.IMWrite(filepath.Join(dir, "data", class, fmt.Sprintf("%s%03d.jpg", class, i)), m) {
			t.Fatalf("write a %s training frame", class)
		}
	}
	gap := func() {
		for range gapFrames {
			write(black, "", 0)
		}
	}
	for i := range segFrames {
		write(frames[i], "real", i)
	}
	gap()
	fakeFirst = n
	for i := range segFrames {
		gocv.Flip(frames[100+i], &fake, 1)
		gocv.CvtColor(fake, &fake, gocv.ColorBGRToRGB)
		gocv.GaussianBlur(fake, &fake, image.Pt(9, 9), 0, 0, gocv.BorderDefault)
		write(fake, "fake", i)
	}
	fakeLast = n - 1
	gap()
	for i := range segFrames {
		write(frames[i], "", i)
	}
	return video, fakeFirst, fakeLast
}

// TestEvents runs the daemon on a looping video with a fake segment spliced
// between two real ones, against mosquitto, with a head trained (by
// `deepfaked train`) to tell the two apart: the fake segment makes exactly one
// event (new, then end) whose track lies inside it, the real segments none;
// the retained state goes fake and back after the cooldown; the event's
// snapshot is a JPEG on disk and on the snapshot topic; verdicts carry track
// ids; and every Home Assistant discovery config points at topics the daemon
// really publishes.
func TestEvents(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	dir := t.TempDir()
	video, fakeFirst, fakeLast := splicedVideo(t, dir)
	total := fakeLast + 1 + gapFrames + segFrames
	backbone, head := testenv.Models(t)
	broker := testenv.Mosquitto(t)
	snaps := filepath.Join(dir, "snapshots")
	cfg := filepath.Join(dir, "deepfaked.yaml")
	writeCfg := func(head string) {
		t.Helper()
		lines := []string{"device_id: ev", "state_dir: " + filepath.Join(dir, "state"),
			"mqtt:", "  broker: " + broker, "  stats_interval: 2s", "  homeassistant:", "    enabled: true",
			"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
			// A head trained on so few, so separable faces calibrates its
			// threshold to the edge of its saturated scores.
			"  threshold: 0.5",
			"faces:", "  detector: haar", "  max_faces: 2",
			"tracks:", "  max_missed: 5",
			"events:", "  cooldown: 1s", "  snapshots:", "    dir: " + snaps, "    publish: true",
			"cameras:", "  - name: cam", "    source: " + video, "    loop: true", ""}
		if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg(head)
	out := filepath.Join(dir, "trained")
	if b, err := exec.Command(deepfaked(t), "train", "--config", cfg, "--data", filepath.Join(dir, "data"),
		"--crop", "face", "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("train: %v\n%s", err, b)
	}
	writeCfg(filepath.Join(out, "head.onnx"))

	sub := subscribe(t, broker, "#")
	cmd := exec.Command(deepfaked(t), "run", "--config", cfg)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// One whole pass, and the cooldown after the fake segment's end.
	sub.waitFor(t, "the second pass", 3*time.Minute, func(ms []message) bool {
		for _, m := range ms {
			if m.topic == "deepfaked/ev/cam/verdict" {
				var v contract.Verdict
				if json.Unmarshal(m.payload, &v) == nil && v.Frame >= total+segFrames/2 {
					return true
				}
			}
		}
		return false
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	ms := sub.snapshot()

	// Verdicts carry tracks: one per continuous appearance in the first real segment.
	tracks := map[int64]int{}
	for _, m := range ms {
		var v contract.Verdict
		if m.topic != "deepfaked/ev/cam/verdict" || json.Unmarshal(m.payload, &v) != nil || v.Frame >= segFrames {
			continue
		}
		for _, f := range v.Faces {
			if f.Track < 1 {
				t.Fatalf("frame %d: face without a track id: %+v", v.Frame, f)
			}
			tracks[f.Track]++
		}
	}
	// Haar's false boxes make short tracks of their own; the face makes one
	// long track, two should Haar lose it or a false box draw it away.
	long := 0
	for _, n := range tracks {
		if n >= 5 {
			long++
		}
	}
	if long == 0 || long > 2 {
		t.Errorf("first real segment: tracks (id: faces) %v; want one or two of 5 faces or more", tracks)
	}

	// Events of the first pass: one, for the fake segment.
	var events []contract.Event
	for _, m := range ms {
		var e contract.Event
		if m.topic != "deepfaked/ev/cam/events" {
			continue
		}
		if err := json.Unmarshal(m.payload, &e); err != nil {
			t.Fatalf("event is not JSON: %v: %s", err, m.payload)
		}
		if e.After.FirstFrame < total {
			events = append(events, e)
		}
	}
	ids := map[string]bool{}
	for _, e := range events {
		ids[e.ID] = true
	}
	if len(ids) != 1 || len(events) < 2 {
		t.Fatalf("first pass: %d events with ids %v, want one event (new … end) for the fake segment:\n%s", len(events), ids, eventsText(events))
	}
	first, last := events[0], events[len(events)-1]
	if first.Type != "new" || first.Before != nil || first.After.State != "fake" || last.Type != "end" {
		t.Fatalf("want new (fake) … end:\n%s", eventsText(events))
	}
	if first.After.FirstFrame < fakeFirst || last.After.LastFrame > fakeLast {
		t.Errorf("event's track spans frames %d..%d; the fake segment is %d..%d", first.After.FirstFrame, last.After.LastFrame, fakeFirst, fakeLast)
	}
	if last.Before == nil || last.After.Frames < first.After.Frames {
		t.Errorf("end event: before %+v after %+v", last.Before, last.After)
	}
	img := gocv.IMRead(last.After.Snapshot, gocv.IMReadColor)
	if img.Empty() {
		t.Errorf("end event's snapshot %q is not a readable JPEG", last.After.Snapshot)
	}
	img.Close()
	if !strings.HasPrefix(last.After.Snapshot, snaps) {
		t.Errorf("snapshot %q is not under events.snapshots.dir %s", last.After.Snapshot, snaps)
	}

	// The state follows: not fake, fake (while the fake track is), not fake again.
	var states []string
	for _, m := range ms {
		if m.topic == "deepfaked/ev/cam/state" {
			states = append(states, string(m.payload))
		}
	}
	i := slices.Index(states, "fake")
	if i < 0 || i+1 >= len(states) || states[i+1] == "fake" {
		t.Errorf("states %v: want fake, then real or none", states)
	}
	var snapshot []byte
	for _, m := range ms {
		if m.topic == "deepfaked/ev/cam/snapshot" {
			snapshot = m.payload
		}
	}
	if img, err := gocv.IMDecode(snapshot, gocv.IMReadColor); err != nil || img.Empty() {
		t.Errorf("snapshot topic: %d bytes, not a JPEG: %v", len(snapshot), err)
	} else {
		img.Close()
	}

	checkDiscovery(t, ms)

	// What a subscriber arriving now finds retained.
	late := subscribe(t, broker, "#")
	retained := late.waitFor(t, "the retained state, score, snapshot and discovery configs", 10*time.Second, func(ms []message) bool {
		n := 0
		for _, m := range ms {
			if m.retained && (strings.HasPrefix(m.topic, "homeassistant/") || strings.HasPrefix(m.topic, "deepfaked/ev/cam/s")) {
				n++
			}
		}
		return n >= 6 // 3 configs, state, score, snapshot
	})
	for _, topic := range []string{"deepfaked/ev/cam/state", "deepfaked/ev/cam/score", "deepfaked/ev/cam/snapshot"} {
		if !slices.ContainsFunc(retained, func(m message) bool { return m.topic == topic && m.retained }) {
			t.Errorf("%s is not retained", topic)
		}
	}
}

// checkDiscovery: every Home Assistant discovery config has the keys its
// component needs, and its state and availability topics are ones the
// daemon published.
func checkDiscovery(t *testing.T, ms []message) {
	t.Helper()
	published := map[string]bool{}
	for _, m := range ms {
		published[m.topic] = true
	}
	configs := map[string]bool{} // a reconnection announces them again
	for _, m := range ms {
		if !strings.HasPrefix(m.topic, "homeassistant/") || len(m.payload) == 0 { // an empty config removes
			continue
		}
		configs[m.topic] = true
		var c struct {
			Name         string `json:"name"`
			UniqueID     string `json:"unique_id"`
			StateTopic   string `json:"state_topic"`
			ImageTopic   string `json:"image_topic"`
			Availability []struct {
				Topic string `json:"topic"`
			} `json:"availability"`
			Device struct {
				Identifiers []string `json:"identifiers"`
			} `json:"device"`
		}
		if err := json.Unmarshal(m.payload, &c); err != nil {
			t.Fatalf("%s: %v: %s", m.topic, err, m.payload)
		}
		// The daemon's Running reads its status directly: no availability.
		if c.Name == "" || c.UniqueID == "" || len(c.Device.Identifiers) == 0 || len(c.Availability) == 0 && !strings.HasSuffix(m.topic, "/running/config") {
			t.Errorf("%s: missing keys: %s", m.topic, m.payload)
		}
		for _, topic := range append([]string{c.StateTopic + c.ImageTopic}, func() (a []string) {
			for _, x := range c.Availability {
				a = append(a, x.Topic)
			}
			return a
		}()...) {
			if !published[topic] {
				t.Errorf("%s points at %q, which the daemon never published", m.topic, topic)
			}
		}
	}
	if n := len(configs); n != 8 {
		t.Errorf("%d discovery configs, want 8: the camera's deepfake, score, fps, track events and face image, the daemon's running, outbox and head", n)
	}
}

func eventsText(es []contract.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s track %d %s score %.2f frames %d..%d (%d)\n", e.ID, e.Type, e.After.Track, e.After.State,
			e.After.Score, e.After.FirstFrame, e.After.LastFrame, e.After.Frames)
	}
	return b.String()
}
