package daemon_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestClips: with clips for every track, each track's events name its clip
// (after.clip), and once the daemon has stopped every named clip is on disk,
// an H.264 MP4 a player opens, with the frames around the track's start.
func TestClips(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	path := observedConfig(t, "cam1 "+shortClip(t)+" false")
	appendConfig(t, path, "events:\n  tracks: all\n  clips:\n    tracks: all\n    pre: 1s\n    post: 1s\n")
	d, err := daemon.New(context.Background(), load(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := watch(t, d)
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	clips := map[string]bool{}
	for _, m := range w.waitOffline(t) {
		topic, payload, _ := strings.Cut(m, " ")
		if topic != "deepfaked/dt/cam1/events" {
			continue
		}
		var e contract.Event
		if err := json.Unmarshal([]byte(payload), &e); err != nil {
			t.Fatal(err)
		}
		if e.After.Clip == "" {
			t.Errorf("event %s %s names no clip", e.Type, e.ID)
			continue
		}
		clips[e.After.Clip] = true
	}
	if len(clips) == 0 {
		t.Fatal("no events with clips")
	}
	for p := range clips {
		vc, err := gocv.VideoCaptureFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		m := gocv.NewMat()
		n := 0
		for vc.Read(&m) && !m.Empty() {
			n++
		}
		codec := vc.CodecString()
		m.Close()
		vc.Close()
		if n < 5 || codec != "avc1" {
			t.Errorf("%s: %d frames, codec %q; want the frames around the track's start, H.264", p, n, codec)
		}
	}
}
