package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/hass"
	"github.com/deepfaked/deepfaked/internal/atomicfile"
)

// discoveryFile, in the state directory, records what was last announced to
// Home Assistant.
const discoveryFile = "homeassistant.json"

// announced is discoveryFile's content.
type announced struct {
	DiscoveryPrefix string   `json:"discovery_prefix"`
	DeviceID        string   `json:"device_id"`
	Cameras         []string `json:"cameras"`
}

// retainedPublisher publishes retained messages through the outbox.
type retainedPublisher interface {
	PublishRetained(topic string, payload []byte) error
}

// retireDiscovery removes from Home Assistant what an earlier run announced
// and this one does not (a camera dropped from the config, discovery turned
// off, another discovery prefix or device id: then the daemon's device too): retained configs outlive the
// daemon, and Home Assistant would show those entities as unavailable for
// ever. It publishes empty retained configs on their topics, through the
// outbox, and records what this run announces.
func retireDiscovery(cfg *config.Config, pub retainedPublisher, log *slog.Logger) error {
	path := filepath.Join(cfg.StateDir, discoveryFile)
	var prev announced
	switch b, err := os.ReadFile(path); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("mqtt.homeassistant: %w", err)
	default:
		if err := json.Unmarshal(b, &prev); err != nil {
			log.Warn("mqtt.homeassistant: what was announced before is unreadable; nothing retired", "file", path, "err", err)
			prev = announced{}
		}
	}
	ha := cfg.MQTT.HomeAssistant
	var cur announced
	if ha.Enabled {
		cur = announced{DiscoveryPrefix: ha.DiscoveryPrefix, DeviceID: cfg.DeviceID}
		for _, c := range cfg.Cameras {
			cur.Cameras = append(cur.Cameras, c.Name)
		}
	}
	stale := prev.Cameras
	if prev.DiscoveryPrefix == cur.DiscoveryPrefix && prev.DeviceID == cur.DeviceID {
		stale = slices.DeleteFunc(slices.Clone(prev.Cameras), func(c string) bool { return slices.Contains(cur.Cameras, c) })
	}
	removals := hass.Removals(hass.Options{DiscoveryPrefix: prev.DiscoveryPrefix, DeviceID: prev.DeviceID, Cameras: stale})
	if prev.DiscoveryPrefix != cur.DiscoveryPrefix || prev.DeviceID != cur.DeviceID { // the daemon's own device moved or went
		removals = append(removals, hass.DaemonRemovals(hass.Options{DiscoveryPrefix: prev.DiscoveryPrefix, DeviceID: prev.DeviceID})...)
	}
	for _, m := range removals {
		if err := pub.PublishRetained(m.Topic, m.Payload); err != nil {
			return fmt.Errorf("mqtt.homeassistant: retire %s: %w", m.Topic, err)
		}
	}
	if len(stale) > 0 {
		log.Info("removed from Home Assistant: cameras an earlier run announced", "cameras", stale, "discovery_prefix", prev.DiscoveryPrefix)
	}
	if !ha.Enabled {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mqtt.homeassistant: %w", err)
		}
		return nil
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return err
	}
	if err := atomicfile.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("state_dir: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o640); err != nil {
		return fmt.Errorf("mqtt.homeassistant: %w", err)
	}
	return nil
}
