package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/internal/malloctune"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestSoak is `make soak` (DEEPFAKED_SOAK=10m, with -tags matprofile): the
// daemon with 4 looping cameras against a real mosquitto for that long, the
// broker restarted halfway. Its RSS and goroutine count at the end must be
// within bounds of those after warm-up, and no gocv Mat may be left open
// after Close. It is not part of `make test`; unset, it is skipped.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("DEEPFAKED_SOAK"))
	if err != nil {
		t.Skip("DEEPFAKED_SOAK is not a duration; `make soak` sets it")
	}
	if err := malloctune.Apply(malloctune.Defaults()); err != nil { // as main does
		t.Fatal(err)
	}
	mats0, profiled := capturetest.MatCount()
	m := testenv.StartPersistentMosquitto(t, "")
	backbone, head := testenv.Models(t)
	clip := capturetest.Clip(t)
	lines := []string{"device_id: soak", "state_dir: " + t.TempDir(), "mqtt:", "  broker: " + m.URL(),
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar", "cameras:"}
	for i := range 4 {
		lines = append(lines, fmt.Sprintf("  - name: cam%d", i), "    source: "+clip, "    loop: true", "    fps: 5")
	}
	cfgPath := filepath.Join(t.TempDir(), "soak.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	dm, err := daemon.New(context.Background(), load(t, cfgPath), slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- dm.Run(ctx) }()

	// RSS and goroutines every tenth of the run; the broker is stopped for
	// 20 s at the middle.
	step := d / 10
	var rss []float64
	var gs []int
	for i := range 10 {
		time.Sleep(step)
		rss, gs = append(rss, rssMiB(t)), append(gs, runtime.NumGoroutine())
		t.Logf("%v: RSS %.0f MiB, %d goroutines", time.Since(began).Round(time.Second), rss[i], gs[i])
		if i == 4 {
			m.Terminate()
			time.Sleep(20 * time.Second)
			m.Start()
			t.Logf("broker was stopped for 20s")
		}
	}
	// After warm-up (the first tenth), and at the end.
	rss0, g0, rss1, g1 := rss[1], gs[1], rss[9], gs[9]
	t.Logf("at the end (%v): RSS %.0f MiB, %d goroutines", d, rss1, g1)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := dm.Close(); err != nil {
		t.Fatal(err)
	}
	if rss1 > rss0*1.15+20 {
		t.Errorf("RSS grew from %.0f to %.0f MiB", rss0, rss1)
	}
	if g1 > g0+10 {
		t.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if profiled {
		if n, _ := capturetest.MatCount(); n != mats0 {
			t.Errorf("%d gocv Mats open after Close, %d before New", n, mats0)
		}
	} else {
		t.Error("built without -tags matprofile: Mat leaks not counted (make soak sets it)")
	}
	if strings.Count(logs.String(), "level=ERROR") > 0 {
		t.Logf("errors logged:\n%s", logs)
	}
}

// rssMiB is this process's resident set size.
func rssMiB(t *testing.T) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
