package contract

import (
	"image"
	"strings"
	"testing"
)

func TestTopics(t *testing.T) {
	tp := Topics{Prefix: "deepfaked/edge-01"}
	for _, tc := range []struct{ got, want string }{
		{tp.Verdict("door"), "deepfaked/edge-01/door/verdict"},
		{tp.Events("door"), "deepfaked/edge-01/door/events"},
		{tp.State("door"), "deepfaked/edge-01/door/state"},
		{tp.Score("door"), "deepfaked/edge-01/door/score"},
		{tp.Snapshot("door"), "deepfaked/edge-01/door/snapshot"},
		{tp.Availability("door"), "deepfaked/edge-01/door/availability"},
		{tp.Status(), "deepfaked/edge-01/status"},
		{tp.Stats(), "deepfaked/edge-01/stats"},
		{tp.Commands(), "deepfaked/edge-01/cmd/"},
		{tp.Command(CommandLabel), "deepfaked/edge-01/cmd/label"},
		{Result(tp.Command(CommandReload)), "deepfaked/edge-01/cmd/reload/result"},
		{Discovery("homeassistant", "sensor", "deepfaked_edge-01", "door_score"), "homeassistant/sensor/deepfaked_edge-01/door_score/config"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
}

func TestCameraOf(t *testing.T) {
	tp := Topics{Prefix: "a/b"}
	for _, tc := range []struct {
		topic, camera, kind string
		ok                  bool
	}{
		{"a/b/door/verdict", "door", KindVerdict, true},
		{"a/b/door/events", "door", KindEvents, true},
		{"a/b/status", "", "", false},             // not a camera's
		{"a/b/cmd/label/result", "", "", false},   // three levels
		{"a/bc/door/verdict", "", "", false},      // another prefix
		{"x/a/b/door/verdict", "", "", false},     // prefix not at the start
		{"a/b/do+or/verdict", "", "", false},      // not a camera name
		{"a/b//verdict", "", "", false},           // empty camera
		{"a/b/door/verdict/extra", "", "", false}, // deeper
		{"a/b/door/", "door", "", true},           // an empty kind is no kind the daemon uses
		{Topics{Prefix: "a/b"}.Score("c-1_2"), "c-1_2", KindScore, true},
	} {
		camera, kind, ok := tp.CameraOf(tc.topic)
		if camera != tc.camera || kind != tc.kind || ok != tc.ok {
			t.Errorf("CameraOf(%q) = %q, %q, %v; want %q, %q, %v", tc.topic, camera, kind, ok, tc.camera, tc.kind, tc.ok)
		}
	}
}

func TestNames(t *testing.T) {
	long := strings.Repeat("x", MaxNameLen+1)
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"door", true}, {"Cam_1-2", true}, {"", false}, {"a/b", false}, {"a b", false}, {"ä", false},
		{"+", false}, {"#", false}, {long[:MaxNameLen], true}, {long, false},
	} {
		if got := ValidName(tc.s); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.s, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		prefix          string
		topic, discover bool // accepted as a topic prefix, as a discovery prefix
	}{
		{"deepfaked/edge-01", true, true},
		{"", false, false},
		{"a/+/b", false, false},
		{"a/#", false, false},
		{"a/", false, false},
		{"/a", true, false},
		{"a//b", false, false},
		{"/a//b", false, false},
		{"$SYS/x", false, true},
	} {
		if got := CheckPrefix(tc.prefix) == nil; got != tc.topic {
			t.Errorf("CheckPrefix(%q) accepts: %v, want %v", tc.prefix, got, tc.topic)
		}
		if got := CheckDiscoveryPrefix(tc.prefix) == nil; got != tc.discover {
			t.Errorf("CheckDiscoveryPrefix(%q) accepts: %v, want %v", tc.prefix, got, tc.discover)
		}
	}
}

func TestCheckCameraName(t *testing.T) {
	for name, want := range map[string]string{"door": "", "cmd": "reserved", "stats": "reserved", "status": "reserved", "a/b": "letters", "": "letters"} {
		err := CheckCameraName(name)
		if (err == nil) != (want == "") || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckCameraName(%q) = %v, want %q", name, err, want)
		}
	}
}

func TestDecision(t *testing.T) {
	for _, tc := range []struct {
		p, threshold float64
		want         string
	}{
		{0.5, 0.5, LabelFake}, // at the threshold: fake
		{0.4999, 0.5, LabelReal},
		{0, 0, LabelFake}, // a threshold of 0 calls everything fake
		{1, 1, LabelFake},
	} {
		if got := Label(tc.p, tc.threshold); got != tc.want || IsFake(tc.p, tc.threshold) != (tc.want == LabelFake) {
			t.Errorf("Label(%g, %g) = %s, want %s", tc.p, tc.threshold, got, tc.want)
		}
	}
	if got := Box(image.Rect(10, 20, 110, 220)); got != [4]int{10, 20, 100, 200} {
		t.Errorf("Box = %v", got)
	}
}

func TestIDs(t *testing.T) {
	if got := EventID("20261207T120000Z-abcd1234", "door", 7); got != "20261207T120000Z-abcd1234-door-7" {
		t.Errorf("EventID = %q", got)
	}
	name := SnapshotName("20261207T120000Z-abcd1234", 42)
	if run, track, ok := ParseSnapshotName(name); !ok || run != "20261207T120000Z-abcd1234" || track != 42 {
		t.Errorf("ParseSnapshotName(%q) = %q, %d, %v", name, run, track, ok)
	}
	for _, bad := range []string{"x.png", "-1.jpg", "run-.jpg", "run-x.jpg", "run.jpg"} {
		if _, _, ok := ParseSnapshotName(bad); ok {
			t.Errorf("ParseSnapshotName(%q) accepted", bad)
		}
	}
}
