package pipeline_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/daemon/livestat"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestStuck: a camera whose stream freezes is reported stuck once it has
// been inside a read longer than the bound; a camera on a file that ended
// and one that is reconnecting are not.
func TestStuck(t *testing.T) {
	testenv.Long(t)
	f := setup(t)
	frozen := f.cameraOn(t, "frozen", capturetest.FreezingMJPEG(t, 5), false, face.None)
	ended := f.camera(t, "ended", false, face.None)
	retrying := f.cameraOn(t, "retrying", "rtsp://127.0.0.1:9/nothing", false, face.None)
	p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", TopicPrefix: "t", MaxFaces: 4}), f.clf, discard{},
		[]pipeline.Camera{frozen, ended, retrying})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Stuck(time.Now(), time.Second); s != "" {
		t.Fatalf("before Run: %q", s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const stall = 2 * time.Second
	var why string
	poll.Until(20*time.Second, func() bool { why = p.Stuck(time.Now(), stall); return why != "" })
	if !strings.Contains(why, "camera frozen") || !strings.Contains(why, "not retrying") {
		t.Fatalf("Stuck = %q; want the frozen camera named", why)
	}
	counts := map[string]livestat.CameraCount{}
	poll.Until(20*time.Second, func() bool { // the file's camera ends on its own
		for _, c := range p.Analysed() {
			counts[c.Camera] = c
		}
		return counts["ended"].Ended
	})
	if s := p.Stuck(time.Now(), stall); !strings.Contains(s, "camera frozen") {
		t.Errorf("after the file ended: Stuck = %q; want the frozen camera still", s)
	}
	if c := counts["frozen"]; c.Frames < 1 || c.Ended {
		t.Errorf("frozen camera: %+v; want frames before it froze, not ended", c)
	}
	if c := counts["ended"]; !c.Ended || c.Frames < 1 {
		t.Errorf("ended camera: %+v", c)
	}
	if c := counts["retrying"]; c.Frames != 0 || c.Ended {
		t.Errorf("retrying camera: %+v", c)
	}
}

// TestStuckNamesTheHungOpen: OpenCV opens one FFmpeg source at a time (a
// process-wide lock around the whole open), so a network camera whose open
// hangs holds up a looping file's reopen. Stuck must name the camera whose
// open hangs, never the file camera queued behind it.
func TestStuckNamesTheHungOpen(t *testing.T) {
	testenv.Long(t)
	f := setup(t)
	// Opens give up after 6 s (t.Setenv restores the environment).
	t.Setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "")
	t.Setenv("OPENCV_FFMPEG_LOGLEVEL", "8")
	if err := capture.SetFFmpegEnv(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join(t.TempDir(), "short.avi") // ends, and is reopened, within a second
	if err := capturetest.Write(clip, 30, 25); err != nil {
		t.Fatal(err)
	}
	looping := f.cameraOn(t, "looping", clip, true, face.None)
	hung := f.cameraOn(t, "hung", "http://"+capturetest.MuteServer(t)+"/stream.mjpg", false, face.None)
	p, err := pipeline.New(withTracks(pipeline.Options{Device: "dev", TopicPrefix: "t", MaxFaces: 4}), f.clf, discard{},
		[]pipeline.Camera{looping, hung})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const stall = 2 * time.Second
	named := 0
	for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		why := p.Stuck(time.Now(), stall)
		switch {
		case strings.Contains(why, "camera looping"):
			t.Fatalf("Stuck = %q; the looping file only waits for the hung camera's open", why)
		case strings.Contains(why, "camera hung"):
			named++
		}
	}
	if named == 0 {
		t.Fatal("Stuck never named the camera whose open hangs")
	}
	for _, c := range p.Analysed() {
		if c.Camera == "looping" && c.Frames < 30 {
			t.Errorf("looping camera: %+v; want at least one full pass", c)
		}
	}
}
