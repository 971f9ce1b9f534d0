package train

import (
	"fmt"
	"math"
)

// Shortfall says what labelled data still lacks for a training, "" when it
// has enough: both classes; at least 2 groups of each (a group is never
// split between training and validation, so one group of a class cannot be
// both learned from and checked); and, with a hold-out (holdout > 0, the
// gate's share, held out as whole groups), enough groups that after it
// folds of cross-validation are left. labels and groups are per sample
// (Labels, Groups).
func Shortfall(labels []int, groups []string, folds int, holdout float64) string {
	var n [NumClasses]int
	byClass := [NumClasses]map[string]bool{{}, {}}
	all := map[string]bool{}
	for i, l := range labels {
		if l != Real && l != Fake {
			continue
		}
		n[l]++
		byClass[l][groups[i]] = true
		all[groups[i]] = true
	}
	need := folds
	if holdout > 0 { // gate.Holdout: one of round(1/holdout) grouped folds is held out
		k := max(2, int(math.Round(1/holdout)))
		for g := folds; ; g++ {
			if g-int(math.Ceil(float64(g)/float64(k))) >= folds {
				need = max(g, k)
				break
			}
		}
	}
	have := fmt.Sprintf("%d real and %d fake images in %d groups (%d real, %d fake)", n[Real], n[Fake], len(all), len(byClass[Real]), len(byClass[Fake]))
	switch {
	case n[Real] == 0 || n[Fake] == 0:
		return have + ": training needs both real and fake ones"
	case len(byClass[Real]) < 2 || len(byClass[Fake]) < 2:
		return have + ": training needs at least 2 groups of each, since a group is never split between learning and checking"
	case len(all) < need:
		why := fmt.Sprintf("%d folds of cross-validation", folds)
		if holdout > 0 {
			why += fmt.Sprintf(" after %g%% held out for the gate", 100*holdout)
		}
		return fmt.Sprintf("%s: training needs at least %d groups (%s): %d more", have, need, why, need-len(all))
	}
	return ""
}
