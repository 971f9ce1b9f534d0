package collect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/deepfaked/deepfaked/contract"
)

// MaxLabelCommand is the largest label command payload accepted, in bytes.
const MaxLabelCommand = 1024

// LabelCommand is the payload of the MQTT command <prefix>/cmd/label:
// {"camera":"cam1","frame":123,"label":"fake"}.
type LabelCommand struct {
	Camera string `json:"camera"`
	Frame  int64  `json:"frame"`
	Label  string `json:"label"`
}

// ParseLabelCommand reads a label command strictly: one JSON object of at
// most MaxLabelCommand bytes with exactly the keys camera (a camera name,
// [A-Za-z0-9_-]+), frame (an integer >= 0) and label (real or fake), each
// once, and nothing after it.
func ParseLabelCommand(payload []byte) (LabelCommand, error) {
	var c LabelCommand
	if len(payload) > MaxLabelCommand {
		return c, fmt.Errorf("label command: %d bytes, at most %d allowed", len(payload), MaxLabelCommand)
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return c, errors.New(`label command: want a JSON object {"camera":…,"frame":…,"label":…}`)
	}
	seen := map[string]bool{}
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return c, fmt.Errorf("label command: %w", err)
		}
		key, _ := t.(string) // object keys are always strings
		if seen[key] {
			return c, fmt.Errorf("label command: key %q given twice", key)
		}
		seen[key] = true
		if t, err = d.Token(); err != nil {
			return c, fmt.Errorf("label command: %s: %w", key, err)
		}
		if _, delim := t.(json.Delim); delim {
			return c, fmt.Errorf("label command: %s must not be an object or array", key)
		}
		switch key {
		case "camera":
			s, ok := t.(string)
			if !ok {
				return c, fmt.Errorf("label command: camera must be a string, got %v", t)
			}
			if !contract.ValidName(s) {
				return c, fmt.Errorf("label command: camera %q may only hold letters, digits, _ and -", s)
			}
			c.Camera = s
		case "frame":
			n, ok := t.(json.Number)
			if !ok {
				return c, fmt.Errorf("label command: frame must be a number, got %v", t)
			}
			f, err := strconv.ParseInt(n.String(), 10, 64)
			if err != nil {
				return c, fmt.Errorf("label command: frame %s is not a whole number in range", n)
			}
			if f < 0 {
				return c, fmt.Errorf("label command: frame %d is negative", f)
			}
			c.Frame = f
		case "label":
			s, ok := t.(string)
			if !ok {
				return c, fmt.Errorf("label command: label must be a string, got %v", t)
			}
			if err := checkLabel(s); err != nil {
				return c, fmt.Errorf("label command: %w", err)
			}
			c.Label = s
		default:
			return c, fmt.Errorf("label command: unknown key %q (allowed: camera, frame, label)", key)
		}
	}
	if _, err := d.Token(); err != nil { // the closing brace
		return c, fmt.Errorf("label command: %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return c, errors.New("label command: data after the JSON object")
	}
	for _, k := range []string{"camera", "frame", "label"} {
		if !seen[k] {
			return c, fmt.Errorf("label command: key %q is missing", k)
		}
	}
	return c, nil
}
