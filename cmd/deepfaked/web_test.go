package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// page is a browser without JavaScript on the daemon's page: a cookie jar
// and the CSRF token of the last page loaded.
type page struct {
	t     *testing.T
	base  string
	c     *http.Client
	token string
}

func newPage(t *testing.T, base string) *page {
	jar, _ := cookiejar.New(nil)
	return &page{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (p *page) get(path string) (int, string) {
	p.t.Helper()
	resp, err := p.c.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfMeta.FindSubmatch(b); m != nil {
		p.token = string(m[1])
	}
	return resp.StatusCode, string(b)
}

func (p *page) post(path string, form url.Values) (int, string) {
	p.t.Helper()
	req, _ := http.NewRequest("POST", p.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", p.token)
	resp, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type trainState struct {
	Running  bool
	Error    string
	Progress struct{ Phase, Line string }
	Report   *struct {
		Dir, Head, Reason string
		Replaced          bool
		GateInstall       bool `json:"gate_install"`
		Held              int  `json:"held_out"`
		Candidate         struct{ N int }
		OutOfFold         struct{ N int } `json:"out_of_fold"`
	}
}

// TestWebTrainInstallRollback: the page's train button runs `train
// --install` on train.dataset in a child process of the running daemon,
// streams its progress, reports the gate's decision with the pictures; the
// daemon takes up the installed head; rollback undoes the install as
// `deepfaked rollback` does, and install-anyway installs it again. The page
// installs only with train.gate_set, here the data folder itself.
func TestWebTrainInstallRollback(t *testing.T) {
	testenv.Long(t)
	dir := t.TempDir()
	video, _, _ := splicedVideo(t, dir)
	backbone, head := testenv.Models(t)
	installed, original := headCopy(t, dir, head)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	lines := []string{"device_id: web", "state_dir: " + filepath.Join(dir, "state"),
		"mqtt:", "  broker: " + testenv.Mosquitto(t),
		"model:", "  backbone: " + backbone, "  head: " + installed, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar",
		"train:", "  dataset: " + filepath.Join(dir, "data"), "  gate_set: " + filepath.Join(dir, "data"), "  folds: 2", "  epochs: 3", "  gate_margin: 1",
		"web:", "  enabled: true", "  listen: " + addr,
		"cameras:", "  - name: cam", "    source: " + video, "    fps: 5", "    loop: true", ""}
	cfg := filepath.Join(dir, "deepfaked.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cfg)
	r.waitReady(t)
	p := newPage(t, "http://"+addr)
	if code, body := p.get("/train"); code != 200 || !strings.Contains(body, "Start training") {
		t.Fatalf("/train: %d\n%s", code, body)
	}
	state := func() trainState {
		t.Helper()
		_, body := p.get("/api/train")
		var st trainState
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return st
	}
	if code, body := p.post("/api/train", nil); code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _ := p.post("/api/train", nil); code != http.StatusConflict {
		t.Fatalf("a second training at once: %d", code)
	}
	var st trainState
	sawProgress := false
	if !poll.Until(5*time.Minute, func() bool {
		st = state()
		sawProgress = sawProgress || st.Progress.Line != ""
		return !st.Running
	}) {
		t.Fatalf("training still running after 5 min: %+v\n%s", st, r.stderr)
	}
	if st.Error != "" || st.Report == nil {
		t.Fatalf("training: %+v\n%s", st, r.stderr)
	}
	rep := st.Report
	if !sawProgress || !rep.Replaced || !rep.GateInstall || rep.Held == 0 || rep.Candidate.N != rep.Held || rep.OutOfFold.N == 0 {
		t.Fatalf("progress seen %v, report %+v", sawProgress, rep)
	}
	trained := fileID(t, rep.Head)
	if got := fileID(t, installed); got != trained {
		t.Fatalf("model.head %s, want the trained head %s", got, trained)
	}
	r.waitLog(t, "head reloaded")
	for _, pic := range []string{"/train/confusion.png", "/train/roc.png"} {
		if code, body := p.get(pic); code != 200 || !strings.HasPrefix(body, "\x89PNG") {
			t.Fatalf("%s: %d", pic, code)
		}
	}
	if _, body := p.get("/train"); !strings.Contains(body, "let the new head in") || !strings.Contains(body, "held-out, installed head") {
		t.Fatalf("report page:\n%s", body)
	}
	if code, body := p.post("/api/rollback", nil); code != 200 || !strings.Contains(body, "rolled back") {
		t.Fatalf("rollback: %d %s", code, body)
	}
	if got := fileID(t, installed); got != original {
		t.Fatalf("after rollback model.head %s, want %s", got, original)
	}
	if code, _ := p.post("/api/train/install", url.Values{"confirm": {"no"}}); code != http.StatusBadRequest {
		t.Fatalf("install without confirmation: %d", code)
	}
	if code, body := p.post("/api/train/install", url.Values{"confirm": {"yes"}}); code != 200 {
		t.Fatalf("install anyway: %d %s", code, body)
	}
	if got := fileID(t, installed); got != trained {
		t.Fatalf("after install anyway model.head %s, want %s", got, trained)
	}
	r.stop(t)
}

// headCopy copies head into dir as the installed head that installs and
// rollbacks replace, and returns its path and id.
func headCopy(t *testing.T, dir, head string) (installed, id string) {
	t.Helper()
	installed = filepath.Join(dir, "head.onnx")
	b, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return installed, fileID(t, installed)
}
