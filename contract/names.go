package contract

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameLen bounds a device id or camera name.
const MaxNameLen = 64

// ValidName is the rule for device ids and camera names: [A-Za-z0-9_-]+, at
// most MaxNameLen bytes. Such a name is one MQTT topic level, a file name,
// and a Home Assistant node_id or object_id, each without escaping.
func ValidName(s string) bool {
	if len(s) > MaxNameLen {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return s != ""
}

// CheckPrefix says what is wrong with a topic prefix (mqtt.topic_prefix), or
// nil: the topics under it must be publishable and must not be the broker's.
func CheckPrefix(p string) error {
	if strings.HasPrefix(p, "$") {
		return errors.New("must not start with $ (reserved for the broker)")
	}
	if strings.HasSuffix(p, "/") {
		return errors.New("must not end with /")
	}
	return checkLevels(p)
}

// CheckDiscoveryPrefix says what is wrong with a Home Assistant discovery
// prefix, or nil.
func CheckDiscoveryPrefix(p string) error {
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return errors.New("must not start or end with /")
	}
	return checkLevels(p)
}

// checkLevels is what every topic prefix must be: not empty, no wildcards,
// no empty level in the middle.
func checkLevels(p string) error {
	switch {
	case p == "":
		return errors.New("must not be empty")
	case strings.ContainsAny(p, "+#\x00"):
		return errors.New("must not contain the wildcards + or #")
	case strings.Contains(p, "//"):
		return errors.New("must not hold an empty level (//)")
	}
	return nil
}

// CheckCameraName says what is wrong with a camera name, or nil: ValidName,
// and not a level the daemon uses under its prefix (<prefix>/cmd/... are
// commands; a camera called cmd would have its own topics read as commands).
func CheckCameraName(name string) error {
	if !ValidName(name) {
		return errors.New("may only hold letters, digits, _ and - (it goes into MQTT topics)")
	}
	switch name {
	case levelCommands, levelStatus, levelStats:
		return fmt.Errorf("is reserved: <prefix>/%s is the daemon's own topic", name)
	}
	return nil
}
