package web

import (
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/contract"
)

// StatusSource is the running daemon as the status page shows it
// (health.Monitor with the models, the threshold and the last verdicts).
type StatusSource interface {
	Status(now time.Time) Status
}

// Status is the daemon at one moment.
type Status struct {
	Time      time.Time            `json:"ts"`
	Device    string               `json:"device"`
	Uptime    float64              `json:"uptime_s"`
	Model     contract.ModelIDs    `json:"model"`
	Threshold float64              `json:"threshold"`
	Cameras   []CameraStatus       `json:"cameras"`
	MQTT      contract.MQTTStats   `json:"mqtt"`
	Outbox    contract.OutboxStats `json:"outbox"`
	Training  bool                 `json:"training"`
	// Release names the model when it is a release the project shipped;
	// Trust says, in a plain sentence, how far its verdicts can be trusted.
	Release string `json:"release,omitempty"`
	Trust   string `json:"trust"`
}

// CameraStatus is one camera as the stats topic reports it, whether it is
// online, and its last verdict. Last's "last_verdict" replaces the embedded
// time of the same JSON name (the shallower field wins): the page shows the
// verdict. FPS is frames analysed per second over the last second or more,
// computed here (see rates).
type CameraStatus struct {
	contract.CameraStats
	Online bool         `json:"online"`
	Last   *LastVerdict `json:"last_verdict,omitempty"`
}

// LastVerdict is the camera's latest published verdict.
type LastVerdict struct {
	TS    time.Time `json:"ts"`
	Label string    `json:"label"`
	PFake float64   `json:"p_fake"`
	Faces int       `json:"faces"`
}

// rates turns analysed counts into frames/s: every client shares one
// sample a second, so the figure does not depend on how many watch.
type rates struct {
	mu   sync.Mutex
	at   time.Time
	prev map[string]int64
	fps  map[string]float64
}

const rateEvery = time.Second

func (r *rates) fill(s *Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dt := s.Time.Sub(r.at); r.prev == nil || dt >= rateEvery {
		fps := map[string]float64{}
		for _, c := range s.Cameras {
			if p, ok := r.prev[c.Name]; ok && dt > 0 {
				fps[c.Name] = math.Round(float64(c.Analysed-p)/dt.Seconds()*10) / 10
			}
		}
		r.prev = map[string]int64{}
		for _, c := range s.Cameras {
			r.prev[c.Name] = c.Analysed
		}
		r.at, r.fps = s.Time, fps
	}
	for i := range s.Cameras {
		s.Cameras[i].FPS = r.fps[s.Cameras[i].Name]
	}
}

func (s *Server) status() Status {
	st := s.parts.Status.Status(time.Now())
	s.rates.fill(&st)
	st.Training = s.train.running()
	return st
}

func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "status", s.status())
}

func (s *Server) statusJSON(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

// statusEvery is how often the stream sends the status: the cost is one
// health snapshot a second per open page, nothing on the frame path.
const statusEvery = time.Second

func (s *Server) statusStream(w http.ResponseWriter, r *http.Request) {
	send, ok := sse(w)
	if !ok {
		return
	}
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		if err := send("status", s.status()); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

// modelCard serves the shipped model's card as it is written (Markdown
// reads as plain text).
func (s *Server) modelCard(w http.ResponseWriter, r *http.Request) {
	if s.parts.ModelCard == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s.parts.ModelCard)
}
