package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// cli runs deepfaked with args and returns its output and whether it exited 0.
func cli(t *testing.T, args ...string) (string, bool) {
	t.Helper()
	out, err := exec.Command(deepfaked(t), args...).CombinedOutput()
	if _, exit := err.(*exec.ExitError); err != nil && !exit {
		t.Fatal(err)
	}
	return string(out), err == nil
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, ok := cli(t, args...)
	if !ok {
		t.Fatalf("deepfaked %s: %s", strings.Join(args, " "), out)
	}
	return out
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, src, dst)
}

// keyID is the key id `release keygen` printed in the .pub file's comment.
func keyID(t *testing.T, pub string) string {
	t.Helper()
	b, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return first[strings.LastIndex(first, " ")+1:]
}

// TestSignedModels: the operator's commands (release keygen, sign, verify)
// and every place a device takes a model with model.trusted_keys set:
// check-config and run refuse an unsigned head, naming it and the trusted
// key, and check-config a signing key the trusted keys leave out; a daemon started on signed models refuses on SIGHUP a head signed by
// a key it does not trust and a signed head changed afterwards, and keeps
// serving its head; rollback does not put back a kept head no trusted key
// signed.
func TestSignedModels(t *testing.T) {
	testenv.Long(t)
	dir := t.TempDir()
	fleet, other := filepath.Join(dir, "keys", "fleet"), filepath.Join(dir, "keys", "other")
	mustCLI(t, "release", "keygen", "--out", fleet)
	mustCLI(t, "release", "keygen", "--out", other)
	if out, ok := cli(t, "release", "keygen", "--out", fleet); ok || !strings.Contains(out, "not overwritten") {
		t.Fatalf("keygen over an existing key: %s", out)
	}
	if info, err := os.Stat(fleet + ".key"); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret key mode %v (%v)", info.Mode(), err)
	}
	fleetID, otherID := keyID(t, fleet+".pub"), keyID(t, other+".pub")

	backbone, head := testenv.Models(t)
	models := filepath.Join(dir, "models")
	copyFile(t, backbone, filepath.Join(models, "backbone.onnx"))
	copyFile(t, head, filepath.Join(models, "head.onnx"))
	copyFile(t, head, filepath.Join(dir, "unsigned", "head.onnx"))
	copyFile(t, head, filepath.Join(dir, "other", "head.onnx"))
	out := mustCLI(t, "release", "sign", "--key", fleet+".key", "--release", "test release 2", filepath.Join(models, "backbone.onnx"), filepath.Join(models, "head.onnx"))
	if !strings.Contains(out, "signed as a backbone by key "+fleetID) || !strings.Contains(out, "signed as a head by key "+fleetID) {
		t.Fatalf("sign: %s", out)
	}
	mustCLI(t, "release", "sign", "--key", other+".key", filepath.Join(dir, "other", "head.onnx"))
	out = mustCLI(t, "release", "verify", "--trusted", fleet+".pub", filepath.Join(models, "backbone.onnx"), filepath.Join(models, "head.onnx"))
	if !strings.Contains(out, "head signed by key "+fleetID) || !strings.Contains(out, "for test release 2") {
		t.Fatalf("verify: %s", out)
	}
	if out, ok := cli(t, "release", "verify", "--trusted", other+".pub", filepath.Join(models, "head.onnx")); ok || !strings.Contains(out, "signed by key "+fleetID+", which is not trusted (trusted: "+otherID+")") {
		t.Fatalf("verify with another key: %s", out)
	}

	broker := testenv.Mosquitto(t)
	config := func(head string) string {
		cfg := reloadConfig(t, broker, head, "  watch_head: false", "  trusted_keys: ["+fleet+".pub]")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), "  backbone: "+backbone, "  backbone: "+filepath.Join(models, "backbone.onnx"), 1))
		if err := os.WriteFile(cfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	unsigned := config(filepath.Join(dir, "unsigned", "head.onnx"))
	for _, cmd := range []string{"check-config", "run"} {
		out, ok := cli(t, cmd, "--config", unsigned)
		if ok || !strings.Contains(out, filepath.Join(dir, "unsigned", "head.onnx")+" is unsigned") || !strings.Contains(out, fleetID) {
			t.Fatalf("%s with an unsigned head: %s", cmd, out)
		}
	}

	// A device key the trusted keys leave out would sign heads the device refuses.
	b, err := os.ReadFile(config(filepath.Join(models, "head.onnx")))
	if err != nil {
		t.Fatal(err)
	}
	untrustedSigner := filepath.Join(dir, "untrusted-signer.yaml")
	if err := os.WriteFile(untrustedSigner, append(b, []byte("train:\n  signing_key: "+other+".key\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, ok := cli(t, "check-config", "--config", untrustedSigner); ok || !strings.Contains(out, "train.signing_key: key "+otherID+" is not one of model.trusted_keys") {
		t.Fatalf("check-config with an untrusted signing key: %s", out)
	}

	live := filepath.Join(models, "head.onnx")
	signedID := fileID(t, live)
	cfg := config(live)
	mustCLI(t, "check-config", "--config", cfg)
	sub := subscribe(t, broker, "deepfaked/hup/cam1/verdict")
	r := startRun(t, cfg)
	r.waitReady(t)
	r.waitLog(t, "models signed by a trusted key")

	keep := filepath.Join(dir, "signed-head.onnx")
	copyFile(t, live, keep)
	replaceFile(t, filepath.Join(dir, "other", "head.onnx"), live)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, "which is not trusted")
	tampered, err := os.ReadFile(keep)
	if err != nil {
		t.Fatal(err)
	}
	tampered[len(tampered)/2] ^= 0x10 // a weight of the signed head
	if err := os.WriteFile(filepath.Join(dir, "tampered.onnx"), tampered, 0o644); err != nil {
		t.Fatal(err)
	}
	replaceFile(t, filepath.Join(dir, "tampered.onnx"), live)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, "does not match the file")
	keepsServing(t, r, sub, signedID)
	r.stop(t)

	// A head kept by an install before the device stopped trusting its key.
	replaceFile(t, keep, live)
	copyFile(t, filepath.Join(dir, "other", "head.onnx"), live+".prev.1")
	if out, ok := cli(t, "rollback", "--config", cfg); ok || !strings.Contains(out, "which is not trusted") {
		t.Fatalf("rollback to a head signed by an untrusted key: %s", out)
	}
	if fileID(t, live) != signedID {
		t.Fatal("the refused rollback changed the head")
	}
}
