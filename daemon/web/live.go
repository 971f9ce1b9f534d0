package web

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// Live is each camera's latest analysed frame with its faces drawn. Asking
// for a frame is what turns the copying on: a camera nobody watches pays
// nothing, and a watched one copies at most a few frames a second, off the
// detection and inference goroutines.
type Live interface {
	// Frame returns camera's latest frame as a JPEG with its faces' boxes,
	// tracks and scores drawn, and the frame's index; ok is false while
	// there is none yet (the copying starts with the first request).
	Frame(camera string) (jpeg []byte, index int64, ok bool)
}

func (s *Server) livePage(w http.ResponseWriter, r *http.Request) {
	var cams []string
	st := s.parts.Status.Status(time.Now())
	if s.parts.Live != nil {
		for _, c := range st.Cameras {
			cams = append(cams, c.Name)
		}
	}
	s.render(w, r, http.StatusOK, "live", map[string]any{"Off": s.parts.Live == nil, "Cameras": cams, "Trust": st.Trust})
}

// liveFrame serves /live/<camera>.jpg.
func (s *Server) liveFrame(w http.ResponseWriter, r *http.Request) {
	camera, ok := strings.CutSuffix(r.PathValue("file"), ".jpg")
	if s.parts.Live == nil || !ok || !contract.ValidName(camera) {
		http.NotFound(w, r)
		return
	}
	b, index, ok := s.parts.Live.Frame(camera)
	if !ok {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no frame yet", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("X-Frame-Index", strconv.FormatInt(index, 10))
	_, _ = w.Write(b)
}
