package train

import (
	"fmt"
	"strings"
	"testing"
)

// data makes real and fake samples, each class's in g groups.
func data(real, fake, realGroups, fakeGroups int) ([]int, []string) {
	var l []int
	var g []string
	for i := range real {
		l, g = append(l, Real), append(g, fmt.Sprintf("r%d", i%realGroups))
	}
	for i := range fake {
		l, g = append(l, Fake), append(g, fmt.Sprintf("f%d", i%fakeGroups))
	}
	return l, g
}

// TestShortfall: what the page says before Start, and the workflow before
// it trains, for the data folders a user builds up.
func TestShortfall(t *testing.T) {
	for _, tc := range []struct {
		name               string
		real, fake, rg, fg int
		folds              int
		holdout            float64
		want               string // "" enough; else a part of the message
	}{
		{"no fakes", 9, 0, 3, 1, 5, 0.2, "needs both real and fake"},
		{"one session: one group of fakes", 6, 3, 3, 1, 5, 0.2, "at least 2 groups of each"},
		{"too few groups to install", 6, 3, 3, 3, 5, 0.2, "at least 7 groups (5 folds of cross-validation after 20% held out for the gate): 1 more"},
		{"enough to install", 8, 8, 4, 3, 5, 0.2, ""},
		{"enough without a hold-out", 5, 5, 3, 2, 5, 0, ""},
		{"without a hold-out, folds", 5, 5, 2, 2, 5, 0, "at least 5 groups (5 folds of cross-validation): 1 more"},
		{"the notebook's 2 folds: the hold-out still wants 5 groups", 6, 6, 3, 2, 2, 0.2, ""},
		{"the notebook's 2 folds, 4 groups", 4, 4, 2, 2, 2, 0.2, "at least 5 groups"},
	} {
		l, g := data(tc.real, tc.fake, tc.rg, tc.fg)
		got := Shortfall(l, g, tc.folds, tc.holdout)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
