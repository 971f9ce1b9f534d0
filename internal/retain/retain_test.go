package retain

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPrune: each bound alone keeps the newest files within it; temporary
// files of interrupted writes and other extensions are handled as said.
func TestPrune(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		b    Bounds
		want []string
	}{
		{"count", Bounds{MaxCount: 2}, []string{"a/4.jpg", "b/3.jpg"}},
		{"bytes", Bounds{MaxBytes: 250}, []string{"a/4.jpg", "b/3.jpg"}}, // 100 bytes each: the third passes 250
		{"age", Bounds{MaxAge: 200 * time.Minute}, []string{"a/4.jpg", "b/3.jpg", "a/2.jpg"}},
		{"none", Bounds{}, []string{"a/4.jpg", "b/3.jpg", "a/2.jpg", "b/1.jpg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for i, f := range []string{"b/1.jpg", "a/2.jpg", "b/3.jpg", "a/4.jpg", "a/.4.jpg.tmp1", "a/notes.txt"} {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, make([]byte, 100), 0o644); err != nil {
					t.Fatal(err)
				}
				at := now.Add(-time.Duration(4-i) * time.Hour) // 1.jpg 4 h old ... 4.jpg 1 h
				if err := os.Chtimes(p, at, at); err != nil {
					t.Fatal(err)
				}
			}
			if err := Prune(dir, ".jpg", now, tc.b); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range []string{"a/4.jpg", "b/3.jpg", "a/2.jpg", "b/1.jpg"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					got = append(got, f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "a/.4.jpg.tmp1")); !os.IsNotExist(err) {
				t.Errorf("an interrupted write's file is left: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "a/notes.txt")); err != nil {
				t.Errorf("a file of another kind went: %v", err)
			}
		})
	}
}
