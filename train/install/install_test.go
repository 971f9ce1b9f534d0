package install

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstallRollback(t *testing.T) {
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	want := func(path, data string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if data == "" {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists (%q, %v), want none", filepath.Base(path), b, err)
			}
			return
		}
		if err != nil || string(b) != data {
			t.Errorf("%s = %q (%v), want %q", filepath.Base(path), b, err, data)
		}
	}
	prev := PrevPath(head)

	if err := Rollback(head); err == nil || !strings.Contains(err.Error(), "no previous head") {
		t.Errorf("rollback with nothing installed: %v", err)
	}
	// First install over nothing: no .prev.
	if err := Install(write("a.onnx", "A"), head); err != nil {
		t.Fatal(err)
	}
	want(head, "A")
	want(prev, "")
	if st, err := os.Stat(head); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("installed head mode %v (%v), want 0644", st.Mode(), err)
	}
	if err := Install(write("b.onnx", "B"), head); err != nil {
		t.Fatal(err)
	}
	want(head, "B")
	want(prev, "A")
	if err := Rollback(head); err != nil {
		t.Fatal(err)
	}
	want(head, "A")
	want(prev, "B")
	if err := Rollback(head); err != nil { // swaps back
		t.Fatal(err)
	}
	want(head, "B")
	want(prev, "A")
	if err := Install(filepath.Join(dir, "missing.onnx"), head); err == nil {
		t.Error("installing a missing candidate succeeded")
	}
	want(head, "B")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temp file %s left behind", e.Name())
		}
	}
}

// TestInstallInterrupted: a crash at each step of an install (simulated by
// leaving the files as that step leaves them) ends, after Recover (which
// Install and Rollback run first), with the new head installed, the one it
// replaced as the previous one, and no temporary files.
func TestInstallInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		head, prv string // on disk when the crash happened
	}{
		{"after the candidate was written", "H1", "H0"},
		{"after the previous head was replaced", "H1", "H1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			head := filepath.Join(dir, "head.onnx")
			for p, data := range map[string]string{head: tc.head, PrevPath(head): tc.prv, pendingPath(head): "H2",
				filepath.Join(dir, ".head.onnx.tmp123"): "torn", filepath.Join(dir, ".head.onnx.prev.tmp9"): "to"} {
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := Recover(head); err != nil {
				t.Fatal(err)
			}
			for p, want := range map[string]string{head: "H2", PrevPath(head): "H1"} {
				if b, err := os.ReadFile(p); err != nil || string(b) != want {
					t.Errorf("%s = %q (%v), want %q", filepath.Base(p), b, err, want)
				}
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 2 {
				t.Errorf("files left: %v", ents)
			}
			if err := Rollback(head); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(head); string(b) != "H1" {
				t.Errorf("rollback after recovery: head %q, want H1 (the head the install replaced)", b)
			}
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
