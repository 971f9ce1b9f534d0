package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/capture/capturetest"
	"github.com/deepfaked/deepfaked/contract"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

// fleetSites is how many sites TestBridgedFleet runs: a daemon and its
// mosquitto each, on this 2-core machine beside the central broker.
const fleetSites = 3

// outage is how long TestBridgedFleet cuts every site off the central broker.
const outage = 30 * time.Second

// bridgeConf makes a site's mosquitto forward everything under deepfaked/
// to the central broker at addr, QoS 1, with a persistent session on both
// ends (cleansession false), queueing without limit while the link is down:
// the pattern docs/fleet.md describes.
func bridgeConf(site, addr string) string {
	return fmt.Sprintf(`max_queued_messages 0
connection central-%[1]s
address %[2]s
topic deepfaked/# out 1
cleansession false
remote_clientid bridge-%[1]s
local_clientid bridge-%[1]s-local
restart_timeout 1 2
keepalive_interval 5
`, site, addr)
}

// keysOn decodes the payloads of msgs on topics ending in suffix as T and
// counts how many times each key(T) arrived.
func keysOn[T any](t *testing.T, msgs []message, suffix string, key func(T) string) map[string]int {
	t.Helper()
	keys := map[string]int{}
	for _, m := range msgs {
		if !strings.HasSuffix(m.topic, suffix) {
			continue
		}
		var v T
		if err := json.Unmarshal(m.payload, &v); err != nil {
			t.Fatalf("payload on %s: %v", m.topic, err)
		}
		keys[key(v)]++
	}
	return keys
}

// verdictKeys are the verdicts in msgs as "device camera run seq", with how
// many times each arrived.
func verdictKeys(t *testing.T, msgs []message) map[string]int {
	t.Helper()
	return keysOn(t, msgs, "/verdict", func(v contract.Verdict) string {
		return fmt.Sprintf("%s %s %s %d", v.Device, v.Camera, v.Run, v.Seq)
	})
}

// eventKeys are the events in msgs as "device id type last_frame", with counts.
func eventKeys(t *testing.T, msgs []message) map[string]int {
	t.Helper()
	return keysOn(t, msgs, "/events", func(e contract.Event) string {
		return fmt.Sprintf("%s %s %s %d", e.Device, e.ID, e.Type, e.After.LastFrame)
	})
}

// TestBridgedFleet: sites, each a daemon publishing to its own mosquitto
// bridged to a central mosquitto, keep working while every site's link to
// the centre is cut for 30 s; once it is back, every verdict and event each
// site's broker saw reaches the centre, and after de-duplication (verdicts
// by run and seq, events by id, type and frame) exactly once.
func TestBridgedFleet(t *testing.T) {
	testenv.Long(t)
	central := testenv.Mosquitto(t)
	atCentre := subscribe(t, central, "deepfaked/#")
	backbone, head := testenv.Models(t)
	type site struct {
		name  string
		link  *testenv.Link
		local *subscriber
		run   *runningDaemon
	}
	var sites []*site
	for i := range fleetSites {
		s := &site{name: fmt.Sprintf("site%d", i+1)}
		s.link = testenv.NewLink(t, strings.TrimPrefix(central, "tcp://"))
		broker := testenv.StartMosquitto(t, bridgeConf(s.name, s.link.Addr()))
		s.local = subscribe(t, broker.URL(), "deepfaked/#")
		cfg := filepath.Join(t.TempDir(), "deepfaked.yaml")
		lines := []string{
			"device_id: " + s.name, "state_dir: " + t.TempDir(),
			"mqtt:", "  broker: " + broker.URL(), "  qos: 1",
			"model:", "  backbone: " + backbone, "  head: " + head, "  runtime: " + testenv.ORTLibrary(t),
			"faces:", "  detector: haar",
			"events:", "  tracks: all", "  clips:", "    enabled: false",
			"cameras:", "  - name: door", "    source: " + capturetest.Clip(t), "    loop: true", "    fps: 2", ""}
		if err := os.WriteFile(cfg, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		s.run = startRun(t, cfg)
		sites = append(sites, s)
	}
	perDevice := func(keys map[string]int) map[string]int {
		n := map[string]int{}
		for k := range keys {
			n[strings.Fields(k)[0]]++
		}
		return n
	}
	atCentre.waitFor(t, "verdicts from every site at the centre", 120*time.Second, func(m []message) bool {
		n := perDevice(verdictKeys(t, m))
		for _, s := range sites {
			if n[s.name] < 5 {
				return false
			}
		}
		return true
	})

	for _, s := range sites {
		s.link.Cut()
	}
	atCut := map[string]map[string]int{}
	for _, s := range sites {
		atCut[s.name] = verdictKeys(t, s.local.snapshot())
	}
	time.Sleep(outage) // the outage itself: the sites keep running meanwhile
	centreAtRestore := verdictKeys(t, atCentre.snapshot())
	for _, s := range sites {
		s.run.alive(t)
		during := 0
		for k := range verdictKeys(t, s.local.snapshot()) {
			if atCut[s.name][k] > 0 {
				continue
			}
			during++
			if centreAtRestore[k] > 0 {
				t.Errorf("verdict %s, published while the links were cut, reached the centre", k)
			}
		}
		if during < int(outage.Seconds()) {
			t.Errorf("%s published %d verdicts during the %s outage, want about 2 a second", s.name, during, outage)
		}
		s.link.Restore()
	}

	for _, s := range sites {
		s.run.stop(t) // SIGTERM: the daemon publishes what it has and says offline
	}
	want := map[string]int{}
	wantEvents := map[string]int{}
	for _, s := range sites {
		for k := range verdictKeys(t, s.local.snapshot()) {
			want[k] = 1
		}
		for k := range eventKeys(t, s.local.snapshot()) {
			wantEvents[k] = 1
		}
	}
	missing := func(got, want map[string]int) []string {
		var m []string
		for k := range want {
			if got[k] == 0 {
				m = append(m, k)
			}
		}
		return m
	}
	atCentre.waitFor(t, "every site's verdicts and events at the centre", 120*time.Second, func(m []message) bool {
		return len(missing(verdictKeys(t, m), want)) == 0 && len(missing(eventKeys(t, m), wantEvents)) == 0
	})
	got, gotEvents := verdictKeys(t, atCentre.snapshot()), eventKeys(t, atCentre.snapshot())
	dups := 0
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("verdict %s at the centre, never published at its site", k)
		}
		dups += n - 1
	}
	for k := range gotEvents {
		if wantEvents[k] == 0 {
			t.Errorf("event %s at the centre, never published at its site", k)
		}
	}
	// Seq counts a camera's verdicts from 1 without gaps: none was lost
	// between the daemon and its own broker either.
	maxSeq, count := map[string]int64{}, map[string]int64{}
	for k := range want {
		var dev, cam, run string
		var seq int64
		if _, err := fmt.Sscanf(k, "%s %s %s %d", &dev, &cam, &run, &seq); err != nil {
			t.Fatal(err)
		}
		stream := dev + " " + cam + " " + run
		maxSeq[stream] = max(maxSeq[stream], seq)
		count[stream]++
	}
	for stream, n := range count {
		if n != maxSeq[stream] {
			t.Errorf("%s: %d verdicts, seq up to %d: some never reached the site's broker", stream, n, maxSeq[stream])
		}
	}
	t.Logf("%d sites, links cut %s: %d verdicts and %d events, all at the centre; %d verdicts arrived twice (dropped by run and seq)",
		len(sites), outage, len(want), len(wantEvents), dups)
}
