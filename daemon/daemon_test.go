package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/deepfaked/deepfaked/capture"
	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/daemon/mqttc"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// writeConfig writes a config with the real models and runtime, the embedded
// broker on listen, one camera on source and the extra model: lines.
func writeConfig(t *testing.T, listen, source string, loop bool, model ...string) string {
	t.Helper()
	backbone, head := testenv.Models(t)
	lines := []string{"device_id: dt", "state_dir: " + t.TempDir(), "mqtt:", "  broker: embedded", "  listen: " + listen,
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t)}
	lines = append(lines, model...)
	lines = append(lines, "faces:", "  detector: haar", "cameras:", "  - name: cam1", "    source: "+source,
		fmt.Sprintf("    loop: %v", loop), "")
	p := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// appendConfig adds sections to the config file at path.
func appendConfig(t *testing.T, path, yaml string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, yaml...), 0o600); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// watcher records what the daemon publishes, through a subscription of its own.
type watcher struct {
	mu      sync.Mutex
	msgs    []string // "topic payload"
	offline chan struct{}
}

func watch(t *testing.T, d *daemon.Daemon) *watcher {
	t.Helper()
	o := d.MQTTOptions()
	status := o.StatusTopic
	o.ClientID = "test-watcher"
	w := &watcher{offline: make(chan struct{})}
	var once, offline sync.Once
	ready := make(chan struct{})
	o.OnSubscribed = func() { once.Do(func() { close(ready) }) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- mqttc.Subscribe(ctx, o, []string{"deepfaked/dt/#"}, func(topic string, payload []byte) {
			w.mu.Lock()
			w.msgs = append(w.msgs, topic+" "+string(payload))
			w.mu.Unlock()
			if topic == status && string(payload) == contract.Offline {
				offline.Do(func() { close(w.offline) })
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not subscribed within 10s")
	}
	return w
}

func (w *watcher) waitOffline(t *testing.T) []string {
	t.Helper()
	select {
	case <-w.offline:
	case <-time.After(10 * time.Second):
		t.Fatal("no offline within 10s")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.msgs)
}

// waitFor polls what has arrived until done says it is enough, rather than
// sleeping a fixed time that a loaded machine may not meet.
func (w *watcher) waitFor(t *testing.T, what string, done func(msgs []string) bool) {
	t.Helper()
	if !poll.Until(60*time.Second, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return done(w.msgs)
	}) {
		t.Fatalf("no %s within 60s", what)
	}
}

// count is how many messages on topic there are.
func count(msgs []string, topic string) int {
	n := 0
	for _, m := range msgs {
		if tp, _, _ := strings.Cut(m, " "); tp == topic {
			n++
		}
	}
	return n
}

// notifySocket listens where systemd would and passes on what the daemon sends.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- strings.TrimSpace(string(buf[:n]))
		}
	}()
	return ch
}

// shortClip writes a 20-frame clip with a face (Megamind's, when installed):
// these tests are about the daemon's life, not the video.
func shortClip(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "clip.avi")
	if err := capturetest.Write(p, 20, 25); err != nil {
		t.Fatal(err)
	}
	return p
}

// frames counts the frames of a video file as the daemon reads it.
func frames(t *testing.T, path string) int {
	t.Helper()
	c, err := capture.Open(context.Background(), capture.Options{Name: "count", Source: path}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for {
		f, err := c.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Release(f)
		n++
	}
}

// TestRunToEnd: a file camera is analysed to its end: one verdict per frame in
// order, READY=1 before and STOPPING=1 after, online then offline on status;
// then Close releases everything (the broker's port is free) and may be
// called again; Run does not run twice.
func TestRunToEnd(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	clip := shortClip(t)
	want := frames(t, clip)
	states := notifySocket(t)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	d, err := daemon.New(context.Background(), load(t, writeConfig(t, addr, clip, false)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.MQTTOptions().Broker; got != "tcp://"+addr {
		t.Errorf("MQTTOptions().Broker = %s, want tcp://%s", got, addr)
	}
	w := watch(t, d)
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	msgs := w.waitOffline(t)
	var status []string
	n := 0
	for _, m := range msgs {
		topic, payload, _ := strings.Cut(m, " ")
		switch topic {
		case "deepfaked/dt/status":
			status = append(status, payload)
		case "deepfaked/dt/cam1/verdict":
			var v contract.Verdict
			if err := json.Unmarshal([]byte(payload), &v); err != nil {
				t.Fatalf("verdict %s: %v", payload, err)
			}
			if v.Frame != int64(n) || v.Device != "dt" || v.Camera != "cam1" {
				t.Fatalf("verdict %d: %s", n, payload)
			}
			n++
		}
	}
	if n != want {
		t.Errorf("%d verdicts for %d frames", n, want)
	}
	// A subscriber joining while mochi fans out the retained online gets it
	// twice (retained and live): a repeat is not a new state.
	if status = slices.Compact(status); !slices.Equal(status, []string{contract.Online, contract.Offline}) {
		t.Errorf("status %v, want [online offline]", status)
	}
	for _, s := range []string{"READY=1", "STOPPING=1"} {
		select {
		case got := <-states:
			if got != s {
				t.Errorf("systemd got %q, want %q", got, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("systemd got no %s", s)
		}
	}
	if err := d.Run(context.Background()); err == nil {
		t.Error("Run ran twice")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	portFree(t, addr)
}

// TestCloseWithoutRun: a daemon that never ran still says goodbye: Close
// (twice) leaves `offline` retained on its broker. A real mosquitto, not the
// embedded broker: that one stops with the daemon, so what it had not yet
// forwarded to a subscriber could never be checked.
func TestCloseWithoutRun(t *testing.T) {
	capturetest.CheckMats(t)
	broker := testenv.Mosquitto(t)
	path := writeConfig(t, "127.0.0.1:0", shortClip(t), true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	yaml := regexp.MustCompile(`(?m)^  broker: embedded\n  listen: .*$`).ReplaceAllString(string(b), "  broker: "+broker)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(context.Background(), load(t, path), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := d.MQTTOptions()
	status := func() string { // the retained status, as a subscriber arriving now sees it
		t.Helper()
		o.ClientID = ""
		got := make(chan string, 1)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- mqttc.Subscribe(ctx, o, []string{o.StatusTopic}, func(_ string, p []byte) {
				select {
				case got <- string(p):
				default:
				}
			})
		}()
		defer func() { cancel(); <-done }()
		select {
		case s := <-got:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no retained status within 10s")
			return ""
		}
	}
	if s := status(); s != contract.Online {
		t.Fatalf("status %q before Close, want online", s)
	}
	for range 2 {
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if s := status(); s != contract.Offline {
		t.Fatalf("status %q after Close, want offline", s)
	}
}

// TestSIGHUPBeforeRun: SIGHUP is taken as a reload from New on, whether or
// not the head file is watched: a SIGHUP between New and Run (so before
// READY=1) is handled by Run, and does not kill the process.
func TestSIGHUPBeforeRun(t *testing.T) {
	logs := &testenv.SyncBuffer{}
	d, err := daemon.New(context.Background(), load(t, writeConfig(t, "127.0.0.1:0", shortClip(t), true, "  watch_head: false")),
		slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if !poll.Until(30*time.Second, func() bool { return strings.Contains(logs.String(), `msg="head unchanged" reason=SIGHUP`) }) {
		t.Fatalf("SIGHUP not handled within 30s:\n%s", logs)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestNewFails: whatever fails at start is reported by New, naming the key or
// file, and everything taken before it is released: no goroutine is left
// behind, the embedded broker's port is free again, no Mat is leaked.
func TestNewFails(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	clip := shortClip(t)
	notVideo := filepath.Join(t.TempDir(), "notes.mp4")
	notModel := filepath.Join(t.TempDir(), "head.onnx")
	for _, p := range []string{notVideo, notModel} {
		if err := os.WriteFile(p, []byte("not what it says\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	unreachable := fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))
	readable := filepath.Join(t.TempDir(), "web-password")
	if err := os.WriteFile(readable, []byte("hunter2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(readable, 0o644); err != nil {
		t.Fatal(err)
	}
	web := func(listen, password string) func(c *config.Config) {
		return func(c *config.Config) { c.Web = config.Web{Enabled: true, Listen: listen, PasswordFile: password} }
	}
	// os/signal starts its one goroutine on first use, for good: not a leak.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	signal.Stop(hup)

	for _, tc := range []struct {
		name   string
		edit   func(c *config.Config)
		listen string
		want   []string
	}{
		{"missing head", func(c *config.Config) { c.Model.Head = "/nonexistent/head.onnx" }, "", []string{"model.head", "/nonexistent/head.onnx"}},
		{"head not a model", func(c *config.Config) { c.Model.Head = notModel }, "", []string{notModel}},
		{"backbone not the pinned one", func(c *config.Config) { c.Model.BackboneSHA256 = strings.Repeat("0", 64) }, "", []string{"model.backbone_sha256", "but the config pins 0000"}},
		{"listen port busy", nil, busy.Addr().String(), []string{"mqtt.listen", busy.Addr().String()}},
		{"broker unreachable", func(c *config.Config) { c.MQTT.Broker = unreachable }, "", []string{"connect to broker " + unreachable}},
		{"web password file readable by all", web("127.0.0.1:0", readable), "", []string{"web.password_file", readable, "readable by all users"}},
		{"web port busy", web(busy.Addr().String(), ""), "", []string{"web.listen", busy.Addr().String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			listen := tc.listen
			if listen == "" {
				listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			}
			cfg := load(t, writeConfig(t, listen, clip, false))
			if tc.edit != nil {
				tc.edit(cfg)
			}
			before := runtime.NumGoroutine()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			d, err := daemon.New(ctx, cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				d.Close()
				t.Fatal("New succeeded")
			}
			if d != nil {
				t.Error("New returned a daemon with its error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q: %v", w, err)
				}
			}
			goroutinesBack(t, before)
			if tc.listen == "" {
				portFree(t, listen)
			}
		})
	}
}

// goroutinesBack waits until no more goroutines run than before.
func goroutinesBack(t *testing.T, before int) {
	t.Helper()
	// paho and mochi end theirs just after closing
	if !poll.Until(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
	}
}

// portFree checks that nothing listens on addr any more.
func portFree(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still taken after Close: %v", err)
	}
	l.Close()
}

// TestBrokerDownFileEnds: with the broker down at start the daemon runs
// anyway; its file camera ends, it waits mqtt.drain_timeout, says how many
// verdicts stay in the outbox and exits cleanly; the next start, with the
// broker back, delivers them (in order, with the first run's id) before its own.
func TestBrokerDownFileEnds(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	clip := shortClip(t)
	want := frames(t, clip)
	m := testenv.StartPersistentMosquitto(t, "")
	var mu sync.Mutex
	seqs := map[string][]int64{} // run: seqs as they arrived
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("verdict-store").
		SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
			var v contract.Verdict
			if json.Unmarshal(msg.Payload(), &v) == nil {
				mu.Lock()
				seqs[v.Run] = append(seqs[v.Run], v.Seq)
				mu.Unlock()
			}
		}))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := sub.Subscribe("deepfaked/dt/+/verdict", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	m.Terminate()

	backbone, head := testenv.Models(t)
	cfgPath := filepath.Join(t.TempDir(), "deepfaked.yaml")
	body := strings.Join([]string{"device_id: dt", "state_dir: " + t.TempDir(), "mqtt:", "  broker: " + m.URL(), "  drain_timeout: 2s",
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar",
		// No events, state or score: the outbox then holds the verdicts and
		// the availability messages this test counts.
		"events:", "  enabled: false",
		"cameras:", "  - name: cam1", "    source: " + clip, ""}, "\n")
	if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		logs := new(testenv.SyncBuffer)
		d, err := daemon.New(context.Background(), load(t, cfgPath), slog.New(slog.NewTextHandler(logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := d.Run(context.Background()); err != nil {
			t.Fatalf("Run: %v\n%s", err, logs)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("ran and drained in %v", time.Since(start).Round(time.Millisecond))
		return logs.String()
	}
	logs := run()
	// The verdicts, and the camera's availability (retained, through the outbox too).
	left := regexp.MustCompile(`stay in the outbox for the next start" messages=(\d+)`).FindStringSubmatch(logs)
	if n := 0; !strings.Contains(logs, "mqtt broker not reachable") || left == nil {
		t.Fatalf("first run, broker down: log lacks the start or the messages left:\n%s", logs)
	} else if fmt.Sscan(left[1], &n); n < want+1 || n > want+3 {
		t.Fatalf("first run, broker down: %d messages left, want the %d verdicts and 1 to 3 availability messages (offline at start, online, offline at the end):\n%s", n, want, logs)
	}
	m.Start()
	logs = run()
	if strings.Contains(logs, "stay in the outbox") || !strings.Contains(logs, "messages from an earlier run to deliver") {
		t.Fatalf("second run:\n%s", logs)
	}
	wantSeqs := make([]int64, want)
	for i := range wantSeqs {
		wantSeqs[i] = int64(i + 1)
	}
	poll.Until(20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		done := len(seqs) == 2
		for _, s := range seqs {
			done = done && len(s) >= want
		}
		return done
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seqs) != 2 {
		t.Fatalf("verdicts of %d runs, want 2: %v", len(seqs), seqs)
	}
	for run, s := range seqs {
		if !slices.Equal(s, wantSeqs) {
			t.Errorf("run %s: seqs %v, want 1..%d once each in order", run, s, want)
		}
	}
}

// TestBadCameraOthersRun: a camera that cannot be opened at start (a file
// that is not a video) does not stop the daemon: it is retried and logged,
// and the other camera's every frame is published.
func TestBadCameraOthersRun(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	clip := shortClip(t)
	want := frames(t, clip)
	notVideo := filepath.Join(t.TempDir(), "notes.mp4")
	if err := os.WriteFile(notVideo, []byte("not what it says\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := writeConfig(t, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), clip, false)
	body, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	body = append(body, []byte("  - name: broken\n    source: "+notVideo+"\n")...)
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := new(testenv.SyncBuffer)
	d, err := daemon.New(context.Background(), load(t, p), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("New with one broken camera: %v", err)
	}
	defer d.Close()
	w := watch(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	count := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		n := 0
		for _, m := range w.msgs {
			if strings.HasPrefix(m, "deepfaked/dt/cam1/verdict ") {
				n++
			}
		}
		return n
	}
	poll.Until(60*time.Second, func() bool { return count() >= want }) // the count is checked below
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(); n != want {
		t.Errorf("cam1: %d verdicts for %d frames", n, want)
	}
	if !strings.Contains(logs.String(), "camera=broken") || !strings.Contains(logs.String(), "retrying") {
		t.Errorf("the broken camera's retries are not logged:\n%s", logs)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Count(line, "camera=") > 1 {
			t.Errorf("camera= twice: %s", line)
		}
	}
}

// TestEmbeddedBrokerUsersOnly: an embedded broker for Home Assistant (users
// from mqtt.embedded.users_file, no anonymous clients) needs no
// mqtt.username: the daemon logs in with a login made for the run, a user of
// the file reads its verdicts, and an anonymous client gets no session.
func TestEmbeddedBrokerUsersOnly(t *testing.T) {
	testenv.Long(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("homeassistant:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := writeConfig(t, listen, shortClip(t), true)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), "  listen: "+listen+"\n",
		"  listen: "+listen+"\n  embedded:\n    allow_anonymous: false\n    users_file: "+users+"\n", 1))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(context.Background(), load(t, path), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()

	got := make(chan string, 1)
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_ = mqttc.Subscribe(sctx, mqttc.Options{Broker: "tcp://" + listen, Username: "homeassistant", Password: "s3cret", QoS: 1},
			[]string{"deepfaked/dt/cam1/verdict"}, func(topic string, _ []byte) {
				select {
				case got <- topic:
				default:
				}
			})
	}()
	select {
	case <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the users_file's user received no verdict")
	}
	err = mqttc.Subscribe(context.Background(), mqttc.Options{Broker: "tcp://" + listen, QoS: 1, GiveUp: 2 * time.Second},
		[]string{"deepfaked/#"}, func(string, []byte) {})
	var none *mqttc.NoSessionError
	if !errors.As(err, &none) {
		t.Errorf("an anonymous client: %v; want no session", err)
	}
}
