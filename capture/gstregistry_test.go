package capture

import "testing"

// TestRegistry asks this machine's GStreamer: make deps installs the
// software path's plugins; no board's hardware decoder is here.
func TestRegistry(t *testing.T) {
	for e, want := range map[string]bool{"avdec_h264": true, "parsebin": true, "rtspsrc": true, "appsink": true, "nvv4l2decoder": false, "no-such-element": false} {
		got, err := Registry{}.Has(e)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("Has(%q) = %v, want %v", e, got, want)
		}
	}
}
