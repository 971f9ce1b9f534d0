package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestWebPage runs a daemon with the page on the metrics' address, on a real
// video: the page shows the camera's status and last verdict, the events with
// their snapshots, and the crops the collector saved; a crop labelled from the
// page is in the data folder as `deepfaked label` puts it; /metrics and
// /readyz answer on the same server without a login.
func TestWebPage(t *testing.T) {
	testenv.Long(t)
	if _, err := os.Stat(capturetest.Megamind); err != nil {
		t.Skipf("needs %s (Debian's opencv-doc): %v", capturetest.Megamind, err)
	}
	capturetest.CheckMats(t)
	backbone, head := testenv.Models(t)
	state := t.TempDir()
	lines := []string{"device_id: dt", "state_dir: " + state, "mqtt:", "  broker: embedded",
		fmt.Sprintf("  listen: 127.0.0.1:%d", testenv.FreePort(t)),
		"metrics:", "  listen: 127.0.0.1:0", "web:", "  enabled: true", "  listen: 127.0.0.1:0",
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar", "events:", "  tracks: all", "train:", "  collect:", "    every_n: 5",
		"cameras:", "  - name: cam1", "    source: " + capturetest.Megamind, "    fps: 10", "    loop: true", ""}
	p := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(context.Background(), load(t, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := d.WebAddr()
	if addr == "" || d.MetricsAddr() != addr {
		t.Fatalf("page on %q, metrics on %q: want one server", addr, d.MetricsAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitReady(t, addr, "200", ready)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	getBody := func(path string) (int, string) {
		t.Helper()
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var st struct {
		Device  string
		Model   struct{ Head string }
		Cameras []struct {
			Name, State string
			Analysed    int64 `json:"frames_analysed"`
			FPS         float64
			Last        *struct{ Label string } `json:"last_verdict"`
		}
	}
	var crops struct {
		Crops      []struct{ ID, Camera string }
		Real, Fake int
	}
	var events string
	if !poll.Until(60*time.Second, func() bool {
		_, body := getBody("/api/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		_, cb := getBody("/api/crops")
		if err := json.Unmarshal([]byte(cb), &crops); err != nil {
			t.Fatalf("%v: %s", err, cb)
		}
		_, events = getBody("/events")
		return len(st.Cameras) == 1 && st.Cameras[0].Last != nil && st.Cameras[0].FPS > 0 && len(crops.Crops) > 0 &&
			strings.Contains(events, "/files/snapshots/cam1/")
	}) {
		t.Fatalf("after 60 s: status %+v, crops %+v, events page\n%s", st, crops, events)
	}
	if st.Device != "dt" || st.Cameras[0].Name != "cam1" || st.Cameras[0].State != "delivering" || len(st.Model.Head) != 12 {
		t.Fatalf("status %+v", st)
	}
	if code, body := getBody("/metrics"); code != 200 || !strings.Contains(body, "deepfaked_frames_analysed_total") {
		t.Fatalf("/metrics on the page's server: %d", code)
	}
	_, events = getBody("/events")
	img := regexp.MustCompile(`src="(/files/snapshots/cam1/[^"]+\.jpg)"`).FindStringSubmatch(events)
	if code, body := getBody(img[1]); code != 200 || !strings.HasPrefix(body, "\xff\xd8") {
		t.Fatalf("%s: %d, not a JPEG", img[1], code)
	}

	// The live view: the first request turns the copying on.
	var frame gocv.Mat
	defer func() { frame.Close() }()
	var (
		code  int
		n     int
		index string
	)
	if !poll.Until(20*time.Second, func() bool {
		resp, err := c.Get("http://" + addr + "/live/cam1.jpg")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, n, index = resp.StatusCode, len(b), resp.Header.Get("X-Frame-Index")
		if code != 200 || index == "" {
			return false
		}
		frame.Close()
		if frame, err = gocv.IMDecode(b, gocv.IMReadColor); err != nil || frame.Cols() != 720 || frame.Rows() != 528 {
			t.Fatalf("live frame: %v, %dx%d", err, frame.Cols(), frame.Rows())
		}
		// Megamind opens on black frames: wait for a picture.
		m := frame.Mean()
		return m.Val1+m.Val2+m.Val3 > 30
	}) {
		t.Fatalf("no live frame with a picture: %d, %d bytes, frame %s", code, n, index)
	}
	if code, body := getBody("/live"); code != 200 || !strings.Contains(body, `data-camera="cam1"`) {
		t.Fatalf("/live: %d", code)
	}

	_, page := getBody("/review")
	tok := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(page)[1]
	id := crops.Crops[0].ID
	if code, body := getBody("/files/crops/" + id); code != 200 || !strings.HasPrefix(body, "\xff\xd8") {
		t.Fatalf("crop %s: %d", id, code)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/label", strings.NewReader(fmt.Sprintf(`{"id":%q,"label":"fake"}`, id)))
	req.Header.Set("X-CSRF-Token", tok)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"fake":1`) {
		t.Fatalf("label: %d %s", resp.StatusCode, b)
	}
	if _, err := os.Stat(filepath.Join(state, "collect", filepath.FromSlash(id))); !os.IsNotExist(err) {
		t.Fatalf("the crop is still in the collect folder: %v", err)
	}
	f, err := dataset.Load(filepath.Join(state, "dataset"))
	if f == nil || len(f.Samples) != 1 || f.Samples[0].Label != "fake" || !strings.HasPrefix(f.Samples[0].Identity, "cam1/") || // grouped by its track

		f.Samples[0].Path != "fake/cam1-"+strings.TrimPrefix(id, "cam1/") {
		t.Fatalf("data folder after labelling %s: %+v (%v)", id, f, err)
	}
	req, _ = http.NewRequest("POST", "http://"+addr+"/api/label", strings.NewReader(fmt.Sprintf(`{"id":%q,"label":"real"}`, id)))
	req.Header.Set("X-CSRF-Token", tok)
	if resp, err = c.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("labelled twice: %v %v", resp.Status, err)
	}
	resp.Body.Close()
}

// TestLiveViewCost measures what watching the live view costs the
// analysis: Megamind at every frame (fps 0) to its end, alternately with
// nobody watching and with a client asking for the live frame ten times a
// second (ten times the page's rate). DEEPFAKED_LIVE_COST=1 runs it; it
// takes about a minute.
func TestLiveViewCost(t *testing.T) {
	if os.Getenv("DEEPFAKED_LIVE_COST") == "" {
		t.Skip("DEEPFAKED_LIVE_COST=1 runs it")
	}
	if _, err := os.Stat(capturetest.Megamind); err != nil {
		t.Skipf("needs %s: %v", capturetest.Megamind, err)
	}
	backbone, head := testenv.Models(t)
	run := func(watch string) float64 { // "", "poll" (ten requests a second) or "stream" (the MJPEG stream)
		lines := []string{"device_id: dt", "state_dir: " + t.TempDir(), "mqtt:", "  broker: embedded",
			fmt.Sprintf("  listen: 127.0.0.1:%d", testenv.FreePort(t)), "web:", "  enabled: true", "  listen: 127.0.0.1:0",
			"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
			"faces:", "  detector: haar", "cameras:", "  - name: cam1", "    source: " + capturetest.Megamind, ""}
		p := filepath.Join(t.TempDir(), "deepfaked.yaml")
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := daemon.New(context.Background(), load(t, p), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		stop := make(chan struct{})
		var fetched, drawn int
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			switch watch {
			case "":
				return
			case "stream":
				resp, err := c.Get("http://" + d.WebAddr() + "/live/cam1.mjpg")
				if err != nil {
					return
				}
				defer resp.Body.Close()
				_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
				mr := multipart.NewReader(resp.Body, params["boundary"])
				for {
					select {
					case <-stop:
						return
					default:
					}
					p, err := mr.NextPart()
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, p)
					fetched++
					drawn++
				}
			}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := c.Get("http://" + d.WebAddr() + "/live/cam1.jpg")
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				fetched++
				if resp.StatusCode == 200 {
					drawn++
				}
			}
		}()
		start := time.Now()
		if err := d.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		close(stop)
		<-watched
		resp, err := c.Get("http://" + d.WebAddr() + "/api/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Cameras []struct {
				Analysed int64 `json:"frames_analysed"`
			}
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || len(st.Cameras) != 1 {
			t.Fatal(err)
		}
		fps := float64(st.Cameras[0].Analysed) / elapsed.Seconds()
		t.Logf("watched %q: %d frames in %s, %.1f frames/s (%d requests or parts, %d frames served)", watch, st.Cameras[0].Analysed, elapsed.Round(time.Millisecond), fps, fetched, drawn)
		return fps
	}
	var plain, polled, streamed float64
	for range 2 {
		plain += run("")
		polled += run("poll")
		streamed += run("stream")
	}
	t.Logf("frames/s: %.1f unwatched, %.1f polled (%.1f %%), %.1f streamed (%.1f %%)", plain/2, polled/2, 100*(polled-plain)/plain,
		streamed/2, 100*(streamed-plain)/plain)
	if polled < 0.9*plain {
		t.Errorf("polling the latest frame costs more than 10 %% of the frame rate")
	}
	if streamed < 0.75*plain {
		t.Errorf("streaming every frame costs more than 25 %% of the frame rate")
	}
}
