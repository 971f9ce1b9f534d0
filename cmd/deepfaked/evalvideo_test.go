package main

import (
	"encoding/csv"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// videoSet writes a labelled folder of short clips: files maps a path inside
// the folder to what it holds ("face": a clip with a face, "blank": frames
// without one, "corrupt": bytes no decoder takes, "shared:REL": a link to
// ../shared/REL). labels, when set, is written as labels.csv.
func videoSet(t *testing.T, files map[string]string, labels string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, kind := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case kind == "face":
			err = capturetest.Write(p, 20, 25)
		case kind == "blank":
			err = writeBlankClip(p, 20, 25)
		case kind == "corrupt":
			err = os.WriteFile(p, []byte("not a video at all"), 0o644)
		case strings.HasPrefix(kind, "shared:"):
			err = os.Symlink(testenv.SharedFile(t, strings.TrimPrefix(kind, "shared:")), p)
		default:
			t.Fatalf("videoSet: unknown kind %q", kind)
		}
		if err != nil {
			t.Fatalf("write %s: %v", p, err)
		}
	}
	if labels != "" {
		if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(labels), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeBlankClip writes n grey frames: a video in which no detector finds a face.
func writeBlankClip(path string, n int, fps float64) error {
	vw, err := gocv.VideoWriterFile(path, "MJPG", fps, 320, 240, true)
	if err != nil {
		return err
	}
	defer vw.Close()
	img := gocv.NewMatWithSize(240, 320, gocv.MatTypeCV8UC3)
	defer img.Close()
	img.SetTo(gocv.NewScalar(90, 90, 90, 0))
	for range n {
		if err := vw.Write(img); err != nil {
			return err
		}
	}
	return nil
}

// TestEvalVideos runs `eval --videos` on folders of clips and checks the
// table, the predictions CSV, the JSON and the ROC picture.
func TestEvalVideos(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	tests := []struct {
		name   string
		files  map[string]string
		labels string
		args   []string
		// read are the videos the CSV lists, noFace those of them without a
		// face, unreadable those reported and left out.
		read, noFace, unreadable []string
	}{
		{
			name: "class folders, a corrupt file and a clip without a face",
			files: map[string]string{"real/r1.avi": "face", "real/r2.avi": "face", "real/empty.avi": "blank",
				"fake/f1.avi": "face", "fake/f2.avi": "face", "fake/broken.mp4": "corrupt"},
			args:       []string{"--fps", "0", "--jobs", "2"},
			read:       []string{"real/r1.avi", "real/r2.avi", "real/empty.avi", "fake/f1.avi", "fake/f2.avi"},
			noFace:     []string{"real/empty.avi"},
			unreadable: []string{"fake/broken.mp4"},
		},
		{
			name:   "labels.csv, one video at a time at the default fps",
			files:  map[string]string{"clips/a.avi": "face", "clips/b.avi": "face"},
			labels: "path,label,identity\nclips/a.avi,real,a\nclips/b.avi,1,a\n",
			args:   []string{"--jobs", "1"},
			read:   []string{"clips/a.avi", "clips/b.avi"},
		},
		{
			name: "shared videos, one per class, at 2 frames per second",
			files: map[string]string{"real/ffpp_519.mp4": "shared:data/videos/real/ffpp_519.mp4",
				"fake/ffpp_deepfakes_519_515.mp4": "shared:data/videos/fake/ffpp_deepfakes_519_515.mp4"},
			args: []string{"--fps", "2"},
			read: []string{"real/ffpp_519.mp4", "fake/ffpp_deepfakes_519_515.mp4"},
		},
	}
	backbone, head := testenv.Models(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := videoSet(t, tc.files, tc.labels)
			dir := t.TempDir()
			cfg := writeTrainConfig(t, dir, backbone, head, 0)
			preds, roc := filepath.Join(dir, "preds.csv"), filepath.Join(dir, "roc.png")
			args := append([]string{"--config", cfg, "--videos", data, "--predictions", preds, "--roc", roc}, tc.args...)

			stdout, stderr, err := runCmd(t, newEvalCmd(), args...)
			if err != nil {
				t.Fatalf("eval --videos: %v\n%s", err, stderr)
			}
			for _, want := range []string{"frame_mean", "mean", "confident", "ema", config.DefaultTrackRule + " *", "ROC-AUC"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("table lacks %q:\n%s", want, stdout)
				}
			}
			for _, u := range tc.unreadable {
				if !strings.Contains(stderr, u) || !strings.Contains(stderr, "could not be read") {
					t.Errorf("stderr does not report unreadable %s:\n%s", u, stderr)
				}
			}
			if len(tc.noFace) > 0 && !strings.Contains(stdout, "no face found in: "+strings.Join(tc.noFace, ", ")) {
				t.Errorf("table does not list the videos without a face %v:\n%s", tc.noFace, stdout)
			}
			checkVideoPredictions(t, preds, tc.read, tc.noFace)

			f, err := os.Open(roc)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil || img.Bounds().Dx() < 1000 {
				t.Errorf("roc %s: %v, %v", roc, err, img.Bounds())
			}

			// --json: the image eval's metric keys for every score.
			stdout, stderr, err = runCmd(t, newEvalCmd(), append([]string{"--config", cfg, "--videos", data, "--json"}, tc.args...)...)
			if err != nil {
				t.Fatalf("eval --videos --json: %v\n%s", err, stderr)
			}
			checkVideoJSON(t, stdout, len(tc.read)-len(tc.noFace), tc.noFace, tc.unreadable)
		})
	}
}

// checkVideoPredictions: one row per read video, in the documented columns,
// finite scores in [0,1] for a video with a face, none for one without.
func checkVideoPredictions(t *testing.T, path string, read, noFace []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	want := []string{"video", "label", "frames", "faces", "tracks", "frame_mean", "mean", "confident", "ema", "predicted"}
	if len(rows) == 0 || !slices.Equal(rows[0], want) {
		t.Fatalf("%s header %v, want %v", path, rows[:min(1, len(rows))], want)
	}
	var got []string
	for _, r := range rows[1:] {
		got = append(got, r[0])
		blank := slices.Contains(noFace, r[0])
		if frames, _ := strconv.Atoi(r[2]); frames < 1 {
			t.Errorf("%s: %d frames analysed", r[0], frames)
		}
		for k, s := range r[5:9] {
			if blank {
				if s != "" {
					t.Errorf("%s has no face but %s %q", r[0], want[5+k], s)
				}
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
				t.Errorf("%s: %s %q (%v), want a score in [0,1]", r[0], want[5+k], s, err)
			}
		}
		if wantPred := map[bool][]string{true: {"none"}, false: {"real", "fake"}}[blank]; !slices.Contains(wantPred, r[9]) {
			t.Errorf("%s: predicted %q, want one of %v", r[0], r[9], wantPred)
		}
		if faces, _ := strconv.Atoi(r[3]); blank != (faces == 0) {
			t.Errorf("%s: %s faces", r[0], r[3])
		}
	}
	slices.Sort(got)
	read = slices.Sorted(slices.Values(read))
	if !slices.Equal(got, read) {
		t.Errorf("%s lists %v, want %v", path, got, read)
	}
}

func checkVideoJSON(t *testing.T, out string, scored int, noFace, unreadable []string) {
	t.Helper()
	var rep struct {
		Scored     int                                   `json:"scored"`
		NoFace     []string                              `json:"no_face"`
		Unreadable []struct{ Path, Error string }        `json:"unreadable"`
		Rule       string                                `json:"rule"`
		Metrics    map[string]map[string]json.RawMessage `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("--json printed %q (%v), want one JSON object", out, err)
	}
	if rep.Scored != scored || !slices.Equal(rep.NoFace, append([]string{}, noFace...)) || rep.Rule != config.DefaultTrackRule {
		t.Errorf("--json: scored %d, no_face %v, rule %q; want %d, %v, %s", rep.Scored, rep.NoFace, rep.Rule, scored, noFace, config.DefaultTrackRule)
	}
	var paths []string
	for _, u := range rep.Unreadable {
		paths = append(paths, u.Path)
		if u.Error == "" {
			t.Errorf("unreadable %s without a reason", u.Path)
		}
	}
	if !slices.Equal(paths, append([]string(nil), unreadable...)) {
		t.Errorf("--json unreadable %v, want %v", paths, unreadable)
	}
	imageKeys := []string{"accuracy", "auc", "confusion", "f1", "log_loss", "n", "precision", "recall", "threshold"}
	for _, rule := range []string{"frame_mean", "mean", "confident", "ema"} {
		m, ok := rep.Metrics[rule]
		if !ok {
			t.Errorf("--json lacks metrics.%s", rule)
			continue
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, imageKeys) {
			t.Errorf("metrics.%s keys %v, want the image eval's %v", rule, keys, imageKeys)
		}
		if n, _ := strconv.Atoi(string(m["n"])); n != scored {
			t.Errorf("metrics.%s n %d, want %d", rule, n, scored)
		}
	}
}

// TestEvalVideosRefuses: what `eval --videos` refuses, and the error it says it with.
func TestEvalVideosRefuses(t *testing.T) {
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, t.TempDir(), backbone, head, 0)
	unreadable := videoSet(t, map[string]string{"real/a.mp4": "corrupt", "fake/b.mp4": "corrupt"}, "")
	noClasses := videoSet(t, map[string]string{"clips/a.avi": "blank"}, "")
	good := videoSet(t, map[string]string{"real/a.avi": "blank", "fake/b.avi": "blank"}, "")
	tests := []struct {
		name string
		args []string
		want []string // in the error
	}{
		{"no real/ or fake/ and no labels.csv", []string{"--videos", noClasses}, []string{noClasses, "real/", "labels.csv"}},
		{"missing folder", []string{"--videos", filepath.Join(noClasses, "nope")}, []string{"nope"}},
		{"every video unreadable", []string{"--videos", unreadable}, []string{"none of the 2 video(s) could be read"}},
		{"negative fps", []string{"--videos", good, "--fps", "-1"}, []string{"--fps"}},
		{"no jobs", []string{"--videos", good, "--jobs", "0"}, []string{"--jobs"}},
		{"an image-only flag", []string{"--videos", good, "--crop", "face"}, []string{"--crop"}},
		{"--data and --videos", []string{"--videos", good, "--data", good}, []string{"data", "videos"}},
		{"--fps without --videos", []string{"--data", good, "--fps", "3"}, []string{"--videos only"}},
		{"neither --data nor --videos", nil, []string{"data", "videos"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runCmd(t, newEvalCmd(), append([]string{"--config", cfg}, tc.args...)...)
			if err == nil {
				t.Fatalf("eval %v succeeded, want an error\n%s", tc.args, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// Every unreadable video is named on stderr, not only counted.
	_, stderr, _ := runCmd(t, newEvalCmd(), "--config", cfg, "--videos", unreadable)
	for _, f := range []string{"real/a.mp4", "fake/b.mp4"} {
		if !strings.Contains(stderr, f) {
			t.Errorf("stderr does not name %s:\n%s", f, stderr)
		}
	}
}
