package annotate

import (
	"testing"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
)

// TestFaces: a fake face's box is red, a real one's green, drawn where the
// box is at the image's scale.
func TestFaces(t *testing.T) {
	capturetest.CheckMats(t)
	img := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(0, 0, 0, 0), 200, 400, gocv.MatTypeCV8UC3)
	defer img.Close()
	Faces(&img, []contract.FaceResult{
		{Box: [4]int{40, 80, 100, 100}, Label: contract.LabelFake, PFake: 0.9, Track: 1},
		{Box: [4]int{400, 80, 200, 200}, Label: contract.LabelReal, PFake: 0.1, Track: 2},
	}, 0.5)
	for _, tc := range []struct {
		name     string
		row, col int
		red      bool
	}{{"fake box's left edge", 60, 20, true}, {"real box's left edge", 60, 200, false}} {
		px := img.GetVecbAt(tc.row, tc.col) // BGR
		if tc.red && (px[2] < 150 || px[1] > 100) || !tc.red && (px[1] < 150 || px[2] > 100) {
			t.Errorf("%s: pixel %v", tc.name, px)
		}
	}
}
