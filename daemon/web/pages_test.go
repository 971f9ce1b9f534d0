package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestStatus: the page, the JSON and the stream show the daemon's state;
// frames/s come from the analysed counts a second apart.
func TestStatus(t *testing.T) {
	s := mustNew(t, Options{}, Parts{})
	c := newClient(t, s)
	resp, body := c.get("/")
	for _, want := range []string{"edge-01", "3f2a9c01d4e7", "8b0e55d2c913", "int8", `data-camera="door"`, "online", "fake", "0.91", "0.50", "v4l2h264dec (Raspberry Pi 4 (V4L2 M2M))"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("%d: no %q in\n%s", resp.StatusCode, want, body)
		}
	}
	_, body = c.get("/api/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Device != "edge-01" || len(st.Cameras) != 1 || st.Cameras[0].Last.Label != "fake" {
		t.Fatalf("%v: %s", err, body)
	}

	req, _ := http.NewRequest("GET", c.srv.URL+"/api/status/stream", nil)
	sresp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if ct := sresp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(sresp.Body)
	var events []Status
	for len(events) < 3 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var st Status
			if err := json.Unmarshal([]byte(data), &st); err != nil {
				t.Fatal(err)
			}
			events = append(events, st)
		}
	}
	if len(events) < 3 {
		t.Fatalf("%d events: %v", len(events), sc.Err())
	}
	if fps := events[2].Cameras[0].FPS; fps < 4 || fps > 6 {
		t.Fatalf("fps %v from %+v", fps, events)
	}
}

func TestRates(t *testing.T) {
	var r rates
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration, n int64) float64 {
		s := Status{Time: t0.Add(d), Cameras: []CameraStatus{{CameraStats: contract.CameraStats{Name: "a", Analysed: n}}}}
		r.fill(&s)
		return s.Cameras[0].FPS
	}
	for _, tc := range []struct {
		d    time.Duration
		n    int64
		want float64
	}{
		{0, 0, 0},                         // the first sample: no rate yet
		{500 * time.Millisecond, 5, 0},    // within the second: the last rate
		{2 * time.Second, 30, 15},         // 30 frames in 2 s
		{2500 * time.Millisecond, 40, 15}, // within the second again
		{3 * time.Second, 45, 15},         // 15 frames in 1 s
	} {
		if got := at(tc.d, tc.n); got != tc.want {
			t.Fatalf("at %s with %d: %v, want %v", tc.d, tc.n, got, tc.want)
		}
	}
}

// notServed: anything but 200.
const notServed = -1

func event(id, typ, camera string, ts time.Time, state string, score float64, snap string) []byte {
	return fmt.Appendf(nil, `{"type":%q,"id":%q,"device":"edge-01","camera":%q,"ts":%q,"before":null,"after":{"track":5,"state":%q,"score":%g,"frames":12,"snapshot":%q}}`,
		typ, id, camera, ts.Format(time.RFC3339Nano), state, score, snap)
}

// TestEvents: the log folds an event's messages; the page filters by
// camera and time and shows snapshots from the snapshot folder only.
func TestEvents(t *testing.T) {
	testenv.Long(t)
	snaps := t.TempDir()
	if err := os.MkdirAll(filepath.Join(snaps, "door"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(snaps, "door", "run1-5.jpg"), jpegBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	log := NewEventLog(3)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local)
	for _, m := range [][]byte{
		event("run1-door-5", "new", "door", t0, "fake", 0.8, filepath.Join(snaps, "door", "run1-5.jpg")),
		event("run1-door-5", "update", "door", t0.Add(time.Minute), "fake", 0.95, ""),
		event("run1-door-5", "end", "door", t0.Add(2*time.Minute), "fake", 0.9, ""),
		event("run1-yard-1", "new", "yard", t0.Add(time.Hour), "fake", 0.7, "/etc/passwd"),
	} {
		if err := log.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{`{`, `{"id":"x","camera":"../x"}`, `{"camera":"door"}`} {
		if err := log.Add([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	evs := log.List(EventFilter{})
	if len(evs) != 2 || evs[0].Camera != "yard" || evs[1].Last != "end" || evs[1].Peak != 0.95 || evs[1].Score != 0.9 || !evs[1].Started.Equal(t0) {
		t.Fatalf("%+v", evs)
	}
	s := mustNew(t, Options{}, Parts{Events: log, SnapshotDir: snaps})
	c := newClient(t, s)
	q := func(v url.Values) string { return "/events?" + v.Encode() }
	for _, tc := range []struct {
		path      string
		want      int
		has, hasn []string
	}{
		{"/events", 200, []string{"door", "yard", "/files/snapshots/door/run1-5.jpg", "no snapshot"}, []string{"/etc/passwd"}},
		{q(url.Values{"camera": {"door"}}), 200, []string{"track 5", "0.95"}, []string{"<strong>yard"}},
		{q(url.Values{"since": {t0.Add(30 * time.Minute).Format(formTime)}}), 200, []string{"<strong>yard"}, []string{"<strong>door"}},
		{q(url.Values{"until": {t0.Format(formTime)}}), 200, []string{"<strong>door"}, []string{"<strong>yard"}},
		{q(url.Values{"camera": {"gate"}}), 200, []string{"No events match"}, nil},
		{q(url.Values{"camera": {"../door"}}), 400, []string{"camera"}, nil},
		{q(url.Values{"since": {"yesterday"}}), 400, []string{"since"}, nil},
		{"/files/snapshots/door/run1-5.jpg", 200, []string{"fake jpeg"}, nil},
		{"/files/snapshots/door/run1-6.jpg", 404, nil, nil},
		{"/files/snapshots/../door/run1-5.jpg", notServed, nil, []string{"fake jpeg"}},
		{"/files/snapshots/door/..%2f..%2fetc/passwd", notServed, nil, []string{"root:"}},
		{"/files/snapshots/%2e%2e/x.jpg", notServed, nil, nil},
		{"/files/snapshots/door", 404, nil, nil},
		{"/files/snapshots/door/", 404, nil, nil},
		{"/files/snapshots/door//run1-5.jpg", notServed, nil, []string{"fake jpeg"}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, body := c.get(tc.path)
			if tc.want == notServed && resp.StatusCode != http.StatusOK {
				tc.want = resp.StatusCode // 404, or ServeMux's redirect to the cleaned path (not followed)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			for _, h := range tc.has {
				if !strings.Contains(body, h) {
					t.Errorf("no %q in\n%s", h, body)
				}
			}
			for _, h := range tc.hasn {
				if strings.Contains(body, h) {
					t.Errorf("%q in\n%s", h, body)
				}
			}
		})
	}
}

// TestReview: the queue, most uncertain first; labelling through Crops,
// with bad input refused before it gets there.
func TestReview(t *testing.T) {
	now := time.Now()
	crops := newFakeCrops(t,
		Crop{ID: "door/000000000010-1-00.jpg", Camera: "door", Frame: 10, PFake: 0.95, Threshold: 0.5, TS: now, Reason: "every_n"},
		Crop{ID: "door/000000000011-1-00.jpg", Camera: "door", Frame: 11, PFake: 0.52, Threshold: 0.5, TS: now, Reason: "band"},
		Crop{ID: "yard/000000000012-1-00.jpg", Camera: "yard", Frame: 12, PFake: 0.40, Threshold: 0.5, TS: now, Reason: "band"},
	)
	s := mustNew(t, Options{}, Parts{Crops: crops})
	c := newClient(t, s)
	tok := c.csrf("/review")
	_, body := c.get("/review")
	i10, i11, i12 := strings.Index(body, "frame 10 "), strings.Index(body, "frame 11 "), strings.Index(body, "frame 12 ")
	if i10 < 0 || i11 < 0 || i12 < 0 || !(i11 < i12 && i12 < i10) {
		t.Fatalf("queue order (11, 12, 10 wanted): %d %d %d\n%s", i11, i12, i10, body)
	}
	if resp, b := c.get("/files/crops/door/000000000011-1-00.jpg"); resp.StatusCode != 200 || b != string(jpegBytes) {
		t.Fatalf("crop image: %d", resp.StatusCode)
	}
	crops.mu.Lock()
	held := slices.Clone(crops.held)
	crops.mu.Unlock()
	slices.Sort(held)
	if want := []string{"door/000000000010-1-00.jpg", "door/000000000011-1-00.jpg", "yard/000000000012-1-00.jpg"}; !slices.Equal(held, want) {
		t.Errorf("held %v, want the crops the page shows: %v", held, want)
	}
	for _, tc := range []struct {
		name, body string
		want       int
		has        string
	}{
		{"label fake", `{"id":"door/000000000011-1-00.jpg","label":"fake"}`, 200, `"fake":1`},
		{"label real", `{"id":"yard/000000000012-1-00.jpg","label":"real"}`, 200, `"real":1`},
		{"again", `{"id":"yard/000000000012-1-00.jpg","label":"real"}`, 404, "no such crop"},
		{"unknown crop", `{"id":"door/999999999999-1-00.jpg","label":"real"}`, 404, "no such crop"},
		{"traversal", `{"id":"../dataset/real/x.jpg","label":"real"}`, 400, "not a crop name"},
		{"absolute", `{"id":"/etc/passwd.jpg","label":"real"}`, 400, "not a crop name"},
		{"not a jpeg", `{"id":"door/000000000010-1-00.json","label":"real"}`, 400, "not a crop name"},
		{"bad label", `{"id":"door/000000000010-1-00.jpg","label":"maybe"}`, 400, "want real or fake"},
		{"skip is not a label", `{"id":"door/000000000010-1-00.jpg","label":"skip"}`, 400, "want real or fake"},
		{"unknown key", `{"id":"door/000000000010-1-00.jpg","label":"real","camera":"x"}`, 400, "unknown field"},
		{"not json", `id=door`, 400, "want"},
		{"empty", ``, 400, "want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := c.postJSON("/api/label", tok, tc.body)
			if resp.StatusCode != tc.want || !strings.Contains(b, tc.has) {
				t.Fatalf("%d, want %d with %q: %s", resp.StatusCode, tc.want, tc.has, b)
			}
		})
	}
	if want := "door/000000000011-1-00.jpg=fake yard/000000000012-1-00.jpg=real"; strings.Join(crops.labelled, " ") != want {
		t.Fatalf("labelled %v, want %s", crops.labelled, want)
	}
	_, body = c.get("/api/crops")
	var d reviewData
	if err := json.Unmarshal([]byte(body), &d); err != nil || d.Waiting != 1 || d.Real != 1 || d.Fake != 1 {
		t.Fatalf("%v: %s", err, body)
	}
	for _, p := range []string{"/files/crops/door/000000000011-1-00.jpg", "/files/crops/../x.jpg", "/files/crops/door/.hidden.jpg", "/files/crops/door/x.png"} {
		if resp, _ := c.get(p); resp.StatusCode == http.StatusOK {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}

	off := newClient(t, mustNew(t, Options{}, Parts{}))
	if _, b := off.get("/review"); !strings.Contains(b, "not collected") {
		t.Fatalf("no crops: %s", b)
	}
	if resp, b := off.postJSON("/api/label", off.csrf("/review"), `{"id":"a/b.jpg","label":"real"}`); resp.StatusCode != 404 {
		t.Fatalf("no crops: %d %s", resp.StatusCode, b)
	}
}

// TestSymlinkOut: a link inside the folder that leads out of it is not followed.
func TestSymlinkOut(t *testing.T) {
	crops := newFakeCrops(t)
	secret := filepath.Join(t.TempDir(), "secret.jpg")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(crops.dir, "door"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(crops.dir, "door", "link.jpg")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(secret), filepath.Join(crops.dir, "out")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, mustNew(t, Options{}, Parts{Crops: crops}))
	for _, p := range []string{"/files/crops/door/link.jpg", "/files/crops/out/secret.jpg"} {
		if resp, b := c.get(p); resp.StatusCode != 404 || strings.Contains(b, "secret") {
			t.Errorf("%s: %d %s", p, resp.StatusCode, b)
		}
	}
}

// fakeLive has a frame of camera door only.
type fakeLive struct{ asked []string }

func (f *fakeLive) Frame(camera string) ([]byte, int64, bool) {
	f.asked = append(f.asked, camera)
	if camera != "door" {
		return nil, 0, false
	}
	return jpegBytes, 41, true
}

// Next streams door's frames 42, 43, ...: one each call.
func (f *fakeLive) Next(ctx context.Context, camera string, after int64) ([]byte, int64, bool) {
	if camera != "door" || ctx.Err() != nil {
		return nil, 0, false
	}
	return jpegBytes, max(after+1, 42), true
}

// TestLiveStream: /live/<camera>.mjpg is an MJPEG stream an <img> plays:
// frames in order, each a JPEG part with its index.
func TestLiveStream(t *testing.T) {
	c := newClient(t, mustNew(t, Options{}, Parts{Live: &fakeLive{}}))
	req, _ := http.NewRequest(http.MethodGet, c.srv.URL+"/live/door.mjpg", nil)
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" {
		t.Fatalf("Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for want := int64(42); want < 45; want++ {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		if p.Header.Get("Content-Type") != "image/jpeg" || p.Header.Get("X-Frame-Index") != strconv.FormatInt(want, 10) || !bytes.Equal(b, jpegBytes) {
			t.Fatalf("part %d: %v, %d bytes", want, p.Header, len(b))
		}
	}
}

func TestLive(t *testing.T) {
	live := &fakeLive{}
	c := newClient(t, mustNew(t, Options{}, Parts{Live: live}))
	for _, tc := range []struct {
		path string
		want int
		has  string
	}{
		{"/live", 200, `data-camera="door"`},
		{"/live/door.jpg", 200, string(jpegBytes)},
		{"/live/gate.jpg", 503, "no frame yet"},
		{"/live/door.png", 404, ""},
		{"/live/do%20or.jpg", 404, ""},
		{"/live/..%2fdoor.jpg", 404, ""},
		{"/live/.jpg", 404, ""},
	} {
		resp, body := c.get(tc.path)
		if resp.StatusCode != tc.want || !strings.Contains(body, tc.has) {
			t.Errorf("%s: %d, want %d with %q: %s", tc.path, resp.StatusCode, tc.want, tc.has, body)
		}
		if tc.want == 200 && strings.HasSuffix(tc.path, ".jpg") && (resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("X-Frame-Index") != "41") {
			t.Errorf("%s: headers %v", tc.path, resp.Header)
		}
	}
	if strings.Join(live.asked, " ") != "door gate" {
		t.Errorf("asked for %v", live.asked)
	}
	off := newClient(t, mustNew(t, Options{}, Parts{}))
	if _, b := off.get("/live"); !strings.Contains(b, "live view is off") {
		t.Error(b)
	}
	if resp, _ := off.get("/live/door.jpg"); resp.StatusCode != 404 {
		t.Error(resp.Status)
	}
}

// TestEventsPast: events of earlier runs, known by their snapshots, come
// before this run's, are filtered like them, and make room when the log is full.
func TestEventsPast(t *testing.T) {
	l := NewEventLog(3)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	l.AddPast("r0-door-1", "door", 1, t0, "/s/door/r0-1.jpg")
	l.AddPast("r0-door-1", "door", 1, t0, "/s/door/r0-1.jpg") // twice: once
	l.AddPast("r0-yard-2", "yard", 2, t0.Add(time.Hour), "/s/yard/r0-2.jpg")
	l.AddPast("r0-bad-3", "../x", 3, t0, "/s/x.jpg")
	if err := l.Add(event("r1-door-4", "new", "door", t0.Add(2*time.Hour), "fake", 0.9, "")); err != nil {
		t.Fatal(err)
	}
	evs := l.List(EventFilter{})
	if len(evs) != 3 || evs[0].ID != "r1-door-4" || evs[0].Past || !evs[2].Past || evs[2].ID != "r0-door-1" {
		t.Fatalf("%+v", evs)
	}
	if got := l.List(EventFilter{Camera: "yard"}); len(got) != 1 || !got[0].Past {
		t.Fatalf("%+v", got)
	}
	if err := l.Add(event("r1-door-5", "new", "door", t0.Add(3*time.Hour), "fake", 0.9, "")); err != nil {
		t.Fatal(err)
	}
	if evs := l.List(EventFilter{}); len(evs) != 3 || evs[2].ID != "r0-yard-2" {
		t.Fatalf("the oldest should have gone: %+v", evs)
	}
	c := newClient(t, mustNew(t, Options{}, Parts{Events: l}))
	if _, b := c.get("/events"); !strings.Contains(b, "an earlier run") {
		t.Fatal(b)
	}
}

// TestEventClips: an event's clip plays on the events page once its file is
// written (a video with a download link), says it is recording before, is
// served from the clip folder only, and a clip outside it is never shown.
func TestEventClips(t *testing.T) {
	testenv.Long(t)
	clips := t.TempDir()
	if err := os.MkdirAll(filepath.Join(clips, "door"), 0o755); err != nil {
		t.Fatal(err)
	}
	written := filepath.Join(clips, "door", "run1-5.mp4")
	if err := os.WriteFile(written, []byte("fake mp4"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := NewEventLog(10)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.Local)
	withClip := func(id, camera, clip string) []byte {
		return fmt.Appendf(nil, `{"type":"new","id":%q,"device":"edge-01","camera":%q,"ts":%q,"before":null,"after":{"track":5,"state":"fake","score":0.9,"frames":12,"clip":%q}}`,
			id, camera, t0.Format(time.RFC3339Nano), clip)
	}
	for _, m := range [][]byte{
		withClip("run1-door-5", "door", written),
		withClip("run1-yard-6", "yard", filepath.Join(clips, "yard", "run1-6.mp4")), // not written yet
		withClip("run1-gate-7", "gate", "/etc/passwd"),
	} {
		if err := log.Add(m); err != nil {
			t.Fatal(err)
		}
	}
	s := mustNew(t, Options{}, Parts{Events: log, ClipDir: clips})
	c := newClient(t, s)
	resp, body := c.get("/events")
	if resp.StatusCode != 200 || !strings.Contains(body, `<video src="/files/clips/door/run1-5.mp4"`) ||
		!strings.Contains(body, "download the clip") || !strings.Contains(body, "recording the clip") || strings.Contains(body, "/etc/passwd") {
		t.Fatalf("events page %d:\n%s", resp.StatusCode, body)
	}
	for path, want := range map[string]int{"/files/clips/door/run1-5.mp4": 200, "/files/clips/door/run1-6.mp4": 404, "/files/clips/door/x.jpg": 404} {
		if resp, body := c.get(path); resp.StatusCode != want || want == 200 && body != "fake mp4" {
			t.Errorf("%s: %d %q, want %d", path, resp.StatusCode, body, want)
		}
	}
}

// TestTrustSentence: the status, live and events pages say how far a
// verdict can be trusted, with the way to do better, and the status page
// names the release.
func TestTrustSentence(t *testing.T) {
	s := mustNew(t, Options{}, Parts{Events: NewEventLog(10), Live: nil, ModelCard: "# Model card: deepfaked-dfdc v1\n"})
	c := newClient(t, s)
	for _, path := range []string{"/", "/live", "/events"} {
		resp, body := c.get(path)
		if resp.StatusCode != 200 || !strings.Contains(body, "Treat one frame as a hint.") || !strings.Contains(body, `<a href="/train">teach it this camera</a>`) ||
			!strings.Contains(body, `<a href="/model-card">The model card</a>`) {
			t.Errorf("%s: %d, no trust sentence:\n%s", path, resp.StatusCode, body)
		}
	}
	if _, body := c.get("/"); !strings.Contains(body, "deepfaked-dfdc v1, released 2026-12-01") {
		t.Errorf("the status page does not name the release:\n%s", body)
	}
	if resp, body := c.get("/model-card"); resp.StatusCode != 200 || body != "# Model card: deepfaked-dfdc v1\n" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("/model-card: %d %q", resp.StatusCode, body)
	}
	if resp, _ := newClient(t, mustNew(t, Options{}, Parts{})).get("/model-card"); resp.StatusCode != 404 {
		t.Errorf("/model-card without a card: %d", resp.StatusCode)
	}
}
