package web

import (
	"context"
	"fmt"
	"io"
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
	// Next is Frame for a stream: it waits until camera has a frame after
	// index after (with its verdict, when one comes soon), or ctx ends,
	// and while someone waits every analysed frame is copied, not a few a
	// second. ok is false when ctx ended or there is no frame yet.
	Next(ctx context.Context, camera string, after int64) (jpeg []byte, index int64, ok bool)
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

// liveFrame serves /live/<camera>.jpg, the latest frame, and
// /live/<camera>.mjpg, a stream of them at the camera's analysed rate.
func (s *Server) liveFrame(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if camera, ok := strings.CutSuffix(name, ".mjpg"); ok && s.parts.Live != nil && contract.ValidName(camera) {
		s.liveStream(w, r, camera)
		return
	}
	camera, ok := strings.CutSuffix(name, ".jpg")
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

// liveStream sends camera's frames as they are analysed, as an MJPEG
// stream (multipart/x-mixed-replace, which an <img> plays), until the
// client goes or the server stops.
func (s *Server) liveStream(w http.ResponseWriter, r *http.Request, camera string) {
	f, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	context.AfterFunc(s.ctx, cancel)
	last := int64(-1)
	for {
		b, index, ok := s.parts.Live.Next(ctx, camera, last)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			continue
		}
		last = index
		if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\nX-Frame-Index: %d\r\n\r\n", mjpegBoundary, len(b), index); err != nil {
			return
		}
		if _, err := w.Write(b); err != nil { // b is shared: never appended to
			return
		}
		if _, err := io.WriteString(w, "\r\n"); err != nil {
			return
		}
		f.Flush()
	}
}

// mjpegBoundary separates a live stream's frames.
const mjpegBoundary = "deepfaked-frame"
