package capturetest

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"runtime"

	"gocv.io/x/gocv"
)

// CameraChain is what a cheap camera does to a picture, applied to every
// frame in this order. Zero fields change nothing.
type CameraChain struct {
	Scale    float64 // shrink to this share of the side and back (a small sensor, a digital zoom)
	Blur     float64 // Gaussian blur, sigma in pixels (optics, focus)
	Contrast float64 // contrast about mid-grey, below 1 washes out
	Lift     float64 // added to every level (a raised black level)
	Noise    float64 // Gaussian sensor noise, sigma in levels
	Seed     int     // seeds the noise
}

// Camera chains the tests and benchmarks use: a noisy, soft indoor camera,
// and a small washed-out one (as issue 19's measurements).
var (
	NoisyCamera  = CameraChain{Blur: 0.8, Noise: 4, Seed: 1}
	WashedCamera = CameraChain{Scale: 0.5, Contrast: 0.7, Lift: 25, Noise: 3, Seed: 2}
)

// SimulateCamera re-renders the video src through c and writes the frames
// to dst as H.264 (OpenCV's FFmpeg writer, as a camera's stream is
// compressed), at src's frame rate. It returns the number of frames.
func SimulateCamera(src, dst string, c CameraChain) (int, error) {
	vc, err := gocv.VideoCaptureFile(src)
	if err != nil {
		return 0, fmt.Errorf("simulate camera: %s: %w", src, err)
	}
	defer vc.Close()
	fps := vc.Get(gocv.VideoCaptureFPS)
	w, h := int(vc.Get(gocv.VideoCaptureFrameWidth))&^1, int(vc.Get(gocv.VideoCaptureFrameHeight))&^1
	if w <= 0 || h <= 0 || fps <= 0 {
		return 0, fmt.Errorf("simulate camera: %s: %dx%d at %g frames/s", src, w, h, fps)
	}
	vw, err := gocv.VideoWriterFile(dst, "avc1", fps, w, h, true)
	if err != nil {
		return 0, fmt.Errorf("simulate camera: %s: %w", dst, err)
	}
	defer vw.Close()
	// OpenCV's random generator is per OS thread: seed it and draw on one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	gocv.SetRNGSeed(c.Seed)
	frame, out, noise := gocv.NewMat(), gocv.NewMat(), gocv.NewMatWithSize(h, w, gocv.MatTypeCV32FC3)
	defer frame.Close()
	defer out.Close()
	defer noise.Close()
	n := 0
	for vc.Read(&frame) && !frame.Empty() {
		region := frame.Region(image.Rect(0, 0, w, h))
		region.ConvertTo(&out, gocv.MatTypeCV32FC3)
		region.Close()
		if c.Scale > 0 && c.Scale != 1 {
			small := gocv.NewMat()
			gocv.Resize(out, &small, image.Pt(int(float64(w)*c.Scale), int(float64(h)*c.Scale)), 0, 0, gocv.InterpolationArea)
			gocv.Resize(small, &out, image.Pt(w, h), 0, 0, gocv.InterpolationLinear)
			small.Close()
		}
		if c.Blur > 0 {
			gocv.GaussianBlur(out, &out, image.Point{}, c.Blur, c.Blur, gocv.BorderReflect101)
		}
		if c.Contrast > 0 && c.Contrast != 1 {
			out.ConvertToWithParams(&out, gocv.MatTypeCV32FC3, float32(c.Contrast), float32(127.5*(1-c.Contrast)))
		}
		if c.Lift != 0 {
			out.AddFloat(float32(c.Lift))
		}
		if c.Noise > 0 {
			gocv.RandN(&noise, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(c.Noise, c.Noise, c.Noise, 0))
			gocv.Add(out, noise, &out)
		}
		out.ConvertTo(&out, gocv.MatTypeCV8UC3) // saturates to 0..255
		if err := vw.Write(out); err != nil {
			return n, fmt.Errorf("simulate camera: %s: frame %d: %w", dst, n, err)
		}
		n++
	}
	if n == 0 {
		return 0, fmt.Errorf("simulate camera: %s: no frames", src)
	}
	return n, nil
}

// WriteFrames decodes video and writes the frames keep accepts (by index)
// as JPEG (quality 95) into dir as fNNNN.jpg. It returns how many it wrote.
func WriteFrames(video, dir string, keep func(i int) bool) (int, error) {
	vc, err := gocv.VideoCaptureFile(video)
	if err != nil {
		return 0, fmt.Errorf("frames of %s: %w", video, err)
	}
	defer vc.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	frame := gocv.NewMat()
	defer frame.Close()
	n := 0
	for i := 0; vc.Read(&frame) && !frame.Empty(); i++ {
		if !keep(i) {
			continue
		}
		p := filepath.Join(dir, fmt.Sprintf("f%04d.jpg", i))
		if !gocv.IMWriteWithParams(p, frame, []int{gocv.IMWriteJpegQuality, 95}) {
			return n, fmt.Errorf("frames of %s: cannot write %s", video, p)
		}
		n++
	}
	return n, nil
}
