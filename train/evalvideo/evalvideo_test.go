package evalvideo

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/track"
	"github.com/deepfaked/deepfaked/train"
)

// sink is a verdictSink for one video "v", with the mean rule for every
// score (so the expected scores are plain means).
func sink() *verdictSink {
	s := &verdictSink{stats: map[string]*videoStats{"v": {tracks: map[int64][]track.Aggregate{}}}}
	for range TrackRules() {
		s.opts = append(s.opts, track.Options{Rule: track.Mean})
	}
	return s
}

func publish(t *testing.T, s *verdictSink, faces ...contract.FaceResult) {
	t.Helper()
	v := contract.Verdict{Camera: "v", Faces: faces}
	for _, f := range faces {
		v.PFake = max(v.PFake, f.PFake)
	}
	b, _ := json.Marshal(v)
	if err := s.Publish(contract.Topics{Prefix: "p"}.Verdict("v"), b); err != nil {
		t.Fatal(err)
	}
}

// TestScores: the frame mean over frames with a face, and under a track
// rule the most fake track among those seen at least minFrames times (every
// track when none is that long).
func TestScores(t *testing.T) {
	s := sink()
	publish(t, s) // a frame without a face counts as a frame only
	for range 3 {
		publish(t, s, contract.FaceResult{Track: 1, PFake: 0.2}, contract.FaceResult{Track: 2, PFake: 0.9})
	}
	publish(t, s, contract.FaceResult{Track: 1, PFake: 0.2})
	st := s.stats["v"]
	if st.frames != 5 || st.faces != 7 {
		t.Errorf("frames %d faces %d, want 5 and 7", st.frames, st.faces)
	}
	got := st.scores(4) // track 1 has 4 frames, track 2 only 3: track 1 decides
	if math.Abs(got[0]-(0.9*3+0.2)/4) > 1e-9 || math.Abs(got[1]-0.2) > 1e-9 {
		t.Errorf("scores at min_frames 4: %v", got)
	}
	if got := st.scores(10); math.Abs(got[1]-0.9) > 1e-9 { // none that long: every track counts
		t.Errorf("scores at min_frames 10: %v", got)
	}
	if got := (&videoStats{}).scores(1); !math.IsNaN(got[0]) || !math.IsNaN(got[1]) {
		t.Errorf("a video without faces scored %v", got)
	}
}

// TestSinkRefuses: a verdict that does not decode or names no known video is
// an error that eval fails on, kept for it; other topics are ignored.
func TestSinkRefuses(t *testing.T) {
	s := sink()
	if err := s.Publish("p/v/events", []byte("{}")); err != nil {
		t.Errorf("an event: %v", err)
	}
	if err := s.Publish("p/v/verdict", []byte("{")); err == nil {
		t.Error("a broken verdict was taken")
	}
	first := s.err
	if err := s.Publish("p/w/verdict", []byte(`{"camera":"w"}`)); err == nil || !strings.Contains(err.Error(), `unknown video "w"`) {
		t.Errorf("a verdict for another video: %v", err)
	}
	if s.err != first || first == nil {
		t.Errorf("kept error %v, want the first, %v", s.err, first)
	}
}

// TestWritePredictions: one row per video, scores blank and "none" without
// a face, the prediction by the configured rule's score.
func TestWritePredictions(t *testing.T) {
	nan := math.NaN()
	r := &Report{Threshold: 0.5, Rule: string(track.EMA), Results: []*Result{
		{Rel: "fake/a.mp4", Label: "fake", Frames: 10, Faces: 9, Tracks: 1, Scores: []float64{0.4, 0.45, 0.45, 0.7}},
		{Rel: "real/b.mp4", Label: "real", Frames: 10, Scores: []float64{nan, nan, nan, nan}},
	}}
	path := filepath.Join(t.TempDir(), "p.csv")
	if err := WritePredictions(path, r); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		append(append([]string{"video", "label", "frames", "faces", "tracks"}, ScoreNames()...), "predicted"),
		{"fake/a.mp4", "fake", "10", "9", "1", "0.4", "0.45", "0.45", "0.7", "fake"},
		{"real/b.mp4", "real", "10", "0", "0", "", "", "", "", "none"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %v", rows)
	}
	for i := range want {
		if strings.Join(rows[i], ",") != strings.Join(want[i], ",") {
			t.Errorf("row %d: %v, want %v", i, rows[i], want[i])
		}
	}
}

// TestWriteTable prints one row per score and marks the daemon's rule.
func TestWriteTable(t *testing.T) {
	metrics := map[string]train.Metrics{}
	for i, n := range ScoreNames() {
		metrics[n] = train.Metrics{N: 10, AUC: 0.5 + 0.1*float64(i), Confusion: [2][2]int{{4, 1}, {2, 3}}}
	}
	r := &Report{Videos: 11, Scored: 10, NoFace: []string{"real/x.mp4"}, FPS: 5, Threshold: 0.4, Rule: string(track.EMA), MinFrames: 3, Metrics: metrics}
	var out strings.Builder
	if err := r.WriteTable(&out, "videos"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"videos: 11 video(s), 10 scored, 1 with no face", "threshold 0.400", string(track.EMA) + " *", "frame_mean", "0.5000"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}
