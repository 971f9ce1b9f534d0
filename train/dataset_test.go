package train

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/dataset"
)

func TestFileDatasetRoundTrip(t *testing.T) {
	mem := synth(37, 33, 0.5, 3, 1, 2)
	dir := t.TempDir()
	fp, lp := filepath.Join(dir, "f.f32"), filepath.Join(dir, "labels.csv")
	w, err := CreateFeatureFiles(fp, lp, mem.D)
	if err != nil {
		t.Fatal(err)
	}
	for i := range mem.Len() {
		if err := w.Append(mem.X[i*mem.D:(i+1)*mem.D], mem.Labels[i], mem.Groups[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Append(make([]float32, 3), 0, "g"); err == nil {
		t.Error("short vector accepted")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fd, err := OpenFileDataset(fp, lp)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if fd.Len() != mem.Len() || fd.Dim() != mem.D {
		t.Fatalf("file dataset %d×%d, want %d×%d", fd.Len(), fd.Dim(), mem.Len(), mem.D)
	}
	a, b := make([]float32, mem.D), make([]float32, mem.D)
	for i := range mem.Len() {
		if err := fd.Features(i, a); err != nil {
			t.Fatal(err)
		}
		_ = mem.Features(i, b)
		if !slices.Equal(a, b) || fd.Label(i) != mem.Labels[i] || fd.Group(i) != mem.Groups[i] {
			t.Fatalf("sample %d differs", i)
		}
	}
	if err := fd.Features(mem.Len(), a); err == nil {
		t.Error("sample past the end accepted")
	}
	// Same content, same hash; one changed float, another hash.
	h1, _ := TrainSetSHA256(t.Context(), fd)
	h2, _ := TrainSetSHA256(t.Context(), mem)
	mem.X[5] += 1
	h3, _ := TrainSetSHA256(t.Context(), mem)
	if h1 != h2 || h1 == h3 {
		t.Errorf("train-set hashes: file %s, memory %s, changed %s", h1, h2, h3)
	}

	// A feature file that does not hold whole vectors for every label row.
	if err := os.WriteFile(fp, make([]byte, 4*mem.D*mem.Len()+4), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFileDataset(fp, lp); err == nil || !strings.Contains(err.Error(), fp) {
		t.Errorf("truncated features: %v", err)
	}
}

func TestParseLabels(t *testing.T) {
	cases := []struct {
		in   string
		n    int
		fail bool
	}{
		{"label,group\n0,a\n1,b\n", 2, false},
		{"label,group\n1,\"x,y\"\n", 1, false},
		{"group,label\n0,a\n", 0, true},
		{"label,group\n2,a\n", 0, true},
		{"label,group\n0,\n", 0, true},
		{"label,group\n0,a,extra\n", 0, true},
		{"label,group\n", 0, true},
		{"", 0, true},
	}
	for _, tc := range cases {
		l, g, err := parseLabels("labels.csv", strings.NewReader(tc.in))
		if (err != nil) != tc.fail || len(l) != tc.n || len(g) != tc.n {
			t.Errorf("%q: %d labels, err %v", tc.in, len(l), err)
		}
		if err != nil && !strings.Contains(err.Error(), "labels.csv") {
			t.Errorf("%q: error %v does not name the file", tc.in, err)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add([]byte("label,group\n0,a\n1,b\n"))
	f.Add([]byte("label,group\n1,\"x\ny\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		labels, groups, err := parseLabels("fuzz.csv", bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(labels) == 0 || len(labels) != len(groups) {
			t.Fatalf("%d labels, %d groups", len(labels), len(groups))
		}
		for i, l := range labels {
			if (l != Real && l != Fake) || groups[i] == "" {
				t.Fatalf("row %d: label %d group %q", i, l, groups[i])
			}
		}
	})
}

func TestClassOf(t *testing.T) {
	if ClassOf(dataset.Fake) != Fake || ClassOf(dataset.Real) != Real {
		t.Errorf("ClassOf(fake) = %d, ClassOf(real) = %d", ClassOf(dataset.Fake), ClassOf(dataset.Real))
	}
}
