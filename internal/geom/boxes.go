// Package geom is geometry on face boxes shared by the detectors' overlap
// suppression and the tracker's matching.
package geom

import "image"

// IoU is the intersection over union of two boxes; 0 when they do not overlap.
func IoU(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	i := float64(in.Dx() * in.Dy())
	return i / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - i)
}
