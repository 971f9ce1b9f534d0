package atomicfile_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "head.onnx")
	for _, body := range []string{"first", "second, longer"} {
		if err := atomicfile.Write(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != body {
			t.Fatalf("read back %q, %v; want %q", got, err, body)
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	err := atomicfile.Write(filepath.Join(dir, "missing", "x"), nil, 0o644)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("write into a missing folder: %v", err)
	}
}

func TestWriteWith(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "crop.jpg")
	for _, opts := range []atomicfile.Options{{Perm: 0o640, NoSync: true}, {Perm: 0o600, DirOwner: true}} {
		if err := atomicfile.WriteWith(p, []byte("x"), opts); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != opts.Perm {
			t.Errorf("%+v: mode %v (%v)", opts, fi.Mode().Perm(), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left %d files, want 1", len(ents))
	}
}

func TestIsTemp(t *testing.T) {
	for name, want := range map[string]bool{".x.jpg.tmp123": true, "x.jpg": false, ".hidden": false, "a.tmp1": false} {
		if got := atomicfile.IsTemp(name); got != want {
			t.Errorf("IsTemp(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestMkdirAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Errorf("%s: %v %v", dir, fi, err)
	}
	if err := atomicfile.MkdirAll(dir, 0o750); err != nil {
		t.Errorf("again: %v", err)
	}
}

// TestRemoveTemps removes an interrupted write's temporary files of one
// target, whatever its name holds, and nothing else.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "head[1]*.onnx")
	keep := []string{"head[1]*.onnx", ".other.onnx.tmp1", ".head1.onnx.tmp2"}
	for _, n := range append([]string{".head[1]*.onnx.tmp123", ".head[1]*.onnx.tmp"}, keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := atomicfile.RemoveTemps(target); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Errorf("left %v, want %v", left, keep)
	}
}
