package spec

import "math"

// Threshold is a decision threshold that may be unset. A head may legally
// store 0 (everything is fake) and a user may configure it, so 0 cannot mean
// "not set".
type Threshold struct {
	value float64
	set   bool
}

// NoThreshold is the unset threshold.
var NoThreshold = Threshold{}

// ThresholdOf is the threshold v.
func ThresholdOf(v float64) Threshold { return Threshold{value: v, set: true} }

// Get returns the threshold and whether it is set.
func (t Threshold) Get() (float64, bool) { return t.value, t.set }

// DefaultThreshold is the threshold when neither the configuration nor the
// head gives one: the probabilities' natural middle.
const DefaultThreshold = 0.5

// DecisionThreshold is the one rule for the fake-probability cut-off: the
// configured threshold (model.threshold), else the one the head was
// calibrated with, else DefaultThreshold.
func DecisionThreshold(configured, head Threshold) float64 {
	if v, ok := configured.Get(); ok {
		return v
	}
	if v, ok := head.Get(); ok {
		return v
	}
	return DefaultThreshold
}

// PFake is softmax(l)[1] for a head's logits [real, fake]: the probability
// that the face is fake. Written as 1/(1+e^(l0-l1)), overflow only saturates
// to 0 or 1; NaN logits give NaN.
func PFake(l0, l1 float32) float64 {
	return 1 / (1 + math.Exp(float64(l0)-float64(l1)))
}
