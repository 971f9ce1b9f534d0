package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestRunThreshold: the verdicts of `run` follow the one threshold rule:
// model.threshold when set, 0 included (every face is then fake), else the
// head's calibrated threshold, else 0.5 (make models' head stores none).
// Before the rule lived in one place, run took a configured 0 for "unset".
func TestRunThreshold(t *testing.T) {
	testenv.Long(t)
	clip := shortClip(t)
	tests := []struct {
		name, line string
		want       float64
	}{
		{"unset", "", 0.5},
		{"zero", "  threshold: 0\n", 0},
		{"one", "  threshold: 1\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeConfig(t, "embedded\n  listen: 127.0.0.1:0", clip, 0, false)
			b, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), "model:\n", "model:\n"+tt.line, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(deepfaked(t), "run", "--watch", "--config", cfg)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			verdicts, faces := 0, 0
			for _, l := range strings.Split(stdout.String(), "\n") {
				payload, ok := strings.CutPrefix(l, "deepfaked/it-dev/cam1/verdict ")
				if !ok {
					continue
				}
				var v struct {
					Threshold float64 `json:"threshold"`
					PFake     float64 `json:"p_fake"`
					Faces     []struct {
						PFake float64 `json:"p_fake"`
						Label string  `json:"label"`
					} `json:"faces"`
				}
				if err := json.Unmarshal([]byte(payload), &v); err != nil {
					t.Fatalf("verdict %q: %v", payload, err)
				}
				verdicts++
				if v.Threshold != tt.want {
					t.Fatalf("verdict threshold %v, want %v: %s", v.Threshold, tt.want, payload)
				}
				for _, f := range v.Faces {
					faces++
					if want := map[bool]string{true: "fake", false: "real"}[f.PFake >= tt.want]; f.Label != want {
						t.Fatalf("face p_fake %v at threshold %v labelled %s, want %s", f.PFake, tt.want, f.Label, want)
					}
				}
			}
			if verdicts != 20 || faces == 0 {
				t.Fatalf("%d verdicts (want 20) with %d faces (want some):\n%s", verdicts, faces, stdout.String())
			}
		})
	}
}
