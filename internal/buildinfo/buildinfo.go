// Package buildinfo says which build of deepfaked is running, for `version`,
// the deepfaked_build_info metric and Home Assistant's sw_version.
package buildinfo

import "runtime"

// version is set by the linker (-ldflags "-X
// github.com/deepfaked/deepfaked/internal/buildinfo.version=...", the
// Makefile's VERSION) and never written at run time.
var version = "dev"

// Version is the build's version: `git describe` for a make build, "dev"
// for a plain go build.
func Version() string { return version }

// GoVersion is the Go release that built it.
func GoVersion() string { return runtime.Version() }
