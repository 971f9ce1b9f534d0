//go:build e2e

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/deepfaked/deepfaked/dataset"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestWebE2E drives the page in headless Chromium as a person would:
// against the deepfaked binary on a real video with a real mosquitto, over
// HTTPS with a password, it logs in (a wrong password first), watches the
// status update, looks at the live view and the events, labels three crops
// with the keyboard (with an undo on the way), starts a training, watches it
// finish, reads the report and rolls back, then teaches the camera (faces
// collected, a head trained on self-blends compared with the installed one)
// and discards the result. Screenshots of every page go to
// $DEEPFAKED_WEB_SHOTS (default build/web-e2e). make test-web runs it
// (go test -tags e2e); it needs Debian's chromium.
func TestWebE2E(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs Debian's chromium (make deps installs it)")
	}
	shots := os.Getenv("DEEPFAKED_WEB_SHOTS")
	if shots == "" {
		shots = filepath.Join(testenv.RepoRoot(t), "build", "web-e2e")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	video, _, _ := splicedVideo(t, dir)
	backbone, head := testenv.Models(t)
	installed, original := headCopy(t, dir, head)
	pw := filepath.Join(dir, "web-password")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := testenv.NewPKI(t, dir)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	state := filepath.Join(dir, "state")
	data := filepath.Join(dir, "data")
	lines := []string{"device_id: e2e", "state_dir: " + state,
		"mqtt:", "  broker: " + testenv.Mosquitto(t),
		"model:", "  backbone: " + backbone, "  head: " + installed, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar",
		"events:", "  tracks: all", "  clips:", "    tracks: all", "    pre: 1s", "    post: 1s", "    max_width: 320",
		"train:", "  dataset: " + data, "  gate_set: " + data, "  folds: 2", "  epochs: 3", "  gate_margin: 1", "  collect:", "    every_n: 2", "  teach:", "    faces: 20", "    every_n: 1",
		"web:", "  enabled: true", "  listen: " + addr, "  password_file: " + pw,
		"  tls:", "    cert: " + pki.ServerCert, "    key: " + pki.ServerKey,
		"cameras:", "  - name: cam", "    source: " + video, "    fps: 5", "    loop: true", ""}
	cfg := filepath.Join(dir, "deepfaked.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, cfg)
	r.waitReady(t)
	base := "https://" + addr

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors", true), chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(actx)
	defer cancelTab()
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()

	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, r.stderr)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	// waitJS polls js until it is true; a reload by the page itself (the
	// queue's next page, the training's end) restarts the poll.
	waitJS := func(what, js string, timeout time.Duration) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Until(deadline)), chromedp.WithPollingInterval(100*time.Millisecond)))
			if err == nil {
				return
			}
			if time.Now().After(deadline) || !(strings.Contains(err.Error(), "navigated") || strings.Contains(err.Error(), "context was destroyed")) {
				t.Fatalf("waiting for %s (%s): %v\n%s", what, js, err, r.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// shot saves the page; long pages (the review queue) as the window shows them.
	shot := func(name string, window ...bool) {
		t.Helper()
		a := chromedp.FullScreenshot(100) // 100: PNG; below it, JPEG
		if len(window) > 0 && window[0] {
			a = chromedp.CaptureScreenshot()
		}
		// A page that is re-rendering can measure 0 wide for a moment
		// (seen on a loaded machine): take the picture once it has a size.
		var png []byte
		var err error
		poll.Until(10*time.Second, func() bool {
			png, err = chromedp.Run(ctx, a)
			return err == nil || !strings.Contains(err.Error(), "0 width")
		})
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Confirmation dialogs (rollback, install anyway) are accepted, and counted.
	dialogs := make(chan string, 4)
	opened := chromedp.Events(ctx, cdppage.JavascriptDialogOpening)
	go func() {
		for ev, err := range opened {
			if err != nil {
				return
			}
			dialogs <- ev.Message
			if _, err := chromedp.Call(ctx, cdppage.HandleJavaScriptDialog, cdppage.HandleJavaScriptDialogParams{Accept: true}); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("accept dialog: %v", err)
			}
		}
	}()

	// Log in: the page sends a stranger to the login form.
	do("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#password"))
	shot("login.png")
	do("wrong password", chromedp.SendKeys("#password", "hunter3"), chromedp.Click("#login"), chromedp.WaitVisible(".error"))
	do("log in", chromedp.SendKeys("#password", "hunter2"), chromedp.Click("#login"), chromedp.WaitVisible("#cameras"))

	// Status: the stream updates the page without a reload.
	first := eval(`document.querySelector("#updated").dataset.ts`)
	waitJS("the status to update", fmt.Sprintf(`document.querySelector("#updated").dataset.ts !== %q && Number(document.querySelector("#cameras .fps")?.textContent) > 0`, first), 20*time.Second)
	if got := eval(`document.querySelector("#cameras tbody tr").textContent`); !strings.Contains(got, "cam") || !strings.Contains(got, "online") {
		t.Fatalf("camera row %q", got)
	}
	shot("status.png")

	do("live", chromedp.Navigate(base+"/live"))
	// A frame with a picture (the video has black gaps between its segments).
	waitJS("a live frame", `(() => {
		const img = document.querySelector("img.live");
		if (!img.naturalWidth) return false;
		const c = document.createElement("canvas");
		c.width = 64; c.height = 48;
		const g = c.getContext("2d");
		g.drawImage(img, 0, 0, 64, 48);
		const d = g.getImageData(0, 0, 64, 48).data;
		let sum = 0;
		for (let i = 0; i < d.length; i += 4) sum += d[i] + d[i + 1] + d[i + 2];
		return sum / (64 * 48) > 30;
	})()`, 30*time.Second)
	shot("live.png")

	// Events, with a clip that plays: the first is written post (1 s) after
	// its track appeared; Chromium must decode its H.264.
	for i := 0; ; i++ {
		do("events", chromedp.Navigate(base+"/events"), chromedp.WaitVisible("li.event"))
		if eval(`document.querySelector("video") ? "yes" : "no"`) == "yes" {
			break
		}
		if i == 60 {
			t.Fatalf("no clip on the events page within a minute\n%s", r.stderr)
		}
		time.Sleep(time.Second)
	}
	waitJS("the clip decoded", `(() => { const v = document.querySelector("video"); return !v.error && v.readyState >= 2 && v.duration > 0 && v.videoWidth > 0; })()`, 30*time.Second)
	eval(`(() => { const v = document.querySelector("video"); v.closest("li").scrollIntoView(); v.currentTime = v.duration / 2; return ""; })()`)
	waitJS("the clip seeked", `(() => { const v = document.querySelector("video"); return !v.seeking && v.readyState >= 2; })()`, 10*time.Second)
	shot("events.png", true)

	// Review: three crops with the keyboard, and an undo on the way.
	deadline := time.Now().Add(time.Minute)
	for crops, _ := filepath.Glob(filepath.Join(state, "collect", "cam", "*.jpg")); len(crops) < 6; crops, _ = filepath.Glob(filepath.Join(state, "collect", "cam", "*.jpg")) {
		if time.Now().After(deadline) {
			t.Fatalf("%d crops collected in a minute\n%s", len(crops), r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	do("review", chromedp.Navigate(base+"/review"), chromedp.WaitVisible("#queue li.crop"))
	realBefore, fakeBefore := eval(`document.querySelector("#count-real").textContent`), eval(`document.querySelector("#count-fake").textContent`)
	shot("review.png", true)
	for _, k := range []string{"f", "r", "u", "r", "f"} { // fake, real (undone), real, fake
		do("key "+k, chromedp.KeyEvent(k), chromedp.Sleep(150*time.Millisecond))
	}
	waitJS("three labels", fmt.Sprintf(`Number(document.querySelector("#count-real").textContent) === %s + 1 && Number(document.querySelector("#count-fake").textContent) === %s + 2`,
		realBefore, fakeBefore), 20*time.Second)
	do("phone size", chromedp.EmulateViewport(390, 844))
	shot("review-phone.png", true)
	do("desktop size", chromedp.EmulateViewport(1280, 900))
	f, err := dataset.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	var labelled []string
	for _, s := range f.Samples {
		if strings.HasPrefix(filepath.Base(s.Path), "cam-") {
			labelled = append(labelled, s.Label)
		}
	}
	if strings.Join(labelled, " ") != "fake real fake" {
		t.Fatalf("labelled crops in the data folder: %v, want fake real fake", labelled)
	}

	// Train: start, watch the progress, read the report.
	do("train page", chromedp.Navigate(base+"/train"), chromedp.WaitVisible("#start"), chromedp.Click("#start"))
	waitJS("progress", `document.querySelector("#line").textContent.length > 0 || !!document.querySelector("#report")`, time.Minute)
	if eval(`document.querySelector("#report") ? "" : "running"`) == "running" {
		shot("train-progress.png")
	}
	waitJS("the report", `!!document.querySelector("#report")`, 5*time.Minute)
	shot("train-report.png")
	if got := eval(`document.querySelector("#decision").textContent`); !strings.Contains(got, "let the new head in") {
		t.Fatalf("decision %q", got)
	}
	if fileID(t, installed) == original {
		t.Fatal("the trained head was not installed")
	}
	r.waitLog(t, "head reloaded")

	// Roll back, confirming.
	do("rollback", chromedp.Click("#rollback"))
	waitJS("the rollback's note", `document.querySelector("#note").textContent.includes("rolled back")`, 20*time.Second)
	if msg := <-dialogs; !strings.Contains(msg, "Put back") {
		t.Fatalf("dialog %q", msg)
	}
	if got := fileID(t, installed); got != original {
		t.Fatalf("after rollback model.head %s, want %s", got, original)
	}
	shot("train-rolled-back.png")

	// Teach the camera: collect its faces with a count and a bar, train
	// on them with self-blends, compare before and after, discard.
	do("teach", chromedp.Navigate(base+"/train"), chromedp.WaitVisible("#teach-start"), chromedp.Click("#teach-start"))
	waitJS("the collection", `document.querySelector("#phase").textContent.startsWith("collect") || !!document.querySelector("#teach-table")`, time.Minute)
	if eval(`document.querySelector("#teach-table") ? "" : "running"`) == "running" {
		shot("teach-progress.png")
	}
	waitJS("the taught camera's report", `!!document.querySelector("#teach-table")`, 5*time.Minute)
	shot("teach-report.png")
	if got := eval(`document.querySelector("#decision").textContent`); !strings.Contains(got, "Camera cam taught") {
		t.Fatalf("taught decision %q", got)
	}
	if got := eval(`document.querySelector("#teach-table").textContent`); !strings.Contains(got, "real faces called fake") || !strings.Contains(got, "%") {
		t.Fatalf("before and after table %q", got)
	}
	if fileID(t, installed) != original {
		t.Fatal("teaching the camera installed a head")
	}
	do("discard", chromedp.Click("#discard"))
	waitJS("the discard's note", `document.querySelector("#note").textContent.includes("discarded")`, 20*time.Second)
	if sessions, _ := os.ReadDir(filepath.Join(state, "teach")); len(sessions) != 0 {
		t.Errorf("the discarded session's faces are still in %s: %v", filepath.Join(state, "teach"), sessions)
	}
	do("status again", chromedp.Navigate(base+"/"), chromedp.WaitVisible("#cameras"))
	cancelTab()
	r.stop(t)
	t.Logf("screenshots in %s", shots)
}
