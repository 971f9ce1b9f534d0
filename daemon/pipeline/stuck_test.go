package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
)

// TestStuck: a camera whose stream freezes is reported stuck once it has
// been inside a read longer than the bound; a camera on a file that ended
// and one that is reconnecting are not.
func TestStuck(t *testing.T) {
	f := setup(t)
	frozen := f.cameraOn(t, "frozen", capturetest.FreezingMJPEG(t, 5), false, face.None)
	ended := f.camera(t, "ended", false, face.None)
	retrying := f.cameraOn(t, "retrying", "rtsp://127.0.0.1:9/nothing", false, face.None)
	p, err := pipeline.New(pipeline.Options{Device: "dev", TopicPrefix: "t", MaxFaces: 4}, f.clf, discard{},
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
	deadline := time.Now().Add(20 * time.Second)
	var why string
	for why == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		why = p.Stuck(time.Now(), stall)
	}
	if !strings.Contains(why, "camera frozen") || !strings.Contains(why, "not retrying") {
		t.Fatalf("Stuck = %q; want the frozen camera named", why)
	}
	counts := map[string]pipeline.CameraCount{}
	for !counts["ended"].Ended && time.Now().Before(deadline) { // the file's camera ends on its own
		time.Sleep(100 * time.Millisecond)
		for _, c := range p.Analysed() {
			counts[c.Camera] = c
		}
	}
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
