package shipped

import "testing"

// TestGet: the release read from the embedded card, sums and metrics is
// the one the card describes.
func TestGet(t *testing.T) {
	r, err := Get()
	if err != nil {
		t.Fatal(err)
	}
	if r.Name == "" || r.Released == "" || len(r.Backbones) != 2 || len(r.Head) != idLen || r.Videos == 0 {
		t.Fatalf("%+v", r)
	}
	if !(r.DFDCAUC > 0.5 && r.DFDCAUC < 1 && r.StyleGANAUC > 0.5 && r.StyleGANAUC <= 1) || r.VideosRight > r.Videos {
		t.Errorf("figures %+v", r)
	}
	if !r.Runs(r.Backbones[0]) || r.Runs("000000000000") {
		t.Error("Runs")
	}
}
