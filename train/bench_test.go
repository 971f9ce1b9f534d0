package train

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// peakRSS is the process's high-water resident set (VmHWM) in MiB.
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				b.Fatalf("VmHWM %q: %v", rest, err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkTrain10k trains one epoch on 10,000 samples of 1280×4×4 features
// streamed from an 800 MiB feature file, and reports the peak RSS, which must
// stay far below the file's size. Run alone:
//
//	go test ./train -run '^$' -bench Train10k -benchtime 1x
func BenchmarkTrain10k(b *testing.B) {
	const n, d = 10000, 1280 * 4 * 4
	dir := b.TempDir()
	fp, lp := filepath.Join(dir, "features.f32"), filepath.Join(dir, "labels.csv")
	w, err := CreateFeatureFiles(fp, lp, d)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, d)
	for i := range n {
		label := i % 5 / 4 // one fake in five
		for j := range x {
			x[j] = float32(rng.NormFloat64())
			if j < 64 && label == Fake {
				x[j] += 0.5
			}
		}
		if err := w.Append(x, label, fmt.Sprintf("id%d", i/4)); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	ds, err := OpenFileDataset(fp, lp)
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	cfg := recipe()
	cfg.Epochs = 1
	idx := indices(n)
	b.ResetTimer()
	for range b.N {
		res, err := Fit(context.Background(), ds, idx[:9000], idx[9000:], cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(res.Val.AUC, "val-AUC")
	}
	b.StopTimer()
	mib := peakRSS(b)
	b.ReportMetric(mib, "peak-RSS-MiB")
	if mib > 1024 {
		b.Errorf("peak RSS %.0f MiB over 1 GiB", mib)
	}
}
