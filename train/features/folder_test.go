package features

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/train"
)

// tree writes files (path → content) under a new folder.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFolder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    []Sample
		skipped []string
		labels  bool
		wantErr string
	}{
		{name: "folders, recursive, hidden ignored, own groups",
			files: map[string]string{"real/b.jpg": "x", "real/a.jpg": "x", "real/.DS_Store": "x", "fake/cam1/c.png": "x", "notes.txt": "x"},
			want: []Sample{{"real/a.jpg", train.Real, "real/a.jpg"}, {"real/b.jpg", train.Real, "real/b.jpg"},
				{"fake/cam1/c.png", train.Fake, "fake/cam1/c.png"}}},
		{name: "labels.csv is authoritative",
			files: map[string]string{"labels.csv": "path,label,identity\nx/1.jpg,fake,v1\nx/2.jpg,real,v1\ny/3.jpg,1,v2\nx/4.jpg,0,v3\n",
				"x/1.jpg": "x", "x/2.jpg": "x", "y/3.jpg": "x", "x/4.jpg": "x", "real/ignored.jpg": "x"},
			labels: true,
			want:   []Sample{{"x/1.jpg", train.Fake, "v1"}, {"x/2.jpg", train.Real, "v1"}, {"y/3.jpg", train.Fake, "v2"}, {"x/4.jpg", train.Real, "v3"}}},
		{name: "labels.csv missing file is skipped and listed",
			files:  map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v1\ngone.jpg,real,v2\nb.jpg,real,v2\n", "a.jpg": "x", "b.jpg": "x"},
			labels: true, want: []Sample{{"a.jpg", train.Fake, "v1"}, {"b.jpg", train.Real, "v2"}}, skipped: []string{"gone.jpg"}},
		{name: "bad header", files: map[string]string{"labels.csv": "file,label,group\na.jpg,fake,v\n", "a.jpg": "x"},
			wantErr: "want path,label,identity"},
		{name: "bad label", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\nb.jpg,maybe,v\n", "a.jpg": "x", "b.jpg": "x"},
			wantErr: `line 3: label "maybe"`},
		{name: "empty identity", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,\n", "a.jpg": "x"},
			wantErr: "line 2: empty identity"},
		{name: "path outside", files: map[string]string{"labels.csv": "path,label,identity\n../a.jpg,fake,v\n"},
			wantErr: "line 2: path"},
		{name: "absolute path", files: map[string]string{"labels.csv": "path,label,identity\n/etc/passwd,fake,v\n"},
			wantErr: "inside the data folder"},
		{name: "duplicate", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\na.jpg,real,v\n", "a.jpg": "x"},
			wantErr: "already listed on line 2"},
		{name: "wrong field count", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake\n", "a.jpg": "x"},
			wantErr: "wrong number of fields"},
		{name: "no images", files: map[string]string{"readme": "x"}, wantErr: "has no images"},
		{name: "no fake", files: map[string]string{"real/a.jpg": "x"}, wantErr: "no fake ones"},
		{name: "no real", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\n", "a.jpg": "x"}, wantErr: "no real ones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, tc.files)
			f, err := LoadFolder(dir)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Samples, tc.want) {
				t.Errorf("samples = %v\nwant %v", f.Samples, tc.want)
			}
			var skipped []string
			for _, s := range f.Skipped {
				skipped = append(skipped, s.Path)
			}
			if !reflect.DeepEqual(skipped, tc.skipped) || f.HasLabels != tc.labels {
				t.Errorf("skipped %v labels %v, want %v %v", skipped, f.HasLabels, tc.skipped, tc.labels)
			}
		})
	}
	if _, err := LoadFolder(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("missing folder accepted")
	}
}

func FuzzLoadFolderLabels(f *testing.F) {
	f.Add("path,label,identity\na.jpg,fake,v\nb.jpg,real,w\n")
	f.Add("path,label,identity\n\"a,b.jpg\",1,v\n")
	f.Add("path,label\n")
	f.Fuzz(func(t *testing.T, csv string) {
		dir := tree(t, map[string]string{"labels.csv": csv, "a.jpg": "x", "b.jpg": "x"})
		fl, err := LoadFolder(dir)
		if err != nil {
			return
		}
		real, fake := fl.Counts()
		if real == 0 || fake == 0 {
			t.Fatalf("accepted a folder with %d real and %d fake", real, fake)
		}
		for _, s := range fl.Samples {
			if s.Group == "" || strings.HasPrefix(s.Path, "..") || filepath.IsAbs(s.Path) {
				t.Fatalf("accepted sample %+v", s)
			}
		}
	})
}
