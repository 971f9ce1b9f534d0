package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/daemon"
	"github.com/deepfaked/deepfaked/internal/buildinfo"
	"github.com/deepfaked/deepfaked/internal/poll"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// observedConfig is writeConfig's with metrics on a free loopback port, stats
// every second and cameras as "name source loop" triples.
func observedConfig(t *testing.T, cams ...string) string {
	t.Helper()
	backbone, head := testenv.Models(t)
	lines := []string{"device_id: dt", "state_dir: " + t.TempDir(), "mqtt:", "  broker: embedded",
		fmt.Sprintf("  listen: 127.0.0.1:%d", testenv.FreePort(t)), "  stats_interval: 1s",
		"metrics:", "  listen: 127.0.0.1:0",
		"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
		"faces:", "  detector: haar", "cameras:"}
	for _, c := range cams {
		f := strings.Fields(c)
		lines = append(lines, "  - name: "+f[0], "    source: "+f[1], "    loop: "+f[2])
	}
	p := filepath.Join(t.TempDir(), "deepfaked.yaml")
	if err := os.WriteFile(p, []byte(strings.Join(append(lines, ""), "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// waitReady polls /readyz until ok says yes, for up to 20 s.
func waitReady(t *testing.T, addr, what string, ok func(code int, body string) bool) {
	t.Helper()
	var code int
	var body string
	if !poll.Until(20*time.Second, func() bool {
		code, body = get(t, "http://"+addr+"/readyz")
		return ok(code, strings.TrimSpace(body))
	}) {
		t.Fatalf("/readyz: %d %q, waited 20s for %s", code, body, what)
	}
}

func ready(code int, body string) bool { return code == http.StatusOK && body == "ready" }

// scrape parses /metrics with Prometheus's own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	return fams
}

// value is the value of family name's series whose labels include want
// ("k=v" pairs); it fails when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s has no series with %v", name, want)
	return 0
}

// TestMetricsScrape: a daemon analyses a looping clip until stopped; scraped
// over HTTP, its frames analysed equal the verdicts a subscriber received,
// every stage histogram counted them, the model ids are those of the
// verdicts, the broker is connected; /healthz is 200, /readyz 200 while the
// camera delivers and 503 naming it once it has ended. The retained stats
// and availability (online, then offline) reached the subscriber.
func TestMetricsScrape(t *testing.T) {
	testenv.Long(t)
	clip := shortClip(t)
	d, err := daemon.New(context.Background(), load(t, observedConfig(t, "cam1 "+clip+" true")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addr := d.MetricsAddr()
	if addr == "" {
		t.Fatal("metrics.listen set, but no metrics served")
	}
	w := watch(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitReady(t, addr, "200", ready)
	running := scrape(t, addr)
	for name, want := range map[string]float64{"deepfaked_mqtt_connected": 1, "deepfaked_camera_delivering": 1} {
		if got := value(t, running, name); got != want {
			t.Errorf("running: %s %v, want %v", name, got, want)
		}
	}
	w.waitFor(t, "20 verdicts, 2 stats and online", func(msgs []string) bool {
		return count(msgs, "deepfaked/dt/cam1/verdict") >= 20 && count(msgs, "deepfaked/dt/stats") >= 2 &&
			slices.Contains(msgs, "deepfaked/dt/cam1/availability "+contract.Online)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	msgs := w.waitOffline(t)
	var (
		verdicts int
		avail    []string
		stats    []contract.Stats
		model    map[string]any
		labels   = map[string]int{}
		events   = map[[2]string]int{} // type, state after
	)
	for _, m := range msgs {
		topic, payload, _ := strings.Cut(m, " ")
		switch topic {
		case "deepfaked/dt/cam1/verdict":
			verdicts++
			var v struct {
				Model map[string]any
				Label string
			}
			if err := json.Unmarshal([]byte(payload), &v); err != nil {
				t.Fatal(err)
			}
			model = v.Model
			labels[v.Label]++
		case "deepfaked/dt/cam1/events":
			var e contract.Event
			if err := json.Unmarshal([]byte(payload), &e); err != nil {
				t.Fatal(err)
			}
			events[[2]string{e.Type, e.After.State}]++
		case "deepfaked/dt/cam1/availability":
			avail = append(avail, payload)
		case "deepfaked/dt/stats":
			var s contract.Stats
			if err := json.Unmarshal([]byte(payload), &s); err != nil {
				t.Fatalf("stats %s: %v", payload, err)
			}
			stats = append(stats, s)
		}
	}
	want := verdicts
	if want < 20 {
		t.Fatalf("only %d verdicts", want)
	}
	fams := scrape(t, addr)
	if got := value(t, fams, "deepfaked_frames_analysed_total", "camera=cam1"); got != float64(verdicts) {
		t.Errorf("frames analysed %v, verdicts received %d", got, verdicts)
	}
	// The one frame the reader had when stopped is captured, not analysed.
	if got := value(t, fams, "deepfaked_frames_captured_total", "camera=cam1"); got < float64(want) || got > float64(want+1) {
		t.Errorf("frames captured %v, want %d or one more", got, want)
	}
	for _, reason := range []string{"stale", "error"} {
		if got := value(t, fams, "deepfaked_frames_dropped_total", "camera=cam1", "reason="+reason); got != 0 {
			t.Errorf("frames dropped (%s) %v, want 0", reason, got)
		}
	}
	for _, stage := range []string{"decode", "detect", "preprocess", "queue", "publish"} {
		if got := value(t, fams, "deepfaked_stage_seconds", "stage="+stage); got != float64(want) {
			t.Errorf("stage %s observed %v frames, want %d", stage, got, want)
		}
	}
	// What a dashboard asks: was a fake seen? Every label and every event
	// type and state is a series, and each counts what subscribers got.
	for _, l := range contract.VerdictLabels() {
		if got := value(t, fams, "deepfaked_verdicts_total", "camera=cam1", "label="+l); got != float64(labels[l]) {
			t.Errorf("verdicts labelled %s: metric %v, received %d", l, got, labels[l])
		}
	}
	nEvents := 0
	for _, typ := range contract.EventTypes() {
		for _, st := range contract.TrackStates() {
			n := events[[2]string{typ, st}]
			nEvents += n
			if got := value(t, fams, "deepfaked_events_total", "camera=cam1", "type="+typ, "state="+st); got != float64(n) {
				t.Errorf("events %s/%s: metric %v, received %d", typ, st, got, n)
			}
		}
	}
	if nEvents == 0 || labels[contract.LabelNone] == verdicts {
		t.Errorf("%d events and labels %v: the clip's faces should give both", nEvents, labels)
	}
	if got := value(t, fams, "deepfaked_build_info", "version=dev", "goversion="+runtime.Version()); got != 1 {
		t.Errorf("deepfaked_build_info %v, want 1 for a go test build", got)
	}
	faces := value(t, fams, "deepfaked_faces_total", "camera=cam1")
	runs := value(t, fams, "deepfaked_batch_faces")
	if faces > 0 && (runs == 0 || value(t, fams, "deepfaked_stage_seconds", "stage=backbone") != runs) {
		t.Errorf("%v faces but %v model runs (backbone observed %v)", faces, runs, value(t, fams, "deepfaked_stage_seconds", "stage=backbone"))
	}
	if got := value(t, fams, "deepfaked_model_info", fmt.Sprintf("backbone=%v", model["backbone"]),
		fmt.Sprintf("head=%v", model["head"]), fmt.Sprintf("precision=%v", model["precision"])); got != 1 {
		t.Errorf("deepfaked_model_info %v, want 1", got)
	}
	if got := value(t, fams, "deepfaked_camera_delivering", "camera=cam1"); got != 0 {
		t.Errorf("stopped: camera delivering %v, want 0", got)
	}
	for name, want := range map[string]float64{"deepfaked_mqtt_reconnects_total": 0, "deepfaked_outbox_replayed_total": 0} {
		if got := value(t, fams, name); got != want {
			t.Errorf("%s %v, want %v", name, got, want)
		}
	}
	value(t, fams, "deepfaked_outbox_messages")
	value(t, fams, "deepfaked_outbox_bytes")
	value(t, fams, "deepfaked_outbox_dropped_total", "reason=full")
	value(t, fams, "deepfaked_outbox_dropped_total", "reason=age")
	value(t, fams, "deepfaked_outbox_dropped_total", "reason=disk_full")
	value(t, fams, "deepfaked_outbox_dropped_total", "reason=corrupt")
	// The embedded broker: at least the daemon and the stats subscriber are its clients.
	if got := value(t, fams, "deepfaked_broker_clients"); got < 1 {
		t.Errorf("deepfaked_broker_clients %v, want the daemon's connection at least", got)
	}
	value(t, fams, "deepfaked_broker_refused_total", "reason=full")
	value(t, fams, "process_resident_memory_bytes")

	checkDashboard(t, fams)

	if code, body := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d %s", code, body)
	}
	if code, body := get(t, "http://"+addr+"/readyz"); code != http.StatusServiceUnavailable || body != "camera cam1: ended\n" {
		t.Errorf("/readyz after the file ended: %d %q, want 503 \"camera cam1: ended\"", code, body)
	}
	if len(avail) < 2 || avail[len(avail)-2] != contract.Online || avail[len(avail)-1] != contract.Offline {
		t.Errorf("availability %v, want ... online offline", avail)
	}
	if len(stats) < 2 {
		t.Fatalf("%d stats messages, want 2 or more", len(stats))
	}
	s := stats[len(stats)-1]
	if len(s.Cameras) != 1 || s.Cameras[0].Name != "cam1" || s.Cameras[0].State != contract.CameraDelivering ||
		s.Cameras[0].FPS <= 0 || s.Cameras[0].LastVerdict == nil || s.Model.Head != model["head"] || s.Uptime <= 0 || !s.MQTT.Connected ||
		s.Version != buildinfo.Version() ||
		s.Broker == nil || s.Broker.MaxClients != 64 || s.Broker.Clients < 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestReadyz: a camera whose file has no readable frames yet (being
// copied) makes /readyz 503 naming the camera and its availability offline;
// once the video is there it delivers: 200, and availability online; when
// stopped, offline.
func TestReadyz(t *testing.T) {
	testenv.Long(t)
	dir := t.TempDir()
	late := filepath.Join(dir, "late.avi")
	if err := os.WriteFile(late, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(context.Background(), load(t, observedConfig(t, "cam1 "+late+" true")), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := watch(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitReady(t, d.MetricsAddr(), "503 naming the camera", func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && (body == "camera cam1: reconnecting" || body == "camera cam1: connecting")
	})
	if err := capturetest.Write(filepath.Join(dir, "tmp.avi"), 20, 25); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "tmp.avi"), late); err != nil {
		t.Fatal(err)
	}
	waitReady(t, d.MetricsAddr(), "200", ready)
	w.waitFor(t, "availability online", func(msgs []string) bool {
		return slices.Contains(msgs, "deepfaked/dt/cam1/availability "+contract.Online)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var avail []string
	for _, m := range w.waitOffline(t) {
		if topic, payload, _ := strings.Cut(m, " "); topic == "deepfaked/dt/cam1/availability" {
			avail = append(avail, payload)
		}
	}
	if strings.Join(avail, " ") != "offline online offline" {
		t.Errorf("availability %v, want [offline online offline]", avail)
	}
}

// TestMetricsOutage: with the broker (mosquitto, persistent) stopped and
// started again under a running daemon, the metrics show the connection
// drop and come back and count the reconnect, and the outbox's depth rises
// while the broker is away and falls back once what waited is delivered.
func TestMetricsOutage(t *testing.T) {
	testenv.Long(t)
	capturetest.CheckMats(t)
	m := testenv.StartPersistentMosquitto(t, "")
	p := observedConfig(t, "cam1 "+capturetest.Clip(t)+" true")
	body, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	body = []byte(strings.Replace(strings.Replace(string(body), "  broker: embedded\n", "  broker: "+m.URL()+"\n", 1),
		"  listen: 127.0.0.1:", "  # was listen: ", 1))
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(context.Background(), load(t, p), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	addr := d.MetricsAddr()
	until := func(what string, ok func(fams map[string]*dto.MetricFamily) bool) {
		t.Helper()
		if !poll.Until(30*time.Second, func() bool { return ok(scrape(t, addr)) }) {
			t.Fatalf("waited 30s for %s", what)
		}
	}
	until("connected", func(f map[string]*dto.MetricFamily) bool { return value(t, f, "deepfaked_mqtt_connected") == 1 })
	m.Terminate()
	until("disconnected with verdicts waiting", func(f map[string]*dto.MetricFamily) bool {
		return value(t, f, "deepfaked_mqtt_connected") == 0 && value(t, f, "deepfaked_outbox_messages") > 5
	})
	m.Start()
	until("reconnected and the outbox drained", func(f map[string]*dto.MetricFamily) bool {
		return value(t, f, "deepfaked_mqtt_connected") == 1 && value(t, f, "deepfaked_mqtt_reconnects_total") >= 1 &&
			value(t, f, "deepfaked_outbox_messages") < 5
	})
}

// checkDashboard: every query of docs/grafana/deepfaked.json (its panels'
// and its variables') names only metrics this scrape of a running daemon
// has, so the dashboard shows data once imported.
func checkDashboard(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	const path = "../docs/grafana/deepfaked.json"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr, RefID string }
		}
		Templating struct {
			List []struct {
				Name  string
				Query any
			}
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	queries := map[string]string{} // query -> where
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", path, p.Title)
		}
		for _, q := range p.Targets {
			queries[q.Expr] = "panel " + p.Title
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			queries[fmt.Sprint(q["query"])] = "variable " + v.Name
		}
	}
	name := regexp.MustCompile(`\b(?:deepfaked|process|go)_[a-z0-9_]+`)
	seen := 0
	for q, where := range queries {
		for _, m := range name.FindAllString(q, -1) {
			seen++
			if _, ok := fams[m]; ok {
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if f, ok := fams[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s: %s asks for %s, which the daemon does not export", path, where, m)
		}
	}
	if seen < 20 {
		t.Errorf("%s: %d metric names in its queries; the dashboard is missing", path, seen)
	}
}
