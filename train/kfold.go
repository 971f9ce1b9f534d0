package train

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// StratifiedGroupKFold splits samples into k (train, validation) index pairs.
// Every group lands in exactly one validation fold (so one identity never
// trains and validates the same fold) and the class proportions of the folds
// are kept as close as the groups allow. It is sklearn's StratifiedGroupKFold
// with shuffle: groups in seeded random order, then largest-imbalance first,
// each to the fold that keeps the per-class spread across folds smallest
// (ties: the fold with fewest samples).
func StratifiedGroupKFold(labels []int, groups []string, k int, seed int64) ([][2][]int, error) {
	if len(labels) != len(groups) {
		return nil, fmt.Errorf("k-fold: %d labels but %d groups", len(labels), len(groups))
	}
	if k < 2 {
		return nil, fmt.Errorf("k-fold: k must be >= 2, got %d", k)
	}
	type group struct {
		name    string
		counts  [NumClasses]int
		members []int
	}
	byName := map[string]*group{}
	var gs []*group
	var total [NumClasses]int
	for i, l := range labels {
		if l != Real && l != Fake {
			return nil, fmt.Errorf("k-fold: sample %d has label %d (want 0 or 1)", i, l)
		}
		g := byName[groups[i]]
		if g == nil {
			g = &group{name: groups[i]}
			byName[groups[i]] = g
			gs = append(gs, g)
		}
		g.counts[l]++
		g.members = append(g.members, i)
		total[l]++
	}
	if len(gs) < k {
		return nil, fmt.Errorf("k-fold: %d groups cannot fill %d folds", len(gs), k)
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6b666f6c64))
	rng.Shuffle(len(gs), func(i, j int) { gs[i], gs[j] = gs[j], gs[i] })
	spread := func(c [NumClasses]int) float64 {
		n := float64(c[0] + c[1])
		return math.Abs(float64(c[0])-float64(c[1])) / n // std of a 2-class distribution, up to a constant
	}
	slices.SortStableFunc(gs, func(a, b *group) int { return cmp.Compare(spread(b.counts), spread(a.counts)) })

	foldCounts := make([][NumClasses]int, k)
	assign := make(map[*group]int, len(gs))
	for _, g := range gs {
		best, bestCost, bestSize := -1, math.Inf(1), 0
		for f := range k {
			foldCounts[f][0] += g.counts[0]
			foldCounts[f][1] += g.counts[1]
			cost := 0.0
			for c := range NumClasses {
				if total[c] == 0 {
					continue
				}
				var mean, sq float64
				for _, fc := range foldCounts {
					p := float64(fc[c]) / float64(total[c])
					mean += p
					sq += p * p
				}
				mean /= float64(k)
				cost += math.Sqrt(math.Max(sq/float64(k)-mean*mean, 0))
			}
			cost /= NumClasses
			size := foldCounts[f][0] + foldCounts[f][1]
			foldCounts[f][0] -= g.counts[0]
			foldCounts[f][1] -= g.counts[1]
			if cost < bestCost-1e-12 || (math.Abs(cost-bestCost) <= 1e-12 && size < bestSize) {
				best, bestCost, bestSize = f, cost, size
			}
		}
		assign[g] = best
		foldCounts[best][0] += g.counts[0]
		foldCounts[best][1] += g.counts[1]
	}
	out := make([][2][]int, k)
	for i, name := range groups {
		f := assign[byName[name]]
		for o := range k {
			side := 0
			if o == f {
				side = 1
			}
			out[o][side] = append(out[o][side], i)
		}
	}
	for f, split := range out {
		if len(split[1]) == 0 {
			return nil, fmt.Errorf("k-fold: fold %d of %d got no validation samples", f+1, k)
		}
	}
	return out, nil
}
