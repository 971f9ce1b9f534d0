package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/deepfaked/deepfaked/train"
)

// Trainer is `deepfaked train --install` and `deepfaked rollback` for the
// page; the daemon's runs that very command and calls train/install.
type Trainer interface {
	// Train trains a head on the data folder, gates it against the
	// installed one and installs it if the gate lets it (or, for
	// TrainRequest.Teach, only compares them), telling progress.
	Train(ctx context.Context, req TrainRequest, progress func(Progress)) (*Report, error)
	// Install installs a head a training made (Report.Head) over the
	// installed one, keeping that for a rollback, whatever the gate said.
	Install(ctx context.Context, head string) (string, error)
	// Rollback puts back the head the last install replaced.
	Rollback(ctx context.Context) (string, error)
	// Discard removes the files of a training whose head was not installed.
	Discard(ctx context.Context, r *Report) error
	// Latest is the report of the newest training, wherever it ran (the
	// page, a terminal's `deepfaked train`, the nightly timer); nil when
	// there was none.
	Latest() (*Report, error)
}

// Labelled is what the data folder holds for a training: its images by
// class, its groups (images training never splits: one face track), and
// what it still lacks ("" when it can train).
type Labelled struct {
	Real, Fake, Groups int
	Short              string
}

// TrainRequest says what a training learns from.
type TrainRequest struct {
	// Data is the data folder; "" is train.dataset.
	Data string
	// Teach trains on real faces alone, with self-blended fakes, and
	// compares the new head with the installed one without installing it
	// (`deepfaked train --self-blend --compare`): the page's user chooses.
	Teach bool
}

// Teacher collects a camera's real faces for "teach this camera".
type Teacher interface {
	// Faces is how many faces a session collects (train.teach.faces).
	Faces() int
	// Collect saves Faces() faces of camera, telling how many are saved so
	// far, and returns the data folder made of them.
	Collect(ctx context.Context, camera string, progress func(saved int)) (string, error)
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
	// GateSet is both heads on the trusted gate set (train.gate_set): the
	// reference of real deepfakes a taught head must still catch.
	GateSet *GateSetReport `json:"gate_set,omitempty"`
	// Mixed is the new head's weight in its mix with the installed one;
	// nil when it was not mixed.
	Mixed *float64 `json:"mixed,omitempty"`
	// Teach is the camera taught, for a "teach this camera" training; its
	// data folder is Data.
	Teach    string    `json:"teach,omitempty"`
	Data     string    `json:"data,omitempty"`
	Seconds  float64   `json:"seconds"`
	Finished time.Time `json:"finished"`
}

// GateSetReport is both heads' metrics on the trusted gate set.
type GateSetReport struct {
	Samples   int            `json:"samples"`
	Candidate train.Metrics  `json:"candidate"`
	Installed *train.Metrics `json:"installed,omitempty"`
}

// FalseAlarms is the share of real faces a head called fake.
func FalseAlarms(m train.Metrics) float64 {
	real := m.Confusion[0][0] + m.Confusion[0][1]
	if real == 0 {
		return 0
	}
	return float64(m.Confusion[0][1]) / float64(real)
}

// PictureURL is where the page shows one of the training's pictures. The
// URL names the training, so a browser never shows the previous training's
// picture from its cache.
func (r *Report) PictureURL(name string) string {
	return "/train/" + name + "?at=" + r.pictureKey()
}

func (r *Report) pictureKey() string { return strconv.FormatInt(r.Finished.UnixMilli(), 10) }

// Pictures a training writes into Report.Dir.
var pictures = []string{"confusion.png", "roc.png"}

// training is the page's one training at a time and its last outcome.
type training struct {
	mu       sync.Mutex
	busy     bool
	progress Progress
	report   *Report
	err      string
	errAt    time.Time          // when err was set
	note     string             // what the last install or rollback did
	changed  chan struct{}      // closed at every change, then replaced
	cancel   context.CancelFunc // stops the running job
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

// current is the state with the newest training's report, when one ran
// elsewhere (a terminal, the nightly timer) after what the page knows: it
// replaces the page's report, and an earlier error of the page's.
func (s *Server) current() (TrainState, <-chan struct{}) {
	st, changed := s.train.state()
	if st.Running || s.parts.Trainer == nil {
		return st, changed
	}
	latest, err := s.parts.Trainer.Latest()
	if err != nil || latest == nil || st.Report != nil && latest.Dir == st.Report.Dir {
		return st, changed
	}
	s.train.mu.Lock()
	errAt := s.train.errAt
	s.train.mu.Unlock()
	if (st.Report == nil || latest.Finished.After(st.Report.Finished)) && (st.Error == "" || latest.Finished.After(errAt)) {
		st.Report, st.Error = latest, ""
	}
	return st, changed
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
	s.startJob(w, r, "training", func(ctx context.Context, progress func(Progress)) (*Report, error) {
		return s.parts.Trainer.Train(ctx, TrainRequest{}, progress)
	})
}

// teach is "teach this camera": collect the camera's faces, then train on
// them with self-blends and compare the new head with the installed one.
func (s *Server) teach(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil || s.parts.Teacher == nil {
		jsonError(w, http.StatusNotFound, "teaching a camera from the page is off")
		return
	}
	camera := r.PostFormValue("camera")
	if !slices.Contains(s.cameras(), camera) {
		jsonError(w, http.StatusBadRequest, "no camera by that name")
		return
	}
	s.startJob(w, r, "teaching camera "+camera, func(ctx context.Context, progress func(Progress)) (*Report, error) {
		total := s.parts.Teacher.Faces()
		data, err := s.parts.Teacher.Collect(ctx, camera, func(saved int) {
			progress(Progress{Phase: "collect", Done: saved, Total: total,
				Line: fmt.Sprintf("%d of %d real faces of camera %s saved; keep them in view", saved, total, camera)})
		})
		if err != nil {
			return nil, err
		}
		rep, err := s.parts.Trainer.Train(ctx, TrainRequest{Data: data, Teach: true}, progress)
		if err != nil {
			return nil, err
		}
		rep.Teach, rep.Data = camera, data
		return rep, nil
	})
}

// cameras are the names of the cameras the status lists.
func (s *Server) cameras() []string {
	st := s.parts.Status.Status(time.Now())
	names := make([]string, len(st.Cameras))
	for i, c := range st.Cameras {
		names[i] = c.Name
	}
	return names
}

// startJob runs job as the page's one training, unless one runs.
func (s *Server) startJob(w http.ResponseWriter, r *http.Request, what string, job func(ctx context.Context, progress func(Progress)) (*Report, error)) {
	ctx, cancel := context.WithCancel(s.ctx)
	started := false
	s.train.update(func() {
		if s.train.busy {
			return
		}
		s.train.busy, started, s.train.cancel = true, true, cancel
		s.train.progress, s.train.err, s.train.note = Progress{Phase: "starting"}, "", ""
	})
	if !started {
		cancel()
		jsonError(w, http.StatusConflict, "a training is already running; one at a time")
		return
	}
	s.log.Info("web: "+what+" started", "client", r.RemoteAddr)
	s.train.wg.Go(func() {
		defer cancel()
		rep, err := job(ctx, func(p Progress) {
			s.train.update(func() { s.train.progress = p })
		})
		s.train.update(func() {
			s.train.busy, s.train.cancel = false, nil
			if err != nil {
				s.train.err, s.train.errAt = err.Error(), time.Now()
				if errors.Is(err, context.Canceled) && s.ctx.Err() == nil {
					s.train.err = what + " cancelled"
				}
				return
			}
			s.train.report = rep
		})
		switch {
		case err != nil:
			s.log.Error("web: "+what+" failed", "err", err)
		case rep.Replaced:
			s.log.Info("web: "+what+" installed a new head", "head", rep.Head, "reason", rep.Reason)
			s.reload("installed by the page's training")
		default:
			s.log.Info("web: "+what+": head not installed", "head", rep.Head, "reason", rep.Reason)
		}
	})
	writeJSON(w, http.StatusAccepted, map[string]bool{"started": true})
}

// cancelTraining stops the running training or collection.
func (s *Server) cancelTraining(w http.ResponseWriter, r *http.Request) {
	cancelled := false
	s.train.update(func() {
		if s.train.cancel != nil {
			s.train.cancel()
			cancelled = true
		}
	})
	if !cancelled {
		jsonError(w, http.StatusConflict, "nothing is running")
		return
	}
	s.log.Info("web: training cancelled", "client", r.RemoteAddr)
	writeJSON(w, http.StatusAccepted, map[string]bool{"cancelled": true})
}

// notInstalled is the last training's report when its head is not
// installed and nothing runs; otherwise it answers the request (409) and is nil.
func (s *Server) notInstalled(w http.ResponseWriter, action, installed string) *Report {
	st, _ := s.current()
	switch {
	case st.Running:
		jsonError(w, http.StatusConflict, "a training is running")
	case st.Report == nil:
		jsonError(w, http.StatusConflict, "no training to "+action)
	case st.Report.Replaced:
		jsonError(w, http.StatusConflict, installed)
	default:
		return st.Report
	}
	return nil
}

// discard removes the last training's files when its head was not installed.
func (s *Server) discard(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil {
		jsonError(w, http.StatusNotFound, "training from the page is off")
		return
	}
	rep := s.notInstalled(w, "discard", "that head is installed; roll back instead")
	if rep == nil {
		return
	}
	if err := s.parts.Trainer.Discard(r.Context(), rep); err != nil {
		s.log.Error("web: discard", "dir", rep.Dir, "err", err)
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("web: training discarded", "dir", rep.Dir, "client", r.RemoteAddr)
	s.train.update(func() {
		s.train.report, s.train.note = nil, "discarded the new head and its files"
	})
	writeJSON(w, http.StatusOK, map[string]string{"result": "discarded"})
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
	st, _ := s.current()
	teach := s.parts.Trainer != nil && s.parts.Teacher != nil
	data := map[string]any{"State": st, "Off": s.parts.Trainer == nil, "Teach": teach}
	if s.parts.Labelled != nil {
		l, err := s.parts.Labelled()
		if err != nil {
			l.Short = err.Error()
		}
		data["Labelled"] = l
	}
	if teach {
		data["Cameras"], data["Faces"] = s.cameras(), s.parts.Teacher.Faces()
	}
	s.render(w, r, http.StatusOK, "train", data)
}

func (s *Server) trainJSON(w http.ResponseWriter, _ *http.Request) {
	st, _ := s.current()
	writeJSON(w, http.StatusOK, st)
}

// trainStream sends the training's state at once and at every change.
func (s *Server) trainStream(w http.ResponseWriter, r *http.Request) {
	send, ok := sse(w)
	if !ok {
		return
	}
	for {
		st, changed := s.current()
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
	st, _ := s.current()
	name := r.PathValue("picture")
	at := r.URL.Query().Get("at")
	if st.Report == nil || (name != pictures[0] && name != pictures[1]) || (at != "" && at != st.Report.pictureKey()) {
		http.NotFound(w, r)
		return
	}
	serveFile(w, r, st.Report.Dir, name, ".png")
}

// installAnyway installs the last training's head that the gate refused,
// or that a taught camera's comparison left to the user; the form must say
// confirm=yes (the page asks first).
func (s *Server) installAnyway(w http.ResponseWriter, r *http.Request) {
	if s.parts.Trainer == nil {
		jsonError(w, http.StatusNotFound, "training from the page is off")
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		jsonError(w, http.StatusBadRequest, "installing a head the gate refused needs confirm=yes")
		return
	}
	rep := s.notInstalled(w, "install the head of", "that head is installed already")
	if rep == nil {
		return
	}
	msg, err := s.parts.Trainer.Install(r.Context(), rep.Head)
	if err != nil {
		s.log.Error("web: install anyway", "head", rep.Head, "err", err)
		jsonError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if rep.Teach != "" {
		s.log.Info("web: head taught on a camera installed", "camera", rep.Teach, "head", rep.Head, "client", r.RemoteAddr)
	} else {
		s.log.Warn("web: head installed although the gate refused it", "head", rep.Head, "client", r.RemoteAddr)
	}
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
