package testenv

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Deps returns the packages pkg builds on, directly or not, outside the
// standard library (pkg itself included), each with its number of cgo
// files: `go list -deps`. Tests use it to keep a package free of cgo.
func Deps(t testing.TB, pkg string) map[string]int {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{if not .Standard}}{{.ImportPath}} {{len .CgoFiles}}{{end}}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	deps := map[string]int{}
	for line := range strings.Lines(strings.TrimSpace(string(out))) {
		name, n, ok := strings.Cut(strings.TrimSpace(line), " ")
		cgo, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("go list -deps %s: unexpected line %q", pkg, line)
		}
		deps[name] = cgo
	}
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s printed nothing", pkg)
	}
	return deps
}
