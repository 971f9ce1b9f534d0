//go:build matprofile

package capturetest

import "gocv.io/x/gocv"

// MatCount is the number of open gocv Mats; ok is false without -tags matprofile.
func MatCount() (n int, ok bool) { return gocv.MatProfile.Count(), true }
