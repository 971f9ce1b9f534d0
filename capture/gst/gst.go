// Package gst chooses how a camera is decoded (OpenCV's FFmpeg, GStreamer's
// software decoders with a bounded number of threads, or a board's hardware
// decoder) and builds the GStreamer pipeline for it, scaled before frames
// reach Go.
package gst

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/capture/source"
)

// Decoder settings (capture.decoder, cameras[].decoder) besides a hardware
// decoder's element name.
const (
	// Auto takes the board's hardware decoder for the camera's codec where
	// GStreamer has one, else FFmpeg.
	Auto = "auto"
	// FFmpeg is OpenCV's own back-ends: FFmpeg for files and streams, V4L2
	// for devices.
	FFmpeg = "ffmpeg"
	// Software is GStreamer with its software decoders (gst-libav), limited
	// to the configured threads.
	Software = "gstreamer"
)

// Codec is a video codec as the pipeline needs it.
type Codec string

// Codecs a pipeline names a decoder for; any other decodes through decodebin.
const (
	H264  Codec = "h264"
	H265  Codec = "h265"
	MPEG4 Codec = "mpeg4"
	MJPEG Codec = "mjpeg"
)

// CodecOf maps a FOURCC (what OpenCV reports) to a Codec; "" when unknown.
func CodecOf(fourcc string) Codec {
	switch strings.ToLower(strings.TrimRight(fourcc, "\x00 ")) {
	case "avc1", "avc3", "h264", "x264":
		return H264
	case "hvc1", "hev1", "hevc", "h265":
		return H265
	case "xvid", "divx", "dx50", "mp4v", "fmp4":
		return MPEG4
	case "mjpg", "jpeg":
		return MJPEG
	}
	return ""
}

// Hardware is a board's hardware decoder as GStreamer names it.
type Hardware struct {
	Element string
	Board   string
	Codecs  []Codec
	// Needs are the elements Convert uses besides videoconvert.
	Needs []string
	// Convert is what follows the decoder up to BGR frames; it scales too,
	// on the board's converter where it has one.
	Convert func(width, height int) string
}

// Hardwares are the hardware decoders auto looks for, in that order.
func Hardwares() []Hardware {
	return []Hardware{
		{Element: "nvv4l2decoder", Board: "Jetson (NVDEC)", Codecs: []Codec{H264, H265}, Needs: []string{"nvvidconv"},
			Convert: func(w, h int) string {
				// nvvidconv scales and converts out of NVMM memory on the VIC.
				return "nvvidconv ! video/x-raw,format=BGRx" + size(w, h) + " ! videoconvert ! video/x-raw,format=BGR"
			}},
		{Element: "v4l2h264dec", Board: "Raspberry Pi 4 (V4L2 M2M)", Codecs: []Codec{H264}, Needs: []string{"videoscale"}, Convert: softwareConvert},
		{Element: "v4l2slh265dec", Board: "Raspberry Pi 5 (HEVC)", Codecs: []Codec{H265}, Needs: []string{"videoscale"}, Convert: softwareConvert},
	}
}

func softwareConvert(w, h int) string {
	return "videoconvert ! videoscale ! video/x-raw,format=BGR" + size(w, h)
}

func size(w, h int) string {
	if w <= 0 || h <= 0 {
		return ""
	}
	return fmt.Sprintf(",width=%d,height=%d", w, h)
}

// softwareDecoder is gst-libav's decoder for a codec and whether it takes
// max-threads.
func softwareDecoder(c Codec) (string, bool) {
	switch c {
	case H264:
		return "avdec_h264", true
	case H265:
		return "avdec_h265", true
	case MPEG4:
		return "avdec_mpeg4", true
	case MJPEG:
		return "jpegdec", false
	}
	return "decodebin", false
}

// Valid reports whether s is a decoder setting: auto, ffmpeg, gstreamer or
// a hardware decoder's element.
func Valid(s string) bool {
	switch s {
	case Auto, FFmpeg, Software:
		return true
	}
	return hardwareNamed(s).Element != ""
}

// Names lists the decoder settings, for messages.
func Names() []string {
	n := []string{Auto, FFmpeg, Software}
	for _, h := range Hardwares() {
		n = append(n, h.Element)
	}
	return n
}

// Options is one camera's decoding.
type Options struct {
	// Decoder is the setting: auto, ffmpeg, gstreamer or a hardware element.
	Decoder string
	// Threads bounds a software decoder's threads (gst-libav's max-threads);
	// 0 leaves it one per core.
	Threads int
	// Width and Height scale the frames in the pipeline; 0 keeps the
	// source's size.
	Width, Height int
	// IOTimeout bounds an RTSP camera's reads; 0 leaves GStreamer's.
	IOTimeout time.Duration
	// FPS is the most frames a second a live source hands on; the others
	// are dropped after decoding, before conversion. 0 hands on every one.
	FPS float64
}

// Plan is how a camera is decoded.
type Plan struct {
	// Decoder is what decodes: "ffmpeg", or the GStreamer element.
	Decoder string
	// Hardware names the board when Decoder is a hardware decoder.
	Hardware string
	// Pipeline is the GStreamer pipeline (for OpenCV's GStreamer back-end);
	// empty when FFmpeg decodes.
	Pipeline string
	// Elements are the GStreamer elements the pipeline needs.
	Elements []string
}

// Probe answers whether GStreamer has an element; capture.Registry asks
// the real registry.
type Probe interface {
	Has(element string) (bool, error)
}

// Choose decides how a camera with source src and codec c (from its
// FOURCC; "" when unknown) is decoded. A source that GStreamer does not
// handle here (HTTP, a gst: pipeline of the user's own) or that auto finds
// no hardware decoder for is decoded as before: by FFmpeg, or by the user's
// pipeline. An explicit decoder that cannot decode this source is an error
// naming what is missing.
func Choose(src source.Source, c Codec, o Options, probe Probe) (Plan, error) {
	ffmpeg := Plan{Decoder: FFmpeg}
	if src.Kind == source.GStreamer {
		return Plan{Decoder: "pipeline", Pipeline: src.Target}, nil
	}
	if err := Check(src, o.Decoder); err != nil {
		return Plan{}, err
	}
	switch o.Decoder {
	case FFmpeg, "":
		return ffmpeg, nil
	case Auto:
		if !HardwareFor(src) {
			return ffmpeg, nil
		}
		for _, h := range Hardwares() {
			if !supports(h, c) {
				continue
			}
			if ok, err := probe.Has(h.Element); err != nil || !ok {
				continue
			}
			return build(src, c, h.Element, h, o)
		}
		return ffmpeg, nil
	}
	if o.Decoder == Software {
		if src.Kind == source.Device {
			return build(src, c, "decodebin", Hardware{}, o)
		}
		dec, _ := softwareDecoder(c)
		return build(src, c, dec, Hardware{}, o)
	}
	h := hardwareNamed(o.Decoder) // Check knows every name
	if !supports(h, c) {
		return Plan{}, fmt.Errorf("decoder %s (%s) decodes %s, and %s is %s", h.Element, h.Board, codecList(h.Codecs), src, codecName(c))
	}
	return build(src, c, h.Element, h, o)
}

func hardwareNamed(element string) Hardware {
	for _, h := range Hardwares() {
		if h.Element == element {
			return h
		}
	}
	return Hardware{}
}

// Check says whether decoder can decode src: GStreamer's software decoders
// take files, RTSP cameras and V4L2 devices, a hardware decoder files and
// RTSP cameras; HTTP streams are FFmpeg's. auto and ffmpeg take any source,
// and a gst: source is its own pipeline whatever the setting.
func Check(src source.Source, decoder string) error {
	switch {
	case decoder == Auto || decoder == FFmpeg || decoder == "" || src.Kind == source.GStreamer:
		return nil
	case !Valid(decoder):
		return fmt.Errorf("decoder %q: want one of %s", decoder, strings.Join(Names(), ", "))
	case decoder == Software && src.Kind == source.Device:
		return nil
	case !HardwareFor(src):
		what := "files, RTSP cameras and V4L2 devices"
		if decoder != Software {
			what = "files and RTSP cameras"
		}
		return fmt.Errorf("decoder %s decodes %s, not %s: use auto or ffmpeg for it", decoder, what, src)
	}
	return nil
}

// HardwareFor says whether src is a file or an RTSP camera, the sources a
// hardware decoder (and auto's search for one) takes.
func HardwareFor(src source.Source) bool {
	return src.Kind == source.File || (src.Kind == source.Stream && strings.HasPrefix(strings.ToLower(src.Target), "rtsp"))
}

func supports(h Hardware, c Codec) bool {
	for _, x := range h.Codecs {
		if x == c {
			return true
		}
	}
	return false
}

func codecList(cs []Codec) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, " and ")
}

func codecName(c Codec) string {
	if c == "" {
		return "of an unknown codec"
	}
	return string(c)
}

// build writes the pipeline: the source, parsebin (demuxing and parsing
// any container or RTP stream), the decoder, conversion and scaling to BGR,
// and an appsink that keeps only the newest frame of a live source and
// every frame of a file.
func build(src source.Source, c Codec, dec string, hw Hardware, o Options) (Plan, error) {
	var b strings.Builder
	elements := []string{"appsink", "videoconvert"}
	switch src.Kind {
	case source.File:
		fmt.Fprintf(&b, "filesrc location=%s ! parsebin ! ", quote(src.Target))
		elements = append(elements, "filesrc", "parsebin")
	case source.Device:
		device := src.Target
		if device == "" {
			device = fmt.Sprintf("/dev/video%d", src.Index)
		}
		fmt.Fprintf(&b, "v4l2src device=%s ! ", quote(device))
		elements = append(elements, "v4l2src")
	default: // RTSP: over TCP, as FFmpeg is told to (rtsp_transport tcp)
		fmt.Fprintf(&b, "rtspsrc location=%s protocols=tcp latency=200", quote(src.Target))
		if o.IOTimeout > 0 {
			fmt.Fprintf(&b, " tcp-timeout=%d", o.IOTimeout.Microseconds())
		}
		b.WriteString(" ! parsebin ! ")
		elements = append(elements, "rtspsrc", "parsebin")
	}
	b.WriteString(dec)
	elements = append(elements, dec)
	if _, threads := softwareDecoder(c); threads && hw.Element == "" && dec != "decodebin" && o.Threads > 0 {
		fmt.Fprintf(&b, " max-threads=%d", o.Threads)
	}
	convert := softwareConvert
	if hw.Convert != nil {
		convert = hw.Convert
	}
	if src.Kind != source.File && o.FPS > 0 {
		// Every frame is decoded, but only those analysed are converted to
		// BGR and copied out: OpenCV's FFmpeg converts each.
		fmt.Fprintf(&b, " ! videorate drop-only=true max-rate=%d", int(math.Ceil(o.FPS)))
		elements = append(elements, "videorate")
	}
	b.WriteString(" ! ")
	b.WriteString(convert(o.Width, o.Height))
	if src.Kind == source.File {
		b.WriteString(" ! appsink max-buffers=1 sync=false")
	} else {
		b.WriteString(" ! appsink drop=true max-buffers=1 sync=false")
	}
	if hw.Element == "" {
		elements = append(elements, "videoscale")
	}
	elements = append(elements, hw.Needs...)
	return Plan{Decoder: dec, Hardware: hw.Board, Pipeline: b.String(), Elements: elements}, nil
}

// quote writes a property value as gst-launch reads it: in double quotes,
// with backslash and double quote escaped.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Missing lists the plan's elements GStreamer lacks, each with the Debian
// package that has it where one does.
func (p Plan) Missing(probe Probe) ([]string, error) {
	var out []string
	for _, e := range p.Elements {
		ok, err := probe.Has(e)
		if err != nil {
			return nil, err
		}
		if !ok {
			if pkg := packageOf(e); pkg != "" {
				e += " (" + pkg + ")"
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// packageOf is the Debian package with a GStreamer element.
func packageOf(element string) string {
	switch {
	case strings.HasPrefix(element, "avdec_"):
		return "gstreamer1.0-libav"
	case element == "rtspsrc" || element == "v4l2src" || element == "jpegdec" || strings.HasPrefix(element, "v4l2"):
		return "gstreamer1.0-plugins-good"
	case element == "parsebin" || element == "decodebin" || element == "videoconvert" || element == "videoscale" || element == "appsink" || element == "filesrc":
		return "gstreamer1.0-plugins-base"
	case element == "nvv4l2decoder" || element == "nvvidconv":
		return "NVIDIA's L4T GStreamer plugins (JetPack)"
	}
	return ""
}
