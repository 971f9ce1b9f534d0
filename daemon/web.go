package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/health"
	"github.com/deepfaked/deepfaked/daemon/pipeline"
	"github.com/deepfaked/deepfaked/daemon/web"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/setup"
	"github.com/deepfaked/deepfaked/shipped"
	"github.com/deepfaked/deepfaked/train"
	"github.com/deepfaked/deepfaked/train/collect"
	"github.com/deepfaked/deepfaked/train/install"
	"github.com/deepfaked/deepfaked/train/teach"
	"github.com/deepfaked/deepfaked/train/workflow"
)

// startWeb serves the page (web.enabled) with the daemon's parts: the
// health monitor, the events and verdicts the pipeline publishes (tap),
// the collected crops, training by `deepfaked train --install` in a child
// process, and the head reload. open are the metrics' handlers when the
// page shares their server.
func (d *Daemon) startWeb(o web.Options, tap *publishTap, open map[string]http.Handler) error {
	status := &webStatus{cfg: d.cfg, mon: d.mon, clf: d.clf, tap: tap}
	if r, err := shipped.Get(); err == nil { // read once: the status is asked for every second
		status.shipped = &r
	}
	parts := web.Parts{Status: status,
		Events: tap.events, Reload: d.reloader.Reload, Open: open, Log: d.log, Live: d.live, ModelCard: shipped.Card()}
	if d.cfg.Events.Enabled && d.cfg.Events.Snapshots.Enabled {
		parts.SnapshotDir = d.cfg.Events.Snapshots.Dir
		pastEvents(tap.events, parts.SnapshotDir, d.log)
	}
	if d.clips != nil {
		parts.ClipDir = d.cfg.Events.Clips.Dir
	}
	if d.cfg.Train.Collect.Enabled() {
		parts.Crops = webCrops{folders: setup.LabelFolders(d.cfg), collector: d.collector}
	}
	parts.Labelled = func() (web.Labelled, error) { return labelled(d.cfg) }
	if t, err := newExecTrainer(d.cfg, d.log); err != nil {
		d.log.Warn("training from the page is off", "err", err)
	} else {
		parts.Trainer = t
		if d.teacher != nil {
			faces, every := setup.TeachFaces(d.cfg)
			parts.Teacher = webTeacher{d.teacher, faces, every}
		}
	}
	var err error
	if d.web, err = web.New(o, parts); err != nil {
		return err
	}
	if d.webSrv, err = web.Listen(o, d.web.Handler(), d.log); err != nil {
		d.web.Close()
		d.web = nil
		return err
	}
	scheme := "http"
	if o.TLS != nil {
		scheme = "https"
	}
	d.log.Info("serving the page", "url", scheme+"://"+d.webSrv.Addr()+"/", "login", o.PasswordHash != nil,
		"with_metrics", len(open) > 0)
	if o.PasswordHash != nil && o.TLS == nil {
		d.log.Warn("web.password_file without web.tls: the password and the session cookie cross the network in clear; serve HTTPS or put a TLS proxy in front")
	}
	return nil
}

// pastEvents puts the events of earlier runs that left a snapshot
// (<dir>/<camera>/<contract.SnapshotName>) into the page's log, oldest first:
// the log itself starts empty at each start.
func pastEvents(log *web.EventLog, dir string, l *slog.Logger) {
	type past struct {
		id, camera, path string
		track            int64
		at               time.Time
	}
	var all []past
	cams, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			l.Warn("web: earlier events", "dir", dir, "err", err)
		}
		return
	}
	for _, cam := range cams {
		if !cam.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, cam.Name()))
		if err != nil {
			continue
		}
		for _, f := range files {
			run, track, ok := contract.ParseSnapshotName(f.Name())
			if !ok || !f.Type().IsRegular() {
				continue
			}
			info, err := f.Info()
			if err != nil {
				continue
			}
			all = append(all, past{id: contract.EventID(run, cam.Name(), track), camera: cam.Name(),
				path: filepath.Join(dir, cam.Name(), f.Name()), track: track, at: info.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b past) int { return a.at.Compare(b.at) })
	for _, p := range all[max(0, len(all)-web.DefaultEvents):] {
		log.AddPast(p.id, p.camera, p.track, p.at, p.path)
	}
}

// WebAddr is where the page is served (the real port when web.listen asks
// for 0), or "" when it is not.
func (d *Daemon) WebAddr() string {
	if d.webSrv == nil {
		return ""
	}
	return d.webSrv.Addr()
}

// closeWeb stops the page's server, then a training it started.
func (d *Daemon) closeWeb() error {
	var err error
	if d.webSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = d.webSrv.Close(ctx)
	}
	if d.web != nil {
		d.web.Close()
	}
	return err
}

// publishTap is the pipeline's publisher for the page: it hands each event
// to the page's log and keeps each camera's last verdict, then publishes.
// Per verdict it copies the payload into the camera's own buffer, so
// nothing is allocated once the buffer has grown.
type publishTap struct {
	pipeline.Publisher
	events *web.EventLog
	live   *liveView
	topics contract.Topics
	log    *slog.Logger

	mu   sync.Mutex
	last map[string][]byte // camera -> its last verdict's JSON
}

func newPublishTap(pub pipeline.Publisher, topics contract.Topics, live *liveView, log *slog.Logger) *publishTap {
	return &publishTap{Publisher: pub, events: web.NewEventLog(web.DefaultEvents), live: live, topics: topics,
		log: log, last: map[string][]byte{}}
}

func (t *publishTap) Publish(topic string, payload []byte) error {
	camera, kind, _ := t.topics.CameraOf(topic)
	switch kind {
	case contract.KindVerdict:
		t.mu.Lock()
		t.last[camera] = append(t.last[camera][:0], payload...)
		t.mu.Unlock()
		if t.live != nil {
			if c := t.live.cams[camera]; c != nil {
				c.verdictOf(payload)
			}
		}
	case contract.KindEvents:
		if err := t.events.Add(payload); err != nil {
			t.log.Warn("web: event not kept", "topic", topic, "err", err)
		}
	}
	return t.Publisher.Publish(topic, payload)
}

// lastVerdict reads a camera's last verdict (contract.Verdict's JSON).
func (t *publishTap) lastVerdict(camera string) *web.LastVerdict {
	t.mu.Lock()
	b, ok := t.last[camera]
	var v contract.Verdict
	err := json.Unmarshal(b, &v)
	t.mu.Unlock()
	if !ok || err != nil {
		return nil
	}
	return &web.LastVerdict{TS: v.TS, Label: v.Label, PFake: v.PFake, Faces: len(v.Faces)}
}

// webStatus is the status page's source: the health snapshot (the stats
// topic's), the models' threshold and the last verdicts.
type webStatus struct {
	shipped *shipped.Release // nil when its files cannot be read
	cfg     *config.Config
	mon     *health.Monitor
	clf     interface{ Threshold() spec.Threshold }
	tap     *publishTap
}

func (s *webStatus) Status(now time.Time) web.Status {
	h := s.mon.Snapshot(now)
	st := web.Status{Time: now, Device: s.cfg.DeviceID, Uptime: h.Uptime,
		Model:     h.Model,
		Threshold: spec.DecisionThreshold(setup.Threshold(s.cfg), s.clf.Threshold()),
		MQTT:      h.MQTT, Outbox: h.Outbox}
	st.Release, st.Trust = trust(s.shipped, h.Model)
	for _, c := range h.Cameras {
		c.FPS = 0 // the page's own rate, over the last second (web's rates)
		st.Cameras = append(st.Cameras, web.CameraStatus{CameraStats: c, Online: c.Online(), Last: s.tap.lastVerdict(c.Name)})
	}
	return st
}

// webCrops are the collected crops for the review queue. Labelling goes
// through collect.Folders.LabelPath, as `deepfaked label --path` does; the
// running collector finds a labelled crop gone and only corrects its count.
type webCrops struct {
	folders   collect.Folders
	collector *collect.Collector // nil when this daemon does not collect (another one does)
}

// reviewHold is how long crops shown for review are kept from rotation.
const reviewHold = 30 * time.Minute

func (c webCrops) Hold(ids []string) {
	if c.collector == nil {
		return
	}
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = filepath.Join(c.folders.Collect, filepath.FromSlash(id))
	}
	c.collector.Hold(paths, time.Now().Add(reviewHold))
}

func (c webCrops) List() ([]web.Crop, error) {
	crops, err := collect.List(c.folders.Collect)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // nothing collected yet
	}
	if err != nil {
		return nil, err
	}
	out := make([]web.Crop, 0, len(crops))
	for _, k := range crops {
		rel, err := filepath.Rel(c.folders.Collect, k.Path)
		if err != nil {
			continue
		}
		m := k.Meta
		out = append(out, web.Crop{ID: filepath.ToSlash(rel), Camera: m.Camera, Frame: m.Frame, Face: m.Face, TS: m.TS,
			PFake: m.PFake, Threshold: m.Threshold, Reason: m.Reason})
	}
	return out, nil
}

func (c webCrops) Label(_ context.Context, id, label string) error {
	p := filepath.Join(c.folders.Collect, filepath.FromSlash(id))
	if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("crop %s: %w", id, web.ErrUnknownCrop)
	}
	if _, err := c.folders.LabelPath(p, label); err != nil {
		if errors.Is(err, fs.ErrNotExist) { // labelled by someone else meanwhile
			return fmt.Errorf("crop %s: %w", id, web.ErrUnknownCrop)
		}
		return err
	}
	return nil
}

func (c webCrops) Counts() (real, fake int, err error) {
	f, err := dataset.Load(c.folders.Dataset)
	if f != nil { // one class only is an error for training, not for counting
		real, fake = f.Counts()
		return real, fake, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	return 0, 0, fmt.Errorf("train.dataset: %w", err)
}

func (c webCrops) Dir() string { return c.folders.Collect }

// webTeacher is the page's "teach this camera" with train.teach's counts.
type webTeacher struct {
	t            *teach.Teacher
	faces, every int
}

func (w webTeacher) Faces() int { return w.faces }

func (w webTeacher) Collect(ctx context.Context, camera string, progress func(saved int)) (string, error) {
	return w.t.Collect(ctx, camera, w.faces, w.every, progress)
}

// collectors offers each face to every collector there is: train.collect's
// and the page's "teach this camera".
type collectors []pipeline.Collector

func (c collectors) Offer(f collect.Face) bool {
	taken := false
	for _, x := range c {
		taken = x.Offer(f) || taken
	}
	return taken
}

// collectorsOf is the pipeline's collector: nil without any (not a typed
// nil in the interface), the one alone, or both.
func collectorsOf(c *collect.Collector, t *teach.Teacher) pipeline.Collector {
	var all collectors
	if c != nil {
		all = append(all, c)
	}
	if t != nil {
		all = append(all, t)
	}
	switch len(all) {
	case 0:
		return nil
	case 1:
		return all[0]
	}
	return all
}

// execTrainer trains by running this very binary's `train --install` on
// train.dataset: the same features, cross-validation, gate and install as
// the command (and the nightly timer), in a process of its own, so that the
// daemon's memory and ONNX Runtime sessions are not the training's, and a
// crash of either leaves the other. Install and rollback are
// train/install's, as `deepfaked rollback` runs it.
type execTrainer struct {
	exe, config, data, head, out string
	teach                        string // the taught cameras' sessions
	// gateSet is train.gate_set: without it the page installs nothing.
	gateSet string
	signing install.Signing
	log     *slog.Logger
}

// errNoGateSet is why the page installs no head without train.gate_set: the
// labels it trains on can be set by anyone who can use the page (or reach
// the label command), so only a reference the operator alone writes can
// vouch for a head trained on them.
var errNoGateSet = errors.New("the page installs a head only when train.gate_set names a labelled reference only you write: " +
	"labels set from the page or over MQTT could teach a head to call deepfakes real; train with --install at the terminal instead")

func newExecTrainer(cfg *config.Config, log *slog.Logger) (*execTrainer, error) {
	if cfg.Path == "" {
		return nil, errors.New("the config was not read from a file, which `deepfaked train` needs")
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("this program's path: %w", err)
	}
	signing, err := setup.Signing(cfg)
	if err != nil {
		return nil, err
	}
	return &execTrainer{exe: exe, config: cfg.Path, data: cfg.Train.Dataset, head: cfg.Model.Head, signing: signing,
		out: filepath.Join(cfg.StateDir, "train"), teach: setup.TeachDir(cfg), gateSet: setup.GateSet(cfg), log: log}, nil
}

// progressLine is a line of `deepfaked train`'s progress off a terminal:
// "train 57/640 (9%) 3.2/s ETA 3m  fold 1/5 epoch 2/10 loss 0.5123".
var progressLine = regexp.MustCompile(`^(\w+) (\d+)/(\d+) \(`)

// trainNice is the training's niceness: the nightly unit's.
const trainNice = 19

// trainStop is how long a cancelled training may take to stop after SIGTERM.
const trainStop = 10 * time.Second

// exitGateRefused is `deepfaked train --install`'s exit status when the gate keeps the installed head.
const exitGateRefused = 3

func (t *execTrainer) Train(ctx context.Context, req web.TrainRequest, progress func(web.Progress)) (*web.Report, error) {
	out := filepath.Join(t.out, time.Now().UTC().Format("20060102T150405Z"))
	data := req.Data
	if data == "" {
		data = t.data
	}
	args := []string{t.exe, "train", "--config", t.config, "--data", data, "--out", out}
	switch {
	case req.Teach:
		// The taught camera's faces are crops as the daemon saves them.
		args = append(args, "--crop", dataset.CropNone, "--self-blend", "--compare")
	case t.gateSet == "":
		return nil, errNoGateSet
	default:
		args = append(args, "--install")
	}
	// At the lowest CPU priority, as the nightly unit trains (Nice=19), so
	// that the cameras keep their frame rate; nice(1) sets it before the
	// exec, for every thread the training starts.
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice, "-n", strconv.Itoa(trainNice)}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = trainStop
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = io.Discard // the report is metrics.json
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	t.log.Info("web: training", "pid", cmd.Process.Pid, "data", data, "out", out)
	var tail []string // the last lines, for the error
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		tail = append(tail[max(0, len(tail)-4):], line)
		p := web.Progress{Phase: "train", Line: line}
		if m := progressLine.FindStringSubmatch(line); m != nil {
			p.Phase = m[1]
			p.Done, _ = strconv.Atoi(m[2])
			p.Total, _ = strconv.Atoi(m[3])
		}
		progress(p)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == exitGateRefused) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("deepfaked train: %w: %s", err, strings.Join(tail, " | "))
	}
	return readReport(out)
}

// Latest is the newest training's report under <state_dir>/train, where
// the page's, a terminal's and the nightly timer's trainings all write
// (their folders are named by UTC time); a teach session's is left out.
func (t *execTrainer) Latest() (*web.Report, error) {
	ents, err := os.ReadDir(t.out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	for i := len(ents) - 1; i >= 0; i-- {
		dir := filepath.Join(t.out, ents[i].Name())
		if !ents[i].IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, workflow.MetricsFile)); err != nil {
			continue // running, or failed
		}
		return readReport(dir)
	}
	return nil, nil
}

// readReport turns a training's metrics.json into the page's report; it
// finished when metrics.json was written.
func readReport(out string) (*web.Report, error) {
	path := filepath.Join(out, workflow.MetricsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("training report: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("training report: %w", err)
	}
	var r workflow.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("training report %s: %w", filepath.Join(out, workflow.MetricsFile), err)
	}
	rep := &web.Report{Dir: out, Head: r.Final.Head, Real: r.Data.Real, Fake: r.Data.Fake,
		Threshold: r.Final.Threshold, Seconds: r.Timings["total"], Finished: st.ModTime()}
	rep.OutOfFold = r.Final.OutOfFold // the exported head's: the mix's when it is one
	if g := r.Gate; g != nil {
		rep.Held, rep.Candidate, rep.Installed = g.Held, g.Candidate, g.Installed
		rep.GateInstall, rep.Replaced, rep.Reason = g.Install, g.Replaced, g.Reason
		if gs := g.GateSet; gs != nil {
			rep.GateSet = &web.GateSetReport{Samples: gs.Samples, Candidate: gs.Candidate, Installed: gs.Installed}
		}
	}
	if m := r.Mix; m != nil && m.Skipped == "" {
		rep.Mixed = &m.Alpha
	}
	return rep, nil
}

// Discard removes a training's folder and, for a taught camera, the
// session's faces (the data folder's parent, under <state_dir>/teach).
func (t *execTrainer) Discard(_ context.Context, r *web.Report) error {
	dirs := map[string]string{r.Dir: t.out}
	if r.Teach != "" && r.Data != "" {
		dirs[filepath.Dir(r.Data)] = t.teach
	}
	for dir, root := range dirs {
		// Only what the page's trainings made: never a folder elsewhere.
		if rel, err := filepath.Rel(root, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
			return fmt.Errorf("discard: %s is not a training's folder under %s", dir, root)
		}
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("discard: %w", err)
		}
	}
	return nil
}

func (t *execTrainer) Install(_ context.Context, head string) (string, error) {
	if t.gateSet == "" {
		return "", errNoGateSet
	}
	if err := install.Install(head, t.head, t.signing); err != nil {
		return "", err
	}
	return fmt.Sprintf("installed %s over %s (rollback puts the replaced head back)", head, t.head), nil
}

func (t *execTrainer) Rollback(context.Context) (string, error) {
	if err := install.Rollback(t.head, t.signing); err != nil {
		return "", err
	}
	left, err := install.Kept(t.head)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("rolled back %s to the head the last install replaced; %d earlier install(s) left to undo", t.head, left), nil
}

// trust names the running model when the project shipped it, and says in a
// plain sentence how far its verdicts can be trusted: its card's figures,
// what they mean on a camera it never saw, and what to do about it.
func trust(r *shipped.Release, m contract.ModelIDs) (release, sentence string) {
	if r == nil || !r.Runs(m.Backbone) {
		return "", "This backbone is not one the project shipped: trust its verdicts as far as your own evaluation of it (deepfaked eval) says."
	}
	release = fmt.Sprintf("%s, released %s", r.Name, r.Released)
	figures := fmt.Sprintf("%s was trained on DFDC face swaps: on faces it never saw it ranks fakes above reals with AUC %.2f (DFDC) and %.3f (StyleGAN2), and it gets %d of %d test videos right.",
		r.Name, r.DFDCAUC, r.StyleGANAUC, r.VideosRight, r.Videos)
	if m.Head != r.Head {
		return release, figures + " The head was trained here: its training report says how it did on your faces. Treat one frame as a hint and a track that stays fake as the signal."
	}
	return release, figures + " On a camera it never saw it calls real people fake too often: treat one frame as a hint, a track that stays fake as the signal, and teach it this camera before you rely on it."
}

// labelled is what train.dataset holds for the page's training, and what
// it lacks (train.Shortfall, with the gate's hold-out: the page installs).
func labelled(cfg *config.Config) (web.Labelled, error) {
	f, err := dataset.Load(cfg.Train.Dataset)
	if f == nil {
		if errors.Is(err, fs.ErrNotExist) {
			return web.Labelled{Short: "no labelled images yet"}, nil
		}
		return web.Labelled{}, err
	}
	labels, groups := make([]int, len(f.Samples)), make([]string, len(f.Samples))
	all := map[string]bool{}
	var l web.Labelled
	for i, s := range f.Samples {
		labels[i], groups[i] = train.Real, s.Identity
		if s.Label == dataset.Fake {
			labels[i] = train.Fake
			l.Fake++
		} else {
			l.Real++
		}
		all[s.Identity] = true
	}
	l.Groups = len(all)
	l.Short = train.Shortfall(labels, groups, cfg.Train.Folds, cfg.Train.Holdout)
	return l, nil
}
