package features

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/face"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/selfblend"
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
	// SelfBlend, when Per is above 0, adds fakes made from the folder's real
	// images.
	SelfBlend SelfBlend
}

// SelfBlend makes Per self-blended fakes (package selfblend) of every real
// image, each from the image's face crop, drawn from a generator seeded by
// the image's bytes, Seed and the blend's number: the same folder gives the
// same blends, which the cache keeps like images. A blend is a fake of its
// image's identity, so k-fold keeps it on its image's side.
type SelfBlend struct {
	Per  int
	Seed uint64
}

// blendDigest is a blend's cache key: what makes it, hashed.
func (sb SelfBlend) blendDigest(image Digest, k int) Digest {
	h := sha256.New()
	fmt.Fprintf(h, "deepfaked self-blend %s\x00%x\x00%d\x00%d", selfblend.Version, image[:], sb.Seed, k)
	return Digest(h.Sum(nil))
}

func (sb SelfBlend) rng(image Digest, k int) *rand.Rand {
	return rand.New(rand.NewPCG(sb.Seed^binary.LittleEndian.Uint64(image[:8]), uint64(k)))
}

// BlendPath is the dataset path of image path's blend k.
func BlendPath(path string, k int) string { return fmt.Sprintf("%s#self-blend-%d", path, k) }

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
	blends := 0
	if e.SelfBlend.Per > 0 {
		for _, s := range f.Samples {
			if s.Label != dataset.Fake {
				blends += e.SelfBlend.Per
			}
		}
	}
	var (
		res   = &Result{Skipped: append([]dataset.Skipped(nil), f.Skipped...)}
		queue []pending
		slot  = map[Digest]int{}
		boxes []face.Box
		p     = Progress{Total: len(f.Samples) + blends + len(f.Skipped), Skipped: len(f.Skipped)}
		// The dataset's samples: each image, then its blends.
		samples = make([]Sample, 0, len(f.Samples)+blends)
		offs    = make([]int64, 0, len(f.Samples)+blends)
	)
	report := func() {
		p.Cached, p.Extracted, p.Skipped = res.Cached, res.Extracted, len(res.Skipped)
		p.Done = p.Cached + p.Extracted + p.Skipped
		if progress != nil {
			progress(p)
		}
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
	type job struct {
		sample Sample
		digest Digest
		blend  int // -1: the image itself
	}
	var jobs []job
	for _, s := range f.Samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(filepath.Join(f.Dir, filepath.FromSlash(s.Path)))
		if err != nil {
			res.Skipped = append(res.Skipped, dataset.Skipped{Path: s.Path, Reason: err.Error()})
			report()
			continue
		}
		d := Digest(sha256.Sum256(data))
		jobs = append(jobs[:0], job{sampleOf(s), d, -1})
		if e.SelfBlend.Per > 0 && s.Label != dataset.Fake {
			for k := range e.SelfBlend.Per {
				jobs = append(jobs, job{Sample{Path: BlendPath(s.Path, k), Label: train.Fake, Group: s.Identity}, e.SelfBlend.blendDigest(d, k), k})
			}
		}
		var img gocv.Mat
		var crop image.Rectangle
		var lm *selfblend.Landmarks // the face's, in the crop's pixels
		decoded := false
		failed := 0 // jobs left undone by an error
		for ji, j := range jobs {
			v := len(samples)
			samples, offs = append(samples, j.sample), append(offs, -1)
			if off, ok := cache.Offset(j.digest); ok {
				offs[v] = off
				res.Cached++
				report()
				continue
			}
			if k, ok := slot[j.digest]; ok { // the same bytes twice in one batch: one run
				queue[k].members = append(queue[k].members, v)
				continue
			}
			if !decoded {
				if img, crop, lm, boxes, err = e.decode(data, s.Path, boxes, res); err != nil {
					failed = len(jobs) - ji
					break
				}
				decoded = true
			}
			dst := input[len(queue)*sample : (len(queue)+1)*sample]
			if j.blend < 0 {
				if err = e.Pre.Fill(img, crop, dst); err != nil {
					err = fmt.Errorf("preprocess: %w", err)
				}
			} else {
				err = e.fillBlend(img, crop, lm, e.SelfBlend.rng(d, j.blend), dst)
			}
			if err != nil {
				failed = len(jobs) - ji
				break
			}
			slot[j.digest] = len(queue)
			queue = append(queue, pending{digest: j.digest, members: []int{v}})
			if len(queue) == batch {
				if err = flush(); err != nil {
					img.Close() // queued, so decoded
					return nil, err
				}
			}
		}
		if decoded {
			img.Close()
		}
		if err != nil { // what it had not cached or queued is left out, counted as one skip
			res.Skipped = append(res.Skipped, dataset.Skipped{Path: s.Path, Reason: err.Error()})
			p.Total -= failed - 1
			report()
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := cache.Sync(); err != nil {
		return nil, err
	}
	ds := &Dataset{cache: cache}
	for v, s := range samples {
		if offs[v] >= 0 {
			ds.Samples = append(ds.Samples, s)
			ds.offsets = append(ds.offsets, offs[v])
		}
	}
	res.Dataset = ds
	return res, nil
}

// decode decodes one image and finds its crop: the largest face's with a
// Detector, else the whole image, and that face's landmarks in the crop's
// pixels when the detector gives them. The caller closes the Mat.
func (e *Extractor) decode(data []byte, path string, boxes []face.Box, res *Result) (gocv.Mat, image.Rectangle, *selfblend.Landmarks, []face.Box, error) {
	img, err := gocv.IMDecode(data, gocv.IMReadColor)
	if err != nil { // an empty file: no Mat was made
		return img, image.Rectangle{}, nil, boxes, fmt.Errorf("not an image: %w", err)
	}
	if img.Empty() {
		img.Close()
		return img, image.Rectangle{}, nil, boxes, fmt.Errorf("not an image OpenCV can decode")
	}
	frame := image.Pt(img.Cols(), img.Rows())
	crop := image.Rectangle{Max: frame}
	var lm *selfblend.Landmarks
	if e.Detector != nil {
		if boxes, err = e.Detector.Detect(img, boxes[:0]); err != nil {
			img.Close()
			return img, crop, nil, boxes, fmt.Errorf("face detection: %w", err)
		}
		if len(boxes) == 0 {
			res.NoFace = append(res.NoFace, path)
		} else {
			best := boxes[0]
			for _, b := range boxes[1:] {
				if b.Rect.Dx()*b.Rect.Dy() > best.Rect.Dx()*best.Rect.Dy() {
					best = b
				}
			}
			crop = e.Pre.Crop(best.Rect, frame)
			if best.HasLandmarks {
				// fillBlend blends the crop's part inside the frame.
				origin := crop.Intersect(image.Rectangle{Max: frame}).Min
				lm = &selfblend.Landmarks{}
				for i, p := range best.Landmarks {
					lm[i] = [2]float32{p[0] - float32(origin.X), p[1] - float32(origin.Y)}
				}
			}
		}
	}
	return img, crop, lm, boxes, nil
}

// fillBlend fills dst with the model input of a self-blend of img's crop.
func (e *Extractor) fillBlend(img gocv.Mat, crop image.Rectangle, lm *selfblend.Landmarks, rng *rand.Rand, dst []float32) error {
	region := img.Region(crop.Intersect(image.Rectangle{Max: image.Pt(img.Cols(), img.Rows())}))
	defer region.Close()
	blended := gocv.NewMat()
	defer blended.Close()
	if err := selfblend.Blend(region, lm, rng, &blended); err != nil {
		return err
	}
	if err := e.Pre.Fill(blended, image.Rect(0, 0, blended.Cols(), blended.Rows()), dst); err != nil {
		return fmt.Errorf("preprocess: %w", err)
	}
	return nil
}

// sampleOf is a data folder's sample with training's label.
func sampleOf(s dataset.Sample) Sample {
	return Sample{Path: s.Path, Label: train.ClassOf(s.Label), Group: s.Identity}
}
