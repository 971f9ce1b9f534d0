package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/daemon/livestat"
)

// pipelineHealth is what the watchdog asks of the pipeline.
type pipelineHealth interface {
	Stuck(now time.Time, stall time.Duration) string
	Analysed() []livestat.CameraCount
}

// watchdog keeps systemd's watchdog (WatchdogSec=) fed while the daemon
// works: every interval it sends WATCHDOG=1 and a STATUS= line with each
// camera's frames/s, but only while nothing is stuck (pipeline.Stuck with
// stall). A camera that is reconnecting or has ended is not stuck, so an
// unplugged camera shows 0 frames/s and never restarts the service; a read
// that hangs past stall stops the pings, says why in STATUS= and the log, and
// systemd restarts the service when WatchdogSec runs out. notify is
// sddaemon.SdNotify's job (a test gives its own socket through the
// environment, as systemd does).
func watchdog(ctx context.Context, h pipelineHealth, interval, stall time.Duration, notify func(string) error, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	last, lastAt := h.Analysed(), time.Now()
	wasStuck := ""
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			counts := h.Analysed()
			status := rates(last, counts, now.Sub(lastAt))
			last, lastAt = counts, now
			stuck := h.Stuck(now, stall)
			msg := "STATUS=" + status + "\nWATCHDOG=1"
			if stuck != "" {
				msg = "STATUS=stuck: " + stuck
				if stuck != wasStuck {
					log.Error("stuck: no more watchdog pings, systemd will restart the service", "why", stuck, "stall", stall)
				}
			} else if wasStuck != "" {
				log.Info("no longer stuck; watchdog pings resume", "was", wasStuck)
			}
			wasStuck = stuck
			if err := notify(msg); err != nil {
				log.Warn("systemd notify", "err", err)
			}
		}
	}
}

// rates is each camera's frames/s between two counts, for STATUS=.
func rates(before, after []livestat.CameraCount, dt time.Duration) string {
	var b strings.Builder
	for i, c := range after {
		if i > 0 {
			b.WriteString(", ")
		}
		n := c.Frames
		if i < len(before) {
			n -= before[i].Frames
		}
		switch {
		case c.Ended:
			fmt.Fprintf(&b, "%s ended", c.Camera)
		default:
			fmt.Fprintf(&b, "%s %.1f frames/s", c.Camera, float64(n)/dt.Seconds())
		}
	}
	return b.String()
}
