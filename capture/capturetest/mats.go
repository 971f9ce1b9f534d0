package capturetest

import "testing"

// CheckMats fails the test at cleanup when gocv Mats made during it are still
// open. It needs `-tags matprofile`; without the tag it checks nothing.
func CheckMats(t testing.TB) {
	t.Helper()
	start, ok := MatCount()
	if !ok {
		return
	}
	t.Cleanup(func() {
		if n, _ := MatCount(); n != start {
			t.Errorf("gocv Mat leak: %d Mats open at the end, %d at the start", n, start)
		}
	})
}
