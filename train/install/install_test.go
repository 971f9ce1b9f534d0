package install

import (
	"crypto/rand"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"aead.dev/minisign"

	"github.com/deepfaked/deepfaked/infer/modelsig"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// files is the folder's files (temporary ones included) and their contents.
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func wantFiles(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	if got := files(t, dir); !maps.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

// TestInstallRollback: each install keeps the head it replaced; rollback
// undoes installs one at a time, newest first, then says there is nothing
// to undo; the history keeps the newest History heads.
func TestInstallRollback(t *testing.T) {
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	cands := t.TempDir()
	install := func(data string) {
		t.Helper()
		c := filepath.Join(cands, data+".onnx")
		if err := os.WriteFile(c, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Install(c, head, Signing{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := Rollback(head, Signing{}); !errors.Is(err, ErrNothingToUndo) {
		t.Errorf("rollback with nothing installed: %v", err)
	}
	install("A") // over nothing: nothing kept
	wantFiles(t, dir, map[string]string{"head.onnx": "A"})
	if st, err := os.Stat(head); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("installed head mode %v (%v), want 0644", st.Mode(), err)
	}
	install("B")
	install("C")
	wantFiles(t, dir, map[string]string{"head.onnx": "C", "head.onnx.prev.1": "A", "head.onnx.prev.2": "B"})
	if n, err := Kept(head); n != 2 || err != nil {
		t.Errorf("Kept = %d, %v", n, err)
	}
	if err := Rollback(head, Signing{}); err != nil {
		t.Fatal(err)
	}
	wantFiles(t, dir, map[string]string{"head.onnx": "B", "head.onnx.prev.1": "A"})
	if err := Rollback(head, Signing{}); err != nil { // one step further back, not back to C
		t.Fatal(err)
	}
	wantFiles(t, dir, map[string]string{"head.onnx": "A"})
	if err := Rollback(head, Signing{}); !errors.Is(err, ErrNothingToUndo) || !strings.Contains(err.Error(), head) {
		t.Errorf("a third rollback: %v", err)
	}
	wantFiles(t, dir, map[string]string{"head.onnx": "A"})
	if err := Install(filepath.Join(cands, "missing.onnx"), head, Signing{}); err == nil {
		t.Error("installing a missing candidate succeeded")
	}
	for i := range History + 3 {
		install(strconv.Itoa(i))
	}
	got := files(t, dir)
	if len(got) != History+1 || got["head.onnx"] != strconv.Itoa(History+2) || got["head.onnx.prev.4"] != "2" {
		t.Errorf("after %d more installs: %v; want the head and the newest %d replaced", History+3, got, History)
	}
}

// TestInstallInterrupted: a crash at each step of an install or a rollback
// (simulated by leaving the files as that step leaves them) ends, after
// Recover (which Install and Rollback run first), as if the step had
// finished, with no temporary files; an earlier release's <head>.prev joins
// the history.
func TestInstallInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name         string
		before, want map[string]string
	}{
		{"install: after the candidate was written",
			map[string]string{"head.onnx": "H1", "head.onnx.prev.1": "H0", "head.onnx.new": "H2", ".head.onnx.tmp123": "torn"},
			map[string]string{"head.onnx": "H2", "head.onnx.prev.1": "H0", "head.onnx.prev.2": "H1"}},
		{"install: after the replaced head was kept",
			map[string]string{"head.onnx": "H1", "head.onnx.prev.1": "H0", "head.onnx.prev.2": "H1", "head.onnx.new": "H2", ".head.onnx.prev.2.tmp9": "to"},
			map[string]string{"head.onnx": "H2", "head.onnx.prev.1": "H0", "head.onnx.prev.2": "H1"}},
		{"rollback: after the head was written",
			map[string]string{"head.onnx": "H1", "head.onnx.prev.1": "H0", "head.onnx.prev.2": "H1"},
			map[string]string{"head.onnx": "H1", "head.onnx.prev.1": "H0"}},
		{"an earlier release's .prev",
			map[string]string{"head.onnx": "H1", "head.onnx.prev": "H0"},
			map[string]string{"head.onnx": "H1", "head.onnx.prev.1": "H0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.before {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			head := filepath.Join(dir, "head.onnx")
			if err := Recover(head); err != nil {
				t.Fatal(err)
			}
			wantFiles(t, dir, tc.want)
		})
	}
}

// TestLock: one holder at a time, the second told who holds it; released,
// the lock can be taken again.
func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	unlock, err := Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Lock(dir); err == nil || !strings.Contains(err.Error(), "another training is running") || !strings.Contains(err.Error(), LockFile) {
		t.Fatalf("second lock: %v", err)
	}
	unlock()
	again, err := Lock(dir)
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	again()
}

// TestInstallSigning: with a signing key the installed head is the
// candidate signed (the candidate file is left as it is); with trusted keys
// an unsigned head, or one signed by another key, is neither installed nor
// rolled back to, and the head stays as it was.
func TestInstallSigning(t *testing.T) {
	keyPair := func() (modelsig.Keys, *minisign.PrivateKey) {
		pk, sk, err := minisign.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return modelsig.Keys{pk}, &sk
	}
	device, deviceKey := keyPair()
	_, otherKey := keyPair()
	_, model := testenv.Models(t)
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	cand := filepath.Join(t.TempDir(), "candidate.onnx")
	if err := os.WriteFile(cand, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Install(cand, head, Signing{Keys: device}); !errors.Is(err, modelsig.ErrUnsigned) {
		t.Fatalf("unsigned head installed where keys are trusted: %v", err)
	}
	if _, err := os.Stat(head); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused install left a head: %v", err)
	}
	if err := Install(cand, head, Signing{Keys: device, Key: otherKey}); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("head signed by an untrusted key: %v", err)
	}
	if err := Install(cand, head, Signing{Keys: device, Key: deviceKey, Release: "trained on device d1"}); err != nil {
		t.Fatal(err)
	}
	s, err := modelsig.CheckFile(head, device, modelsig.Head)
	if err != nil || s.Release != "trained on device d1" {
		t.Fatalf("installed head: %+v %v", s, err)
	}
	if b, _ := os.ReadFile(cand); string(b) != string(data) {
		t.Fatal("the candidate file was changed")
	}
	// A second install keeps the signed head; rolling back to it passes,
	// rolling back to a head kept from before (unsigned) does not.
	if err := Install(cand, head, Signing{Keys: device, Key: deviceKey}); err != nil {
		t.Fatal(err)
	}
	if err := Rollback(head, Signing{Keys: device}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(historyPath(head, 1), data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := files(t, dir)
	if err := Rollback(head, Signing{Keys: device}); !errors.Is(err, modelsig.ErrUnsigned) {
		t.Fatalf("rolled back to an unsigned head: %v", err)
	}
	wantFiles(t, dir, before)
}
