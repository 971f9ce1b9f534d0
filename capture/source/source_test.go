package source

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		kind    Kind
		target  string
		index   int
		live    bool
		wantErr string
	}{
		{in: "/dev/video0", kind: Device, target: "/dev/video0", index: -1, live: true},
		{in: "/dev/v4l/by-id/usb-cam-video-index0", kind: Device, target: "/dev/v4l/by-id/usb-cam-video-index0", index: -1, live: true},
		{in: "0", kind: Device, index: 0, live: true},
		{in: " 12 ", kind: Device, index: 12, live: true},
		{in: "clip.mp4", kind: File, target: "clip.mp4", index: -1},
		{in: "/var/lib/videos/a b.avi", kind: File, target: "/var/lib/videos/a b.avi", index: -1},
		{in: "rtsp://user:pw@10.0.0.2:554/stream1", kind: Stream, target: "rtsp://user:pw@10.0.0.2:554/stream1", index: -1, live: true},
		{in: "RTSPS://cam.local/live", kind: Stream, target: "RTSPS://cam.local/live", index: -1, live: true},
		{in: "http://127.0.0.1:8080/video.mjpg", kind: Stream, target: "http://127.0.0.1:8080/video.mjpg", index: -1, live: true},
		{in: "https://cam/x", kind: Stream, target: "https://cam/x", index: -1, live: true},
		{in: "gst:nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1",
			kind: GStreamer, target: "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,height=720 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1", index: -1, live: true},
		{in: "", wantErr: "empty camera source"},
		{in: "   ", wantErr: "empty camera source"},
		{in: "gst:", wantErr: "empty GStreamer pipeline"},
		{in: "gst:videotestsrc ! autovideosink", wantErr: "must end in appsink"},
		{in: "ftp://host/x.mp4", wantErr: `unsupported URL scheme "ftp"`},
		{in: "rtsp://", wantErr: "URL has no host"},
		{in: "http://[::1", wantErr: "bad URL"},
		{in: "-1", wantErr: "must not be negative"},
		{in: "99999999999999999999", wantErr: "out of range"},
		{in: "5000", wantErr: "out of range"},
		{in: "/dev/", wantErr: "names no device"},
		{in: "videos/", wantErr: "is a folder"},
		{in: "clip\x00.mp4", wantErr: "control or invalid character"},
		{in: "\xff\xfe", wantErr: "control or invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			s, err := Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want error containing %q", tc.in, s, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if s.Kind != tc.kind || s.Target != tc.target || s.Index != tc.index || s.Live() != tc.live {
				t.Fatalf("Parse(%q) = %+v live=%v; want kind %v target %q index %d live %v", tc.in, s, s.Live(), tc.kind, tc.target, tc.index, tc.live)
			}
		})
	}
}

func TestSourceStringMasksPassword(t *testing.T) {
	s, err := Parse("rtsp://admin:hunter2@10.0.0.2/stream")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "hunter2") || !strings.Contains(s.Target, "hunter2") {
		t.Fatalf("String %q should mask the password that Target %q keeps", s.String(), s.Target)
	}
	msg := "Error opening file: rtsp://admin:hunter2@10.0.0.2/stream with api backend: 1900"
	if got, want := s.Mask(msg), "Error opening file: rtsp://admin:xxxxx@10.0.0.2/stream with api backend: 1900"; got != want {
		t.Fatalf("Mask: %q, want %q", got, want)
	}
	file, _ := Parse("clip.mp4")
	if got := file.Mask("cannot open clip.mp4"); got != "cannot open clip.mp4" {
		t.Fatalf("Mask of a file: %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"/dev/video0", "0", "clip.mp4", "rtsp://h/x", "https://h", "gst:videotestsrc ! appsink", "", "gst:", "-3", "a://b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if s.Kind < Device || s.Kind > GStreamer {
			t.Fatalf("Parse(%q) gave kind %v", in, s.Kind)
		}
		if s.Live() != (s.Kind != File) {
			t.Fatalf("Live() wrong for %+v", s)
		}
		if s.Kind == Device && s.Target == "" && s.Index < 0 {
			t.Fatalf("device without target or index: %+v", s)
		}
		// The printed form parses back to the same source (a URL's password is masked).
		again, err := Parse(s.String())
		if s.Kind == Stream && err == nil && again.Kind == Stream {
			return
		}
		if err != nil || again != s {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", in, s, s.String(), again, err)
		}
	})
}
