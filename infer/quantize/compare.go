package quantize

import "fmt"

// Agreement is the share of samples whose verdict (fake when p_fake >=
// threshold, the daemon's rule) is the same under both models' scores.
func Agreement(fp32, int8 []float64, threshold float64) (float64, error) {
	if len(fp32) != len(int8) || len(fp32) == 0 {
		return 0, fmt.Errorf("agreement: %d and %d scores; want the same samples, at least one", len(fp32), len(int8))
	}
	same := 0
	for i := range fp32 {
		if (fp32[i] >= threshold) == (int8[i] >= threshold) {
			same++
		}
	}
	return float64(same) / float64(len(fp32)), nil
}
