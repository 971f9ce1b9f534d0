package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestCollectAndLabelOverMQTT: the daemon saves face crops (train.collect) and
// the MQTT label command moves a frame's crop into the training set; a
// malformed command is refused with the reason.
func TestCollectAndLabelOverMQTT(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	backbone, head := testenv.Models(t)
	state := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "deepfaked.yaml")
	body := fmt.Sprintf(`device_id: col
state_dir: %s
mqtt:
  broker: %s
  commands: {enabled: true}
model: {backbone: %s, head: %s, runtime: %s}
train:
  collect: {every_n: 1}
cameras:
  - {name: cam1, source: %s, loop: true}
`, state, broker, backbone, head, testenv.ORTLibrary(t), capturetest.Clip(t))
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, broker, "deepfaked/col/#")
	cmd := exec.Command(deepfaked(t), "run", "--config", cfg)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	// A frame with a face, some verdicts ago, so its crop is surely written.
	var frame int64 = -1
	faces := 0
	sub.waitFor(t, "verdicts with faces", 60*time.Second, func(m []message) bool {
		withFaces := 0
		for _, x := range m {
			var v struct {
				Frame int64
				Faces []any
			}
			if x.topic == "deepfaked/col/cam1/verdict" && json.Unmarshal(x.payload, &v) == nil && len(v.Faces) > 0 {
				if withFaces++; withFaces == 1 {
					frame, faces = v.Frame, len(v.Faces)
				}
			}
		}
		return withFaces >= 5
	})
	sub.c.Publish("deepfaked/col/cmd/label", 1, false, `{"camera":"cam1","frame":-2,"label":"fake"}`).Wait()
	sub.c.Publish("deepfaked/col/cmd/label", 1, false, fmt.Sprintf(`{"camera":"cam1","frame":%d,"label":"fake"}`, frame)).Wait()
	res := sub.waitFor(t, "two label results", 30*time.Second, func(m []message) bool {
		return topicCount(m, "deepfaked/col/cmd/label/result") >= 2
	})
	var answers []string
	for _, m := range res {
		if m.topic == "deepfaked/col/cmd/label/result" {
			answers = append(answers, string(m.payload))
		}
	}
	if !strings.Contains(answers[0], `"ok":false`) || !strings.Contains(answers[0], "frame") {
		t.Errorf("negative frame answered %s", answers[0])
	}
	if !strings.Contains(answers[1], `"ok":true`) || !strings.Contains(answers[1], fmt.Sprintf("%d crop(s)", faces)) {
		t.Fatalf("label answered %s\n%s", answers[1], stderr.String())
	}
	fakes, _ := filepath.Glob(filepath.Join(state, "dataset", "fake", "*.jpg"))
	csv, err := os.ReadFile(filepath.Join(state, "dataset", "labels.csv"))
	if len(fakes) != faces || err != nil || !strings.Contains(string(csv), ",fake,") {
		t.Fatalf("dataset after labelling: %v, labels.csv %q (%v)", fakes, csv, err)
	}
	// Labelled crops are grouped by their face's track (camera/run-track).
	if !regexp.MustCompile(`,fake,cam1/[0-9A-Z-]+-[0-9]+\n`).Match(csv) {
		t.Errorf("labels.csv does not group the crop by its track:\n%s", csv)
	}
	if crops, _ := filepath.Glob(filepath.Join(state, "collect", "cam1", "*.jpg")); len(crops) < 3 {
		t.Errorf("only %d crops collected with every_n 1", len(crops))
	}
}
