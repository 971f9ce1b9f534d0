package gst

import (
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/source"
)

// boardProbe is a board's registry: the elements it has. GStreamer's real
// registry is tested in TestRegistry; no Jetson or Pi is lent here.
type boardProbe map[string]bool

func (b boardProbe) Has(e string) (bool, error) {
	if b[e] {
		return true, nil
	}
	switch e { // what Debian's GStreamer has everywhere (make deps)
	case "appsink", "videoconvert", "videoscale", "filesrc", "parsebin", "decodebin", "rtspsrc", "v4l2src", "avdec_h264", "avdec_h265", "avdec_mpeg4", "jpegdec":
		return true, nil
	}
	return false, nil
}

func parse(t *testing.T, s string) source.Source {
	t.Helper()
	src, err := source.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestChoose(t *testing.T) {
	none := boardProbe{}
	jetson := boardProbe{"nvv4l2decoder": true, "nvvidconv": true}
	pi4 := boardProbe{"v4l2h264dec": true}
	rtsp := "rtsp://viewer:pw@10.0.0.2/stream1"
	for _, tc := range []struct {
		name, src string
		codec     Codec
		opts      Options
		probe     Probe
		decoder   string
		pipeline  string // exact, when set
		contains  []string
		wantErr   string
	}{
		{name: "ffmpeg", src: rtsp, codec: H264, opts: Options{Decoder: FFmpeg}, probe: jetson, decoder: FFmpeg},
		{name: "auto without hardware", src: rtsp, codec: H264, opts: Options{Decoder: Auto}, probe: none, decoder: FFmpeg},
		{name: "auto on a Jetson", src: rtsp, codec: H265, opts: Options{Decoder: Auto, Width: 640, Height: 360}, probe: jetson, decoder: "nvv4l2decoder",
			pipeline: `rtspsrc location="rtsp://viewer:pw@10.0.0.2/stream1" protocols=tcp latency=200 ! parsebin ! nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx,width=640,height=360 ! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false`},
		{name: "auto on a Pi 4, H.264 file (fps does not drop a file's frames)", src: "/srv/door.mp4", codec: H264, opts: Options{Decoder: Auto, FPS: 5}, probe: pi4, decoder: "v4l2h264dec",
			pipeline: `filesrc location="/srv/door.mp4" ! parsebin ! v4l2h264dec ! videoconvert ! videoscale ! video/x-raw,format=BGR ! appsink max-buffers=1 sync=false`},
		{name: "auto on a Pi 4, H.265 has no hardware there", src: rtsp, codec: H265, opts: Options{Decoder: Auto}, probe: pi4, decoder: FFmpeg},
		{name: "auto, unknown codec", src: rtsp, codec: "", opts: Options{Decoder: Auto}, probe: jetson, decoder: FFmpeg},
		{name: "auto on a USB camera", src: "/dev/video0", codec: MJPEG, opts: Options{Decoder: Auto}, probe: jetson, decoder: FFmpeg},
		{name: "auto over HTTP", src: "http://cam/video.mjpg", codec: MJPEG, opts: Options{Decoder: Auto}, probe: jetson, decoder: FFmpeg},
		{name: "a gst: pipeline is the user's", src: "gst:videotestsrc ! appsink", opts: Options{Decoder: Software}, probe: none, decoder: "pipeline", pipeline: "videotestsrc ! appsink"},
		{name: "software, one thread, scaled", src: rtsp, codec: H264, opts: Options{Decoder: Software, Threads: 1, Width: 640, Height: 360, IOTimeout: 10 * time.Second, FPS: 2.5}, probe: none, decoder: "avdec_h264",
			pipeline: `rtspsrc location="rtsp://viewer:pw@10.0.0.2/stream1" protocols=tcp latency=200 tcp-timeout=10000000 ! parsebin ! avdec_h264 max-threads=1 ! videorate drop-only=true max-rate=3 ! videoconvert ! videoscale ! video/x-raw,format=BGR,width=640,height=360 ! appsink drop=true max-buffers=1 sync=false`},
		{name: "software, MPEG-4 file with a quote", src: `/srv/a "b".avi`, codec: MPEG4, opts: Options{Decoder: Software, Threads: 2}, probe: none, decoder: "avdec_mpeg4",
			contains: []string{`filesrc location="/srv/a \"b\".avi" ! parsebin ! avdec_mpeg4 max-threads=2 !`, "appsink max-buffers=1 sync=false"}},
		{name: "software, MJPEG takes no threads", src: rtsp, codec: MJPEG, opts: Options{Decoder: Software, Threads: 1}, probe: none, decoder: "jpegdec", contains: []string{"! jpegdec ! videoconvert"}},
		{name: "software, unknown codec", src: rtsp, opts: Options{Decoder: Software, Threads: 1}, probe: none, decoder: "decodebin", contains: []string{"! decodebin ! videoconvert"}},
		{name: "software, USB camera", src: "2", opts: Options{Decoder: Software, Width: 320, Height: 240}, probe: none, decoder: "decodebin",
			pipeline: `v4l2src device="/dev/video2" ! decodebin ! videoconvert ! videoscale ! video/x-raw,format=BGR,width=320,height=240 ! appsink drop=true max-buffers=1 sync=false`},
		{name: "explicit hardware", src: rtsp, codec: H264, opts: Options{Decoder: "nvv4l2decoder"}, probe: none, decoder: "nvv4l2decoder", contains: []string{"! nvv4l2decoder ! nvvidconv !"}},
		{name: "explicit hardware, wrong codec", src: rtsp, codec: H265, opts: Options{Decoder: "v4l2h264dec"}, probe: pi4, wantErr: "decoder v4l2h264dec (Raspberry Pi 4 (V4L2 M2M)) decodes h264, and rtsp://viewer:xxxxx@10.0.0.2/stream1 is h265"},
		{name: "explicit hardware, unknown codec", src: rtsp, opts: Options{Decoder: "nvv4l2decoder"}, probe: jetson, wantErr: "is of an unknown codec"},
		{name: "gstreamer over HTTP", src: "http://cam/video.mjpg", codec: MJPEG, opts: Options{Decoder: Software}, probe: none, wantErr: "decoder gstreamer decodes files, RTSP cameras and V4L2 devices, not http://cam/video.mjpg: use auto or ffmpeg for it"},
		{name: "hardware on a USB camera", src: "/dev/video0", codec: MJPEG, opts: Options{Decoder: "v4l2h264dec"}, probe: pi4, wantErr: "decoder v4l2h264dec decodes files and RTSP cameras, not /dev/video0"},
		{name: "unknown decoder", src: rtsp, codec: H264, opts: Options{Decoder: "omxh264dec"}, probe: none, wantErr: `decoder "omxh264dec": want one of auto, ffmpeg, gstreamer, nvv4l2decoder`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Choose(parse(t, tc.src), tc.codec, tc.opts, tc.probe)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), ":pw@") {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Decoder != tc.decoder {
				t.Errorf("decoder %q, want %q", p.Decoder, tc.decoder)
			}
			if tc.pipeline != "" && p.Pipeline != tc.pipeline {
				t.Errorf("pipeline\n%s\nwant\n%s", p.Pipeline, tc.pipeline)
			}
			for _, c := range tc.contains {
				if !strings.Contains(p.Pipeline, c) {
					t.Errorf("pipeline %s lacks %q", p.Pipeline, c)
				}
			}
			if tc.decoder == FFmpeg && p.Pipeline != "" {
				t.Errorf("FFmpeg with a pipeline: %s", p.Pipeline)
			}
		})
	}
}

func TestCodecOf(t *testing.T) {
	for in, want := range map[string]Codec{"avc1": H264, "H264": H264, "hvc1": H265, "HEVC": H265, "XVID": MPEG4, "MJPG": MJPEG, "VP80": "", "": "", "h264\x00": H264} {
		if got := CodecOf(in); got != want {
			t.Errorf("CodecOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMissing(t *testing.T) {
	p, err := Choose(parse(t, "rtsp://cam/s"), H264, Options{Decoder: "nvv4l2decoder"}, boardProbe{})
	if err != nil {
		t.Fatal(err)
	}
	missing, err := p.Missing(boardProbe{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"nvv4l2decoder (NVIDIA's L4T GStreamer plugins (JetPack))", "nvvidconv (NVIDIA's L4T GStreamer plugins (JetPack))"}
	if strings.Join(missing, "|") != strings.Join(want, "|") {
		t.Errorf("missing %q, want %q", missing, want)
	}
	p, _ = Choose(parse(t, "rtsp://cam/s"), H264, Options{Decoder: Software}, boardProbe{})
	noLibav := probeWithout{"avdec_h264"}
	if missing, _ := p.Missing(noLibav); len(missing) != 1 || missing[0] != "avdec_h264 (gstreamer1.0-libav)" {
		t.Errorf("missing %q", missing)
	}
}

type probeWithout []string

func (p probeWithout) Has(e string) (bool, error) {
	for _, x := range p {
		if x == e {
			return false, nil
		}
	}
	return boardProbe{}.Has(e)
}
