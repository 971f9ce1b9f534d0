package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestWatchdog runs the daemon as systemd would with WatchdogSec=1s (a real
// NOTIFY_SOCKET listener): it sends WATCHDOG=1 with each camera's frames/s
// while a looping file plays and a camera that is unplugged retries; when a
// stream freezes mid-read (a read that does not return), the pings stop
// within watchdog.stall and STATUS= says which camera.
func TestWatchdog(t *testing.T) {
	testenv.Long(t)
	backbone, head := testenv.Models(t)
	frozen := capturetest.FreezingMJPEG(t, 10)
	cfg := filepath.Join(t.TempDir(), "deepfaked.yaml")
	lines := []string{"device_id: wd", "state_dir: " + t.TempDir(),
		"mqtt:", "  broker: embedded", "  listen: 127.0.0.1:0",
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: none",
		// No I/O timeout: the frozen read hangs for OpenCV's 30 s, longer than stall.
		"capture:", "  io_timeout: 0s",
		"watchdog:", "  stall: 3s",
		"cameras:",
		"  - name: file", "    source: " + capturetest.Clip(t), "    loop: true", "    fps: 5",
		"  - name: unplugged", "    source: rtsp://127.0.0.1:9/none",
		"  - name: frozen", "    source: " + frozen, ""}
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	sock, states := notifySocket(t)
	cmd := exec.Command(deepfaked(t), "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var (
		pings, afterStuck int
		status, stuck     string
		stuckAt           time.Time
	)
	deadline := time.After(90 * time.Second)
	for stuckAt.IsZero() || time.Since(stuckAt) < 3*time.Second {
		select {
		case s := <-states:
			switch {
			case s == "WATCHDOG=1":
				pings++
				if !stuckAt.IsZero() {
					afterStuck++
				}
			case strings.HasPrefix(s, "STATUS=stuck: "):
				if stuckAt.IsZero() {
					stuck, stuckAt = s, time.Now()
				}
			case strings.HasPrefix(s, "STATUS="):
				status = s
			}
		case <-deadline:
			t.Fatalf("no stuck status within 90s (%d pings, last %q)\n%s", pings, status, stderr)
		}
	}
	t.Logf("%d pings, then stuck %v after start: %s", pings, stuckAt.Sub(started).Round(100*time.Millisecond), stuck)
	if pings < 2 || !strings.Contains(status, "file ") || !strings.Contains(status, "unplugged 0.0 frames/s") {
		t.Errorf("before the freeze: %d pings, last status %q; want pings with each camera's frames/s", pings, status)
	}
	if !strings.Contains(stuck, "camera frozen") {
		t.Errorf("stuck status %q does not name the frozen camera", stuck)
	}
	if afterStuck > 0 {
		t.Errorf("%d WATCHDOG=1 pings after the stuck status", afterStuck)
	}
	if !strings.Contains(stderr.String(), "no more watchdog pings") {
		t.Errorf("the log does not say the pings stopped:\n%s", stderr)
	}
}

// TestSIGTERMWhileOpening: a camera whose stream accepts and never answers
// neither holds up the start nor the stop: READY=1 comes at once, and
// SIGTERM ends the daemon cleanly within capture.io_timeout.
func TestSIGTERMWhileOpening(t *testing.T) {
	testenv.Long(t)
	mute := capturetest.MuteServer(t)
	backbone, head := testenv.Models(t)
	cfg := filepath.Join(t.TempDir(), "deepfaked.yaml")
	lines := []string{"device_id: term", "state_dir: " + t.TempDir(),
		"mqtt:", "  broker: embedded", "  listen: 127.0.0.1:0",
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: none", "capture:", "  io_timeout: 3s",
		"cameras:", "  - name: mute", "    source: http://" + mute + "/video.mjpg", ""}
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cfg)
	began := time.Now()
	r.waitReady(t)
	if d := time.Since(began); d > 20*time.Second {
		t.Errorf("READY=1 after %v", d)
	}
	time.Sleep(500 * time.Millisecond) // the grabber is inside the open now
	stopAt := time.Now()
	r.stop(t)
	if d := time.Since(stopAt); d > 8*time.Second {
		t.Errorf("stopped %v after SIGTERM; want within capture.io_timeout (3s) and the drain", d)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(stopAt).Round(100*time.Millisecond))
}
