package hass

import (
	"encoding/json"
	"errors"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func opts(cameras ...string) Options {
	return Options{
		DiscoveryPrefix: "homeassistant",
		TopicPrefix:     "deepfaked/edge-01",
		DeviceID:        "edge-01",
		Version:         "1.4.2",
		Cameras:         cameras,
		PageURL:         "http://edge-01.lan:9465/",
		Events:          true,
		Snapshots:       true,
	}
}

// perCamera is how many configs Configs gives each camera; daemonConfigs
// how many it adds for the daemon's device, after the cameras'.
const (
	perCamera     = 5
	daemonConfigs = 3
)

// Home Assistant's rules: node_id and object_id are [a-zA-Z0-9_-]; an
// entity id is <domain>.<object> in lowercase [a-z0-9_] with no leading,
// trailing or double underscore (homeassistant.core.valid_entity_id).
var (
	topicIDRe  = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	objectIDRe = regexp.MustCompile(`^[a-z0-9_]+$`)
)

func validEntityID(s string) bool {
	domain, object, ok := strings.Cut(s, ".")
	if !ok || !slices.Contains([]string{"binary_sensor", "sensor", "event", "image"}, domain) || object == "" {
		return false
	}
	return objectIDRe.MatchString(object) &&
		!strings.HasPrefix(object, "_") && !strings.HasSuffix(object, "_") && !strings.Contains(object, "__")
}

// discovered is a payload decoded as Home Assistant reads it.
type discovered struct {
	topic     string
	component string
	nodeID    string
	objectID  string
	cfg       map[string]any
}

// decode splits each topic into <discovery_prefix>/<component>/<node_id>/<object_id>/config
// and decodes its payload into a JSON object, failing on anything else.
func decode(t *testing.T, prefix string, msgs []Message) []discovered {
	t.Helper()
	var out []discovered
	for _, m := range msgs {
		rest, ok := strings.CutPrefix(m.Topic, prefix+"/")
		if !ok {
			t.Fatalf("topic %q lacks the discovery prefix %q", m.Topic, prefix)
		}
		levels := strings.Split(rest, "/")
		if len(levels) != 4 || levels[3] != "config" {
			t.Fatalf("topic %q is not %s/<component>/<node_id>/<object_id>/config", m.Topic, prefix)
		}
		var cfg map[string]any
		if err := json.Unmarshal(m.Payload, &cfg); err != nil {
			t.Fatalf("%s: payload is not a JSON object: %v\n%s", m.Topic, err, m.Payload)
		}
		out = append(out, discovered{m.Topic, levels[0], levels[1], levels[2], cfg})
	}
	return out
}

func str(t *testing.T, d discovered, key string) string {
	t.Helper()
	s, ok := d.cfg[key].(string)
	if !ok || s == "" {
		t.Fatalf("%s: %q is %#v, want a non-empty string", d.topic, key, d.cfg[key])
	}
	return s
}

// TestConfigsOneCamera checks each entity's payload field by field against
// what the daemon publishes and what the binary_sensor and sensor MQTT
// platforms take.
func TestConfigsOneCamera(t *testing.T) {
	msgs, err := Configs(opts("cam1"))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, "homeassistant", msgs)
	want := []struct {
		component, objectID, stateTopic string
		fields                          map[string]any // further keys and values, exact
		absent                          []string
	}{
		{"binary_sensor", "cam1_deepfake", "deepfaked/edge-01/cam1/state",
			map[string]any{"name": "Deepfake", "device_class": "tamper", "payload_on": "ON", "payload_off": "OFF",
				"value_template": "{{ 'ON' if value == 'fake' else 'OFF' }}"},
			[]string{"state_class", "unit_of_measurement", "object_id"}},
		{"sensor", "cam1_score", "deepfaked/edge-01/cam1/score",
			map[string]any{"name": "Fake score", "state_class": "measurement", "suggested_display_precision": 2.0},
			[]string{"unit_of_measurement", "value_template", "device_class", "object_id", "entity_category"}},
		{"sensor", "cam1_fps", "deepfaked/edge-01/stats",
			map[string]any{"name": "Analysed frame rate", "state_class": "measurement", "unit_of_measurement": "fps",
				"entity_category": "diagnostic"},
			[]string{"device_class", "object_id"}},
		{"event", "cam1_track", "deepfaked/edge-01/cam1/events",
			map[string]any{"name": "Face track"},
			[]string{"state_class", "device_class", "object_id"}},
		{"image", "cam1_face", "",
			map[string]any{"name": "Last face", "image_topic": "deepfaked/edge-01/cam1/snapshot", "content_type": "image/jpeg"},
			[]string{"state_topic", "value_template", "object_id"}},
	}
	got = got[:len(got)-daemonConfigs]
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i, w := range want {
		d := got[i]
		if d.component != w.component || d.nodeID != "deepfaked_edge-01" || d.objectID != w.objectID {
			t.Errorf("topic %q: want homeassistant/%s/deepfaked_edge-01/%s/config", d.topic, w.component, w.objectID)
		}
		if s, _ := d.cfg["state_topic"].(string); s != w.stateTopic {
			t.Errorf("%s: state_topic %q, want %q", d.topic, s, w.stateTopic)
		}
		key := strings.TrimPrefix(w.objectID, "cam1_")
		if s := str(t, d, "unique_id"); s != "deepfaked_edge-01_cam1_"+key {
			t.Errorf("%s: unique_id %q", d.topic, s)
		}
		if s := str(t, d, "default_entity_id"); s != w.component+".deepfaked_edge_01_cam1_"+key {
			t.Errorf("%s: default_entity_id %q", d.topic, s)
		}
		for k, v := range w.fields {
			if d.cfg[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", d.topic, k, d.cfg[k], v)
			}
		}
		for _, k := range w.absent {
			if v, ok := d.cfg[k]; ok {
				t.Errorf("%s: %s = %#v, want it absent", d.topic, k, v)
			}
		}
		checkShared(t, d, "deepfaked/edge-01", "edge-01", "cam1", "1.4.2")
	}
	if tpl := str(t, got[2], "value_template"); !strings.Contains(tpl, "value_json.cameras") ||
		!strings.Contains(tpl, "'name', 'equalto', 'cam1'") || !strings.Contains(tpl, "attribute='fps'") {
		t.Errorf("fps value_template %q does not select cameras[name == cam1].fps", tpl)
	}
	if types, _ := got[3].cfg["event_types"].([]any); !slices.Equal(types, []any{"uncertain", "real", "fake", "ended"}) {
		t.Errorf("event_types %v", got[3].cfg["event_types"])
	}
}

// TestDaemonDevice: the daemon is a device of its own, which the cameras'
// devices are reached through: its running state from the status topic (no
// availability, which would hide it), its outbox and head from the stats.
func TestDaemonDevice(t *testing.T) {
	msgs, err := Configs(opts("cam1", "cam2"))
	if err != nil {
		t.Fatal(err)
	}
	got := decode(t, "homeassistant", msgs)[2*perCamera:]
	want := []struct{ component, objectID, stateTopic, template string }{
		{"binary_sensor", "running", "deepfaked/edge-01/status", ""},
		{"sensor", "outbox", "deepfaked/edge-01/stats", "{{ value_json.outbox.messages }}"},
		{"sensor", "head", "deepfaked/edge-01/stats", "{{ value_json.model.head }}"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d daemon configs, want %d", len(got), len(want))
	}
	for i, w := range want {
		d := got[i]
		if d.component != w.component || d.nodeID != "deepfaked_edge-01" || d.objectID != w.objectID ||
			str(t, d, "state_topic") != w.stateTopic || str(t, d, "unique_id") != "deepfaked_edge-01_"+w.objectID ||
			str(t, d, "default_entity_id") != w.component+".deepfaked_edge_01_"+w.objectID {
			t.Errorf("%s: %v", d.topic, d.cfg)
		}
		if tpl, _ := d.cfg["value_template"].(string); tpl != w.template {
			t.Errorf("%s: value_template %q, want %q", d.topic, tpl, w.template)
		}
		dev, _ := d.cfg["device"].(map[string]any)
		if ids, _ := dev["identifiers"].([]any); len(ids) != 1 || ids[0] != "deepfaked_edge-01" || dev["via_device"] != nil ||
			dev["configuration_url"] != "http://edge-01.lan:9465/" || dev["sw_version"] != "1.4.2" {
			t.Errorf("%s: device %v", d.topic, dev)
		}
		_, hasAvail := d.cfg["availability"]
		if hasAvail != (w.objectID != "running") {
			t.Errorf("%s: availability %v; want it on every daemon entity but running", d.topic, d.cfg["availability"])
		}
	}
	if r := got[0].cfg; r["payload_on"] != "online" || r["payload_off"] != "offline" || r["device_class"] != "running" {
		t.Errorf("running: %v", r)
	}
}

// TestOptionalEntitiesOff: without events or published snapshots, the event
// and image entities get an empty config (removing what an earlier run
// announced), and nothing else changes.
func TestOptionalEntitiesOff(t *testing.T) {
	o := opts("cam1")
	o.Events, o.Snapshots, o.PageURL = false, false, ""
	msgs, err := Configs(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != perCamera+daemonConfigs {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		empty := strings.HasSuffix(m.Topic, "/cam1_track/config") || strings.HasSuffix(m.Topic, "/cam1_face/config")
		if empty != (len(m.Payload) == 0) || m.Payload == nil {
			t.Errorf("message %d on %s: payload %q", i, m.Topic, m.Payload)
		}
		if !empty && strings.Contains(string(m.Payload), "configuration_url") {
			t.Errorf("%s: configuration_url without a page", m.Topic)
		}
	}
}

// checkShared checks what every entity of a camera carries: availability,
// device and origin.
func checkShared(t *testing.T, d discovered, prefix, deviceID, camera, version string) {
	t.Helper()
	if m := str(t, d, "availability_mode"); m != "all" {
		t.Errorf("%s: availability_mode %q, want all", d.topic, m)
	}
	av, _ := d.cfg["availability"].([]any)
	var topics []string
	for _, a := range av {
		a, _ := a.(map[string]any)
		if a["payload_available"] != "online" || a["payload_not_available"] != "offline" {
			t.Errorf("%s: availability entry %v: want online/offline", d.topic, a)
		}
		s, _ := a["topic"].(string)
		topics = append(topics, s)
	}
	if want := []string{prefix + "/status", prefix + "/" + camera + "/availability"}; !slices.Equal(topics, want) {
		t.Errorf("%s: availability topics %q, want %q", d.topic, topics, want)
	}

	dev, _ := d.cfg["device"].(map[string]any)
	ids, _ := dev["identifiers"].([]any)
	if len(ids) != 1 || ids[0] != "deepfaked_"+deviceID+"_"+camera {
		t.Errorf("%s: device identifiers %v", d.topic, dev["identifiers"])
	}
	if dev["via_device"] != "deepfaked_"+deviceID {
		t.Errorf("%s: via_device %v, want the daemon's device", d.topic, dev["via_device"])
	}
	for k, v := range map[string]any{"name": camera + " (" + deviceID + ")", "manufacturer": "deepfaked",
		"model": "deepfake detector"} {
		if dev[k] != v {
			t.Errorf("%s: device %s = %#v, want %#v", d.topic, k, dev[k], v)
		}
	}
	org, _ := d.cfg["origin"].(map[string]any)
	if org["name"] != "deepfaked" {
		t.Errorf("%s: origin %v: name is required", d.topic, org)
	}
	// An unknown version is left out rather than sent as "", which Home
	// Assistant would show as a blank firmware line.
	for what, m := range map[string]map[string]any{"device": dev, "origin": org} {
		v, ok := m["sw_version"]
		if version == "" && ok || version != "" && v != version {
			t.Errorf("%s: %s sw_version %#v, want %q (absent when empty)", d.topic, what, v, version)
		}
	}
}

// TestConfigsCameras runs the per-camera rules over several camera sets,
// names with - and _ and upper case included, and two devices whose ids
// differ only in those characters.
func TestConfigsCameras(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"one", opts("cam1")},
		{"several", opts("front", "back", "garage")},
		{"dash and underscore", opts("front-door", "front_door", "Front_Door-2", "-", "_", "a-_-b")},
		{"names like entity keys", opts("score", "fps", "deepfake", "cam_score", "cam")},
		{"underscore device", Options{DiscoveryPrefix: "ha/discovery", TopicPrefix: "site/a/b", DeviceID: "pi_7",
			Cameras: []string{"cam-1", "cam_1"}, Events: true, Snapshots: true}},
		{"no version", Options{DiscoveryPrefix: "homeassistant", TopicPrefix: "deepfaked/x", DeviceID: "X-1",
			Cameras: []string{"c"}, Events: true, Snapshots: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := Configs(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != perCamera*len(tc.o.Cameras)+daemonConfigs {
				t.Fatalf("%d messages for %d cameras, want %d each and the daemon's %d", len(msgs), len(tc.o.Cameras), perCamera, daemonConfigs)
			}
			// default_entity_id is left out: front-door and front_door slug
			// alike, see TestEntityIDsDistinctAfterSlug.
			uniqueIDs, topics := map[string]bool{}, map[string]bool{}
			for i, d := range decode(t, tc.o.DiscoveryPrefix, msgs) {
				if i >= perCamera*len(tc.o.Cameras) { // the daemon's: TestDaemonDevice
					if uniqueIDs[str(t, d, "unique_id")] || topics[d.topic] {
						t.Errorf("%s: the daemon's unique_id or topic is a camera's", d.topic)
					}
					continue
				}
				cam := tc.o.Cameras[i/perCamera]
				key := []string{"deepfake", "score", "fps", "track", "face"}[i%perCamera]
				if !topicIDRe.MatchString(d.nodeID) || !topicIDRe.MatchString(d.objectID) {
					t.Errorf("%s: node_id %q or object_id %q outside [a-zA-Z0-9_-]", d.topic, d.nodeID, d.objectID)
				}
				if d.nodeID != "deepfaked_"+tc.o.DeviceID || d.objectID != cam+"_"+key {
					t.Errorf("%s: want node_id deepfaked_%s, object_id %s_%s", d.topic, tc.o.DeviceID, cam, key)
				}
				if strings.ContainsAny(d.topic, "+#") {
					t.Errorf("%s: wildcard in topic", d.topic)
				}
				wantState := map[string]string{
					"deepfake": tc.o.TopicPrefix + "/" + cam + "/state",
					"score":    tc.o.TopicPrefix + "/" + cam + "/score",
					"fps":      tc.o.TopicPrefix + "/stats",
					"track":    tc.o.TopicPrefix + "/" + cam + "/events",
				}[key]
				if s, _ := d.cfg["state_topic"].(string); s != wantState {
					t.Errorf("%s: state_topic %q, want %q", d.topic, s, wantState)
				}
				uid := str(t, d, "unique_id")
				eid := str(t, d, "default_entity_id")
				if uniqueIDs[uid] || topics[d.topic] {
					t.Errorf("%s: unique_id %q or topic repeats", d.topic, uid)
				}
				uniqueIDs[uid], topics[d.topic] = true, true
				if !validEntityID(eid) || !strings.HasPrefix(eid, d.component+".") {
					t.Errorf("%s: default_entity_id %q is not a valid %s entity id", d.topic, eid, d.component)
				}
				checkShared(t, d, tc.o.TopicPrefix, tc.o.DeviceID, cam, tc.o.Version)
				if key == "fps" {
					if tpl := str(t, d, "value_template"); !strings.Contains(tpl, "'"+cam+"'") {
						t.Errorf("%s: fps template %q does not name camera %q", d.topic, tpl, cam)
					}
				}
			}
		})
	}
}

// TestEntityIDsDistinctAfterSlug: cameras front-door and front_door both
// slug to front_door, so their entity ids collide; Home Assistant then
// suffixes one with _2, which is what it does for any taken id. The unique
// ids, which are what it keys entities on, stay apart. This pins that
// behaviour so nobody mistakes default_entity_id for a key.
func TestEntityIDsDistinctAfterSlug(t *testing.T) {
	msgs, err := Configs(opts("front-door", "front_door"))
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, "homeassistant", msgs)
	if a, b := str(t, d[0], "unique_id"), str(t, d[perCamera], "unique_id"); a == b {
		t.Errorf("unique_id %q shared by two cameras", a)
	}
	if a, b := str(t, d[0], "default_entity_id"), str(t, d[perCamera], "default_entity_id"); a != b {
		t.Errorf("default_entity_id %q and %q: want the same slug (documenting the collision)", a, b)
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"deepfaked_edge-01_cam1_score": "deepfaked_edge_01_cam1_score",
		"deepfaked_X_-_Y":              "deepfaked_x_y",
		"deepfaked_a_-":                "deepfaked_a",
		"-a--b__c-":                    "a_b_c",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemovals(t *testing.T) {
	o := opts("cam1", "back-yard")
	msgs, err := Configs(o)
	if err != nil {
		t.Fatal(err)
	}
	rm := Removals(o)
	msgs = msgs[:len(msgs)-daemonConfigs] // the daemon's: DaemonRemovals
	if len(rm) != len(msgs) {
		t.Fatalf("%d removals for %d configs", len(rm), len(msgs))
	}
	for i := range rm {
		if rm[i].Topic != msgs[i].Topic {
			t.Errorf("removal %d on %q, config on %q", i, rm[i].Topic, msgs[i].Topic)
		}
		if rm[i].Payload == nil || len(rm[i].Payload) != 0 {
			t.Errorf("removal %q payload %q, want empty", rm[i].Topic, rm[i].Payload)
		}
	}

	// Removal does not need the state topics: a daemon turning discovery
	// off may have no topic prefix to hand, and must still clear them.
	o.TopicPrefix, o.Version = "", ""
	if got := Removals(o); len(got) != 2*perCamera || got[2*perCamera-1].Topic != msgs[2*perCamera-1].Topic {
		t.Errorf("without TopicPrefix: %d removals, want the same %d topics", len(got), 2*perCamera)
	}
	all, _ := Configs(opts("cam1"))
	daemon := DaemonRemovals(o)
	if len(daemon) != daemonConfigs {
		t.Fatalf("%d daemon removals", len(daemon))
	}
	for i, m := range daemon {
		if want := all[perCamera+i].Topic; m.Topic != want || m.Payload == nil || len(m.Payload) != 0 {
			t.Errorf("daemon removal %q %q, want empty on %q", m.Topic, m.Payload, want)
		}
	}

	// Only what Configs could have published is removed.
	o = opts("cam1", "bad/name", "", "cam+")
	if got := Removals(o); len(got) != perCamera || !strings.Contains(got[0].Topic, "/cam1_") {
		t.Errorf("invalid cameras: got %d removals, want cam1's %d", len(got), perCamera)
	}
	for _, bad := range []Options{
		{DiscoveryPrefix: "", DeviceID: "d", Cameras: []string{"c"}},
		{DiscoveryPrefix: "ha/#", DeviceID: "d", Cameras: []string{"c"}},
		{DiscoveryPrefix: "ha", DeviceID: "d/e", Cameras: []string{"c"}},
	} {
		if got := Removals(bad); got != nil {
			t.Errorf("Removals(%+v) = %v, want nil", bad, got)
		}
		if got := DaemonRemovals(bad); got != nil {
			t.Errorf("DaemonRemovals(%+v) = %v, want nil", bad, got)
		}
	}
}

func TestConfigsBadOptions(t *testing.T) {
	mod := func(f func(*Options)) Options { o := opts("cam1", "cam2"); f(&o); return o }
	for _, tc := range []struct {
		name  string
		o     Options
		field string
	}{
		{"empty discovery prefix", mod(func(o *Options) { o.DiscoveryPrefix = "" }), "Options.DiscoveryPrefix"},
		{"wildcard discovery prefix", mod(func(o *Options) { o.DiscoveryPrefix = "ha/+" }), "Options.DiscoveryPrefix"},
		{"trailing / discovery prefix", mod(func(o *Options) { o.DiscoveryPrefix = "ha/" }), "Options.DiscoveryPrefix"},
		{"leading / discovery prefix", mod(func(o *Options) { o.DiscoveryPrefix = "/ha" }), "Options.DiscoveryPrefix"},
		{"empty topic prefix", mod(func(o *Options) { o.TopicPrefix = "" }), "Options.TopicPrefix"},
		{"wildcard topic prefix", mod(func(o *Options) { o.TopicPrefix = "deepfaked/#" }), "Options.TopicPrefix"},
		{"trailing / topic prefix", mod(func(o *Options) { o.TopicPrefix = "deepfaked/" }), "Options.TopicPrefix"},
		{"empty device", mod(func(o *Options) { o.DeviceID = "" }), "Options.DeviceID"},
		{"dotted device", mod(func(o *Options) { o.DeviceID = "edge.01" }), "Options.DeviceID"},
		{"no cameras", mod(func(o *Options) { o.Cameras = nil }), "Options.Cameras"},
		{"empty camera", mod(func(o *Options) { o.Cameras = []string{"cam1", ""} }), "Options.Cameras[1]"},
		{"slash camera", mod(func(o *Options) { o.Cameras = []string{"a/b"} }), "Options.Cameras[0]"},
		{"space camera", mod(func(o *Options) { o.Cameras = []string{"cam1", "cam2", "front door"} }), "Options.Cameras[2]"},
		{"duplicate camera", mod(func(o *Options) { o.Cameras = []string{"cam1", "cam1"} }), "Options.Cameras[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := Configs(tc.o)
			if err == nil {
				t.Fatalf("no error, %d messages", len(msgs))
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("error %q: want ErrInvalid naming %s", err, tc.field)
			}
			if msgs != nil {
				t.Errorf("messages with an error: %v", msgs)
			}
		})
	}
}

// TestTemplatesRender renders both templates with Python's Jinja2, the
// engine Home Assistant's templates run on, where it is installed: a string
// check cannot tell a template that names the camera from one that selects it.
func TestTemplatesRender(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil || exec.Command(py, "-c", "import jinja2").Run() != nil {
		t.Skip("python3 with jinja2 not installed")
	}
	msgs, err := Configs(opts("cam-1", "cam_1"))
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, "homeassistant", msgs)
	stats := `{"cameras":[{"name":"cam_1","fps":3.5},{"name":"cam-1","fps":15.01}],"outbox":{"messages":3},"model":{"head":"8b0e55d2c913"}}`
	fps1, fps2 := str(t, d[2], "value_template"), str(t, d[perCamera+2], "value_template")
	track := str(t, d[3], "value_template")
	outbox, head := str(t, d[2*perCamera+1], "value_template"), str(t, d[2*perCamera+2], "value_template")
	event := func(typ, state string) string {
		return `{"type":"` + typ + `","id":"r1-cam-1-7","after":{"track":7,"state":"` + state + `","score":0.91,"snapshot":"r1-7.jpg"}}`
	}
	for _, tc := range []struct {
		tpl, value, want string
	}{
		{str(t, d[0], "value_template"), "fake", "ON"},
		{str(t, d[0], "value_template"), "real", "OFF"},
		{str(t, d[0], "value_template"), "none", "OFF"},
		{fps1, stats, "15.01"},
		{fps2, stats, "3.5"},
		{fps1, `{"cameras":[{"name":"cam-1","fps":0}]}`, "0"},
		// A camera missing from stats: "None", which the MQTT sensor reads as unknown.
		{fps1, `{"cameras":[]}`, "None"},
		{outbox, stats, "3"},
		{head, stats, "8b0e55d2c913"},
		// The event entity's JSON: event_type one of event_types, the rest attributes.
		{track, event("new", "fake"), `{"event_type":"fake","state":"fake","score":0.91,"track":7,"id":"r1-cam-1-7","snapshot":"r1-7.jpg","clip":""}`},
		{track, event("update", "real"), `{"event_type":"real","state":"real","score":0.91,"track":7,"id":"r1-cam-1-7","snapshot":"r1-7.jpg","clip":""}`},
		{track, event("end", "fake"), `{"event_type":"ended","state":"fake","score":0.91,"track":7,"id":"r1-cam-1-7","snapshot":"r1-7.jpg","clip":""}`},
		{track, `{"type":"new","id":"x","after":{"track":1,"state":"uncertain","score":0.5}}`, `{"event_type":"uncertain","state":"uncertain","score":0.5,"track":1,"id":"x","snapshot":"","clip":""}`},
	} {
		// HA renders in a sandbox; value is the payload, value_json its JSON.
		const script = `import sys, json
from jinja2.sandbox import ImmutableSandboxedEnvironment
tpl, value = sys.argv[1], sys.argv[2]
try:
    vj = json.loads(value)
except ValueError:
    vj = None
sys.stdout.write(ImmutableSandboxedEnvironment().from_string(tpl).render(value=value, value_json=vj))`
		out, err := exec.Command(py, "-c", script, tc.tpl, tc.value).CombinedOutput()
		if err != nil {
			t.Fatalf("render %q: %v\n%s", tc.tpl, err, out)
		}
		if strings.HasPrefix(tc.want, "{") { // JSON: compared as values, key order aside
			var got, want map[string]any
			if err := json.Unmarshal(out, &got); err != nil || json.Unmarshal([]byte(tc.want), &want) != nil || !maps.Equal(got, want) {
				t.Errorf("%s on %s: %s (%v), want %s", tc.tpl, tc.value, out, err, tc.want)
			}
			continue
		}
		if string(out) != tc.want {
			t.Errorf("%s on %s: %q, want %q", tc.tpl, tc.value, out, tc.want)
		}
	}
}

// TestConfigsFollowHomeAssistantSchema: every key is one Home Assistant's
// MQTT discovery schema for that platform takes, and its required keys are
// there (homeassistant/components/mqtt: schemas.py MQTT_ENTITY_COMMON_SCHEMA
// and MQTT_ENTITY_DEVICE_INFO_SCHEMA, binary_sensor.py, sensor.py, event.py
// (event_types required), image.py (image_topic or url_topic)). Home
// Assistant drops a config with an unknown key that its schema refuses.
func TestConfigsFollowHomeAssistantSchema(t *testing.T) {
	common := []string{"name", "unique_id", "default_entity_id", "availability", "availability_mode", "device", "origin",
		"entity_category", "icon", "json_attributes_topic", "json_attributes_template", "enabled_by_default", "qos", "encoding"}
	platform := map[string]struct{ allowed, required []string }{
		"binary_sensor": {[]string{"state_topic", "value_template", "payload_on", "payload_off", "device_class", "expire_after", "force_update", "off_delay"}, []string{"state_topic"}},
		"sensor":        {[]string{"state_topic", "value_template", "device_class", "state_class", "unit_of_measurement", "suggested_display_precision", "expire_after", "force_update"}, []string{"state_topic"}},
		"event":         {[]string{"state_topic", "value_template", "event_types", "device_class"}, []string{"state_topic", "event_types"}},
		"image":         {[]string{"image_topic", "url_topic", "content_type", "image_encoding", "url_template"}, []string{"image_topic"}},
	}
	deviceKeys := []string{"identifiers", "connections", "name", "manufacturer", "model", "model_id", "hw_version", "sw_version",
		"serial_number", "suggested_area", "via_device", "configuration_url"}
	msgs, err := Configs(opts("cam1", "back-yard"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, d := range decode(t, "homeassistant", msgs) {
		p, ok := platform[d.component]
		if !ok {
			t.Fatalf("%s: component %q", d.topic, d.component)
		}
		seen[d.component] = true
		for k := range d.cfg {
			if !slices.Contains(common, k) && !slices.Contains(p.allowed, k) {
				t.Errorf("%s: %q is not a %s discovery key", d.topic, k, d.component)
			}
		}
		for _, k := range append([]string{"unique_id", "device", "origin"}, p.required...) {
			if _, ok := d.cfg[k]; !ok {
				t.Errorf("%s: required %q missing", d.topic, k)
			}
		}
		dev, _ := d.cfg["device"].(map[string]any)
		for k := range dev {
			if !slices.Contains(deviceKeys, k) {
				t.Errorf("%s: %q is not a device key", d.topic, k)
			}
		}
		if u, ok := dev["configuration_url"].(string); ok && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			t.Errorf("%s: configuration_url %q is not a web address", d.topic, u)
		}
	}
	if len(seen) != len(platform) {
		t.Errorf("platforms announced %v; want all of %d", seen, len(platform))
	}
}
