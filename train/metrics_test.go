package train

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// pairAUC is the definition: P(score_fake > score_real) + ½P(tie).
func pairAUC(labels []int, scores []float64) float64 {
	var win, pairs float64
	for i, yi := range labels {
		for j, yj := range labels {
			if yi == Fake && yj == Real {
				pairs++
				switch {
				case scores[i] > scores[j]:
					win++
				case scores[i] == scores[j]:
					win += 0.5
				}
			}
		}
	}
	return win / pairs
}

func TestAUCMatchesPairwiseDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		n := 2 + rng.IntN(60)
		labels, scores := make([]int, n), make([]float64, n)
		for i := range n {
			labels[i] = rng.IntN(2)
			scores[i] = float64(rng.IntN(1 + trial%8)) // few distinct values: many ties
		}
		labels[0], labels[1] = 0, 1
		if got, want := AUC(labels, scores), pairAUC(labels, scores); math.Abs(got-want) > 1e-12 {
			t.Fatalf("trial %d: AUC %.6f, pairwise %.6f (labels %v scores %v)", trial, got, want, labels, scores)
		}
	}
	if !math.IsNaN(AUC([]int{1, 1}, []float64{0.2, 0.9})) {
		t.Error("AUC of one class is not NaN")
	}
}

func TestEvaluate(t *testing.T) {
	labels := []int{0, 0, 0, 0, 1, 1, 1}
	scores := []float64{0.1, 0.4, 0.6, 0.2, 0.7, 0.5, 0.3}
	cases := []struct {
		threshold          float64
		confusion          [2][2]int
		acc, prec, rec, f1 float64
	}{
		{0.5, [2][2]int{{3, 1}, {1, 2}}, 5.0 / 7, 2.0 / 3, 2.0 / 3, 2.0 / 3},
		{0.3, [2][2]int{{2, 2}, {0, 3}}, 5.0 / 7, 3.0 / 5, 1, 0.75},
		{0.9, [2][2]int{{4, 0}, {3, 0}}, 4.0 / 7, 0, 0, 0},
	}
	var ll float64
	for i, y := range labels {
		if y == 1 {
			ll -= math.Log(scores[i])
		} else {
			ll -= math.Log(1 - scores[i])
		}
	}
	for _, tc := range cases {
		m, err := Evaluate(labels, scores, tc.threshold)
		if err != nil {
			t.Fatal(err)
		}
		if m.N != 7 || m.Confusion != tc.confusion {
			t.Errorf("threshold %g: n %d confusion %v, want 7 %v", tc.threshold, m.N, m.Confusion, tc.confusion)
		}
		for _, p := range [][3]any{{"accuracy", m.Accuracy, tc.acc}, {"precision", m.Precision, tc.prec}, {"recall", m.Recall, tc.rec},
			{"f1", m.F1, tc.f1}, {"auc", m.AUC, pairAUC(labels, scores)}, {"log_loss", m.LogLoss, ll / 7}} {
			if math.Abs(p[1].(float64)-p[2].(float64)) > 1e-12 {
				t.Errorf("threshold %g: %s %.6f, want %.6f", tc.threshold, p[0], p[1], p[2])
			}
		}
	}
	if _, err := Evaluate([]int{0, 1}, []float64{0.3}, 0.5); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, err := Evaluate([]int{0, 3}, []float64{0.3, 0.1}, 0.5); err == nil {
		t.Error("label 3 accepted")
	}
}

func TestChooseThresholdMaximisesYouden(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for trial := range 30 {
		n := 20 + rng.IntN(100)
		labels, scores := make([]int, n), make([]float64, n)
		for i := range n {
			// Imbalanced: about one fake in five, shifted up.
			if rng.Float64() < 0.2 {
				labels[i] = 1
			}
			scores[i] = math.Round((0.4+0.2*float64(labels[i])+0.2*rng.NormFloat64())*50) / 50
		}
		labels[0], labels[1] = 0, 1
		youden := func(th float64) float64 {
			m, _ := Evaluate(labels, scores, th)
			return m.Recall - float64(m.Confusion[0][1])/float64(m.Confusion[0][0]+m.Confusion[0][1])
		}
		got := ChooseThreshold(labels, scores)
		for _, s := range scores {
			if youden(s) > youden(got)+1e-12 {
				t.Fatalf("trial %d: threshold %.3f has J %.4f, but %.3f has %.4f", trial, got, youden(got), s, youden(s))
			}
		}
	}
	if th := ChooseThreshold([]int{0, 0}, []float64{0.2, 0.9}); th != 0.5 {
		t.Errorf("one class: threshold %g, want 0.5", th)
	}
}

func TestMetricsJSON(t *testing.T) {
	m, err := Evaluate([]int{1, 1, 1}, []float64{0.9, 0.2, 0.6}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %+v: %v", m, err)
	}
	for _, key := range []string{`"n":3`, `"accuracy":`, `"precision":`, `"recall":`, `"f1":`, `"auc":null`, `"log_loss":`, `"threshold":0.5`, `"confusion":[[0,0],[1,2]]`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("%s lacks %s", b, key)
		}
	}
	var back Metrics
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(back.AUC) || back.LogLoss != m.LogLoss || back.Confusion != m.Confusion || back.Recall != m.Recall {
		t.Errorf("round trip: %+v, want %+v", back, m)
	}
}

func TestFormatAUC(t *testing.T) {
	for v, want := range map[float64]string{math.NaN(): "n/a", 0.81234: "0.8123", 1: "1.0000"} {
		if got := FormatAUC(v); got != want {
			t.Errorf("FormatAUC(%v) = %q, want %q", v, got, want)
		}
	}
}
