package daemon

import (
	"fmt"
	"log/slog"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/setup"
)

// CheckLoads loads what New loads before it serves, with the same setup
// calls, and releases it: the engine, the classifier (a trial face through
// backbone and head, refusing non-finite outputs), the face detector, and the
// broker options (password file, TLS material), the page's password file
// and certificate; and it opens each camera
// once (capture.Probe): a video file that does not open or has no frame is an
// error, a live camera that does not open now is a warning (run retries it).
// check-config runs it after CheckFiles, so ExecStartPre fails on a corrupt or
// mismatched model, a non-PEM CA or a key that is not the certificate's, as
// run would.
func CheckLoads(cfg *config.Config, log *slog.Logger) (warnings []string, err error) {
	if err := checkLoads(cfg, log); err != nil {
		return nil, err
	}
	if err := capture.SetFFmpegEnv(setup.IOTimeout(cfg)); err != nil {
		return nil, fmt.Errorf("%s: capture.io_timeout: %w", cfg.Path, err)
	}
	for i, c := range cfg.Cameras {
		o := setup.CameraOptions(c)
		err := capture.Probe(o)
		switch src, _ := source.Parse(o.Source); {
		case err == nil:
		case src.Live():
			warnings = append(warnings, fmt.Sprintf("cameras[%d] (%s) does not open now; run retries it: %v", i, c.Name, err))
		default:
			return nil, fmt.Errorf("%s: cameras[%d].source (%s): %w", cfg.Path, i, c.Name, err)
		}
	}
	return warnings, nil
}

func checkLoads(cfg *config.Config, log *slog.Logger) error {
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
