package web

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"
)

// Crops are the face crops the daemon collected (train.collect) and the
// labelled data folder (train.dataset). The daemon's Crops label through
// collect.Folders.LabelPath, the code `deepfaked label --path` runs.
type Crops interface {
	// List returns the crops waiting for a label.
	List() ([]Crop, error)
	// Label moves the crop id (as List gives it) into the data folder under
	// label (real or fake). ErrUnknownCrop when there is no such crop.
	Label(ctx context.Context, id, label string) error
	// Counts are the data folder's labelled images per class.
	Counts() (real, fake int, err error)
	// Dir is the collect folder, which crop images are served from.
	Dir() string
	// Hold keeps the crops ids (as List gives them) from rotation for a
	// while: the review page holds those it shows, so that none is gone
	// when its labeller gets to it.
	Hold(ids []string)
}

// ErrUnknownCrop: no crop waits under that id (never collected, labelled
// already, or rotated out).
var ErrUnknownCrop = errors.New("no such crop waiting for a label")

// Crop is one collected crop.
type Crop struct {
	// ID is its JPEG's path relative to the collect folder: <camera>/<name>.jpg.
	ID        string    `json:"id"`
	Camera    string    `json:"camera"`
	Frame     int64     `json:"frame"`
	Face      int       `json:"face"`
	TS        time.Time `json:"ts"`
	PFake     float64   `json:"p_fake"`
	Threshold float64   `json:"threshold"`
	Reason    string    `json:"reason"`
}

// Uncertainty is how unsure the head was: 1 at the threshold, 0 at the far
// end of the scale from it.
func (c Crop) Uncertainty() float64 {
	if math.IsNaN(c.PFake) {
		return 0
	}
	t := c.Threshold
	if !(t > 0 && t < 1) {
		t = 0.5
	}
	d := c.PFake - t
	if d >= 0 {
		return max(1-d/(1-t), 0)
	}
	return max(1+d/t, 0)
}

// reviewPage is at most this many crops: a person labels a few dozen at a
// sitting, and the page reloads the queue when it runs out.
const reviewPage = 60

// queue is the crops, most uncertain first, then newest.
func queue(crops []Crop) []Crop {
	slices.SortStableFunc(crops, func(a, b Crop) int {
		if c := cmp.Compare(b.Uncertainty(), a.Uncertainty()); c != 0 {
			return c
		}
		return b.TS.Compare(a.TS)
	})
	return crops
}

type reviewData struct {
	Off        bool
	Crops      []Crop
	Waiting    int
	Real, Fake int
	Error      string
}

func (s *Server) review() (reviewData, error) {
	if s.parts.Crops == nil {
		return reviewData{Off: true}, nil
	}
	crops, err := s.parts.Crops.List()
	if err != nil {
		return reviewData{}, err
	}
	d := reviewData{Waiting: len(crops)}
	d.Crops = queue(crops)[:min(len(crops), reviewPage)]
	ids := make([]string, len(d.Crops))
	for i, c := range d.Crops {
		ids[i] = c.ID
	}
	s.parts.Crops.Hold(ids)
	if d.Real, d.Fake, err = s.parts.Crops.Counts(); err != nil {
		return d, err
	}
	return d, nil
}

func (s *Server) reviewPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.review()
	if err != nil {
		s.log.Error("web: review queue", "err", err)
		d.Error = err.Error()
	}
	s.render(w, r, http.StatusOK, "review", d)
}

func (s *Server) cropsJSON(w http.ResponseWriter, _ *http.Request) {
	d, err := s.review()
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) cropFile(w http.ResponseWriter, r *http.Request) {
	if s.parts.Crops == nil {
		http.NotFound(w, r)
		return
	}
	serveFile(w, r, s.parts.Crops.Dir(), r.PathValue("path"), ".jpg")
}

// labelRequest is POST /api/label's body.
type labelRequest struct {
	ID    string `json:"id"`
	Label string `json:"label"`
}

func (s *Server) label(w http.ResponseWriter, r *http.Request) {
	if s.parts.Crops == nil {
		jsonError(w, http.StatusNotFound, "crops are not collected (train.collect is off)")
		return
	}
	var req labelRequest
	dec := json.NewDecoder(r.Body) // bounded by guard
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf(`want {"id": "<camera>/<name>.jpg", "label": "real" or "fake"}: %v`, err))
		return
	}
	if req.Label != "real" && req.Label != "fake" {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("label %q: want real or fake", req.Label))
		return
	}
	if _, ok := cleanRel(req.ID, ".jpg"); !ok {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("crop %q: not a crop name (<camera>/<name>.jpg)", req.ID))
		return
	}
	if err := s.parts.Crops.Label(r.Context(), req.ID, req.Label); err != nil {
		if errors.Is(err, ErrUnknownCrop) {
			jsonError(w, http.StatusNotFound, err.Error())
			return
		}
		s.log.Error("web: label", "crop", req.ID, "label", req.Label, "err", err)
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("web: crop labelled", "crop", req.ID, "label", req.Label, "client", r.RemoteAddr)
	real, fake, err := s.parts.Crops.Counts()
	if err != nil {
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": req.ID, "label": req.Label, "real": real, "fake": fake})
}
