package spec

import (
	"math"
	"testing"
)

func thresholdOK(t Threshold) bool {
	v, ok := t.Get()
	return !ok || (v >= 0 && v <= 1)
}

func TestDecisionThreshold(t *testing.T) {
	tests := []struct {
		name             string
		configured, head Threshold
		want             float64
	}{
		{"neither", NoThreshold, NoThreshold, DefaultThreshold},
		{"head only", NoThreshold, ThresholdOf(0.31), 0.31},
		{"head stores 0", NoThreshold, ThresholdOf(0), 0},
		{"configured wins", ThresholdOf(0.7), ThresholdOf(0.31), 0.7},
		{"configured 0 wins", ThresholdOf(0), ThresholdOf(0.31), 0},
		{"configured 1", ThresholdOf(1), NoThreshold, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecisionThreshold(tt.configured, tt.head); got != tt.want {
				t.Errorf("DecisionThreshold(%+v, %+v) = %v, want %v", tt.configured, tt.head, got, tt.want)
			}
		})
	}
}

func TestPFake(t *testing.T) {
	tests := []struct {
		l0, l1 float32
		want   float64
	}{
		{0, 0, 0.5},
		{0, float32(math.Log(3)), 0.75},
		{-1000, 1000, 1},
		{1000, -1000, 0},
	}
	for _, tt := range tests {
		if got := PFake(tt.l0, tt.l1); math.Abs(got-tt.want) > 1e-7 {
			t.Errorf("PFake(%v, %v) = %v, want %v", tt.l0, tt.l1, got, tt.want)
		}
	}
	if p := PFake(float32(math.NaN()), 0); !math.IsNaN(p) {
		t.Errorf("PFake(NaN, 0) = %v, want NaN", p)
	}
}
