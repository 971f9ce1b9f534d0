package features

import (
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train"
)

// Backbone turns a batch of preprocessed crops into features (infer.Backbone).
type Backbone interface {
	Features(input []float32, n int, dst []float32) error
	FeatureSize() int
}

// Detector finds faces (capture/face).
type Detector interface {
	Detect(img gocv.Mat, dst []face.Box) ([]face.Box, error)
}

// Preprocessor crops and normalises like the daemon (capture/preprocess).
type Preprocessor interface {
	Crop(box image.Rectangle, frame image.Point) image.Rectangle
	Fill(img gocv.Mat, crop image.Rectangle, dst []float32) error
}

// Extractor runs a folder's images through the backbone.
type Extractor struct {
	Backbone  Backbone
	InputSize int // the backbone's square input side
	// Detector, when set, crops each image to its largest face (with the
	// preprocessor's margin), as the daemon crops frames; an image without a
	// face is used whole and counted in Result.NoFace. Nil uses every image
	// whole: for folders of face crops.
	Detector Detector
	Pre      Preprocessor
	Batch    int // images per backbone run (default 16)
}

// Progress is reported after each image.
type Progress struct {
	Done, Total                int
	Cached, Extracted, Skipped int
}

// Result is an extraction's outcome.
type Result struct {
	Dataset           *Dataset
	Cached, Extracted int
	Skipped           []dataset.Skipped // missing, unreadable and non-image files
	NoFace            []string          // images used whole because no face was found
}

type pending struct {
	digest  Digest
	members []int // sample indexes with these bytes
}

// Extract reads every sample of f, takes its features from cache or computes
// and caches them, and returns a dataset of the samples that worked.
func (e *Extractor) Extract(ctx context.Context, f *dataset.Folder, cache *Cache, progress func(Progress)) (*Result, error) {
	batch := e.Batch
	if batch <= 0 {
		batch = 16
	}
	dim := e.Backbone.FeatureSize()
	if dim != cache.Dim() {
		return nil, fmt.Errorf("extract: backbone gives %d features but the cache %s holds %d", dim, cache.Dir(), cache.Dim())
	}
	sample := 3 * e.InputSize * e.InputSize
	input := make([]float32, batch*sample)
	feats := make([]float32, batch*dim)
	offs := make([]int64, len(f.Samples))
	var (
		res   = &Result{Skipped: append([]dataset.Skipped(nil), f.Skipped...)}
		queue []pending
		slot  = map[Digest]int{}
		boxes []face.Box
		p     = Progress{Total: len(f.Samples) + len(f.Skipped), Skipped: len(f.Skipped)}
	)
	report := func() {
		p.Cached, p.Extracted, p.Skipped = res.Cached, res.Extracted, len(res.Skipped)
		p.Done = p.Cached + p.Extracted + p.Skipped
		if progress != nil {
			progress(p)
		}
	}
	skip := func(i int, reason string) {
		offs[i] = -1
		res.Skipped = append(res.Skipped, dataset.Skipped{Path: f.Samples[i].Path, Reason: reason})
	}
	flush := func() error {
		if len(queue) == 0 {
			return nil
		}
		if err := e.Backbone.Features(input[:len(queue)*sample], len(queue), feats[:len(queue)*dim]); err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		for k, q := range queue {
			off, err := cache.Put(q.digest, feats[k*dim:(k+1)*dim])
			if err != nil {
				return err
			}
			for _, i := range q.members {
				offs[i] = off
			}
			res.Extracted += len(q.members)
			delete(slot, q.digest)
		}
		queue = queue[:0]
		report()
		return nil
	}
	for i, s := range f.Samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(f.Dir, filepath.FromSlash(s.Path)))
		if err != nil {
			skip(i, err.Error())
			report()
			continue
		}
		d := Digest(sha256.Sum256(data))
		if off, ok := cache.Offset(d); ok {
			offs[i] = off
			res.Cached++
			report()
			continue
		}
		if k, ok := slot[d]; ok { // the same bytes twice in one batch: one run
			queue[k].members = append(queue[k].members, i)
			continue
		}
		if boxes, err = e.prepare(data, s.Path, boxes, input[len(queue)*sample:(len(queue)+1)*sample], res); err != nil {
			skip(i, err.Error())
			report()
			continue
		}
		slot[d] = len(queue)
		queue = append(queue, pending{digest: d, members: []int{i}})
		if len(queue) == batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := cache.Sync(); err != nil {
		return nil, err
	}
	ds := &Dataset{cache: cache}
	for i, s := range f.Samples {
		if offs[i] >= 0 {
			ds.Samples = append(ds.Samples, sampleOf(s))
			ds.offsets = append(ds.offsets, offs[i])
		}
	}
	res.Dataset = ds
	return res, nil
}

// prepare decodes one image, crops it and fills dst with the model input.
func (e *Extractor) prepare(data []byte, path string, boxes []face.Box, dst []float32, res *Result) ([]face.Box, error) {
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil { // an empty file: no Mat was made
		return boxes, fmt.Errorf("not an image: %w", err)
	}
	if img.Empty() {
		img.Close()
		return boxes, fmt.Errorf("not an image OpenCV can decode")
	}
	defer img.Close()
	frame := image.Pt(img.Cols(), img.Rows())
	crop := image.Rectangle{Max: frame}
	if e.Detector != nil {
		if boxes, err = e.Detector.Detect(img, boxes[:0]); err != nil {
			return boxes, fmt.Errorf("face detection: %w", err)
		}
		if len(boxes) == 0 {
			res.NoFace = append(res.NoFace, path)
		} else {
			best := boxes[0].Rect
			for _, b := range boxes[1:] {
				if b.Rect.Dx()*b.Rect.Dy() > best.Dx()*best.Dy() {
					best = b.Rect
				}
			}
			crop = e.Pre.Crop(best, frame)
		}
	}
	if err := e.Pre.Fill(img, crop, dst); err != nil {
		return boxes, fmt.Errorf("preprocess: %w", err)
	}
	return boxes, nil
}

// sampleOf is a data folder's sample with training's label.
func sampleOf(s dataset.Sample) Sample {
	label := train.Real
	if s.Label == dataset.Fake {
		label = train.Fake
	}
	return Sample{Path: s.Path, Label: label, Group: s.Identity}
}
