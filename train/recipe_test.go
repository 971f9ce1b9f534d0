package train

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

func writeDataset(t *testing.T, ds *MemDataset, idx []int, fp, lp string) {
	t.Helper()
	w, err := CreateFeatureFiles(fp, lp, ds.D)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range idx {
		if err := w.Append(ds.X[i*ds.D:(i+1)*ds.D], ds.Labels[i], ds.Groups[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReferenceRecipe runs tools/reference_recipe.py on feature files written
// by FeatureWriter and checks that it reads them and learns, then trains Go's
// recipe on the same split for the log.
func TestReferenceRecipe(t *testing.T) {
	testenv.Long(t)
	py := torchPython(t)
	ds := synth(700, 512, 0.3, 2, 1.0, 77)
	idx := indices(ds.Len())
	trainIdx, testIdx := idx[:500], idx[500:]
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	writeDataset(t, ds, trainIdx, p("train.f32"), p("train.csv"))
	writeDataset(t, ds, testIdx, p("test.f32"), p("test.csv"))
	out, err := exec.Command(py, filepath.Join(testenv.RepoRoot(t), "tools", "reference_recipe.py"),
		p("train.f32"), p("train.csv"), p("test.f32"), p("test.csv")).Output()
	if err != nil {
		t.Fatalf("reference_recipe.py: %v\n%s", err, out)
	}
	var ref struct {
		AUC, Accuracy, F1, TrainSeconds float64
		NTrain, NTest                   int
	}
	if err := json.Unmarshal(out, &struct {
		AUC          *float64 `json:"auc"`
		Accuracy     *float64 `json:"accuracy"`
		F1           *float64 `json:"f1"`
		TrainSeconds *float64 `json:"train_seconds"`
		NTrain       *int     `json:"n_train"`
		NTest        *int     `json:"n_test"`
	}{&ref.AUC, &ref.Accuracy, &ref.F1, &ref.TrainSeconds, &ref.NTrain, &ref.NTest}); err != nil {
		t.Fatalf("reference_recipe.py printed %q: %v", out, err)
	}
	if ref.NTrain != 500 || ref.NTest != 200 || ref.AUC < 0.8 || ref.TrainSeconds <= 0 {
		t.Errorf("reference recipe: %+v", ref)
	}

	// Go: CV picks epochs and threshold, then the final head trains on all of train.
	cfg := recipe()
	sub := &MemDataset{D: ds.D, X: ds.X[:500*ds.D], Labels: ds.Labels[:500], Groups: ds.Groups[:500]}
	cv, err := CrossValidate(context.Background(), sub, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Epochs = cv.Epochs
	res, err := Fit(context.Background(), sub, trainIdx, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	scores, err := res.Head.Scores(context.Background(), ds, testIdx)
	if err != nil {
		t.Fatal(err)
	}
	labels := ds.Labels[500:]
	m, err := Evaluate(labels, scores, cv.Threshold)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("reference: AUC %.3f acc %.3f F1 %.3f; go: AUC %.3f acc %.3f F1 %.3f (threshold %.3f, %d epochs)",
		ref.AUC, ref.Accuracy, ref.F1, m.AUC, m.Accuracy, m.F1, cv.Threshold, cv.Epochs)
}
