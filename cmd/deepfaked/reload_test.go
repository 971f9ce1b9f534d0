package main

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/infer/spec"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
	"github.com/deepfaked/deepfaked/train"
)

// exportHead writes a Go-trained-layout head (random, seeded) with the given
// feature shape and calibrated threshold.
func exportHead(t *testing.T, path string, seed int64, shape []int, threshold float64) string {
	t.Helper()
	d := 1
	for _, s := range shape {
		d *= s
	}
	if err := train.NewHead(d, seed).ExportONNX(path, train.ExportInfo{InputSize: 32 * shape[1], FeatureShape: shape, Threshold: threshold}); err != nil {
		t.Fatal(err)
	}
	return fileID(t, path)
}

// replaceFile replaces dst atomically, as `deepfaked train --install` does.
func replaceFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

type verdictHead struct {
	Frame     int64
	Threshold float64
	Model     struct{ Head string }
}

// TestHotReload: a running daemon takes up a new head when the file is
// replaced, refuses one that does not fit the backbone on SIGHUP (the old one
// keeps serving), and reloads on the MQTT command; no frame is lost and
// model.head in the verdicts shows each switch.
func TestHotReload(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	backbone, origHead := testenv.Models(t)
	dir := t.TempDir()
	head := filepath.Join(dir, "head.onnx")
	replaceFile(t, origHead, head)
	origID := fileID(t, head)
	newHead := filepath.Join(t.TempDir(), "new.onnx")
	newID := exportHead(t, newHead, 7, []int{1280, 4, 4}, 0.42)
	bigHead := filepath.Join(t.TempDir(), "big.onnx")
	exportHead(t, bigHead, 8, []int{1280, 7, 7}, 0.5)

	cfg := filepath.Join(dir, "deepfaked.yaml")
	body := strings.Join([]string{
		"device_id: hr", "state_dir: " + t.TempDir(), "mqtt:", "  broker: " + broker, "  commands:", "    enabled: true",
		"model:", "  backbone: " + backbone, "  head: head.onnx", "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar",
		"cameras:", "  - name: cam1", "    source: " + capturetest.Clip(t), "    loop: true", ""}, "\n")
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, broker, "deepfaked/hr/#")
	cmd := exec.Command(deepfaked(t), "run", "--config", cfg)
	stderr := &testenv.SyncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	const vt = "deepfaked/hr/cam1/verdict"
	verdicts := func(m []message) []verdictHead {
		var out []verdictHead
		for _, x := range m {
			if x.topic == vt {
				var v verdictHead
				if err := json.Unmarshal(x.payload, &v); err != nil {
					t.Fatalf("verdict: %v", err)
				}
				out = append(out, v)
			}
		}
		return out
	}
	// waitHead waits until n more verdicts came from head id with threshold thr.
	waitHead := func(what, id string, thr float64, n int) {
		t.Helper()
		sub.waitFor(t, what, 90*time.Second, func(m []message) bool {
			select {
			case err := <-done:
				t.Fatalf("deepfaked exited: %v\n%s", err, stderr.String())
			default:
			}
			c := 0
			for _, v := range verdicts(m) {
				if v.Model.Head == id && v.Threshold == thr {
					c++
				} else {
					c = 0
				}
			}
			return c >= n
		})
	}
	waitHead("verdicts from the original head", origID, 0.5, 3)

	replaceFile(t, newHead, head)
	waitHead("verdicts from the replaced head file", newID, 0.42, 3)

	replaceFile(t, bigHead, head)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !poll.Until(30*time.Second, func() bool { return strings.Contains(stderr.String(), "new head refused") }) {
		t.Fatalf("no refusal logged for a head that does not fit:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "62720") {
		t.Errorf("the refusal does not give the head's feature size:\n%s", stderr.String())
	}
	n := len(verdicts(sub.snapshot()))
	waitHead("verdicts from the previous head after the refusal", newID, 0.42, 3)
	for _, v := range verdicts(sub.snapshot())[n:] {
		if v.Model.Head != newID {
			t.Fatalf("after a refused head, a verdict came from %s", v.Model.Head)
		}
	}

	// MQTT: a malformed command is refused with a reason, a valid one reloads.
	replaceFile(t, origHead, head)
	results := subscribe(t, broker, "deepfaked/hr/cmd/+/result")
	sender := subscribe(t, broker, "unused/#")
	sender.c.Publish("deepfaked/hr/cmd/reload", 1, false, `{"now":1}`).Wait()
	sender.c.Publish("deepfaked/hr/cmd/reload", 1, false, `{}`).Wait()
	res := results.waitFor(t, "two command results", 30*time.Second, func(m []message) bool { return len(m) >= 2 })
	if !strings.Contains(string(res[0].payload), `"ok":false`) || !strings.Contains(string(res[0].payload), "unknown field") {
		t.Errorf("malformed reload answered %s", res[0].payload)
	}
	if !strings.Contains(string(res[1].payload), `"ok":true`) {
		t.Errorf("reload answered %s", res[1].payload)
	}
	waitHead("verdicts from the original head again", origID, 0.5, 3)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	for i, v := range verdicts(sub.snapshot()) {
		if v.Frame != int64(i) {
			t.Fatalf("verdict %d is frame %d: a frame was lost across a head switch", i, v.Frame)
		}
	}
}

// notifySocket listens where systemd would (NOTIFY_SOCKET) and passes on each
// state line the daemon sends (READY=1, STOPPING=1).
func notifySocket(t *testing.T) (path string, states <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 16)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			for _, s := range strings.Split(strings.TrimSpace(string(buf[:n])), "\n") {
				ch <- s
			}
		}
	}()
	return path, ch
}

// runningDaemon is `deepfaked run` started as systemd would start it.
type runningDaemon struct {
	cmd    *exec.Cmd
	stderr *testenv.SyncBuffer
	done   chan error
	states <-chan string
}

// startRun starts `deepfaked run --config cfg`, through wrap (a command
// that ends by running its arguments) when given.
func startRun(t *testing.T, cfg string, wrap ...string) *runningDaemon {
	t.Helper()
	sock, states := notifySocket(t)
	args := slices.Concat(wrap, []string{deepfaked(t), "run", "--config", cfg})
	r := &runningDaemon{cmd: exec.Command(args[0], args[1:]...), stderr: &testenv.SyncBuffer{},
		done: make(chan error, 1), states: states}
	r.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// waitReady returns as soon as the daemon has sent READY=1.
func (r *runningDaemon) waitReady(t *testing.T) {
	t.Helper()
	timeout := time.After(120 * time.Second)
	for {
		select {
		case s := <-r.states:
			if s == "READY=1" {
				return
			}
		case err := <-r.done:
			t.Fatalf("deepfaked exited before READY=1: %v\n%s", err, r.stderr)
		case <-timeout:
			t.Fatalf("no READY=1 within 120s\n%s", r.stderr)
		}
	}
}

// alive fails the test if the daemon has exited.
func (r *runningDaemon) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("deepfaked exited: %v (%v)\n%s", err, r.cmd.ProcessState, r.stderr)
	default:
	}
}

// stop sends SIGTERM and wants exit status 0.
func (r *runningDaemon) stop(t *testing.T) {
	t.Helper()
	r.alive(t)
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, r.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit within 30s of SIGTERM\n%s", r.stderr)
	}
}

func reloadConfig(t *testing.T, broker, head string, extra ...string) string {
	t.Helper()
	backbone, _ := testenv.Models(t)
	lines := append([]string{
		"device_id: hup", "state_dir: " + t.TempDir(), "mqtt:", "  broker: " + broker,
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t)}, extra...)
	lines = append(lines, "faces:", "  detector: haar",
		"cameras:", "  - name: cam1", "    source: "+capturetest.Clip(t), "    loop: true", "")
	cfg := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSIGHUPWatchHeadOff: with model.watch_head false, replacing the head
// file changes nothing by itself, and SIGHUP (`systemctl reload`) reloads the
// head and leaves the daemon running. (Before, the file was watched whatever
// the key said, and SIGHUP was handled only by the file watcher, so a daemon
// whose watch had failed died of it.)
func TestSIGHUPWatchHeadOff(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	_, origHead := testenv.Models(t)
	head := filepath.Join(t.TempDir(), "head.onnx")
	replaceFile(t, origHead, head)
	origID := fileID(t, head)
	newHead := filepath.Join(t.TempDir(), "new.onnx")
	newID := exportHead(t, newHead, 7, []int{1280, 4, 4}, 0.42)
	sub := subscribe(t, broker, "deepfaked/hup/cam1/verdict")
	r := startRun(t, reloadConfig(t, broker, head, "  watch_head: false"))
	r.waitReady(t)

	heads := func(m []message) []string {
		var out []string
		for _, x := range m {
			var v verdictHead
			if err := json.Unmarshal(x.payload, &v); err != nil {
				t.Fatalf("verdict: %v", err)
			}
			out = append(out, v.Model.Head)
		}
		return out
	}
	sub.waitFor(t, "3 verdicts", 60*time.Second, func(m []message) bool { r.alive(t); return len(m) >= 3 })
	replaceFile(t, newHead, head)
	// Several times the watch's settle delay, and 30 verdicts: all from the old head.
	n, since := len(sub.snapshot()), time.Now()
	sub.waitFor(t, "30 verdicts and 1s after replacing the file", 60*time.Second, func(m []message) bool {
		r.alive(t)
		return len(m) >= n+30 && time.Since(since) > 1*time.Second
	})
	for i, h := range heads(sub.snapshot()) {
		if h != origID {
			t.Fatalf("verdict %d came from head %s after the file was replaced: model.watch_head: false was not honoured", i, h)
		}
	}

	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	sub.waitFor(t, "verdicts from the new head after SIGHUP", 60*time.Second, func(m []message) bool {
		r.alive(t)
		h := heads(m)
		return len(h) > 0 && h[len(h)-1] == newID
	})
	r.waitLog(t, "reason=SIGHUP") // the reload says SIGHUP asked for it
	r.stop(t)
}

// noInotify runs its arguments in a user namespace of their own where no
// inotify instance may be made, as on a board whose inotify limits are spent.
var noInotify = []string{"unshare", "--user", "--map-root-user", "sh", "-c",
	`echo 0 > /proc/sys/user/max_inotify_instances && exec "$0" "$@"`}

// TestSIGHUPWithoutInotify: when the head file cannot be watched (no inotify
// instance left), the daemon says so and carries on, and SIGHUP still
// reloads the head instead of ending the daemon.
func TestSIGHUPWithoutInotify(t *testing.T) {
	if out, err := exec.Command(noInotify[0], append(noInotify[1:], "true")...).CombinedOutput(); err != nil {
		t.Skipf("cannot make a user namespace without inotify here: %v %s", err, out)
	}
	broker := testenv.Mosquitto(t)
	_, head := testenv.Models(t)
	r := startRun(t, reloadConfig(t, broker, head), noInotify...)
	r.waitReady(t)
	// Logged before READY=1, but the log reaches the test through a pipe.
	r.waitLog(t, "hot reload on head file change is off")
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, `msg="head unchanged" reason=SIGHUP`)
	r.stop(t)
}

// TestSIGHUPRightAfterReady: systemd may send SIGHUP as soon as it has
// READY=1; the daemon must already take it as a reload, not die of it.
func TestSIGHUPRightAfterReady(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	_, head := testenv.Models(t)
	r := startRun(t, reloadConfig(t, broker, head))
	r.waitReady(t)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, `msg="head unchanged" reason=SIGHUP`)
	r.stop(t)
}

// waitLog waits up to 30s for want in the daemon's log, failing if it exits.
func (r *runningDaemon) waitLog(t *testing.T, want string) {
	t.Helper()
	if !poll.Until(30*time.Second, func() bool {
		r.alive(t) // the process's exit is checked each time
		return strings.Contains(r.stderr.String(), want)
	}) {
		t.Fatalf("%q not logged within 30s\n%s", want, r.stderr)
	}
}

// TestReloadPinnedHead: with model.head_sha256, a head file replaced by
// another one is refused on SIGHUP, naming the key, and the pinned head
// keeps serving.
func TestReloadPinnedHead(t *testing.T) {
	testenv.Long(t)
	broker := testenv.Mosquitto(t)
	_, origHead := testenv.Models(t)
	head := filepath.Join(t.TempDir(), "head.onnx")
	replaceFile(t, origHead, head)
	origID := fileID(t, head)
	sum, err := spec.FileSHA256(head)
	if err != nil {
		t.Fatal(err)
	}
	newHead := filepath.Join(t.TempDir(), "new.onnx")
	exportHead(t, newHead, 7, []int{1280, 4, 4}, 0.42)
	sub := subscribe(t, broker, "deepfaked/hup/cam1/verdict")
	r := startRun(t, reloadConfig(t, broker, head, "  watch_head: false", "  head_sha256: "+sum))
	r.waitReady(t)
	replaceFile(t, newHead, head)
	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitLog(t, "model.head_sha256")
	keepsServing(t, r, sub, origID)
	r.stop(t)
}

// keepsServing waits for 10 more verdicts and checks that head (its id)
// made every one: a refused head changed nothing.
func keepsServing(t *testing.T, r *runningDaemon, sub *subscriber, head string) {
	t.Helper()
	n := len(sub.snapshot())
	sub.waitFor(t, "10 more verdicts", 60*time.Second, func(m []message) bool { r.alive(t); return len(m) >= n+10 })
	for _, x := range sub.snapshot()[n:] {
		var v verdictHead
		if err := json.Unmarshal(x.payload, &v); err != nil || v.Model.Head != head {
			t.Fatalf("verdict from head %s (%v), want %s", v.Model.Head, err, head)
		}
	}
}
