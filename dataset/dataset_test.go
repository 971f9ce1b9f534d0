package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
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

func TestLoad(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    []Sample
		skipped []string
		labels  bool
		wantErr string
	}{
		{name: "folders, recursive, hidden ignored, own identities",
			files: map[string]string{"real/b.jpg": "x", "real/a.jpg": "x", "real/.DS_Store": "x", "real/.hid/x.jpg": "x", "fake/cam1/c.png": "x", "notes.txt": "x"},
			want:  []Sample{{"real/a.jpg", Real, "real/a.jpg"}, {"real/b.jpg", Real, "real/b.jpg"}, {"fake/cam1/c.png", Fake, "fake/cam1/c.png"}}},
		{name: "labels.csv is authoritative",
			files: map[string]string{"labels.csv": "path,label,identity\nx/1.jpg,fake,v1\nx/2.jpg,real,v1\ny/3.jpg,1,v2\n./x/4.jpg, 0,v3\n",
				"x/1.jpg": "x", "x/2.jpg": "x", "y/3.jpg": "x", "x/4.jpg": "x", "real/ignored.jpg": "x"},
			labels: true,
			want:   []Sample{{"x/1.jpg", Fake, "v1"}, {"x/2.jpg", Real, "v1"}, {"y/3.jpg", Fake, "v2"}, {"x/4.jpg", Real, "v3"}}},
		{name: "labels.csv missing file is skipped and listed",
			files:  map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v1\ngone.jpg,real,v2\nb.jpg,real,v2\n", "a.jpg": "x", "b.jpg": "x"},
			labels: true, want: []Sample{{"a.jpg", Fake, "v1"}, {"b.jpg", Real, "v2"}}, skipped: []string{"gone.jpg"}},
		{name: "bad header", files: map[string]string{"labels.csv": "file,label,group\na.jpg,fake,v\n", "a.jpg": "x"},
			wantErr: "want path,label,identity"},
		{name: "empty labels.csv", files: map[string]string{"labels.csv": "", "a.jpg": "x"}, wantErr: "header"},
		{name: "bad label", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\nb.jpg,maybe,v\n", "a.jpg": "x", "b.jpg": "x"},
			wantErr: `line 3: label "maybe"`},
		{name: "empty identity", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,\n", "a.jpg": "x"},
			wantErr: "line 2: empty identity"},
		{name: "path outside", files: map[string]string{"labels.csv": "path,label,identity\n../a.jpg,fake,v\n"},
			wantErr: "line 2: path"},
		{name: "absolute path", files: map[string]string{"labels.csv": "path,label,identity\n/etc/passwd,fake,v\n"},
			wantErr: "inside the data folder"},
		{name: "duplicate", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\n./a.jpg,real,v\n", "a.jpg": "x"},
			wantErr: "already listed on line 2"},
		{name: "wrong field count", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake\n", "a.jpg": "x"},
			wantErr: "wrong number of fields"},
		{name: "listed files all missing", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\n"},
			wantErr: "lists no existing image (1 missing)"},
		{name: "no images", files: map[string]string{"readme": "x"}, wantErr: "has no images"},
		{name: "no fake", files: map[string]string{"real/a.jpg": "x"}, wantErr: "no fake ones"},
		{name: "no real", files: map[string]string{"labels.csv": "path,label,identity\na.jpg,fake,v\n", "a.jpg": "x"}, wantErr: "no real ones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := tree(t, tc.files)
			f, err := Load(dir)
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
	if _, err := Load(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Error("missing folder accepted")
	}
}

func TestLoadLinks(t *testing.T) {
	dir := tree(t, map[string]string{"real/a.jpg": "x", "elsewhere/b.jpg": "x"})
	if err := os.MkdirAll(filepath.Join(dir, "fake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "elsewhere", "b.jpg"), filepath.Join(dir, "fake", "b.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "gone.jpg"), filepath.Join(dir, "fake", "broken.jpg")); err != nil {
		t.Fatal(err)
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Sample{{"real/a.jpg", Real, "real/a.jpg"}, {"fake/b.jpg", Fake, "fake/b.jpg"}}; !reflect.DeepEqual(f.Samples, want) {
		t.Errorf("samples %v, want %v (a linked image counts, a broken link does not)", f.Samples, want)
	}
}

func TestAdd(t *testing.T) {
	// An image put in real/ by hand before labels.csv existed must stay a sample.
	dir := tree(t, map[string]string{"real/hand.jpg": "x", "fake/c1.jpg": "x", "fake/c2.jpg": "x"})
	l, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Add([]Sample{{"fake/c1.jpg", Fake, "cam1@a"}}); err != nil {
		t.Fatal(err)
	}
	// A second label of the same path replaces its row.
	if err := l.Add([]Sample{{"fake/c2.jpg", Fake, "cam1@a"}, {"./fake/c1.jpg", Fake, "cam1@b"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Sample{{"../x.jpg", Fake, "i"}, {"a.jpg", "maybe", "i"}, {"a.jpg", Fake, ""}} {
		if err := l.Add([]Sample{bad}); err == nil {
			t.Errorf("Add(%+v) accepted", bad)
		}
	}
	l.Unlock()
	b, err := os.ReadFile(filepath.Join(dir, LabelsFile))
	if err != nil {
		t.Fatal(err)
	}
	want := "path,label,identity\nfake/c1.jpg,fake,cam1@b\nreal/hand.jpg,real,real/hand.jpg\nfake/c2.jpg,fake,cam1@a\n"
	if string(b) != want {
		t.Errorf("labels.csv\n%s\nwant\n%s", b, want)
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if real, fake := f.Counts(); real != 1 || fake != 2 || !f.HasLabels {
		t.Errorf("loaded %d real, %d fake (labels %v)", real, fake, f.HasLabels)
	}

	// A labels.csv Load would refuse is not rewritten.
	bad := []byte("path,label,identity\na.jpg,maybe,v\n")
	if err := os.WriteFile(filepath.Join(dir, LabelsFile), bad, 0o640); err != nil {
		t.Fatal(err)
	}
	l, err = Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if err := l.Add([]Sample{{"fake/c1.jpg", Fake, "i"}}); err == nil || !strings.Contains(err.Error(), "maybe") {
		t.Errorf("Add over a bad labels.csv: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, LabelsFile)); string(b) != string(bad) {
		t.Errorf("bad labels.csv rewritten: %q", b)
	}
}

// TestAddConcurrent: writers holding the lock one after the other lose no row.
func TestAddConcurrent(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			l, err := Lock(dir)
			if err != nil {
				errs <- err
				return
			}
			defer l.Unlock()
			errs <- l.Add([]Sample{{Path: filepath.Join("fake", string(rune('a'+i))+".jpg"), Label: Fake, Identity: "i"}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	if rows := strings.Count(string(b), "\n"); rows != n+1 {
		t.Errorf("labels.csv has %d lines, want %d:\n%s", rows, n+1, b)
	}
}

func FuzzLoadLabels(f *testing.F) {
	f.Add("path,label,identity\na.jpg,fake,v\nb.jpg,real,w\n")
	f.Add("path,label,identity\n\"a,b.jpg\",1,v\n")
	f.Add("path,label\n")
	f.Fuzz(func(t *testing.T, csv string) {
		dir := tree(t, map[string]string{"labels.csv": csv, "a.jpg": "x", "b.jpg": "x"})
		fl, err := Load(dir)
		if err != nil {
			return
		}
		real, fake := fl.Counts()
		if real == 0 || fake == 0 {
			t.Fatalf("accepted a folder with %d real and %d fake", real, fake)
		}
		for _, s := range fl.Samples {
			if s.Identity == "" || strings.HasPrefix(s.Path, "..") || filepath.IsAbs(s.Path) || (s.Label != Real && s.Label != Fake) {
				t.Fatalf("accepted sample %+v", s)
			}
		}
	})
}

func TestLabelsFrom(t *testing.T) {
	for _, tc := range []struct {
		f    Folder
		want string
	}{{Folder{HasLabels: true}, LabelsFile}, {Folder{}, "real/ and fake/ folders"}} {
		if got := tc.f.LabelsFrom(); got != tc.want {
			t.Errorf("LabelsFrom (labels.csv %v) = %q, want %q", tc.f.HasLabels, got, tc.want)
		}
	}
}

func TestSome(t *testing.T) {
	many := make([]string, 25)
	for i := range many {
		many[i] = fmt.Sprintf("f%d.png", i)
	}
	for _, tc := range []struct {
		items []string
		want  string
	}{
		{nil, ""},
		{[]string{"a.png", "b.png"}, "a.png, b.png"},
		{many[:10], strings.Join(many[:10], ", ")},
		{many, strings.Join(many[:10], ", ") + ", … and 15 more"},
	} {
		if got := Some(tc.items); got != tc.want {
			t.Errorf("Some(%d items) = %q, want %q", len(tc.items), got, tc.want)
		}
	}
}
