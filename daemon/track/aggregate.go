package track

import "math"

// Aggregate is one track's running score under a rule. It keeps counts and
// sums only (O(1) memory), so a track that lasts hours costs no more than
// one that lasts a second.
type Aggregate struct {
	rule            Rule
	alpha           float64
	high, low       float64
	count           int
	n               int
	sum             float64
	nHigh, nLow     int
	sumHigh, sumLow float64
	ema             float64
}

// NewAggregate returns an empty aggregate for o's Rule, EMAAlpha and
// Confident* fields. It does not validate o: New does, and a caller building
// an Aggregate alone must pass options New accepts. Under a Rule New would
// refuse, Score is NaN, which no threshold comparison takes as real or fake.
func NewAggregate(o Options) Aggregate {
	return Aggregate{rule: o.Rule, alpha: o.EMAAlpha, high: o.ConfidentHigh, low: o.ConfidentLow, count: o.ConfidentCount}
}

// Add takes one frame's p_fake.
func (a *Aggregate) Add(p float64) {
	if a.n == 0 {
		a.ema = p
	} else {
		a.ema = a.alpha*p + (1-a.alpha)*a.ema
	}
	a.n++
	a.sum += p
	if p > a.high {
		a.nHigh++
		a.sumHigh += p
	}
	if p < a.low {
		a.nLow++
		a.sumLow += p
	}
}

// Frames is how many scores were added.
func (a *Aggregate) Frames() int { return a.n }

// Score is the aggregate under the rule; 0 before the first frame.
//
// Rule Confident is the DFDC winner's confident_strategy (Selim
// Seferbekov): when more than n/2.5 frames are above ConfidentHigh and at
// least ConfidentCount of them, the mean of those; else when more than 90 %
// are below ConfidentLow, the mean of those; else the mean of all. The
// original asked for more than 11 fakes (and floor(n/2.5)); here "at least
// ConfidentCount" (default 11) lets the config say the number it means.
func (a *Aggregate) Score() float64 {
	if a.n == 0 {
		return 0
	}
	switch a.rule {
	case Mean:
		return a.sum / float64(a.n)
	case EMA:
		return a.ema
	case Confident:
		if float64(a.nHigh) > float64(a.n)/2.5 && a.nHigh >= a.count {
			return a.sumHigh / float64(a.nHigh)
		}
		if float64(a.nLow) > 0.9*float64(a.n) {
			return a.sumLow / float64(a.nLow)
		}
		return a.sum / float64(a.n)
	}
	return math.NaN()
}
