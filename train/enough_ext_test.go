package train_test

import (
	"fmt"
	"testing"

	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/gate"
)

// TestShortfallMeansTrainable: data Shortfall calls enough does split as
// training splits it (gate.Holdout, then k-fold on the rest) at the
// defaults, and it calls short the data that does not.
func TestShortfallMeansTrainable(t *testing.T) {
	for groups := 2; groups <= 14; groups++ {
		var labels []int
		var names []string
		for i := range groups * 3 {
			l := train.Real
			if i%groups >= (groups+1)/2 {
				l = train.Fake
			}
			labels, names = append(labels, l), append(names, fmt.Sprintf("g%d", i%groups))
		}
		enough := train.Shortfall(labels, names, 5, 0.2) == ""
		trainIdx, _, err := gate.Holdout(labels, names, 0.2, 1)
		if err == nil {
			l, g := make([]int, len(trainIdx)), make([]string, len(trainIdx))
			for j, i := range trainIdx {
				l[j], g[j] = labels[i], names[i]
			}
			_, err = train.StratifiedGroupKFold(l, g, 5, 1)
		}
		if enough && err != nil {
			t.Errorf("%d groups: Shortfall says enough, but training fails: %v", groups, err)
		}
		if !enough && err == nil && groups > 2 {
			t.Logf("%d groups: Shortfall asks for more than this split needs", groups)
		}
	}
}
