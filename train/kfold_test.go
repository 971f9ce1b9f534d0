package train

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestStratifiedGroupKFold(t *testing.T) {
	cases := []struct {
		name              string
		n, k, groupSize   int
		fake              float64
		mixedGroups       bool // each group holds both classes (a real video and its fakes)
		maxShareDeviation float64
	}{
		{"balanced, 5 folds", 1000, 5, 4, 0.5, false, 0.03},
		{"imbalanced 1:9, 5 folds", 1000, 5, 2, 0.1, false, 0.04},
		{"groups of both classes, 3 folds", 600, 3, 6, 0.5, true, 0.03},
		{"uneven group sizes, 10 folds", 997, 10, 7, 0.3, false, 0.06},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ds := synth(tc.n, 1, tc.fake, tc.groupSize, 0, 5)
			if tc.mixedGroups {
				for i := range ds.Labels {
					ds.Labels[i] = i % 2
				}
			}
			splits, err := StratifiedGroupKFold(ds.Labels, ds.Groups, tc.k, 9)
			if err != nil {
				t.Fatal(err)
			}
			if len(splits) != tc.k {
				t.Fatalf("%d folds, want %d", len(splits), tc.k)
			}
			valFold := map[int]int{}
			groupFold := map[string]int{}
			overall := share(ds.Labels, nil)
			for f, sp := range splits {
				train, val := sp[0], sp[1]
				if len(train)+len(val) != tc.n {
					t.Errorf("fold %d: %d train + %d val samples, want %d", f, len(train), len(val), tc.n)
				}
				trainGroups := map[string]bool{}
				for _, i := range train {
					trainGroups[ds.Groups[i]] = true
				}
				for _, i := range val {
					if prev, ok := valFold[i]; ok {
						t.Errorf("sample %d validates in folds %d and %d", i, prev, f)
					}
					valFold[i] = f
					g := ds.Groups[i]
					if trainGroups[g] {
						t.Errorf("fold %d: group %s both trains and validates", f, g)
					}
					if prev, ok := groupFold[g]; ok && prev != f {
						t.Errorf("group %s validates in folds %d and %d", g, prev, f)
					}
					groupFold[g] = f
				}
				if s := share(ds.Labels, val); math.Abs(s-overall) > tc.maxShareDeviation {
					t.Errorf("fold %d: fake share %.3f, overall %.3f", f, s, overall)
				}
				if want := tc.n / tc.k; math.Abs(float64(len(val)-want)) > 0.2*float64(want) {
					t.Errorf("fold %d: %d validation samples, want about %d", f, len(val), want)
				}
			}
			if len(valFold) != tc.n {
				t.Errorf("%d of %d samples validate somewhere; every one must", len(valFold), tc.n)
			}
			other, err := StratifiedGroupKFold(ds.Labels, ds.Groups, tc.k, 10)
			if err != nil {
				t.Fatal(err)
			}
			if slices.EqualFunc(splits, other, func(a, b [2][]int) bool { return slices.Equal(a[1], b[1]) }) {
				t.Error("seeds 9 and 10 gave identical folds")
			}
			again, _ := StratifiedGroupKFold(ds.Labels, ds.Groups, tc.k, 9)
			if !slices.EqualFunc(splits, again, func(a, b [2][]int) bool { return slices.Equal(a[1], b[1]) }) {
				t.Error("the same seed gave different folds")
			}
		})
	}
}

func share(labels []int, idx []int) float64 {
	var n, fake int
	if idx == nil {
		for _, l := range labels {
			n, fake = n+1, fake+l
		}
	}
	for _, i := range idx {
		n, fake = n+1, fake+labels[i]
	}
	return float64(fake) / float64(n)
}

func TestStratifiedGroupKFoldRejects(t *testing.T) {
	groups := func(n int) []string {
		g := make([]string, n)
		for i := range g {
			g[i] = fmt.Sprint(i % 3)
		}
		return g
	}
	cases := []struct {
		name   string
		labels []int
		groups []string
		k      int
	}{
		{"fewer groups than folds", []int{0, 1, 0, 1, 0, 1}, groups(6), 4},
		{"k below 2", []int{0, 1, 0}, groups(3), 1},
		{"length mismatch", []int{0, 1}, groups(3), 2},
		{"bad label", []int{0, 2, 1}, groups(3), 2},
	}
	for _, tc := range cases {
		if _, err := StratifiedGroupKFold(tc.labels, tc.groups, tc.k, 1); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
