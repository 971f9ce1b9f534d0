//go:build !matprofile

package capturetest

// MatCount is the number of open gocv Mats; ok is false without -tags matprofile.
func MatCount() (n int, ok bool) { return 0, false }
