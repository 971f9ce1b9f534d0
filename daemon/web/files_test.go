package web

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCleanRel(t *testing.T) {
	for _, tc := range []struct {
		rel string
		ok  bool
	}{
		{"door/000000000010-1764331201533270114-00.jpg", true},
		{"a.jpg", true},
		{"a/b/c.jpg", true},
		{"", false},
		{".jpg", false},
		{"../a.jpg", false},
		{"a/../b.jpg", false},
		{"a/./b.jpg", false},
		{"/a.jpg", false},
		{"a//b.jpg", false},
		{"a/", false},
		{"a/.b.jpg", false},
		{"a\\b.jpg", false},
		{"a/b.jpg\x00", false},
		{"a/b.png", false},
		{"a/b.JPG", false},
		{"a:b.jpg", false},
		{"é.jpg", false},
		{strings.Repeat("a", maxRel) + ".jpg", false},
	} {
		if _, ok := cleanRel(tc.rel, ".jpg"); ok != tc.ok {
			t.Errorf("%q: %v, want %v", tc.rel, ok, tc.ok)
		}
	}
}

// FuzzCleanRel: whatever a request names, a name cleanRel lets through
// stays inside the folder it is joined to, holds no dot-dot, and ends in an
// allowed extension.
func FuzzCleanRel(f *testing.F) {
	for _, s := range []string{"door/1.jpg", "../x.jpg", "a/../../b.jpg", "/etc/passwd", "a/%2e%2e/b.jpg", "..", "a\\..\\b.jpg", "x.png", ".../a.jpg", "a/.../b.jpg"} {
		f.Add(s)
	}
	root := filepath.FromSlash("/var/lib/deepfaked/collect")
	f.Fuzz(func(t *testing.T, rel string) {
		name, ok := cleanRel(rel, ".jpg", ".png")
		if !ok {
			return
		}
		full := filepath.Join(root, name)
		back, err := filepath.Rel(root, full)
		if err != nil || !filepath.IsLocal(back) || back != name {
			t.Fatalf("%q -> %q escapes %s (%q, %v)", rel, full, root, back, err)
		}
		if !strings.HasPrefix(full, root+string(filepath.Separator)) {
			t.Fatalf("%q -> %q not under %s", rel, full, root)
		}
		for _, part := range strings.Split(name, string(filepath.Separator)) {
			if part == "" || part == "." || part == ".." || strings.HasPrefix(part, ".") {
				t.Fatalf("%q -> part %q", rel, part)
			}
		}
		if !strings.HasSuffix(name, ".jpg") && !strings.HasSuffix(name, ".png") {
			t.Fatalf("%q -> %q: extension", rel, name)
		}
	})
}
