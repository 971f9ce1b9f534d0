// Package source parses camera source strings (V4L2 device, video file,
// network stream or GStreamer pipeline). It is pure Go so that the config can
// check sources without pulling OpenCV in; package capture opens them.
package source

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// Kind is the type of a frame source.
type Kind int

// Source kinds.
const (
	Device    Kind = iota + 1 // a V4L2 device: /dev/videoN or a bare index
	File                      // a video file
	Stream                    // an rtsp(s):// or http(s):// URL
	GStreamer                 // a GStreamer pipeline ending in appsink (gst: prefix)
)

func (k Kind) String() string {
	switch k {
	case Device:
		return "device"
	case File:
		return "file"
	case Stream:
		return "stream"
	case GStreamer:
		return "gstreamer"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Source is a parsed camera source.
type Source struct {
	Kind Kind
	// Target is what OpenCV opens: the device path, file path, URL or pipeline
	// (without the gst: prefix). Empty for a device given by index.
	Target string
	// Index is the V4L2 device index when the source was a bare integer, else -1.
	Index int
}

// Live reports whether frames arrive in real time (everything but a file).
func (s Source) Live() bool { return s.Kind != File }

// String is the source for logs and errors: a URL's password is masked.
func (s Source) String() string {
	switch {
	case s.Kind == Stream:
		if u, err := url.Parse(s.Target); err == nil {
			return u.Redacted()
		}
	case s.Kind == Device && s.Target == "":
		return strconv.Itoa(s.Index)
	case s.Kind == GStreamer:
		return gstPrefix + s.Target
	}
	return s.Target
}

// Mask replaces the source's target in msg (an error from OpenCV repeats
// what it opened) with String's form, so a URL's password never reaches a log.
func (s Source) Mask(msg string) string {
	if shown := s.String(); s.Target != "" && shown != s.Target {
		return strings.ReplaceAll(msg, s.Target, shown)
	}
	return msg
}

const gstPrefix = "gst:"

// maxDeviceIndex bounds bare device indexes; V4L2 numbers are small and a huge
// number is far more likely a typo than a camera.
const maxDeviceIndex = 4095

var streamSchemes = []string{"rtsp", "rtsps", "http", "https"}

// Parse classifies a camera source string.
func Parse(s string) (Source, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return Source{}, errors.New("empty camera source: want /dev/videoN, a device index, a video file, an rtsp(s):// or http(s):// URL, or gst:<pipeline>")
	}
	if i := strings.IndexFunc(t, func(r rune) bool { return r == unicode.ReplacementChar || (unicode.IsControl(r) && r != '\t') }); i >= 0 {
		return Source{}, fmt.Errorf("camera source %q has a control or invalid character at byte %d", s, i)
	}
	if rest, ok := cutPrefixFold(t, gstPrefix); ok {
		p := strings.TrimSpace(rest)
		if p == "" {
			return Source{}, fmt.Errorf("camera source %q: empty GStreamer pipeline after gst:", s)
		}
		// OpenCV can only pull frames from a pipeline that ends in an appsink.
		if !strings.Contains(p, "appsink") {
			return Source{}, fmt.Errorf("camera source %q: GStreamer pipeline must end in appsink", s)
		}
		return Source{Kind: GStreamer, Target: p, Index: -1}, nil
	}
	if strings.Contains(t, "://") {
		u, err := url.Parse(t)
		if err != nil {
			return Source{}, fmt.Errorf("camera source %q: bad URL: %w", s, err)
		}
		scheme := strings.ToLower(u.Scheme)
		ok := false
		for _, sc := range streamSchemes {
			ok = ok || scheme == sc
		}
		if !ok {
			return Source{}, fmt.Errorf("camera source %q: unsupported URL scheme %q (allowed: %s)", s, u.Scheme, strings.Join(streamSchemes, ", "))
		}
		if u.Host == "" {
			return Source{}, fmt.Errorf("camera source %q: URL has no host", s)
		}
		return Source{Kind: Stream, Target: t, Index: -1}, nil
	}
	if isDigits(t) {
		n, err := strconv.Atoi(t)
		if err != nil || n > maxDeviceIndex {
			return Source{}, fmt.Errorf("camera source %q: device index out of range 0..%d", s, maxDeviceIndex)
		}
		return Source{Kind: Device, Index: n}, nil
	}
	if strings.HasPrefix(t, "-") && isDigits(t[1:]) {
		return Source{}, fmt.Errorf("camera source %q: device index must not be negative", s)
	}
	if strings.HasPrefix(t, "/dev/") {
		if len(t) == len("/dev/") || strings.HasSuffix(t, "/") {
			return Source{}, fmt.Errorf("camera source %q: device path names no device", s)
		}
		return Source{Kind: Device, Target: t, Index: -1}, nil
	}
	if strings.HasSuffix(t, "/") {
		return Source{}, fmt.Errorf("camera source %q: is a folder, not a video file", s)
	}
	return Source{Kind: File, Target: t, Index: -1}, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
