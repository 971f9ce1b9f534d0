package quantize

import (
	"fmt"

	"github.com/deepfaked/deepfaked/contract"
)

// Agreement is the share of samples whose verdict (contract.IsFake, the
// daemon's rule) is the same under both models' scores.
func Agreement(fp32, int8 []float64, threshold float64) (float64, error) {
	if len(fp32) != len(int8) || len(fp32) == 0 {
		return 0, fmt.Errorf("agreement: %d and %d scores; want the same samples, at least one", len(fp32), len(int8))
	}
	same := 0
	for i := range fp32 {
		if contract.IsFake(fp32[i], threshold) == contract.IsFake(int8[i], threshold) {
			same++
		}
	}
	return float64(same) / float64(len(fp32)), nil
}
