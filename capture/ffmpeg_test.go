package capture

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func TestSetFFmpegEnv(t *testing.T) {
	t.Setenv(ffmpegOptionsEnv, "rtsp_transport;tcp|rw_timeout;99")
	t.Setenv(ffmpegLogLevelEnv, "")
	os.Unsetenv(ffmpegLogLevelEnv)
	if err := SetFFmpegEnv(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := os.Getenv(ffmpegOptionsEnv), "rtsp_transport;tcp|rw_timeout;2000000|timeout;2000000"; got != want {
		t.Errorf("options %q, want %q", got, want)
	}
	if got := os.Getenv(ffmpegLogLevelEnv); got != "8" {
		t.Errorf("log level %q, want 8", got)
	}
	if err := SetFFmpegEnv(0); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv(ffmpegOptionsEnv); got != "rtsp_transport;tcp" {
		t.Errorf("with no timeout: options %q", got)
	}
}

// TestIOTimeout: a stream that accepts and never answers fails its open
// after the I/O timeout (not OpenCV's 30 s) and the camera goes on retrying;
// one that freezes mid-stream has its read fail and reconnects.
func TestIOTimeout(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	t.Setenv(ffmpegOptionsEnv, "")
	if err := SetFFmpegEnv(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"http://" + capturetest.MuteServer(t) + "/video.mjpg", capturetest.FreezingMJPEG(t, 3)} {
		c, err := Open(context.Background(), Options{Name: "t", Source: src}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if !poll.Until(8*time.Second, func() bool { return c.Status().Retrying }) {
			t.Errorf("%s: not retrying within 8 s", src)
		}
		began := time.Now()
		c.Close()
		if d := time.Since(began); d > 3*time.Second {
			t.Errorf("%s: Close took %v", src, d)
		}
	}
}
