package quantize

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/face"
)

// Detector finds faces (capture/face).
type Detector interface {
	Detect(img gocv.Mat, dst []face.Box) ([]face.Box, error)
}

// Preprocessor crops and normalises like the daemon (capture/preprocess).
type Preprocessor interface {
	Crop(box image.Rectangle, frame image.Point) image.Rectangle
	Fill(img gocv.Mat, crop image.Rectangle, dst []float32) error
	Len() int
}

// Source hands out calibration samples one at a time.
type Source interface {
	// Next fills dst with one preprocessed sample; io.EOF when there are no more.
	Next(ctx context.Context, dst []float32) error
	// Total is how many samples the source expects to give (for progress).
	Total() int
}

// imageExts are the files an image folder's walk takes.
var imageExts = []string{".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}

// FolderSource gives the images under a folder (all sub-folders, sorted by
// path), at most Max of them spread evenly over the sorted list, each cropped
// to its largest face when Detector is set (else used whole, as face crops).
type FolderSource struct {
	Dir      string
	Pre      Preprocessor
	Detector Detector // nil: every image is already a face crop
	paths    []string
	next     int
	boxes    []face.Box
	// NoFace and Skipped list images used whole (no face found) and images
	// that could not be read.
	NoFace, Skipped []string
}

// NewFolderSource lists dir's images; max < 1 takes them all.
func NewFolderSource(dir string, max int, pre Preprocessor, det Detector) (*FolderSource, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(imageExts, strings.ToLower(filepath.Ext(p))) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("calibration folder %s: %w", dir, err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("calibration folder %s: no images (%s)", dir, strings.Join(imageExts, " "))
	}
	slices.Sort(paths)
	if max > 0 && len(paths) > max { // spread over the list: real/ and fake/ both take part
		picked := make([]string, max)
		for i := range picked {
			picked[i] = paths[i*len(paths)/max]
		}
		paths = picked
	}
	return &FolderSource{Dir: dir, Pre: pre, Detector: det, paths: paths}, nil
}

func (s *FolderSource) Total() int { return len(s.paths) }

func (s *FolderSource) Next(ctx context.Context, dst []float32) error {
	for s.next < len(s.paths) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := s.paths[s.next]
		s.next++
		img := gocv.IMRead(p, gocv.IMReadColor)
		if img.Empty() {
			img.Close()
			s.Skipped = append(s.Skipped, p)
			continue
		}
		err := s.fill(img, p, dst)
		img.Close()
		return err
	}
	return io.EOF
}

func (s *FolderSource) fill(img gocv.Mat, path string, dst []float32) error {
	frame := image.Pt(img.Cols(), img.Rows())
	crop := image.Rectangle{Max: frame}
	if s.Detector != nil {
		var err error
		if s.boxes, err = s.Detector.Detect(img, s.boxes[:0]); err != nil {
			return fmt.Errorf("calibration image %s: face detection: %w", path, err)
		}
		if b, ok := largest(s.boxes); ok {
			crop = s.Pre.Crop(b, frame)
		} else {
			s.NoFace = append(s.NoFace, path)
		}
	}
	if err := s.Pre.Fill(img, crop, dst); err != nil {
		return fmt.Errorf("calibration image %s: %w", path, err)
	}
	return nil
}

func largest(boxes []face.Box) (image.Rectangle, bool) {
	if len(boxes) == 0 {
		return image.Rectangle{}, false
	}
	best := boxes[0].Rect
	for _, b := range boxes[1:] {
		if b.Rect.Dx()*b.Rect.Dy() > best.Dx()*best.Dy() {
			best = b.Rect
		}
	}
	return best, true
}

// VideoSource gives the faces the detector finds in a video file's frames,
// sampled at FPS frames per second of video, up to Max faces.
type VideoSource struct {
	cam      *capture.Camera
	pre      Preprocessor
	det      Detector
	max      int
	given    int
	boxes    []face.Box
	pending  []image.Rectangle
	frame    *capture.Frame
	Frames   int // frames read
	fileName string
}

// NewVideoSource opens path (a file) for calibration.
func NewVideoSource(ctx context.Context, path string, fps float64, max int, pre Preprocessor, det Detector, log *slog.Logger) (*VideoSource, error) {
	if max < 1 {
		return nil, fmt.Errorf("calibration video %s: want at least 1 face, got a maximum of %d", path, max)
	}
	cam, err := capture.Open(ctx, capture.Options{Name: "calibration", Source: path, FPS: fps}, log)
	if err != nil {
		return nil, fmt.Errorf("calibration video %s: %w", path, err)
	}
	return &VideoSource{cam: cam, pre: pre, det: det, max: max, fileName: path}, nil
}

func (s *VideoSource) Total() int { return s.max }

func (s *VideoSource) Next(ctx context.Context, dst []float32) error {
	for s.given < s.max {
		if len(s.pending) > 0 {
			crop := s.pending[0]
			s.pending = s.pending[1:]
			if err := s.pre.Fill(s.frame.Mat, crop, dst); err != nil {
				return fmt.Errorf("calibration video %s frame %d: %w", s.fileName, s.frame.Index, err)
			}
			s.given++
			return nil
		}
		s.release()
		f, err := s.cam.Next(ctx)
		if errors.Is(err, io.EOF) {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("calibration video %s: %w", s.fileName, err)
		}
		s.frame = f
		s.Frames++
		if s.boxes, err = s.det.Detect(f.Mat, s.boxes[:0]); err != nil {
			return fmt.Errorf("calibration video %s frame %d: face detection: %w", s.fileName, f.Index, err)
		}
		size := image.Pt(f.Mat.Cols(), f.Mat.Rows())
		for _, b := range s.boxes {
			s.pending = append(s.pending, s.pre.Crop(b.Rect, size))
		}
	}
	return io.EOF
}

func (s *VideoSource) release() {
	if s.frame != nil {
		s.cam.Release(s.frame)
		s.frame = nil
	}
}

// Close releases the frame held and closes the video.
func (s *VideoSource) Close() error {
	s.release()
	return s.cam.Close()
}
