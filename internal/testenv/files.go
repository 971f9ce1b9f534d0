package testenv

import (
	"image"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/deepfaked/deepfaked/infer/spec"
)

// FileSHA256 is the file's sha256 in hex.
func FileSHA256(t testing.TB, path string) string {
	t.Helper()
	sum, err := spec.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// NoiseCrops is a labelled folder of n seeded noise images of size×size in
// each of real/ and fake/: pixels a model reads, with nothing to learn.
func NoiseCrops(t testing.TB, n, size int, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 2))
	for _, class := range []string{"real", "fake"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			img := image.NewRGBA(image.Rect(0, 0, size, size))
			for p := range img.Pix {
				img.Pix[p] = uint8(rng.IntN(256))
			}
			f, err := os.Create(filepath.Join(dir, class, strconv.Itoa(i)+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			err = jpeg.Encode(f, img, nil)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
