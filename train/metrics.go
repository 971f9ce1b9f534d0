package train

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/deepfaked/deepfaked/contract"
)

// Metrics are binary-classification scores with fake (1) as the positive class.
// Confusion is [[tn, fp], [fn, tp]]. AUC is NaN (JSON null) when only one class
// is present.
type Metrics struct {
	N         int       `json:"n"`
	Accuracy  float64   `json:"accuracy"`
	Precision float64   `json:"precision"`
	Recall    float64   `json:"recall"`
	F1        float64   `json:"f1"`
	AUC       float64   `json:"auc"`
	LogLoss   float64   `json:"log_loss"`
	Threshold float64   `json:"threshold"`
	Confusion [2][2]int `json:"confusion"`
}

// MarshalJSON writes NaN and ±Inf as null, which JSON cannot otherwise hold,
// with the keys in the documented order.
func (m Metrics) MarshalJSON() ([]byte, error) {
	num := func(v float64) any {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return v
	}
	return json.Marshal(struct {
		N         int       `json:"n"`
		Accuracy  any       `json:"accuracy"`
		Precision any       `json:"precision"`
		Recall    any       `json:"recall"`
		F1        any       `json:"f1"`
		AUC       any       `json:"auc"`
		LogLoss   any       `json:"log_loss"`
		Threshold any       `json:"threshold"`
		Confusion [2][2]int `json:"confusion"`
	}{m.N, num(m.Accuracy), num(m.Precision), num(m.Recall), num(m.F1), num(m.AUC), num(m.LogLoss), num(m.Threshold), m.Confusion})
}

// UnmarshalJSON reads null AUC / log loss back as NaN.
func (m *Metrics) UnmarshalJSON(b []byte) error {
	type plain Metrics
	aux := struct {
		*plain
		AUC     *float64 `json:"auc"`
		LogLoss *float64 `json:"log_loss"`
	}{plain: (*plain)(m)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	m.AUC, m.LogLoss = math.NaN(), math.NaN()
	if aux.AUC != nil {
		m.AUC = *aux.AUC
	}
	if aux.LogLoss != nil {
		m.LogLoss = *aux.LogLoss
	}
	return nil
}

// Evaluate scores fake-probabilities against labels; a sample is called fake
// when its score >= threshold.
func Evaluate(labels []int, scores []float64, threshold float64) (Metrics, error) {
	if len(labels) != len(scores) {
		return Metrics{}, fmt.Errorf("evaluate: %d labels but %d scores", len(labels), len(scores))
	}
	m := Metrics{N: len(labels), Threshold: threshold, AUC: AUC(labels, scores)}
	var ll float64
	for i, y := range labels {
		if y != Real && y != Fake {
			return Metrics{}, fmt.Errorf("evaluate: sample %d has label %d (want 0 or 1)", i, y)
		}
		pred := 0
		if contract.IsFake(scores[i], threshold) {
			pred = 1
		}
		m.Confusion[y][pred]++
		// Clipped like sklearn so one confident mistake is large but finite.
		p := min(max(scores[i], 1e-15), 1-1e-15)
		if y == Fake {
			ll -= math.Log(p)
		} else {
			ll -= math.Log(1 - p)
		}
	}
	if m.N == 0 {
		m.AUC, m.LogLoss = math.NaN(), math.NaN()
		return m, nil
	}
	m.LogLoss = ll / float64(m.N)
	tn, fp, fn, tp := float64(m.Confusion[0][0]), float64(m.Confusion[0][1]), float64(m.Confusion[1][0]), float64(m.Confusion[1][1])
	m.Accuracy = (tp + tn) / float64(m.N)
	m.Precision = ratio(tp, tp+fp) // 0 when nothing is called fake (sklearn's zero_division=0)
	m.Recall = ratio(tp, tp+fn)
	m.F1 = ratio(2*tp, 2*tp+fp+fn)
	return m, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// AUC is the ROC area by ranks (Mann–Whitney U), tied scores sharing their
// average rank; NaN when either class is absent.
func AUC(labels []int, scores []float64) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	var rankSum float64
	var npos, nneg int
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j
		for _, k := range idx[i:j] {
			if labels[k] == Fake {
				rankSum += avg
			}
		}
		i = j
	}
	for _, y := range labels {
		if y == Fake {
			npos++
		} else {
			nneg++
		}
	}
	if npos == 0 || nneg == 0 {
		return math.NaN()
	}
	return (rankSum - float64(npos)*float64(npos+1)/2) / (float64(npos) * float64(nneg))
}

// ROCPoint is one corner of the ROC curve.
type ROCPoint struct{ FPR, TPR, Threshold float64 }

// ROC returns the curve from (0,0) to (1,1), one point per distinct score
// (called fake when score >= Threshold).
func ROC(labels []int, scores []float64) []ROCPoint {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	var npos, nneg float64
	for _, y := range labels {
		if y == Fake {
			npos++
		} else {
			nneg++
		}
	}
	pts := []ROCPoint{{0, 0, math.Inf(1)}}
	var tp, fp float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			if labels[idx[j]] == Fake {
				tp++
			} else {
				fp++
			}
			j++
		}
		pts = append(pts, ROCPoint{FPR: ratio(fp, nneg), TPR: ratio(tp, npos), Threshold: scores[idx[i]]})
		i = j
	}
	return pts
}

// ChooseThreshold picks the score threshold that maximises Youden's J
// (TPR − FPR, i.e. balanced accuracy). We use J rather than F1 because it
// weighs both classes equally whatever their proportions: F1 counts only the
// fake class and drifts with the base rate, and the notebook's failure was
// exactly a neglected minority class. Ties go to the threshold nearest 0.5.
// With one class absent there is no ROC, and it returns 0.5.
func ChooseThreshold(labels []int, scores []float64) float64 {
	pts := ROC(labels, scores)
	best, bestJ := 0.5, math.Inf(-1)
	if slices.ContainsFunc(labels, func(y int) bool { return y == Fake }) && slices.ContainsFunc(labels, func(y int) bool { return y != Fake }) {
		for _, p := range pts[1:] {
			j := p.TPR - p.FPR
			if j > bestJ+1e-12 || (math.Abs(j-bestJ) <= 1e-12 && math.Abs(p.Threshold-0.5) < math.Abs(best-0.5)) {
				best, bestJ = p.Threshold, j
			}
		}
	}
	return best
}

// FormatAUC prints an AUC to 4 decimals, "n/a" when it is undefined (one class only).
func FormatAUC(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 4, 64)
}
