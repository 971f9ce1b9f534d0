package daemon

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/web"
)

// TestPageInstallsOnlyWithGateSet: without train.gate_set the page's trainer
// starts no install training and installs no head, saying why; with it, it
// installs and a rollback undoes the install.
func TestPageInstallsOnlyWithGateSet(t *testing.T) {
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	cand := filepath.Join(dir, "candidate.onnx")
	for p, data := range map[string]string{head: "installed", cand: "candidate"} {
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &config.Config{Path: filepath.Join(dir, "deepfaked.yaml"), StateDir: dir, Model: config.Model{Head: head}}
	tr, err := newExecTrainer(cfg, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Train(t.Context(), web.TrainRequest{}, func(web.Progress) {}); !errors.Is(err, errNoGateSet) {
		t.Errorf("Train without train.gate_set: %v", err)
	}
	if _, err := tr.Install(t.Context(), cand); !errors.Is(err, errNoGateSet) || !strings.Contains(err.Error(), "train.gate_set") {
		t.Errorf("Install without train.gate_set: %v", err)
	}
	if b, _ := os.ReadFile(head); string(b) != "installed" {
		t.Fatalf("head %q after a refused install", b)
	}
	cfg.Train.GateSet = dir
	if tr, err = newExecTrainer(cfg, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if msg, err := tr.Install(t.Context(), cand); err != nil || !strings.Contains(msg, "rollback puts the replaced head back") {
		t.Fatalf("Install with train.gate_set: %q, %v", msg, err)
	}
	if msg, err := tr.Rollback(t.Context()); err != nil || !strings.Contains(msg, "0 earlier install(s) left") {
		t.Fatalf("Rollback: %q, %v", msg, err)
	}
	if b, _ := os.ReadFile(head); string(b) != "installed" {
		t.Errorf("head %q after the rollback", b)
	}
}
