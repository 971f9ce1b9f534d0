package infer

import (
	"errors"
	"fmt"
	"testing"
	"time"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkClassify measures backbone + head on the `make models` export; the
// ms/face metric is what a camera's face budget is planned with. The allocations
// it reports are all inside onnxruntime_go's Run.
func BenchmarkClassify(b *testing.B) {
	eng := newEngine(b)
	bb, hd := testenv.Models(b)
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchClassify(b, c, n) })
	}
}

// BenchmarkClassifyVsBare answers where backbone + head spend time beyond the
// backbone itself. In one loop it runs, alternately, at batch 8: the
// Classifier (engine sessions with 2 intra-op threads: backbone, then head,
// with the copies into and out of the runner buffers), and two bare ONNX
// Runtime sessions on the same backbone with 2 intra-op threads, one with
// ONNX Runtime's defaults (worker threads spin between runs) and one with
// spinning off as the engine sets it. It reports each one's ms/face and the
// ratios: classify/bare-nospin is what the head and the copies cost.
func BenchmarkClassifyVsBare(b *testing.B) {
	const n = 8
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(b), Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	bb, hd := testenv.Models(b)
	c, err := LoadClassifier(eng, bb, hd, ClassifierOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := c.InputSize()
	in := randomBatch(n, s, 1)
	p := make([]float32, n)
	inT, err := ort.NewTensor(ort.NewShape(n, 3, int64(s), int64(s)), in)
	if err != nil {
		b.Fatal(err)
	}
	defer inT.Destroy()
	fs := c.Meta().FeatureShape
	outT, err := ort.NewEmptyTensor[float32](ort.NewShape(n, int64(fs[0]), int64(fs[1]), int64(fs[2])))
	if err != nil {
		b.Fatal(err)
	}
	defer outT.Destroy()
	bare := func(spin string) *ort.AdvancedSession {
		so, err := ort.NewSessionOptions()
		if err != nil {
			b.Fatal(err)
		}
		defer so.Destroy()
		if err := errors.Join(so.SetIntraOpNumThreads(2), so.SetInterOpNumThreads(1)); err != nil {
			b.Fatal(err)
		}
		if spin != "" {
			if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", spin); err != nil {
				b.Fatal(err)
			}
		}
		sess, err := ort.NewAdvancedSession(bb, []string{"input"}, []string{"features"}, []ort.Value{inT}, []ort.Value{outT}, so)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { sess.Destroy() })
		return sess
	}
	spinning, still := bare(""), bare("0")
	var tClf, tSpin, tStill time.Duration
	timed := func(acc *time.Duration, run func() error) {
		start := time.Now()
		if err := run(); err != nil {
			b.Fatal(err)
		}
		*acc += time.Since(start)
	}
	classify := func() error { _, err := c.Classify(in, n, p); return err }
	for _, run := range []func() error{classify, spinning.Run, still.Run} { // warm-up
		if err := run(); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		timed(&tClf, classify)
		timed(&tSpin, spinning.Run)
		timed(&tStill, still.Run)
	}
	perFace := func(d time.Duration) float64 { return d.Seconds() * 1e3 / float64(b.N*n) }
	b.ReportMetric(perFace(tClf), "classify-ms/face")
	b.ReportMetric(perFace(tSpin), "bare-ms/face")
	b.ReportMetric(perFace(tStill), "bare-nospin-ms/face")
	b.ReportMetric(tClf.Seconds()/tSpin.Seconds(), "classify/bare")
	b.ReportMetric(tClf.Seconds()/tStill.Seconds(), "classify/bare-nospin")
}

// benchClassify times c on batches of n random faces after a warm-up run
// (lazily made tensors and buffers), reporting allocations and ms per face.
func benchClassify(b *testing.B, c *Classifier, n int) {
	in := randomBatch(n, c.InputSize(), 1)
	p := make([]float32, n)
	if _, err := c.Classify(in, n, p); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Classify(in, n, p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N*n), "ms/face")
}
