// Package annotate draws a verdict's faces on a frame, as the live view and
// the clips show them: a box per face, red when fake and green when real,
// with its track, label and p_fake.
package annotate

import (
	"fmt"
	"image"
	"image/color"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/contract"
)

// Colours of the boxes (gocv turns them into BGR).
var (
	fake = color.RGBA{R: 230, G: 40, B: 40}
	real = color.RGBA{R: 40, G: 200, B: 70}
	none = color.RGBA{R: 200, G: 200, B: 200}
)

// Faces draws faces on img, whose pixels are the frame's scaled by scale
// (boxes are in the frame's pixels).
func Faces(img *gocv.Mat, faces []contract.FaceResult, scale float64) {
	for _, f := range faces {
		c := none
		switch f.Label {
		case contract.LabelFake:
			c = fake
		case contract.LabelReal:
			c = real
		}
		b := f.Box
		r := image.Rect(int(float64(b[0])*scale), int(float64(b[1])*scale), int(float64(b[0]+b[2])*scale), int(float64(b[1]+b[3])*scale))
		gocv.Rectangle(img, r, c, 2)
		at := image.Pt(r.Min.X, max(r.Min.Y-6, 14))
		gocv.PutText(img, fmt.Sprintf("track %d %s %.2f", f.Track, f.Label, f.PFake), at, gocv.FontHersheySimplex, 0.6, c, 2)
	}
}
