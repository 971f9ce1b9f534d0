// Package testenv finds the real parts tests run against: the repository root,
// the shared test data, the ONNX Runtime library, free loopback ports and a
// mosquitto broker started for the test.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/daemon/outbox"
)

// RepoRoot is the folder holding go.mod, found by walking up from the working directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's working directory")
		}
		dir = parent
	}
}

// SharedDir is the shared test-data folder ($DEEPFAKED_TESTDATA, else ../shared
// beside the repository) and whether it is there, for tests that fall back to
// data of their own.
func SharedDir(t testing.TB) (string, bool) {
	t.Helper()
	dir := os.Getenv("DEEPFAKED_TESTDATA")
	if dir == "" {
		dir = filepath.Join(RepoRoot(t), "..", "shared")
	}
	_, err := os.Stat(filepath.Join(dir, "README.md"))
	return dir, err == nil
}

// Shared is SharedDir for tests that need it: they skip with a clear message when it is absent.
func Shared(t testing.TB) string {
	t.Helper()
	dir, ok := SharedDir(t)
	if !ok {
		t.Skipf("shared test data not found at %s (set DEEPFAKED_TESTDATA): skipping a test that needs real faces, videos or trained weights", dir)
	}
	return dir
}

// SharedFile is Shared joined with rel; it skips when that file is missing.
func SharedFile(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Shared(t), rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test file %s missing: %v", p, err)
	}
	return p
}

// ORTLibrary is the ONNX Runtime library that `make deps` extracted. Tests fail
// (not skip) without it: it is part of the project's own set-up.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("DEEPFAKED_ORT_LIB"); p != "" {
		return p
	}
	p := filepath.Join(RepoRoot(t), "third_party", "onnxruntime", "libonnxruntime.so.1")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ONNX Runtime library missing at %s: run `make deps`", p)
	}
	return p
}

// Models returns the tests' own float models, random weights that `make
// testmodels` exports into build/testmodels (not models/, which holds the
// shipped model or the user's); tests fail without them.
func Models(t testing.TB) (backbone, head string) {
	t.Helper()
	return testModel(t, "backbone.onnx"), testModel(t, "head.onnx")
}

// INT8Backbone returns the tests' quantised backbone (build/testmodels),
// quantised from Models' backbone as `make models WEIGHTS=…` does.
func INT8Backbone(t testing.TB) string {
	t.Helper()
	return testModel(t, "backbone.int8.onnx")
}

func testModel(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "build", "testmodels", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test model %s missing: run `make testmodels`", p)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Mosquitto starts Debian's mosquitto on a free loopback port for the test and
// returns its tcp:// URL. It is stopped when the test ends.
func Mosquitto(t testing.TB) string {
	t.Helper()
	return StartMosquitto(t, "").URL()
}

// Outbox opens an outbox in a folder of the test's own for a publisher
// (mqttc.Options.Outbox); it is closed when the test ends.
func Outbox(t testing.TB) *outbox.Outbox {
	t.Helper()
	b, err := outbox.Open(outbox.Options{Dir: t.TempDir(), MaxBytes: 64 << 20, Fsync: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Long marks a test that takes seconds (a model, a daemon, a broker outage,
// a video): `make test-short` (go test -short), the edit-test loop, skips
// it; `make test` runs every test.
func Long(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("takes seconds: -short skips it, make test runs it")
	}
}
