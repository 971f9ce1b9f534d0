package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/train"
)

// fakeStatus is a daemon with one camera analysing 5 frames a second.
type fakeStatus struct {
	once  sync.Once
	start time.Time
}

func (f *fakeStatus) Status(now time.Time) Status {
	f.once.Do(func() { f.start = now })
	n := int64(now.Sub(f.start).Seconds() * 5)
	return Status{Time: now, Device: "edge-01", Uptime: 12, Threshold: 0.5,
		Model: contract.ModelIDs{Backbone: "3f2a9c01d4e7", Head: "8b0e55d2c913", Precision: "int8"},
		Cameras: []CameraStatus{{CameraStats: contract.CameraStats{Name: "door", State: "delivering", Analysed: n, Decoder: "v4l2h264dec (Raspberry Pi 4 (V4L2 M2M))"}, Online: true,
			Last: &LastVerdict{TS: now, Label: "fake", PFake: 0.91, Faces: 1}}},
		MQTT: contract.MQTTStats{Connected: true}, Outbox: contract.OutboxStats{Messages: 3, Bytes: 1712},
		Release: "deepfaked-dfdc v1, released 2026-12-01", Trust: "Treat one frame as a hint."}
}

// fakeCrops holds crops as files in a folder, labels by removing them and
// counting. The daemon's real Crops (collect's labelling) need gocv; they
// are tested in package daemon.
type fakeCrops struct {
	dir        string
	mu         sync.Mutex
	crops      map[string]Crop
	real, fake int
	labelled   []string
	held       []string // what the page last asked to hold
}

func newFakeCrops(t *testing.T, crops ...Crop) *fakeCrops {
	f := &fakeCrops{dir: t.TempDir(), crops: map[string]Crop{}}
	for _, c := range crops {
		p := filepath.Join(f.dir, filepath.FromSlash(c.ID))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, jpegBytes, 0o644); err != nil {
			t.Fatal(err)
		}
		f.crops[c.ID] = c
	}
	return f
}

func (f *fakeCrops) List() ([]Crop, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Crop
	for _, c := range f.crops {
		out = append(out, c)
	}
	return out, nil
}

func (f *fakeCrops) Label(_ context.Context, id, label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.crops[id]; !ok {
		return fmt.Errorf("crop %s: %w", id, ErrUnknownCrop)
	}
	delete(f.crops, id)
	if err := os.Remove(filepath.Join(f.dir, filepath.FromSlash(id))); err != nil { // moved out, as labelling does
		return err
	}
	f.labelled = append(f.labelled, id+"="+label)
	if label == "real" {
		f.real++
	} else {
		f.fake++
	}
	return nil
}

func (f *fakeCrops) Counts() (int, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.real, f.fake, nil
}

func (f *fakeCrops) Dir() string { return f.dir }

func (f *fakeCrops) Hold(ids []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = append(f.held[:0], ids...)
}

// fakeTrainer trains until release is closed, telling one progress step.
type fakeTrainer struct {
	dir       string
	release   chan struct{}
	replaced  bool
	mu        sync.Mutex
	requests  []TrainRequest
	installed []string
	rollbacks int
	discarded []string
	latest    *Report // what Latest says: a training that ran elsewhere
}

func newFakeTrainer(t *testing.T, replaced bool) *fakeTrainer {
	f := &fakeTrainer{dir: t.TempDir(), release: make(chan struct{}), replaced: replaced}
	for _, p := range pictures {
		if err := os.WriteFile(filepath.Join(f.dir, p), pngBytes, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fakeTrainer) Train(ctx context.Context, req TrainRequest, progress func(Progress)) (*Report, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	progress(Progress{Phase: "train", Done: 3, Total: 10, Line: "fold 1/5 epoch 1/10"})
	select {
	case <-f.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	m := train.Metrics{N: 20, Accuracy: 0.9, AUC: 0.95, Threshold: 0.5, Confusion: [2][2]int{{9, 1}, {1, 9}}}
	inst := m
	inst.AUC = 0.97
	r := &Report{Dir: f.dir, Head: filepath.Join(f.dir, "head.onnx"), Real: 10, Fake: 10, OutOfFold: m, Held: 4,
		Candidate: m, Installed: &inst, GateInstall: f.replaced, Replaced: f.replaced,
		Reason: "candidate AUC 0.9500 < installed AUC 0.9700 - margin 0", Finished: time.Now()}
	if req.Teach {
		// Before: 6 of 10 held-out real faces called fake; after: 1.
		inst.Confusion, m.Confusion = [2][2]int{{4, 6}, {3, 7}}, [2][2]int{{9, 1}, {1, 9}}
		inst.Recall, m.Recall = 0.7, 0.9
		r.Candidate, r.GateInstall, r.Reason = m, true, "candidate AUC 0.9500 >= installed AUC 0.9700 - margin 0.05"
		mixed := 0.4
		r.Mixed = &mixed
	}
	return r, nil
}

func (f *fakeTrainer) Discard(_ context.Context, r *Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = append(f.discarded, r.Dir)
	return nil
}

// fakeTeacher saves 10 faces, then waits for release.
type fakeTeacher struct {
	data    string
	release chan struct{}
	mu      sync.Mutex
	cameras []string
}

func (f *fakeTeacher) Faces() int { return 40 }

func (f *fakeTeacher) Collect(ctx context.Context, camera string, progress func(int)) (string, error) {
	f.mu.Lock()
	f.cameras = append(f.cameras, camera)
	f.mu.Unlock()
	progress(10)
	select {
	case <-f.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	progress(40)
	return f.data, nil
}

func (f *fakeTrainer) Install(_ context.Context, head string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.installed = append(f.installed, head)
	return "installed " + head, nil
}

func (f *fakeTrainer) Latest() (*Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest, nil
}

func (f *fakeTrainer) Rollback(context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollbacks++
	if f.rollbacks > 1 {
		return "", fmt.Errorf("no previous head to roll back to")
	}
	return "rolled back", nil
}

// Smallest valid files for the image handlers (the bytes are not decoded).
var (
	jpegBytes = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00fake jpeg")
	pngBytes  = []byte("\x89PNG\r\n\x1a\nfake png")
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustNew(t *testing.T, o Options, p Parts) *Server {
	t.Helper()
	if p.Status == nil {
		p.Status = &fakeStatus{}
	}
	p.Log = quietLog()
	s, err := New(o, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// client is a browser: a cookie jar against an httptest server of s.
type client struct {
	t    *testing.T
	srv  *httptest.Server
	http *http.Client
}

func newClient(t *testing.T, s *Server) *client {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &client{t: t, srv: srv, http: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *client) do(method, path string, body io.Reader, header map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) { return c.do("GET", path, nil, nil) }

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]*)">`)

// csrf loads path and returns the page's CSRF token.
func (c *client) csrf(path string) string {
	c.t.Helper()
	resp, body := c.get(path)
	m := csrfMeta.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || m[1] == "" {
		c.t.Fatalf("GET %s: %d, no CSRF token in\n%s", path, resp.StatusCode, body)
	}
	return m[1]
}

// postForm posts a form with its fields.
func (c *client) postForm(path string, fields url.Values) (*http.Response, string) {
	return c.do("POST", path, strings.NewReader(fields.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
}

// postJSON posts JSON with the token in the header ("" sends none).
func (c *client) postJSON(path, token, body string) (*http.Response, string) {
	h := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		h[csrfHeader] = token
	}
	return c.do("POST", path, strings.NewReader(body), h)
}

// login logs in with the password and returns the new session's token.
func (c *client) login(pw string) string {
	c.t.Helper()
	tok := c.csrf("/login")
	resp, body := c.postForm("/login", url.Values{"csrf": {tok}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		c.t.Fatalf("login: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	return c.csrf("/")
}

func hash(t *testing.T, pw string) []byte {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
