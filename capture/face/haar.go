package face

import (
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"os"

	"gocv.io/x/gocv"
)

// cascadeDirs are where distributions install OpenCV's cascades (Debian: opencv-data).
var cascadeDirs = []string{"/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades", "/usr/local/share/opencv4/haarcascades"}

const (
	haarCascade = "haarcascade_frontalface_default.xml"
	// haarSide is the longest side frames are scaled down to: Haar cost grows
	// with pixels. At 320 a 720p frame keeps faces of 96 px and up (the cascade
	// window is 24 px); on ffpp_004 (720p) it runs twice as fast as at 480, and
	// finds the face in 269 of Megamind's 270 frames (480: 268). Use yunet for
	// small or distant faces.
	haarSide = 320
)

type haar struct {
	cc          gocv.CascadeClassifier
	small, grey gocv.Mat
	minSize     int
}

func newHaar(opts Options) (Detector, error) {
	path := opts.Model
	if path == "" {
		for _, d := range cascadeDirs {
			if _, err := os.Stat(d + "/" + haarCascade); err == nil {
				path = d + "/" + haarCascade
				break
			}
		}
		if path == "" {
			return nil, fmt.Errorf("face detector haar: %s not found in %v (install opencv-data, or set the cascade path as the model)", haarCascade, cascadeDirs)
		}
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("face detector haar cascade: %w", err)
	}
	// OpenCV aborts the process on a malformed cascade, so check it first.
	if err := checkCascade(path); err != nil {
		return nil, fmt.Errorf("face detector haar: %s: %w", path, err)
	}
	cc := gocv.NewCascadeClassifier()
	if !cc.Load(path) {
		cc.Close()
		return nil, fmt.Errorf("face detector haar: %s is not a cascade classifier OpenCV can load", path)
	}
	return &haar{cc: cc, small: gocv.NewMat(), grey: gocv.NewMat(), minSize: opts.MinSize}, nil
}

func (d *haar) Detect(img gocv.Mat, dst []Box) ([]Box, error) {
	dst = dst[:0]
	if img.Empty() {
		return dst, nil
	}
	w, h := img.Cols(), img.Rows()
	scale := 1.0
	src := img
	if side := max(w, h); side > haarSide {
		scale = float64(haarSide) / float64(side)
		gocv.Resize(img, &d.small, image.Pt(int(float64(w)*scale+0.5), int(float64(h)*scale+0.5)), 0, 0, gocv.InterpolationArea)
		src = d.small
	}
	if src.Channels() == 1 {
		src.CopyTo(&d.grey)
	} else {
		gocv.CvtColor(src, &d.grey, gocv.ColorBGRToGray)
	}
	m := max(int(float64(d.minSize)*scale), 24)
	// Three neighbours and no histogram equalisation: on Megamind.avi, five
	// neighbours with equalisation found the face in only 228 of 270 frames;
	// NMS below removes overlaps.
	for _, r := range d.cc.DetectMultiScaleWithParams(d.grey, 1.1, 3, 0, image.Pt(m, m), image.Pt(0, 0)) {
		fr := clampBox(float32(float64(r.Min.X)/scale), float32(float64(r.Min.Y)/scale), float32(float64(r.Max.X)/scale), float32(float64(r.Max.Y)/scale), w, h)
		// Haar has no confidence; bigger faces first is the useful order.
		dst = append(dst, Box{Rect: fr, Score: 1 - 1/float32(1+fr.Dx())})
	}
	return finish(dst, d.minSize), nil
}

func (d *haar) Close() error {
	d.small.Close()
	d.grey.Close()
	return d.cc.Close()
}

// checkCascade reports whether path is an OpenCV XML file holding a cascade:
// <opencv_storage> whose first element is a new-style <cascade> or an old-style
// haar classifier.
func checkCascade(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	depth := 0
	for {
		tok, err := dec.Token()
		var syntax *xml.SyntaxError
		if errors.As(err, &syntax) { // its message quotes the file's bytes
			return fmt.Errorf("not an OpenCV cascade XML file: XML syntax error on line %d", syntax.Line)
		}
		if err != nil {
			return fmt.Errorf("not an OpenCV cascade XML file: %w", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		depth++
		if depth == 1 {
			if se.Name.Local != "opencv_storage" {
				return fmt.Errorf("not an OpenCV cascade: root element %.40q, want opencv_storage", se.Name.Local)
			}
			continue
		}
		if se.Name.Local == "cascade" {
			return nil
		}
		for _, a := range se.Attr {
			if a.Name.Local == "type_id" && a.Value == "opencv-haar-classifier" {
				return nil
			}
		}
		return fmt.Errorf("not an OpenCV cascade: first element %.40q", se.Name.Local)
	}
}
