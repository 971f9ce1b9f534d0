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
// DFDC AUC before and after, and the training time, for the new head alone
// (train.mix never), mixed with the installed one without a reference, and
// mixed with 150 real and 150 fake DFDC train crops as the reference
// (train.gate_set, gate_margin 0.02), with the new head's weight in each mix.
//
//	go test -run '^$' -bench TeachCamera -benchtime 1x ./cmd/deepfaked
//
// DEEPFAKED_TEACH_BACKBONE and DEEPFAKED_TEACH_HEAD name another model to
// measure (a release candidate) instead of shipped/.
func BenchmarkTeachCamera(b *testing.B) {
	shared := testenv.Shared(b)
	root := testenv.RepoRoot(b)
	yunet := testenv.SharedFile(b, "models/face/yunet.onnx")
	reference := referenceSet(b, filepath.Join(shared, "data", "dfdc-faces", "train"), 150)
	// A candidate release is measured the same way by naming its files.
	backbone, installedHead := filepath.Join(root, "shipped", "backbone.int8.onnx"), filepath.Join(root, "shipped", "head.onnx")
	if v := os.Getenv("DEEPFAKED_TEACH_BACKBONE"); v != "" {
		backbone = v
	}
	if v := os.Getenv("DEEPFAKED_TEACH_HEAD"); v != "" {
		installedHead = v
	}
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
				config := func(name, head string, margin float64, extra string) string {
					p := filepath.Join(dir, name+".yaml")
					err := os.WriteFile(p, append(trainConfigYAML(b, filepath.Join(dir, "state"), backbone,
						head, "detector: yunet\n  model: "+yunet, margin), extra...), 0o644)
					if err != nil {
						b.Fatal(err)
					}
					return p
				}
				installed := config("installed", installedHead, 0, "")
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
				before, dfdcBefore := score(installed, test, "face"), score(installed, dfdc, "none")
				b.ReportMetric(before.falseAlarms(), "real_called_fake_before_%")
				b.ReportMetric(before.caught(), "fakes_caught_before_%")
				b.ReportMetric(before.AUC, "frame_auc_before")
				b.ReportMetric(dfdcBefore.AUC, "dfdc_auc_before")
				// Each way of keeping what the installed head knew: none (the
				// new head alone), the mix without a reference, and the mix
				// with DFDC deepfakes from the train split as the reference.
				for _, m := range []struct {
					name   string
					margin float64 // train.gate_margin: how far the reference's AUC may fall
					extra  string
				}{
					{"alone", 0, "  mix: never\n"},
					{"mix", 0, ""},
					{"mix_ref", 0.02, "  gate_set: " + reference + "\n  gate_set_crop: none\n"},
				} {
					began := time.Now()
					learned := filepath.Join(dir, "learned-"+m.name)
					if _, stderr, err := runCmd(b, newTrainCmd(), "--config", config("teach-"+m.name, installedHead, m.margin, m.extra),
						"--data", teach, "--crop", "face", "--self-blend", "--out", learned); err != nil {
						b.Fatalf("train --self-blend (%s): %v\n%s", m.name, err, stderr)
					}
					trainS := time.Since(began).Seconds()
					cfg := config("learned-"+m.name, filepath.Join(learned, "head.onnx"), 0, "")
					after, dfdcAfter := score(cfg, test, "face"), score(cfg, dfdc, "none")
					b.ReportMetric(after.falseAlarms(), m.name+"_real_called_fake_%")
					b.ReportMetric(after.caught(), m.name+"_fakes_caught_%")
					b.ReportMetric(after.AUC, m.name+"_frame_auc")
					b.ReportMetric(dfdcAfter.AUC, m.name+"_dfdc_auc")
					b.ReportMetric(trainS, m.name+"_train_s")
					var report struct {
						Mix *struct{ Alpha float64 }
					}
					if raw, err := os.ReadFile(filepath.Join(learned, "metrics.json")); err != nil || json.Unmarshal(raw, &report) != nil {
						b.Fatalf("%s: metrics.json: %v", m.name, err)
					}
					if report.Mix != nil {
						b.ReportMetric(report.Mix.Alpha, m.name+"_new_head_weight")
					}
				}
			}
		})
	}
}

// referenceSet is a labelled folder of the first n real and n fake crops of
// a labelled data folder (links, not copies): the reference that keeps a
// camera's head honest about deepfakes (train.gate_set).
func referenceSet(b *testing.B, from string, n int) string {
	dir := b.TempDir()
	for _, label := range []string{"real", "fake"} {
		files, err := filepath.Glob(filepath.Join(from, label, "*"))
		if err != nil || len(files) < n {
			b.Fatalf("reference set: %d %s images in %s (%v), want %d", len(files), label, from, err, n)
		}
		if err := os.MkdirAll(filepath.Join(dir, label), 0o755); err != nil {
			b.Fatal(err)
		}
		for _, f := range files[:n] {
			if err := os.Symlink(f, filepath.Join(dir, label, filepath.Base(f))); err != nil {
				b.Fatal(err)
			}
		}
	}
	return dir
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
