package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/train"
)

// Trainer is `deepfaked train --install` and `deepfaked rollback` for the
// page; the daemon's runs that very command and calls train/install.
type Trainer interface {
	// Train trains a head on the data folder, gates it against the
	// installed one and installs it if the gate lets it, telling progress.
	Train(ctx context.Context, progress func(Progress)) (*Report, error)
	// Install installs a head a training made (Report.Head) over the
	// installed one, keeping that for a rollback, whatever the gate said.
	Install(ctx context.Context, head string) (string, error)
	// Rollback puts back the head the last install replaced.
	Rollback(ctx context.Context) (string, error)
}

// Progress is where a training is.
type Progress struct {
	Phase string `json:"phase"` // e.g. features, train
	Done  int    `json:"done"`
	Total int    `json:"total"`
	// Line is the training's last line of output.
	Line string `json:"line"`
}

// Report is a finished training: metrics.json as the page shows it.
type Report struct {
	// Dir holds the training's files: confusion.png and roc.png are served from it.
	Dir string `json:"dir"`
	// Head is the new head's file.
	Head        string         `json:"head"`
	Real        int            `json:"real"`
	Fake        int            `json:"fake"`
	OutOfFold   train.Metrics  `json:"out_of_fold"`
	Threshold   float64        `json:"threshold"`
	Held        int            `json:"held_out"`
	Candidate   train.Metrics  `json:"candidate"`
	Installed   *train.Metrics `json:"installed,omitempty"`
	GateInstall bool           `json:"gate_install"` // the gate's decision
	Replaced    bool           `json:"replaced"`     // the new head is installed
	Reason      string         `json:"reason"`
	Seconds     float64        `json:"seconds"`
	Finished    time.Time      `json:"finished"`
}

// Pictures a training writes into Report.Dir.
var pictures = []string{"confusion.png", "roc.png"}

// training is the page's one training at a time and its last outcome.
type training struct {
	mu       sync.Mutex
	busy     bool
	progress Progress
	report   *Report
	err      string
	note     string        // what the last install or rollback did
	changed  chan struct{} // closed at every change, then replaced
	wg       sync.WaitGroup
}

func newTraining() *training { return &training{changed: make(chan struct{})} }

// TrainState is what the training page and its stream show.
type TrainState struct {
	Running  bool     `json:"running"`
	Progress Progress `json:"progress"`
	Report   *Report  `json:"report,omitempty"`
	Error    string   `json:"error,omitempty"`
	Note     string   `json:"note,omitempty"`
}

func (t *training) state() (TrainState, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TrainState{Running: t.busy, Progress: t.progress, Report: t.report, Error: t.err, Note: t.note}, t.changed
}

func (t *training) running() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.busy
}

// update changes the state under the lock and wakes the streams.
func (t *training) update(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	close(t.changed)
	t.changed = make(chan struct{})
}

func (s *Server) startTraining(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil {
		jsonError(w, http.StatusNotFound, "training from the page is off (the daemon has no config file to train with)")
		return
	}
	started := false
	s.train.update(func() {
		if s.train.busy {
			return
		}
		s.train.busy, started = true, true
		s.train.progress, s.train.err, s.train.note = Progress{Phase: "starting"}, "", ""
	})
	if !started {
		jsonError(w, http.StatusConflict, "a training is already running; one at a time")
		return
	}
	s.log.Info("web: training started", "client", r.RemoteAddr)
	s.train.wg.Go(func() {
		rep, err := s.parts.Trainer.Train(s.ctx, func(p Progress) {
			s.train.update(func() { s.train.progress = p })
		})
		s.train.update(func() {
			s.train.busy = false
			if err != nil {
				s.train.err = err.Error()
				return
			}
			s.train.report = rep
		})
		switch {
		case err != nil:
			s.log.Error("web: training failed", "err", err)
		case rep.Replaced:
			s.log.Info("web: training installed a new head", "head", rep.Head, "reason", rep.Reason)
			s.reload("installed by the page's training")
		default:
			s.log.Info("web: training's head not installed", "head", rep.Head, "reason", rep.Reason)
		}
	})
	writeJSON(w, http.StatusAccepted, map[string]bool{"started": true})
}

func (s *Server) reload(reason string) {
	if s.parts.Reload == nil {
		return
	}
	if _, err := s.parts.Reload(reason); err != nil {
		s.log.Error("web: reload after install", "err", err)
	}
}

func (s *Server) trainPage(w http.ResponseWriter, r *http.Request) {
	st, _ := s.train.state()
	s.render(w, r, http.StatusOK, "train", map[string]any{"State": st, "Off": s.parts.Trainer == nil})
}

func (s *Server) trainJSON(w http.ResponseWriter, _ *http.Request) {
	st, _ := s.train.state()
	writeJSON(w, http.StatusOK, st)
}

// trainStream sends the training's state at once and at every change.
func (s *Server) trainStream(w http.ResponseWriter, r *http.Request) {
	send, ok := sse(w)
	if !ok {
		return
	}
	for {
		st, changed := s.train.state()
		if err := send("train", st); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		case <-changed:
		}
	}
}

func (s *Server) trainPicture(w http.ResponseWriter, r *http.Request) {
	st, _ := s.train.state()
	name := r.PathValue("picture")
	if st.Report == nil || (name != pictures[0] && name != pictures[1]) {
		http.NotFound(w, r)
		return
	}
	serveFile(w, r, st.Report.Dir, name, ".png")
}

// installAnyway installs the last training's head that the gate refused;
// the form must say confirm=yes (the page asks first).
func (s *Server) installAnyway(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil {
		jsonError(w, http.StatusNotFound, "training from the page is off")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		jsonError(w, http.StatusBadRequest, "installing a head the gate refused needs confirm=yes")
		return
	}
	st, _ := s.train.state()
	switch {
	case st.Running:
		jsonError(w, http.StatusConflict, "a training is running")
		return
	case st.Report == nil:
		jsonError(w, http.StatusConflict, "no training to install the head of")
		return
	case st.Report.Replaced:
		jsonError(w, http.StatusConflict, "that head is installed already")
		return
	}
	msg, err := s.parts.Trainer.Install(r.Context(), st.Report.Head)
	if err != nil {
		s.log.Error("web: install anyway", "head", st.Report.Head, "err", err)
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Warn("web: head installed although the gate refused it", "head", st.Report.Head, "client", r.RemoteAddr)
	s.train.update(func() {
		if s.train.report != nil {
			rep := *s.train.report
			rep.Replaced = true
			s.train.report = &rep
		}
		s.train.note = msg
	})
	s.reload("installed anyway from the page")
	writeJSON(w, http.StatusOK, map[string]string{"result": msg})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil {
		jsonError(w, http.StatusNotFound, "training from the page is off")
		return
	}
	if s.train.running() {
		jsonError(w, http.StatusConflict, "a training is running; roll back after it")
		return
	}
	msg, err := s.parts.Trainer.Rollback(r.Context())
	if err != nil {
		jsonError(w, http.StatusConflict, err.Error())
		return
	}
	s.log.Warn("web: head rolled back", "result", msg, "client", r.RemoteAddr)
	s.train.update(func() {
		s.train.note = msg
		if s.train.report != nil {
			rep := *s.train.report
			rep.Replaced = false
			s.train.report = &rep
		}
	})
	s.reload("rolled back from the page")
	writeJSON(w, http.StatusOK, map[string]string{"result": msg})
}
