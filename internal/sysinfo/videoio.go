package sysinfo

import (
	"bufio"
	"strings"
)

// VideoBackend is one line of the "Video I/O:" section of OpenCV's build
// information, e.g. "FFMPEG: YES" or "GStreamer: YES (1.22.0)".
type VideoBackend struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Detail  string `json:"detail,omitempty"` // what follows YES/NO, e.g. a version
}

// VideoBackends parses the "Video I/O:" section of OpenCV's build
// information: its top-level entries only (FFMPEG's avcodec, avformat...
// sub-lines are indented deeper and skipped). Nil when there is no such section.
func VideoBackends(buildInfo string) []VideoBackend {
	var (
		out     []VideoBackend
		in      bool
		entryIn int // indentation of the section's entries
	)
	sc := bufio.NewScanner(strings.NewReader(buildInfo))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if !in {
			if trimmed == "Video I/O:" {
				in, entryIn = true, -1
			}
			continue
		}
		if trimmed == "" {
			break // sections are separated by a blank line
		}
		if entryIn < 0 {
			entryIn = indent
		}
		if indent < entryIn {
			break
		}
		if indent > entryIn {
			continue
		}
		name, value, ok := strings.Cut(trimmed, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		b := VideoBackend{Name: strings.TrimSpace(name)}
		switch {
		case strings.HasPrefix(value, "YES"):
			b.Enabled, b.Detail = true, strings.TrimSpace(strings.TrimPrefix(value, "YES"))
		case strings.HasPrefix(value, "NO"):
			b.Detail = strings.TrimSpace(strings.TrimPrefix(value, "NO"))
		default:
			// Some builds name the library instead of YES, e.g. "FFMPEG: /usr/lib/...".
			b.Enabled, b.Detail = true, value
		}
		b.Detail = strings.TrimSuffix(strings.TrimPrefix(b.Detail, "("), ")")
		out = append(out, b)
	}
	return out
}
