package web

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/poll"
)

// TestTrain: one training at a time, its progress streamed, its report
// with pictures, install anyway only with confirm=yes, rollback; each
// install and rollback reloads the head.
func TestTrain(t *testing.T) {
	tr := newFakeTrainer(t, false)
	var mu sync.Mutex
	var reloads []string
	s := mustNew(t, Options{}, Parts{Trainer: tr, Reload: func(reason string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		reloads = append(reloads, reason)
		return "ok", nil
	}})
	c := newClient(t, s)
	tok := c.csrf("/train")
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set("csrf", tok)
		return c.postForm(path, form)
	}
	if resp, _ := c.get("/train/roc.png"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a picture before any training: %d", resp.StatusCode)
	}
	if resp, b := post("/api/train/install", url.Values{}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "confirm=yes") {
		t.Fatalf("install without confirm: %d %s", resp.StatusCode, b)
	}
	if resp, b := post("/api/train/install", url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("install before any training: %d %s", resp.StatusCode, b)
	}

	// The stream, opened before the start, sees the progress and the end.
	req, _ := http.NewRequest("GET", c.srv.URL+"/api/train/stream", nil)
	sresp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	states := make(chan TrainState, 100)
	go func() {
		sc := bufio.NewScanner(sresp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var st TrainState
				if json.Unmarshal([]byte(data), &st) == nil {
					states <- st
				}
			}
		}
		close(states)
	}()
	waitFor := func(what string, ok func(TrainState) bool) TrainState {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case st := <-states:
				if ok(st) {
					return st
				}
			case <-timeout:
				t.Fatalf("no state with %s", what)
			}
		}
	}
	waitFor("not running", func(st TrainState) bool { return !st.Running })

	if resp, b := post("/api/train", url.Values{}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	st := waitFor("progress", func(st TrainState) bool { return st.Running && st.Progress.Done == 3 })
	if st.Progress.Total != 10 || st.Progress.Line != "fold 1/5 epoch 1/10" {
		t.Fatalf("%+v", st)
	}
	for _, p := range []string{"/api/train", "/api/rollback", "/api/train/install"} {
		if resp, b := post(p, url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusConflict {
			t.Fatalf("%s while training: %d %s", p, resp.StatusCode, b)
		}
	}
	if _, b := c.get("/"); !strings.Contains(b, "A training is running") {
		t.Fatal("the status page does not say a training runs")
	}
	close(tr.release)
	st = waitFor("the report", func(st TrainState) bool { return !st.Running && st.Report != nil })
	if st.Report.Replaced || st.Report.Candidate.AUC != 0.95 || st.Report.Installed.AUC != 0.97 {
		t.Fatalf("%+v", st.Report)
	}
	_, page := c.get("/train")
	for _, want := range []string{"kept the installed head", "candidate AUC 0.9500 &lt; installed AUC 0.9700", "held-out, new head", "held-out, installed head",
		"0.9500", "0.9700", "90.0 %", "/train/confusion.png", "/train/roc.png", "Install this head anyway", "not-installed"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the report\n%s", want, page)
		}
	}
	for _, p := range []string{st.Report.PictureURL("confusion.png"), st.Report.PictureURL("roc.png"), "/train/roc.png"} {
		if !strings.HasSuffix(p, "/train/roc.png") && !strings.Contains(page, `src="`+p+`"`) {
			t.Errorf("the page does not show %s", p)
		}
		if resp, b := c.get(p); resp.StatusCode != 200 || b != string(pngBytes) {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
	// An earlier training's picture URL (a cached page) is not answered
	// with this training's picture.
	if resp, _ := c.get("/train/roc.png?at=1"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an earlier training's ROC: %s", resp.Status)
	}
	for _, p := range []string{"/train/head.onnx", "/train/metrics.json", "/train/..%2fx.png"} {
		if resp, _ := c.get(p); resp.StatusCode == 200 {
			t.Errorf("%s served", p)
		}
	}
	if resp, b := post("/api/train/install", url.Values{"confirm": {"no"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("install with confirm=no: %d %s", resp.StatusCode, b)
	}
	if resp, b := post("/api/train/install", url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("install anyway: %d %s", resp.StatusCode, b)
	}
	if resp, _ := post("/api/train/install", url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusConflict {
		t.Fatal("installed twice")
	}
	if resp, b := post("/api/rollback", url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(b, "rolled back") {
		t.Fatalf("rollback: %d %s", resp.StatusCode, b)
	}
	if resp, b := post("/api/rollback", url.Values{}); resp.StatusCode != http.StatusConflict || !strings.Contains(b, "no previous head") {
		t.Fatalf("second rollback: %d %s", resp.StatusCode, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(tr.installed) != 1 || !strings.HasSuffix(tr.installed[0], "head.onnx") || len(reloads) != 2 {
		t.Fatalf("installed %v, reloads %v", tr.installed, reloads)
	}
}

// TestTrainInstalls: a training whose gate installs reloads the head.
func TestTrainInstalls(t *testing.T) {
	tr := newFakeTrainer(t, true)
	close(tr.release)
	reloaded := make(chan string, 1)
	s := mustNew(t, Options{}, Parts{Trainer: tr, Reload: func(reason string) (string, error) { reloaded <- reason; return "", nil }})
	c := newClient(t, s)
	if resp, b := c.postJSON("/api/train", c.csrf("/train"), ""); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	select {
	case r := <-reloaded:
		if !strings.Contains(r, "training") {
			t.Fatal(r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload after an installing training")
	}
}

// TestTrainOff: without a trainer the buttons answer 404 and the page says so.
func TestTrainOff(t *testing.T) {
	c := newClient(t, mustNew(t, Options{}, Parts{}))
	tok := c.csrf("/train")
	if _, b := c.get("/train"); !strings.Contains(b, "off") {
		t.Fatal(b)
	}
	for _, p := range []string{"/api/train", "/api/rollback", "/api/train/install"} {
		if resp, b := c.postJSON(p, tok, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
}

// TestCloseCancelsTraining: the daemon's stop cancels a running training.
func TestCloseCancelsTraining(t *testing.T) {
	tr := newFakeTrainer(t, false)
	s, err := New(Options{}, Parts{Status: &fakeStatus{}, Trainer: tr, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s)
	if resp, _ := c.postJSON("/api/train", c.csrf("/train"), ""); resp.StatusCode != http.StatusAccepted {
		t.Fatal(resp.Status)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the training")
	}
	if st, _ := s.train.state(); st.Running || !strings.Contains(st.Error, "context canceled") {
		t.Fatalf("%+v", st)
	}
}

// TestTeach: "teach this camera" collects the camera's faces (the count
// and the bar follow the teacher), trains on them with self-blends and
// compares without installing, shows before and after, and installs or
// discards as its user chooses; a cancel stops a collection.
func TestTeach(t *testing.T) {
	tr := newFakeTrainer(t, false)
	close(tr.release)
	te := &fakeTeacher{data: t.TempDir(), release: make(chan struct{})}
	reloads := make(chan string, 4)
	s := mustNew(t, Options{}, Parts{Trainer: tr, Teacher: te, Reload: func(reason string) (string, error) { reloads <- reason; return "ok", nil }})
	c := newClient(t, s)
	tok := c.csrf("/train")
	post := func(path string, form url.Values) (*http.Response, string) {
		form.Set("csrf", tok)
		return c.postForm(path, form)
	}
	state := func(what string, ok func(TrainState) bool) TrainState {
		t.Helper()
		var st TrainState
		if !poll.Until(10*time.Second, func() bool {
			_, b := c.get("/api/train")
			st = TrainState{}
			return json.Unmarshal([]byte(b), &st) == nil && ok(st)
		}) {
			t.Fatalf("no state with %s: %+v", what, st)
		}
		return st
	}
	_, page := c.get("/train")
	for _, want := range []string{`id="teach-start"`, "<option>door</option>", "saves 40 faces"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q on the page", want)
		}
	}
	if resp, b := post("/api/train/teach", url.Values{"camera": {"garage"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(b, "no camera") {
		t.Fatalf("an unknown camera: %d %s", resp.StatusCode, b)
	}
	if resp, b := post("/api/train/cancel", url.Values{}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("cancel with nothing running: %d %s", resp.StatusCode, b)
	}

	// A cancelled collection ends with its error on the page.
	if resp, b := post("/api/train/teach", url.Values{"camera": {"door"}}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("teach: %d %s", resp.StatusCode, b)
	}
	st := state("collecting", func(st TrainState) bool { return st.Running && st.Progress.Phase == "collect" })
	if st.Progress.Done != 10 || st.Progress.Total != 40 || !strings.Contains(st.Progress.Line, "10 of 40 real faces of camera door") {
		t.Fatalf("collect progress %+v", st.Progress)
	}
	if resp, b := post("/api/train", url.Values{}); resp.StatusCode != http.StatusConflict {
		t.Fatalf("a training while collecting: %d %s", resp.StatusCode, b)
	}
	if resp, b := post("/api/train/cancel", url.Values{}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", resp.StatusCode, b)
	}
	if st := state("cancelled", func(st TrainState) bool { return !st.Running }); st.Error != "teaching camera door cancelled" || st.Report != nil {
		t.Fatalf("after cancel %+v", st)
	}

	// A whole session: collect, train with self-blends, compare.
	close(te.release)
	if resp, b := post("/api/train/teach", url.Values{"camera": {"door"}}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("teach: %d %s", resp.StatusCode, b)
	}
	st = state("the report", func(st TrainState) bool { return !st.Running && st.Report != nil })
	if r := st.Report; r.Teach != "door" || r.Data != te.data || r.Replaced {
		t.Fatalf("report %+v", r)
	}
	tr.mu.Lock()
	req := tr.requests[len(tr.requests)-1]
	tr.mu.Unlock()
	if req != (TrainRequest{Data: te.data, Teach: true}) {
		t.Fatalf("trained with %+v", req)
	}
	_, page = c.get("/train")
	for _, want := range []string{"Camera door taught", "The gate would let the new head in", `id="teach-table"`,
		"60.0 %", "10.0 %", "70.0 %", "90.0 %", `id="no-reference"`, "40.0 % the head learned from this camera", `id="discard"`, "Install the new head"} {
		if !strings.Contains(page, want) {
			t.Errorf("no %q in the taught report", want)
		}
	}
	if strings.Contains(page, "Install this head anyway") {
		t.Error("a taught head is offered as one the gate refused")
	}
	select {
	case r := <-reloads:
		t.Fatalf("reloaded (%s) though nothing was installed", r)
	default:
	}
	if resp, b := post("/api/train/discard", url.Values{}); resp.StatusCode != http.StatusOK {
		t.Fatalf("discard: %d %s", resp.StatusCode, b)
	}
	if st := state("discarded", func(st TrainState) bool { return st.Report == nil }); !strings.Contains(st.Note, "discarded") {
		t.Fatalf("after discard %+v", st)
	}
	if resp, _ := post("/api/train/discard", url.Values{}); resp.StatusCode != http.StatusConflict {
		t.Fatal("discarded twice")
	}

	// Taught again, and installed.
	if resp, b := post("/api/train/teach", url.Values{"camera": {"door"}}); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("teach: %d %s", resp.StatusCode, b)
	}
	state("the report", func(st TrainState) bool { return !st.Running && st.Report != nil })
	if resp, b := post("/api/train/install", url.Values{"confirm": {"yes"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("install: %d %s", resp.StatusCode, b)
	}
	if r := <-reloads; !strings.Contains(r, "installed") {
		t.Errorf("reload reason %q", r)
	}
	if resp, _ := post("/api/train/discard", url.Values{}); resp.StatusCode != http.StatusConflict {
		t.Fatal("an installed head was discarded")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.discarded) != 1 || len(tr.installed) != 1 {
		t.Errorf("discarded %v, installed %v", tr.discarded, tr.installed)
	}
}

// TestTrainPageSaysWhatIsLacking: before Start, the Train page says what
// the data folder holds and what a training still lacks, and Start waits
// until there is enough.
func TestTrainPageSaysWhatIsLacking(t *testing.T) {
	for _, tc := range []struct {
		name     string
		l        Labelled
		disabled bool
		has      string
	}{
		{"short", Labelled{Real: 9, Fake: 2, Groups: 3, Short: "training needs at least 2 groups of each"}, true, "Not enough to train yet: training needs at least 2 groups of each"},
		{"enough", Labelled{Real: 40, Fake: 40, Groups: 12}, false, "40 real and 40 fake images in 12 groups"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Options{}, Parts{Status: &fakeStatus{}, Trainer: newFakeTrainer(t, false), Log: quietLog(),
				Labelled: func() (Labelled, error) { return tc.l, nil }})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, body := newClient(t, s).get("/train")
			if !strings.Contains(body, tc.has) || strings.Contains(body, `<button id="start" disabled>`) != tc.disabled {
				t.Errorf("train page:\n%s", body)
			}
		})
	}
}

// TestTrainPageShowsTrainingsElsewhere: a training run at a terminal (or
// by the nightly timer) after the page's shows on the page with its gate
// decision, and replaces an earlier failure's message; an older one does
// not replace the page's own.
func TestTrainPageShowsTrainingsElsewhere(t *testing.T) {
	tr := newFakeTrainer(t, false)
	s, err := New(Options{}, Parts{Status: &fakeStatus{}, Trainer: tr, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.train.update(func() {
		s.train.err, s.train.errAt = "deepfaked train: k-fold: 2 groups cannot fill 5 folds", time.Now()
	})
	c := newClient(t, s)
	if _, body := c.get("/train"); !strings.Contains(body, "2 groups cannot fill") {
		t.Fatalf("the page's own failure is not shown:\n%s", body)
	}
	tr.mu.Lock()
	tr.latest = &Report{Dir: tr.dir, Real: 40, Fake: 41, Held: 16, Reason: "candidate AUC 0.81 < installed AUC 0.90 - margin 0.02",
		Finished: time.Now().Add(time.Second)}
	tr.mu.Unlock()
	_, body := c.get("/train")
	if strings.Contains(body, "2 groups cannot fill") || !strings.Contains(body, "40 real and 41 fake images") ||
		!strings.Contains(body, "kept the installed head: candidate AUC 0.81 &lt; installed AUC 0.90") {
		t.Errorf("the terminal's later training is not shown with its gate decision:\n%s", body)
	}
	if resp, _ := c.get("/train/roc.png"); resp.StatusCode != http.StatusOK {
		t.Errorf("its ROC: %s", resp.Status)
	}
	tr.mu.Lock()
	tr.latest.Finished = time.Now().Add(-time.Hour) // older than the page's failure
	tr.mu.Unlock()
	if _, body := c.get("/train"); !strings.Contains(body, "2 groups cannot fill") {
		t.Errorf("an older training hid the page's later failure:\n%s", body)
	}
}
