package infer

import (
	"context"
	"encoding/csv"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/preprocess"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train"
)

// TestFlipAUCOnDFDC measures what flip does for a head that means something:
// it trains one with the train package's recipe (config.DefaultTrain, epochs
// and threshold by cross-validation grouped by source video) on the DFDC
// backbone's features of dfdc-faces/train, then scores dfdc-faces/test
// without and with flip and logs both. Faces are preprocessed as `deepfaked
// train` and `eval` do with --crop none: the whole crop, resized. It fails
// only if flip moves AUC by more than a few hundredths either way: the
// figures are the result, not a gate. Skipped with -short (minutes on a
// small CPU) and without the shared data.
func TestFlipAUCOnDFDC(t *testing.T) {
	testenv.Long(t)
	if testing.Short() {
		t.Skip("trains a head on 2400 faces and scores 600 three times: not in -short")
	}
	ref := testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc_features.onnx")
	data := testenv.SharedFile(t, "data/dfdc-faces")
	trainSet, testSet := readLabelled(t, filepath.Join(data, "train")), readLabelled(t, filepath.Join(data, "test"))

	eng := newEngine(t)
	b, err := LoadBackbone(eng, ref)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ds := &featureSet{labelled: trainSet, d: b.FeatureSize(), x: features(t, b, trainSet.paths)}
	extracted := time.Since(start)
	meta := b.Meta()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	d := config.DefaultTrain()
	cfg := train.Config{LR: d.LR, L1: d.L1, WeightDecay: d.WeightDecay, Dropout: d.Dropout, BatchSize: d.BatchSize,
		Epochs: d.Epochs, Patience: d.Patience, Folds: d.Folds, Seed: int64(d.Seed),
		ClassWeights: d.ClassWeights == config.ClassWeightsBalanced}
	cv, err := train.CrossValidate(ctx, ds, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Epochs = cv.Epochs
	all := make([]int, ds.Len())
	for i := range all {
		all[i] = i
	}
	fit, err := train.Fit(ctx, ds, all, nil, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(t.TempDir(), "head.onnx")
	if err := fit.Head.ExportONNX(head, train.ExportInfo{InputSize: meta.InputSize, FeatureShape: meta.FeatureShape[:],
		Threshold: cv.Threshold, TrainedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("head: %d train faces (features in %v), %d epochs, threshold %.3f, out-of-fold AUC %.4f",
		ds.Len(), extracted.Round(time.Second), cv.Epochs, cv.Threshold, cv.OutOfFold.AUC)

	in := make([]float32, 0, len(testSet.paths)*3*meta.InputSize*meta.InputSize)
	in = appendFaces(t, in, testSet.paths, meta)
	const batch = 8 // a frame's worth of faces, as the daemon runs them
	auc := map[string]float64{}
	for _, tta := range []string{TTANone, TTAFlip} {
		c := loadTTA(t, ref, head, ClassifierOptions{TTA: tta, MaxBatch: batch * 2})
		face := 3 * c.InputSize() * c.InputSize()
		scores := make([]float64, len(testSet.paths))
		p := make([]float32, batch)
		start := time.Now()
		for i := 0; i < len(scores); i += batch {
			n := min(batch, len(scores)-i)
			if _, err := c.Classify(in[i*face:(i+n)*face], n, p); err != nil {
				t.Fatal(err)
			}
			for j := range n {
				scores[i+j] = float64(p[j])
			}
		}
		took := time.Since(start)
		m, err := train.Evaluate(testSet.labels, scores, cv.Threshold)
		if err != nil {
			t.Fatal(err)
		}
		auc[tta] = m.AUC
		t.Logf("tta %-4s on dfdc-faces/test (%d faces): AUC %.4f  accuracy %.4f  F1 %.4f  log loss %.4f at threshold %.3f; %.1f ms/face",
			tta, m.N, m.AUC, m.Accuracy, m.F1, m.LogLoss, m.Threshold, took.Seconds()*1e3/float64(m.N))
	}
	t.Logf("flip - none: AUC %+.4f", auc[TTAFlip]-auc[TTANone])
	if auc[TTANone] < 0.65 {
		t.Errorf("AUC without TTA %.4f: the README's recipe reaches about 0.76, so the set-up is wrong", auc[TTANone])
	}
	if diff := auc[TTAFlip] - auc[TTANone]; diff < -0.03 || diff > 0.05 {
		t.Errorf("flip moves AUC by %+.4f: far more than averaging two views of a face should", diff)
	}
}

// labelled is a data folder's labels.csv: path (absolute), label, source video.
type labelled struct {
	paths  []string
	labels []int
	groups []string
}

func readLabelled(t *testing.T, dir string) labelled {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 || fmt.Sprint(rows[0]) != "[path label identity]" {
		t.Fatalf("%s/labels.csv: %d rows, header %v, err %v; want path,label,identity", dir, len(rows), rows[:min(1, len(rows))], err)
	}
	var l labelled
	for _, r := range rows[1:] {
		label := map[string]int{"real": train.Real, "fake": train.Fake}
		y, ok := label[r[1]]
		if !ok {
			t.Fatalf("%s/labels.csv: label %q", dir, r[1])
		}
		l.paths, l.labels, l.groups = append(l.paths, filepath.Join(dir, r[0])), append(l.labels, y), append(l.groups, r[2])
	}
	return l
}

// preprocessor fills faces as the backbone's metadata says, with no margin.
func preprocessor(t *testing.T, m spec.Metadata) *preprocess.Preprocessor {
	t.Helper()
	pp, err := preprocess.New(preprocess.Params{Size: m.InputSize, Mean: m.Mean, Std: m.Std, ColorOrder: m.ColorOrder})
	if err != nil {
		t.Fatal(err)
	}
	return pp
}

// appendFaces appends each image, resized whole, as one normalised NCHW face.
func appendFaces(t *testing.T, dst []float32, paths []string, m spec.Metadata) []float32 {
	t.Helper()
	pp := preprocessor(t, m)
	defer pp.Close()
	for _, p := range paths {
		img := gocv.IMRead(p, gocv.IMReadColor)
		if img.Empty() {
			t.Fatalf("cannot read %s", p)
		}
		dst = append(dst, make([]float32, pp.Len())...)
		err := pp.Fill(img, image.Rect(0, 0, img.Cols(), img.Rows()), dst[len(dst)-pp.Len():])
		img.Close()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	return dst
}

// features runs the images through b in batches and returns their features.
func features(t *testing.T, b *Backbone, paths []string) []float32 {
	t.Helper()
	const batch = 32
	F := b.FeatureSize()
	out := make([]float32, len(paths)*F)
	var in []float32
	for i := 0; i < len(paths); i += batch {
		n := min(batch, len(paths)-i)
		in = appendFaces(t, in[:0], paths[i:i+n], b.Meta())
		if err := b.Features(in, n, out[i*F:]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// featureSet is a train.Dataset held in memory.
type featureSet struct {
	labelled
	d int
	x []float32
}

func (s *featureSet) Len() int           { return len(s.labels) }
func (s *featureSet) Dim() int           { return s.d }
func (s *featureSet) Label(i int) int    { return s.labels[i] }
func (s *featureSet) Group(i int) string { return s.groups[i] }
func (s *featureSet) Features(i int, dst []float32) error {
	copy(dst, s.x[i*s.d:(i+1)*s.d])
	return nil
}
