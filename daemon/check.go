package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/infer/provider"
	"github.com/deepfaked/deepfaked/setup"
)

// CheckLoads loads what New loads before it serves, with the same setup
// calls, and releases it (CheckComponents), and opens each camera once
// (CheckCameras). check-config runs it after CheckFiles, so ExecStartPre
// fails on a corrupt or mismatched model, a non-PEM CA or a key that is not
// the certificate's, as run would, and warns about a camera that gives no
// frames, which run retries while the other cameras run.
func CheckLoads(cfg *config.Config, log *slog.Logger) (warnings []string, err error) {
	if err := CheckComponents(cfg, log); err != nil {
		return nil, err
	}
	warnings = providerWarnings(cfg)
	w, err := CheckCameras(cfg)
	if err != nil {
		return nil, err
	}
	return append(warnings, w...), nil
}

// CheckCameras opens each camera once (ProbeCameras). A camera that gives
// no frame is a warning, because run does not stop for it: it retries that
// camera (a device unplugged, a stream down, a file empty or being
// replaced) while the others run. A decoder whose GStreamer plugin is not
// installed is an error: no retry brings it.
func CheckCameras(cfg *config.Config) (warnings []string, err error) {
	probes, err := ProbeCameras(cfg)
	if err != nil {
		return nil, err
	}
	for _, p := range probes {
		if errors.Is(p.Err, capture.ErrMissingPlugin) {
			return nil, fmt.Errorf("%s: cameras[%d] (%s): %w", cfg.Path, p.Index, p.Name, p.Err)
		}
		if p.Err != nil {
			warnings = append(warnings, fmt.Sprintf("cameras[%d] (%s) gives no frames now; run retries it: %v", p.Index, p.Name, p.Err))
		}
	}
	return warnings, nil
}

// providerWarnings are the GPU providers in model.providers that the runtime
// library lacks: run skips them, so they are not errors.
func providerWarnings(cfg *config.Config) []string {
	if !slices.ContainsFunc(cfg.Model.Providers, func(p string) bool { return p != provider.CPU }) {
		return nil
	}
	have, err := setup.AvailableProviders(cfg)
	if err != nil {
		return []string{fmt.Sprintf("cannot tell which of model.providers %v the runtime has: %v", cfg.Model.Providers, err)}
	}
	var w []string
	for _, p := range cfg.Model.Providers {
		if p != provider.CPU && !slices.Contains(have, p) {
			w = append(w, fmt.Sprintf("model.providers: this ONNX Runtime has no %s provider; run skips it and uses %s", p, strings.Join(have, ", ")))
		}
	}
	return w
}

// CameraProbe is one configured camera opened once.
type CameraProbe struct {
	Index int
	Name  string
	Shown string // the source as logs show it: a URL's password masked
	Live  bool
	// Decoder is how it decodes (capture.Camera.Decoder), once it opened.
	Decoder string
	Err     error // nil: it opened and gave a frame
}

// ProbeCameras opens each configured camera once (capture.Probe), with the
// FFmpeg timeouts run sets.
func ProbeCameras(cfg *config.Config) ([]CameraProbe, error) {
	if err := capture.SetFFmpegEnv(setup.IOTimeout(cfg)); err != nil {
		return nil, fmt.Errorf("%s: capture.io_timeout: %w", cfg.Path, err)
	}
	probes := make([]CameraProbe, 0, len(cfg.Cameras))
	for i, c := range cfg.Cameras {
		p := CameraProbe{Index: i, Name: c.Name, Shown: c.Source}
		if src, err := source.Parse(c.Source); err == nil {
			p.Shown, p.Live = src.String(), src.Live()
		}
		p.Decoder, p.Err = capture.Probe(setup.CameraOptions(cfg.Capture, c))
		probes = append(probes, p)
	}
	return probes, nil
}

// CheckComponents loads the engine, the classifier (a trial face through
// backbone and head, refusing non-finite outputs), the face detector, the
// head installs' signing key, the broker options (password file, TLS
// material) and the page's password file and certificate, as New does, and
// releases them. It opens no camera.
func CheckComponents(cfg *config.Config, log *slog.Logger) error {
	eng, err := setup.Engine(cfg, log)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	defer eng.Close()
	clf, err := setup.Classifier(cfg, eng)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	clf.Close()
	det, err := setup.Detector(cfg, eng)
	if err != nil {
		return fmt.Errorf("%s: faces: %w", cfg.Path, err)
	}
	det.Close()
	if _, err := setup.Signing(cfg); err != nil { // train.signing_key, as installs read it
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	if _, err := setup.MQTTOptions(cfg); err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	if _, err := setup.WebOptions(cfg); err != nil { // the password file and TLS material
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	if cfg.MQTT.Broker == config.EmbeddedBroker {
		if _, err := setup.BrokerOptions(cfg, log); err != nil {
			return fmt.Errorf("%s: %w", cfg.Path, err)
		}
	}
	return nil
}
