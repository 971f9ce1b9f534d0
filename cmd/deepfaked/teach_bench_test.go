package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// BenchmarkTeachCamera measures "teach it your camera" (issue 19) end to
// end with the shipped model: FaceForensics++ clip 519 and its face swap are
// re-rendered through a simulated camera (capturetest's chains: seeded
// noise, blur or a washed-out small sensor, then H.264), `deepfaked train
// --crop face --self-blend` learns a head from every second frame of the
// first half of the real clip only, and the installed (shipped) head and the
// new one are scored on the second half of the real clip and every frame of
// the fake one, and on dfdc-faces/test (what the head must not forget). It
// reports real frames called fake and fake frames caught (%), frame AUC, the
// DFDC AUC before and after, and the training time.
//
//	go test -run '^$' -bench TeachCamera -benchtime 1x ./cmd/deepfaked
func BenchmarkTeachCamera(b *testing.B) {
	shared := testenv.Shared(b)
	root := testenv.RepoRoot(b)
	yunet := testenv.SharedFile(b, "models/face/yunet.onnx")
	for _, cam := range []struct {
		name  string
		chain capturetest.CameraChain
	}{{"noisy", capturetest.NoisyCamera}, {"washed", capturetest.WashedCamera}} {
		b.Run(cam.name, func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				clips := map[string]string{}
				frames := 0
				for label, src := range map[string]string{"real": "real/ffpp_519.mp4", "fake": "fake/ffpp_deepfakes_519_515.mp4"} {
					clips[label] = filepath.Join(dir, label+".mp4")
					n, err := capturetest.SimulateCamera(filepath.Join(shared, "data", "videos", src), clips[label], cam.chain)
					if err != nil {
						b.Fatal(err)
					}
					if label == "real" {
						frames = n
					}
				}
				write := func(video, to string, keep func(int) bool) {
					if _, err := capturetest.WriteFrames(video, to, keep); err != nil {
						b.Fatal(err)
					}
				}
				teach, test := filepath.Join(dir, "teach"), filepath.Join(dir, "test")
				write(clips["real"], filepath.Join(teach, "real"), func(i int) bool { return i < frames/2 && i%2 == 0 })
				write(clips["real"], filepath.Join(test, "real"), func(i int) bool { return i >= frames/2 })
				write(clips["fake"], filepath.Join(test, "fake"), func(int) bool { return true })

				// One config per head: the shipped one as installed, then the learned one.
				config := func(name, head string) string {
					p := filepath.Join(dir, name+".yaml")
					err := os.WriteFile(p, trainConfigYAML(b, filepath.Join(dir, "state"), filepath.Join(root, "shipped", "backbone.int8.onnx"),
						head, "detector: yunet\n  model: "+yunet, 0), 0o644)
					if err != nil {
						b.Fatal(err)
					}
					return p
				}
				cfg := config("installed", filepath.Join(root, "shipped", "head.onnx"))
				score := func(cfg, data, crop string) evalJSON {
					out, stderr, err := runCmd(b, newEvalCmd(), "--config", cfg, "--data", data, "--crop", crop, "--json")
					if err != nil {
						b.Fatalf("eval %s: %v\n%s", data, err, stderr)
					}
					var e evalJSON
					if err := json.Unmarshal([]byte(out), &e); err != nil {
						b.Fatalf("eval %s: %v", data, err)
					}
					return e
				}
				dfdc := filepath.Join(shared, "data", "dfdc-faces", "test")
				before, dfdcBefore := score(cfg, test, "face"), score(cfg, dfdc, "none")
				began := time.Now()
				learned := filepath.Join(dir, "learned")
				if _, stderr, err := runCmd(b, newTrainCmd(), "--config", cfg, "--data", teach, "--crop", "face", "--self-blend", "--out", learned); err != nil {
					b.Fatalf("train --self-blend: %v\n%s", err, stderr)
				}
				trainS := time.Since(began).Seconds()
				cfg = config("learned", filepath.Join(learned, "head.onnx"))
				after, dfdcAfter := score(cfg, test, "face"), score(cfg, dfdc, "none")
				b.ReportMetric(before.falseAlarms(), "real_called_fake_before_%")
				b.ReportMetric(after.falseAlarms(), "real_called_fake_after_%")
				b.ReportMetric(before.caught(), "fakes_caught_before_%")
				b.ReportMetric(after.caught(), "fakes_caught_after_%")
				b.ReportMetric(before.AUC, "frame_auc_before")
				b.ReportMetric(after.AUC, "frame_auc_after")
				b.ReportMetric(dfdcBefore.AUC, "dfdc_auc_before")
				b.ReportMetric(dfdcAfter.AUC, "dfdc_auc_after")
				b.ReportMetric(trainS, "train_s")
			}
		})
	}
}

// evalJSON is what `deepfaked eval --json` prints that the benchmark reads.
type evalJSON struct {
	AUC       float64   `json:"auc"`
	Confusion [2][2]int `json:"confusion"` // rows true real, fake; columns predicted
}

func (e evalJSON) falseAlarms() float64 {
	return 100 * float64(e.Confusion[0][1]) / float64(e.Confusion[0][0]+e.Confusion[0][1])
}

func (e evalJSON) caught() float64 {
	return 100 * float64(e.Confusion[1][1]) / float64(e.Confusion[1][0]+e.Confusion[1][1])
}
