package daemon_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestDiscoveryRetired: Home Assistant's retained discovery configs follow
// the config across restarts against one mosquitto: a camera renamed has its
// old entities removed (empty retained configs), and discovery turned off
// removes them all; what a subscriber arriving later finds is only what the
// last run announced.
func TestDiscoveryRetired(t *testing.T) {
	broker := testenv.Mosquitto(t)
	path := writeConfig(t, "127.0.0.1:0", shortClip(t), true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	base := regexp.MustCompile(`(?m)^  broker: embedded\n  listen: .*$`).ReplaceAllString(string(b), "  broker: "+broker+"\n  homeassistant:\n    enabled: ENABLED")
	base = regexp.MustCompile(`(?m)^state_dir: .*$`).ReplaceAllString(base, "state_dir: "+state)
	run := func(camera string, enabled bool) {
		t.Helper()
		y := strings.Replace(base, "name: cam1", "name: "+camera, 1)
		y = strings.Replace(y, "ENABLED", map[bool]string{true: "true", false: "false"}[enabled], 1)
		p := filepath.Join(t.TempDir(), "deepfaked.yaml")
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := daemon.New(context.Background(), load(t, p), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil { // waits for the outbox to be acknowledged
			t.Fatal(err)
		}
	}
	retained := func() []string { // discovery topics with a config, as a new subscriber sees them
		t.Helper()
		var out []string
		for topic, p := range testenv.Retained(t, broker, "homeassistant") {
			if len(p) > 0 {
				out = append(out, topic)
			}
		}
		sort.Strings(out)
		return out
	}
	// The daemon's own entities have object ids without "_"; a camera's are <camera>_<entity>.
	daemonOnes := func(topics []string) int {
		n := 0
		for _, topic := range topics {
			if !strings.Contains(strings.Split(topic, "/")[3], "_") {
				n++
			}
		}
		return n
	}
	cams := func(topics []string) []string {
		var out []string
		for _, topic := range topics {
			obj := strings.Split(topic, "/")[3] // <camera>_<entity>
			if !strings.Contains(obj, "_") {
				continue
			}
			cam := obj[:strings.LastIndex(obj, "_")]
			if !slices.Contains(out, cam) {
				out = append(out, cam)
			}
		}
		return out
	}

	run("front", true)
	if got := retained(); len(got) < 3+3 || daemonOnes(got) != 3 || !slices.Equal(cams(got), []string{"front"}) {
		t.Fatalf("after the first run: %v; want front's configs and the daemon's 3", got)
	}
	perCamera := len(retained()) - 3
	// The device says which build made it (a go test build is "dev").
	for topic, p := range testenv.Retained(t, broker, "homeassistant") {
		var c struct {
			Device struct {
				SWVersion string `json:"sw_version"`
			} `json:"device"`
		}
		if err := json.Unmarshal(p, &c); err != nil || c.Device.SWVersion != buildinfo.Version() {
			t.Errorf("%s: device sw_version %q (%v); want %q", topic, c.Device.SWVersion, err, buildinfo.Version())
		}
	}
	run("back", true)
	if got := retained(); len(got) != perCamera+3 || daemonOnes(got) != 3 || !slices.Equal(cams(got), []string{"back"}) {
		t.Fatalf("after renaming front to back: %v; want only back's %d configs and the daemon's 3", got, perCamera)
	}
	run("back", false)
	if got := retained(); len(got) != 0 {
		t.Fatalf("after turning discovery off: %v; want none", got)
	}
	if _, err := os.Stat(filepath.Join(state, "homeassistant.json")); !os.IsNotExist(err) {
		t.Errorf("homeassistant.json after discovery was turned off: %v; want it gone", err)
	}
}
