package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/infer"
	"github.com/deepfaked/deepfaked/infer/engine"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train/install"
)

// runCmd runs one of train/eval/rollback in-process and returns its stdout and stderr.
func runCmd(t testing.TB, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(t.Context())
	return out.String(), errb.String(), err
}

// trainData links n real and n fake hardfake training images into a folder.
func trainData(t *testing.T, n int) string {
	t.Helper()
	src := filepath.Join(testenv.Shared(t), "data", "hardfake", "train")
	dir := t.TempDir()
	for _, class := range []string{"real", "fake"} {
		if err := os.MkdirAll(filepath.Join(dir, class), 0o755); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(filepath.Join(src, class))
		if err != nil || len(ents) < n {
			t.Fatalf("%s/%s: %d files (%v), want %d", src, class, len(ents), err, n)
		}
		for _, e := range ents[:n] {
			name := e.Name()
			if err := os.Symlink(filepath.Join(src, class, name), filepath.Join(dir, class, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func writeTrainConfig(t *testing.T, dir, backbone, head string, gateMargin float64) string {
	t.Helper()
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, trainConfigYAML(t, filepath.Join(dir, "state"), backbone, head, "detector: haar", gateMargin), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// trainConfigYAML is a config for train and eval: the models, faces (the
// faces: section's lines, indented by the caller after the first) and
// train.gate_margin; the broker is never reached.
func trainConfigYAML(t testing.TB, stateDir, backbone, head, faces string, gateMargin float64) []byte {
	return fmt.Appendf(nil, `device_id: t
state_dir: %s
mqtt:
  broker: tcp://127.0.0.1:1883
model:
  backbone: %s
  head: %s
  runtime: %s
faces:
  %s
cameras:
  - name: unused
    source: /dev/null
train:
  gate_margin: %g
`, stateDir, backbone, head, testenv.ORTLibrary(t), faces, gateMargin)
}

func TestTrainEvalInstallRollback(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	data := trainData(t, 20)
	dir := t.TempDir()
	_, origHead := testenv.Models(t)
	orig, err := os.ReadFile(origHead)
	if err != nil {
		t.Fatal(err)
	}
	head := filepath.Join(dir, "installed", "head.onnx")
	os.MkdirAll(filepath.Dir(head), 0o755)
	if err := os.WriteFile(head, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	backbone, _ := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 1) // margin 1: the gate always lets the new head in

	out := filepath.Join(dir, "out")
	stdout, stderr, err := runCmd(t, newTrainCmd(), "--config", cfg, "--data", data, "--out", out, "--folds", "3", "--epochs", "2", "--batch", "16")
	if err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "0 cached, 40 extracted") || !strings.Contains(stdout, "out-of-fold") {
		t.Errorf("train output lacks the extraction count or the table:\n%s\n%s", stderr, stdout)
	}
	for _, f := range []string{"head.onnx", "metrics.json", "confusion.png", "roc.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var metrics struct {
		CV struct {
			Folds     []struct{ Fold int } `json:"folds"`
			OutOfFold struct{ N int }      `json:"out_of_fold"`
		} `json:"cross_validation"`
		Config struct{ Epochs, Folds, BatchSize int }
		Final  struct{ Samples int }
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err := json.Unmarshal(b, &metrics); err != nil {
		t.Fatal(err)
	}
	if len(metrics.CV.Folds) != 3 || metrics.CV.OutOfFold.N != 40 || metrics.Final.Samples != 40 || metrics.Config.Epochs != 2 || metrics.Config.BatchSize != 16 {
		t.Errorf("metrics.json: %+v", metrics)
	}

	// The exported head fits the backbone as the daemon loads it.
	eng, err := engine.New(engine.Options{Library: testenv.ORTLibrary(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	bb, err := infer.LoadBackbone(eng, backbone)
	if err != nil {
		t.Fatal(err)
	}
	h, err := infer.LoadHead(eng, filepath.Join(out, "head.onnx"), bb.FeatureSize())
	if err != nil {
		t.Fatalf("trained head does not load: %v", err)
	}
	if th, ok := h.Threshold().Get(); !ok || !(th > 0 && th < 1) {
		t.Errorf("trained head threshold %g (set %v)", th, ok)
	}
	h.Close()
	bb.Close()

	// eval on the installed (original) head: exactly the documented keys.
	preds := filepath.Join(dir, "preds.csv")
	stdout, stderr, err = runCmd(t, newEvalCmd(), "--config", cfg, "--data", data, "--json", "--predictions", preds)
	if err != nil {
		t.Fatalf("eval: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "40 cached, 0 extracted") {
		t.Errorf("eval did not use the cache:\n%s", stderr)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &obj); err != nil || strings.Count(strings.TrimSpace(stdout), "\n") != 0 {
		t.Fatalf("eval --json printed %q (%v), want one JSON object", stdout, err)
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"accuracy", "auc", "confusion", "f1", "log_loss", "n", "precision", "recall", "threshold"}; !slices.Equal(keys, want) {
		t.Errorf("eval --json keys %v, want %v", keys, want)
	}
	var conf [2][2]int
	if err := json.Unmarshal(obj["confusion"], &conf); err != nil || conf[0][0]+conf[0][1] != 20 || conf[1][0]+conf[1][1] != 20 {
		t.Errorf("confusion %s (%v), want 20 real and 20 fake", obj["confusion"], err)
	}
	p, _ := os.ReadFile(preds)
	if lines := strings.Split(strings.TrimSpace(string(p)), "\n"); len(lines) != 41 || lines[0] != "path,label,p_fake" || !strings.HasPrefix(lines[1], "real/") || !strings.Contains(lines[1], ",real,") {
		t.Errorf("predictions: %d lines, starting %q", len(lines), lines[:2])
	}

	// model.threshold: 0 is a threshold (every face is fake), not "unset".
	b, _ = os.ReadFile(cfg)
	cfg0 := filepath.Join(dir, "threshold0.yaml")
	if err := os.WriteFile(cfg0, []byte(strings.Replace(string(b), "model:\n", "model:\n  threshold: 0\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err = runCmd(t, newEvalCmd(), "--config", cfg0, "--data", data, "--json")
	var m0 struct {
		Threshold *float64
		Confusion [2][2]int
	}
	if err != nil || json.Unmarshal([]byte(stdout), &m0) != nil || m0.Threshold == nil || *m0.Threshold != 0 || m0.Confusion[0][0] != 0 || m0.Confusion[1][0] != 0 {
		t.Errorf("eval with model.threshold 0: %v %s\n%s", err, stdout, stderr)
	}

	// --install: the gate (margin 1) lets it in; the old head is kept for rollback.
	stdout, stderr, err = runCmd(t, newTrainCmd(), "--config", cfg, "--data", data, "--out", filepath.Join(dir, "out2"), "--folds", "2", "--epochs", "1", "--install")
	if err != nil {
		t.Fatalf("train --install: %v\n%s\n%s", err, stdout, stderr)
	}
	cand, _ := os.ReadFile(filepath.Join(dir, "out2", "head.onnx"))
	if got, _ := os.ReadFile(head); !bytes.Equal(got, cand) || !strings.Contains(stdout, "installed ") {
		t.Fatalf("installed head is not the new one:\n%s", stdout)
	}
	if kept, err := install.Kept(head); kept != 1 || err != nil {
		t.Errorf("%d heads kept for rollback (%v), want the replaced one", kept, err)
	}
	if out, _, err := runCmd(t, newRollbackCmd(), "--config", cfg); err != nil || !strings.Contains(out, "0 earlier install(s) left to undo") {
		t.Fatalf("rollback: %v %s", err, out)
	}
	if got, _ := os.ReadFile(head); !bytes.Equal(got, orig) {
		t.Error("rollback did not restore the previous bytes")
	}
	// A second rollback has nothing to undo: it does not re-install what the first undid.
	if _, _, err := runCmd(t, newRollbackCmd(), "--config", cfg); !errors.Is(err, install.ErrNothingToUndo) {
		t.Errorf("a second rollback: %v, want nothing to undo", err)
	}
	if got, _ := os.ReadFile(head); !bytes.Equal(got, orig) {
		t.Error("a second rollback changed the head")
	}

	// A missing installed head: the candidate is installed, and the output says why.
	cfg2 := writeTrainConfig(t, t.TempDir(), backbone, filepath.Join(dir, "fresh", "head.onnx"), 0)
	os.MkdirAll(filepath.Join(dir, "fresh"), 0o755)
	stdout, _, err = runCmd(t, newTrainCmd(), "--config", cfg2, "--data", data, "--out", filepath.Join(dir, "out3"), "--folds", "2", "--epochs", "1", "--install")
	if err != nil || !strings.Contains(stdout, "cannot be scored") {
		t.Errorf("install over a missing head: %v\n%s", err, stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "fresh", "head.onnx")); err != nil {
		t.Error(err)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	oneClass := filepath.Join(dir, "data")
	os.MkdirAll(filepath.Join(oneClass, "real"), 0o755)
	os.WriteFile(filepath.Join(oneClass, "real", "a.jpg"), []byte("x"), 0o644)
	broken := filepath.Join(dir, "broken")
	for _, c := range []string{"real", "fake"} {
		os.MkdirAll(filepath.Join(broken, c), 0o755)
		os.WriteFile(filepath.Join(broken, c, "a.jpg"), []byte("not a jpeg"), 0o644)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"one class", []string{"--data", oneClass}, "no fake ones"},
		{"nothing decodes", []string{"--data", broken}, "both classes are needed"},
		{"bad crop", []string{"--data", oneClass, "--crop", "square"}, `--crop: crop mode "square"`},
		{"bad flag value", []string{"--data", oneClass, "--folds", "1"}, "folds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, newTrainCmd(), append([]string{"--config", cfg, "--out", filepath.Join(dir, "o")}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
			var ee *exitError
			if errors.As(err, &ee) {
				t.Errorf("bad input exits %d, want the generic failure", ee.code)
			}
		})
	}
}

// TestTrainOneAtATime: a training while another holds the state folder's
// lock (the nightly timer, the page's button) fails at once, naming the lock.
func TestTrainOneAtATime(t *testing.T) {
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	unlock, err := install.Lock(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = runCmd(t, newTrainCmd(), "--config", cfg, "--data", dir)
	if err == nil || !strings.Contains(err.Error(), "another training is running") || !strings.Contains(err.Error(), install.LockFile) {
		t.Fatalf("err = %v", err)
	}
	unlock()
	if _, _, err = runCmd(t, newTrainCmd(), "--config", cfg, "--data", dir); err == nil || strings.Contains(err.Error(), "another training") {
		t.Fatalf("after unlock: %v", err)
	}
}

// TestTrainGateRefuses installs a well-trained head, then offers an untrained
// one (learning rate 1e-9): the gate keeps the installed head and exits 3.
func TestTrainGateRefuses(t *testing.T) {
	data := trainData(t, 20)
	backbone := testenv.SharedFile(t, "models/backbone/mnasnet0_75_dfdc_features.onnx")
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	if _, stderr, err := runCmd(t, newTrainCmd(), "--config", cfg, "--data", data, "--out", filepath.Join(dir, "good"), "--folds", "2", "--batch", "8"); err != nil {
		t.Fatalf("train: %v\n%s", err, stderr)
	}
	good, _ := os.ReadFile(filepath.Join(dir, "good", "head.onnx"))
	if err := os.WriteFile(head, good, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := runCmd(t, newTrainCmd(), "--config", cfg, "--data", data, "--out", filepath.Join(dir, "bad"),
		"--folds", "2", "--epochs", "1", "--lr", "1e-9", "--install")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitGateRefused || !strings.Contains(stdout, "not installed") {
		t.Fatalf("untrained candidate: err %v, want exit %d\n%s", err, exitGateRefused, stdout)
	}
	if got, _ := os.ReadFile(head); !bytes.Equal(got, good) {
		t.Error("the refused candidate replaced the installed head")
	}
	if kept, err := install.Kept(head); kept != 0 || err != nil {
		t.Errorf("a refused install kept %d heads (%v)", kept, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "bad", "metrics.json"))
	var m struct {
		Gate struct {
			Install, Replaced bool
			Held              int `json:"held_out"`
		}
	}
	if err := json.Unmarshal(b, &m); err != nil || m.Gate.Install || m.Gate.Replaced || m.Gate.Held == 0 {
		t.Errorf("metrics.json gate %+v (%v)", m.Gate, err)
	}
}

// TestTrainGateSet: with train.gate_set, `train --install` also scores the
// heads on that folder (read with a feature cache of its own, beside the
// data's, which is held open meanwhile) and says so.
func TestTrainGateSet(t *testing.T) {
	data := trainData(t, 8)
	dir := t.TempDir()
	backbone, _ := testenv.Models(t)
	head := filepath.Join(dir, "head.onnx")
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(b, []byte("  gate_set: "+data+"\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCmd(t, newTrainCmd(), "--config", cfg, "--data", data, "--out", filepath.Join(dir, "out"), "--folds", "2", "--epochs", "1", "--install")
	if err != nil {
		t.Fatalf("train --install: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "gate on the trusted gate set (16 images)") || !strings.Contains(stdout, "on the trusted gate set: the installed head cannot be scored") {
		t.Errorf("output does not report the gate set:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "features", "gate-set")); err != nil {
		t.Errorf("the gate set's feature cache: %v", err)
	}
}

// TestTrainSelfBlend: a folder of real faces alone trains a head when
// --self-blend makes the fakes; without it the folder is refused.
func TestTrainSelfBlend(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	data := trainData(t, 16)
	if err := os.RemoveAll(filepath.Join(data, "fake")); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	backbone, head := testenv.Models(t)
	cfg := writeTrainConfig(t, dir, backbone, head, 0)
	args := []string{"--config", cfg, "--data", data, "--folds", "2", "--epochs", "2", "--batch", "16"}
	if _, _, err := runCmd(t, newTrainCmd(), append(args, "--out", filepath.Join(dir, "refused"))...); err == nil || !strings.Contains(err.Error(), "--self-blend") {
		t.Fatalf("a real-only folder without --self-blend: err = %v, want one pointing at --self-blend", err)
	}
	if _, _, err := runCmd(t, newTrainCmd(), append(args, "--out", filepath.Join(dir, "bad"), "--self-blend=101")...); err == nil || !strings.Contains(err.Error(), "train.self_blend: must be 0..100, got 101") {
		t.Fatalf("--self-blend=101: err = %v", err)
	}
	if _, _, err := runCmd(t, newTrainCmd(), append(args, "--out", filepath.Join(dir, "both"), "--install", "--compare")...); err == nil || !strings.Contains(err.Error(), "choose one") {
		t.Fatalf("--install --compare: err = %v", err)
	}
	installed, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	// --compare: both heads scored on held-out faces and their blends, nothing installed.
	out := filepath.Join(dir, "out")
	stdout, stderr, err := runCmd(t, newTrainCmd(), append(args, "--out", out, "--self-blend", "--compare")...)
	if err != nil {
		t.Fatalf("train --self-blend --compare: %v\n%s", err, stderr)
	}
	if after, _ := os.ReadFile(head); !bytes.Equal(after, installed) || !strings.Contains(stdout, "compared only, nothing installed; the gate would") {
		t.Errorf("--compare changed the installed head (%v) or did not say so:\n%s", !bytes.Equal(after, installed), stdout)
	}
	if !strings.Contains(stderr, "self-blend: 2 fakes made from each real image, 32 in all") || !strings.Contains(stderr, "0 cached, 48 extracted") {
		t.Errorf("stderr lacks the self-blend count or the extraction:\n%s", stderr)
	}
	var metrics struct {
		Data struct {
			Real, Fake, Groups int
			SelfBlend          int `json:"self_blend"`
		}
		CV struct {
			OutOfFold struct{ AUC float64 } `json:"out_of_fold"`
		} `json:"cross_validation"`
		Mix struct {
			Alpha      float64
			Skipped    string
			Candidates []struct{ Alpha float64 }
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "metrics.json"))
	if err := json.Unmarshal(b, &metrics); err != nil {
		t.Fatal(err)
	}
	// Each blend is in its real face's group: 16 groups, not 48.
	if d := metrics.Data; d.Real != 16 || d.Fake != 32 || d.SelfBlend != 2 || d.Groups != 16 {
		t.Errorf("metrics.json data: %+v, want 16 real, 32 self-blended fakes in 16 groups", d)
	}
	if !strings.Contains(stdout, "out-of-fold") {
		t.Errorf("no report table:\n%s", stdout)
	}
	// train.mix auto: a head taught on self-blends is mixed with the installed one.
	if m := metrics.Mix; m.Skipped != "" || len(m.Candidates) != 11 || m.Alpha < 0 || m.Alpha > 1 ||
		!strings.Contains(stdout, "mixed with the installed head: new head weight") {
		t.Errorf("metrics.json mix %+v; stdout:\n%s", m, stdout)
	}
}
