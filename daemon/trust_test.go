package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/shipped"
)

// TestTrust: the shipped release is named with its card's figures; a head
// trained here, or a backbone of one's own, changes what the sentence says.
func TestTrust(t *testing.T) {
	r, err := shipped.Get()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		ids       contract.ModelIDs
		release   bool
		has, hasn string
	}{
		{"shipped", contract.ModelIDs{Backbone: r.Backbones[1], Head: r.Head}, true, "teach it this camera", "trained here"},
		{"own head", contract.ModelIDs{Backbone: r.Backbones[0], Head: "0123456789ab"}, true, "The head was trained here", "teach it this camera"},
		{"own backbone", contract.ModelIDs{Backbone: "0123456789ab", Head: r.Head}, false, "not one the project shipped", "DFDC"},
	} {
		rel, s := trust(&r, tc.ids)
		if (rel != "") != tc.release || !strings.Contains(s, tc.has) || strings.Contains(s, tc.hasn) {
			t.Errorf("%s: %q, %q", tc.name, rel, s)
		}
		if tc.release && (!strings.Contains(rel, r.Name) || !strings.Contains(s, "0.79")) {
			t.Errorf("%s: %q does not name %s and its AUC", tc.name, rel+" "+s, r.Name)
		}
	}
}

// TestLabelled: the Train page's summary of train.dataset, read as training
// reads it: no folder yet, one labelling session, enough.
func TestLabelled(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{Train: config.DefaultTrain()}
	cfg.Train.Dataset = filepath.Join(dir, "none")
	if l, err := labelled(cfg); err != nil || l.Short != "no labelled images yet" {
		t.Fatalf("no folder: %+v, %v", l, err)
	}
	cfg.Train.Dataset = dir
	write := func(rows []string) {
		t.Helper()
		for _, r := range rows[1:] {
			p := filepath.Join(dir, strings.Split(r, ",")[0])
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "labels.csv"), []byte(strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rows := []string{"path,label,identity"}
	for i := range 6 {
		rows = append(rows, fmt.Sprintf("real/%d.jpg,real,cam/r1-%d", i, i%3), fmt.Sprintf("fake/%d.jpg,fake,cam/r1-9", i))
	}
	write(rows)
	if l, err := labelled(cfg); err != nil || l.Real != 6 || l.Fake != 6 || l.Groups != 4 || !strings.Contains(l.Short, "2 groups of each") {
		t.Fatalf("one session of fakes: %+v, %v", l, err)
	}
	for i := range 8 {
		rows = append(rows, fmt.Sprintf("fake/x%d.jpg,fake,cam/r2-%d", i, i%4))
	}
	write(rows)
	if l, err := labelled(cfg); err != nil || l.Groups != 8 || l.Short != "" {
		t.Fatalf("enough: %+v, %v", l, err)
	}
}

// TestLatestTraining: the newest training folder with a report, whoever
// ran it; one still running (no metrics.json yet) is passed over.
func TestLatestTraining(t *testing.T) {
	out := t.TempDir()
	tr := &execTrainer{out: filepath.Join(out, "train")}
	if r, err := tr.Latest(); r != nil || err != nil {
		t.Fatalf("no trainings yet: %+v, %v", r, err)
	}
	for _, d := range []struct{ name, metrics string }{
		{"20261207T100000Z", `{"data":{"real":10,"fake":11},"gate":{"held_out":4,"install":false,"reason":"older"}}`},
		{"20261207T110000Z", `{"data":{"real":20,"fake":21},"gate":{"held_out":8,"install":true,"replaced":true,"reason":"newer"}}`},
		{"20261207T120000Z", ""}, // running
	} {
		dir := filepath.Join(tr.out, d.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if d.metrics != "" {
			if err := os.WriteFile(filepath.Join(dir, "metrics.json"), []byte(d.metrics), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := tr.Latest()
	if err != nil || r == nil || r.Real != 20 || r.Held != 8 || !r.Replaced || r.Reason != "newer" || r.Finished.IsZero() {
		t.Fatalf("latest: %+v, %v", r, err)
	}
}
