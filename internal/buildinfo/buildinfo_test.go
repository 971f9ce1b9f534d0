package buildinfo

import (
	"runtime"
	"testing"
)

// TestDefaults: a plain go build (as tests are) says "dev" and its Go release.
func TestDefaults(t *testing.T) {
	if Version() != "dev" || GoVersion() != runtime.Version() {
		t.Fatalf("Version %q, GoVersion %q", Version(), GoVersion())
	}
}
