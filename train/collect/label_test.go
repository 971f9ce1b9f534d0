package collect

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/dataset"
)

// collected writes crops of camera "cam": frame 5 with two faces, frames 6
// and 7 with one, and frame 5 again from a later run of the daemon.
func collected(t *testing.T) (collectDir string) {
	t.Helper()
	dir := t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1})
	o := newOfferer(t, c)
	o.offer("cam", 5, 0, 0.4)
	o.offer("cam", 5, 1, 0.6)
	o.offer("cam", 6, 0, 0.5)
	o.offer("cam", 7, 0, 0.5)
	o.offer("other", 5, 0, 0.5)
	o.ts = o.ts.Add(time.Hour) // the next run
	o.offer("cam", 5, 0, 0.45)
	c.Close()
	return dir
}

func readCSV(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestLabel(t *testing.T) {
	capturetest.CheckMats(t)
	collect := collected(t)
	data := t.TempDir()
	folders := Folders{Collect: collect, Dataset: data}
	// An image the owner put there by hand, before labels.csv existed.
	if err := os.MkdirAll(filepath.Join(data, "real", "old"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "real", "old", "x.jpg"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}

	// The newest capture of frame 5 (one face, a later run) only.
	got, err := folders.Label("cam", 5, dataset.Fake)
	if err != nil {
		t.Fatal(err)
	}
	later := time.Date(2026, 11, 28, 13, 0, 0, 200_000_000, time.UTC)
	want := filepath.Join(data, "fake", "cam-"+fileName(5, later, 0)+".jpg")
	if !slices.Equal(got, []string{want}) {
		t.Fatalf("Label moved %v, want %v", got, want)
	}
	// Now the earlier run's two faces of frame 5.
	got, err = folders.Label("cam", 5, dataset.Real)
	if err != nil || len(got) != 2 {
		t.Fatalf("second Label of frame 5: %v, %v; want both faces of the earlier run", got, err)
	}
	for _, p := range got {
		checkJPEG(t, p, 80, 80)
	}
	// By file: frame 7's sidecar names it.
	side := must(filepath.Glob(filepath.Join(collect, "cam", "000000000007-*.json")))
	if len(side) != 1 {
		t.Fatalf("frame 7 sidecars %v", side)
	}
	if _, err := folders.LabelPath(side[0], dataset.Fake); err != nil {
		t.Fatal(err)
	}

	rows := readCSV(t, filepath.Join(data, dataset.LabelsFile))
	early := Identity(Meta{Camera: "cam", TS: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)})
	wantRows := [][]string{{"path", "label", "identity"},
		{"fake/cam-" + fileName(5, later, 0) + ".jpg", "fake", "cam@20261128T1300Z"},
		{"real/old/x.jpg", "real", "real/old/x.jpg"},
		{"real/cam-" + fileName(5, later.Add(-time.Hour), 0) + ".jpg", "real", early},
		{"real/cam-" + fileName(5, later.Add(-time.Hour), 1) + ".jpg", "real", early},
		{"fake/cam-" + fileName(7, later.Add(-time.Hour+80*time.Millisecond), 0) + ".jpg", "fake", early},
	}
	if !slices.EqualFunc(rows, wantRows, slices.Equal) {
		t.Errorf("labels.csv\n%q\nwant\n%q", rows, wantRows)
	}
	if early != "cam@20261128T1200Z" {
		t.Errorf("identity %q", early)
	}

	// Training reads the folder: both classes, groups from the identities.
	f, err := dataset.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	if r, fk := f.Counts(); r != 3 || fk != 2 || len(f.Skipped) != 0 {
		t.Errorf("training sees %d real, %d fake, skipped %v; want 3, 2, none", r, fk, f.Skipped)
	}
	if f.Samples[0].Label != dataset.Fake {
		t.Errorf("first sample %+v, want fake", f.Samples[0])
	}

	// Sidecars moved to meta/ with the label; none left behind for moved crops.
	var m Meta
	if err := json.Unmarshal(must(os.ReadFile(filepath.Join(data, MetaDir, "cam-"+fileName(5, later, 0)+".json"))), &m); err != nil {
		t.Fatal(err)
	}
	if m.Label != dataset.Fake || m.Frame != 5 || m.PFake != 0.45 || !m.TS.Equal(later) {
		t.Errorf("moved sidecar %+v", m)
	}
	left := must(List(collect))
	if len(left) != 2 || left[0].Meta.Camera != "cam" || left[0].Meta.Frame != 6 || left[1].Meta.Camera != "other" {
		t.Errorf("left to label %+v, want cam/6 and other/5, newest first", left)
	}
	if n := len(must(filepath.Glob(filepath.Join(collect, "*", "*")))); n != 4 {
		t.Errorf("%d files left in the collect folder, want 2 crops and 2 sidecars", n)
	}
}

func TestLabelErrors(t *testing.T) {
	capturetest.CheckMats(t)
	collect := collected(t)
	data := t.TempDir()
	folders := Folders{Collect: collect, Dataset: data}
	for _, tc := range []struct {
		name   string
		label  func() ([]string, error)
		errHas string
	}{
		{"unknown frame", func() ([]string, error) { return folders.Label("cam", 99, dataset.Fake) }, "camera cam frame 99: no collected crop"},
		{"unknown camera", func() ([]string, error) { return folders.Label("cam9", 5, dataset.Fake) }, "camera cam9 has no collected crops"},
		{"bad label", func() ([]string, error) { return folders.Label("cam", 5, "Fake") }, `label "Fake": want real or fake`},
		{"bad camera", func() ([]string, error) { return folders.Label("../cam", 5, dataset.Real) }, `camera "../cam"`},
		{"negative frame", func() ([]string, error) { return folders.Label("cam", -1, dataset.Real) }, "frame -1 is negative"},
		{"path outside", func() ([]string, error) {
			return folders.LabelPath(filepath.Join(data, "cam", "000000000005-1-00.jpg"), dataset.Real)
		}, "is not a collected crop"},
		{"path missing", func() ([]string, error) {
			return folders.LabelPath(filepath.Join(collect, "cam", "000000000005-1-00.jpg"), dataset.Real)
		}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.label()
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("got %v, %v; want an error with %q", got, err, tc.errHas)
			}
		})
	}
	if n := len(must(List(collect))); n != 6 {
		t.Errorf("%d crops left after failed labels, want all 6", n)
	}

	// A labels.csv training would refuse is not rewritten.
	bad := []byte("file,label,group\na.jpg,fake,v\n")
	if err := os.WriteFile(filepath.Join(data, dataset.LabelsFile), bad, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := folders.Label("cam", 6, dataset.Real); err == nil || !strings.Contains(err.Error(), "want path,label,identity") {
		t.Errorf("bad labels.csv: %v", err)
	}
	if b := must(os.ReadFile(filepath.Join(data, dataset.LabelsFile))); string(b) != string(bad) {
		t.Errorf("labels.csv rewritten: %q", b)
	}
}

// TestCollectorLabel labels a frame right after offering it: the request
// waits for the queued crops, and the rotation forgets the labelled ones.
func TestCollectorLabel(t *testing.T) {
	capturetest.CheckMats(t)
	dir, data := t.TempDir(), t.TempDir()
	c := newCollector(t, Options{Dir: dir, EveryN: 1, MaxFiles: 2})
	o := newOfferer(t, c)
	o.offer("cam", 1, 0, 0.5)
	o.offer("cam", 1, 1, 0.5)
	got, err := c.Label(context.Background(), data, "cam", 1, dataset.Real)
	if err != nil || len(got) != 2 {
		t.Fatalf("Label right after Offer: %v, %v; want 2 crops", got, err)
	}
	o.offer("cam", 2, 0, 0.5)
	o.offer("cam", 3, 0, 0.5)
	c.Close()
	if s := c.Stats(); s.Removed != 0 {
		t.Errorf("rotation removed %d crops, but only 2 are in the folder (max 2)", s.Removed)
	}
	if n := len(must(List(dir))); n != 2 {
		t.Errorf("%d crops left, want 2", n)
	}
	if _, err := c.Label(context.Background(), data, "cam", 2, dataset.Real); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Label after Close: %v", err)
	}
}

// TestLabelAllOrNothing: when the label cannot be recorded (here labels.csv
// is a folder, as a full disk fails the write), the crops and their sidecars
// are back in the collect folder, nothing of them is in the dataset, and the
// label can be applied once the fault is gone.
func TestLabelAllOrNothing(t *testing.T) {
	capturetest.CheckMats(t)
	collect := collected(t)
	data := t.TempDir()
	folders := Folders{Collect: collect, Dataset: data}
	before := must(filepath.Glob(filepath.Join(collect, "*", "*")))
	if err := os.MkdirAll(filepath.Join(data, dataset.LabelsFile), 0o750); err != nil {
		t.Fatal(err)
	}
	if got, err := folders.Label("cam", 5, dataset.Fake); err == nil {
		t.Fatalf("Label with labels.csv a folder: moved %v, no error", got)
	}
	if after := must(filepath.Glob(filepath.Join(collect, "*", "*"))); !slices.Equal(after, before) {
		t.Errorf("collect folder after the failed label:\n%v\nwant\n%v", after, before)
	}
	for _, d := range []string{dataset.Fake, MetaDir} {
		if ents, _ := os.ReadDir(filepath.Join(data, d)); len(ents) != 0 {
			t.Errorf("%s/ holds %d files after the failed label", d, len(ents))
		}
	}
	if err := os.Remove(filepath.Join(data, dataset.LabelsFile)); err != nil {
		t.Fatal(err)
	}
	if got, err := folders.Label("cam", 5, dataset.Fake); err != nil || len(got) != 1 {
		t.Fatalf("Label after the fault: %v, %v", got, err)
	}
}

// TestIdentity: a crop that names its track is grouped by the track, so one
// labelling session over many people gives many groups; one that does not
// falls back to its camera's 10-minute window.
func TestIdentity(t *testing.T) {
	ts := time.Date(2026, 11, 28, 12, 7, 0, 0, time.UTC)
	for _, tc := range []struct {
		m    Meta
		want string
	}{
		{Meta{Camera: "door", TS: ts, Run: "r1", Track: 7}, "door/r1-7"},
		{Meta{Camera: "door", TS: ts.Add(9 * time.Minute), Run: "r1", Track: 8}, "door/r1-8"},
		{Meta{Camera: "door", TS: ts, Run: "r1"}, "door@20261128T1200Z"},
		{Meta{Camera: "door", TS: ts}, "door@20261128T1200Z"},
	} {
		if got := Identity(tc.m); got != tc.want {
			t.Errorf("Identity(%+v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}
