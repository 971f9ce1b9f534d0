package features

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func vec(d int, v float32) []float32 {
	x := make([]float32, d)
	for i := range x {
		x[i] = v + float32(i)/1000
	}
	return x
}

func TestCacheKeys(t *testing.T) {
	root := t.TempDir()
	const d = 8
	base := Key{Backbone: "3f2a9c01d4e7", InputSize: 128, Crop: "none"}
	img := Digest(sha256.Sum256([]byte("image bytes")))
	c, err := OpenCache(root, base, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(img, vec(d, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  Key
		img  Digest
		hit  bool
	}{
		{"same key and bytes", base, img, true},
		{"other image bytes", base, Digest(sha256.Sum256([]byte("other"))), false},
		{"other backbone", Key{Backbone: "000000000000", InputSize: 128, Crop: "none"}, img, false},
		{"other input size", Key{Backbone: base.Backbone, InputSize: 224, Crop: "none"}, img, false},
		{"other crop", Key{Backbone: base.Backbone, InputSize: 128, Crop: "face:haar:margin=0.2"}, img, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := OpenCache(root, tc.key, d)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			off, ok := c.Offset(tc.img)
			if ok != tc.hit {
				t.Fatalf("hit = %v, want %v", ok, tc.hit)
			}
			if ok {
				got := make([]float32, d)
				if err := c.Read(off, got); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, vec(d, 1)) {
					t.Errorf("read %v, want %v", got, vec(d, 1))
				}
			}
		})
	}
	if _, err := OpenCache(root, base, d+1); err == nil || !strings.Contains(err.Error(), "meta.json") {
		t.Errorf("reopening with another dimension: %v", err)
	}
	if _, err := OpenCache(root, Key{Backbone: "x", InputSize: 128}, d); err == nil {
		t.Error("key without crop mode accepted")
	}
}

func TestCacheTornTail(t *testing.T) {
	root := t.TempDir()
	const d = 4
	key := Key{Backbone: "b", InputSize: 32, Crop: "none"}
	c, err := OpenCache(root, key, d)
	if err != nil {
		t.Fatal(err)
	}
	a, b := Digest(sha256.Sum256([]byte("a"))), Digest(sha256.Sum256([]byte("b")))
	offA, _ := c.Put(a, vec(d, 1))
	offB, _ := c.Put(b, vec(d, 2))
	if again, _ := c.Put(a, vec(d, 9)); again != offA || c.Len() != 2 {
		t.Errorf("second Put of the same digest: offset %d (want %d), %d vectors", again, offA, c.Len())
	}
	c.Close()
	// A crash after writing b's vector but only half its digest.
	idx := filepath.Join(c.Dir(), "index.bin")
	if err := os.Truncate(idx, sha256.Size+10); err != nil {
		t.Fatal(err)
	}
	c, err = OpenCache(root, key, d)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.Offset(b); ok || c.Len() != 1 {
		t.Fatalf("torn entry kept: %d vectors", c.Len())
	}
	if off, ok := c.Offset(a); !ok || off != offA {
		t.Fatalf("intact entry lost")
	}
	if off, _ := c.Put(b, vec(d, 3)); off != offB {
		t.Errorf("re-put after torn tail at %d, want %d", off, offB)
	}
	got := make([]float32, d)
	if err := c.Read(offB, got); err != nil || !slices.Equal(got, vec(d, 3)) {
		t.Errorf("read %v (%v), want %v", got, err, vec(d, 3))
	}
}

// TestCacheEmptyMeta: a meta.json a crash left empty (and a temporary file
// beside it) does not stop the cache from opening.
func TestCacheEmptyMeta(t *testing.T) {
	root := t.TempDir()
	key := Key{Backbone: "b", InputSize: 32, Crop: "none"}
	dir := filepath.Join(root, key.dir())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{"meta.json": "", ".meta.json.tmp42": "{\"ba"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := OpenCache(root, key, 4)
	if err != nil {
		t.Fatalf("open with an empty meta.json: %v", err)
	}
	c.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "meta.json")); len(b) == 0 {
		t.Error("meta.json still empty")
	}
	if _, err := os.Stat(filepath.Join(dir, ".meta.json.tmp42")); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
	if _, err := OpenCache(root, key, 8); err == nil || !strings.Contains(err.Error(), "meta.json says") {
		t.Errorf("open with another dimension: %v; want the mismatch refused", err)
	}
}
