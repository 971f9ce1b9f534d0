package geom

import (
	"image"
	"testing"
)

func TestIoU(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b image.Rectangle
		want float64
	}{
		{"same", image.Rect(0, 0, 10, 10), image.Rect(0, 0, 10, 10), 1},
		{"apart", image.Rect(0, 0, 10, 10), image.Rect(20, 0, 30, 10), 0},
		{"touching", image.Rect(0, 0, 10, 10), image.Rect(10, 0, 20, 10), 0},
		{"half over", image.Rect(0, 0, 10, 10), image.Rect(5, 0, 15, 10), 50.0 / 150},
		{"inside", image.Rect(0, 0, 10, 10), image.Rect(0, 0, 5, 5), 0.25},
		{"empty", image.Rect(0, 0, 10, 10), image.Rectangle{}, 0},
	} {
		if got := IoU(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: IoU = %g, want %g", tc.name, got, tc.want)
		}
	}
}
