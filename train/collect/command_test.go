package collect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepfaked/deepfaked/contract"
)

func TestParseLabelCommand(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    LabelCommand
		errHas  string
	}{
		{payload: `{"camera":"cam1","frame":123,"label":"fake"}`, want: LabelCommand{"cam1", 123, "fake"}},
		{payload: " {\"label\":\"real\", \"frame\":0,\n\"camera\":\"Front_door-2\"} \n", want: LabelCommand{"Front_door-2", 0, "real"}},
		{payload: `{"camera":"c","frame":9223372036854775807,"label":"real"}`, want: LabelCommand{"c", 9223372036854775807, "real"}},
		{payload: ``, errHas: "want a JSON object"},
		{payload: `[1]`, errHas: "want a JSON object"},
		{payload: `"cam1"`, errHas: "want a JSON object"},
		{payload: `{"camera":"cam1","frame":123}`, errHas: `key "label" is missing`},
		{payload: `{"frame":1,"label":"fake"}`, errHas: `key "camera" is missing`},
		{payload: `{"camera":"cam1","label":"fake"}`, errHas: `key "frame" is missing`},
		{payload: `{"camera":"cam1","frame":1,"label":"fake","ts":"x"}`, errHas: `unknown key "ts"`},
		{payload: `{"camera":"cam1","camera":"cam2","frame":1,"label":"fake"}`, errHas: `key "camera" given twice`},
		{payload: `{"camera":1,"frame":1,"label":"fake"}`, errHas: "camera must be a string"},
		{payload: `{"camera":null,"frame":1,"label":"fake"}`, errHas: "camera must be a string"},
		{payload: `{"camera":"cam1","frame":"1","label":"fake"}`, errHas: "frame must be a number"},
		{payload: `{"camera":"cam1","frame":1.5,"label":"fake"}`, errHas: "frame 1.5 is not a whole number"},
		{payload: `{"camera":"cam1","frame":1e3,"label":"fake"}`, errHas: "frame 1e3 is not a whole number"},
		{payload: `{"camera":"cam1","frame":9223372036854775808,"label":"fake"}`, errHas: "not a whole number in range"},
		{payload: `{"camera":"cam1","frame":-4,"label":"fake"}`, errHas: "frame -4 is negative"},
		{payload: `{"camera":"cam1","frame":1,"label":"FAKE"}`, errHas: `label "FAKE": want real or fake`},
		{payload: `{"camera":"cam1","frame":1,"label":true}`, errHas: "label must be a string"},
		{payload: `{"camera":"cam 1","frame":1,"label":"fake"}`, errHas: `camera "cam 1" may only hold`},
		{payload: `{"camera":"../etc","frame":1,"label":"fake"}`, errHas: `camera "../etc"`},
		{payload: `{"camera":"","frame":1,"label":"fake"}`, errHas: `camera ""`},
		{payload: `{"camera":{"a":1},"frame":1,"label":"fake"}`, errHas: "camera must not be an object or array"},
		{payload: `{"camera":"cam1","frame":1,"label":"fake"}x`, errHas: "data after the JSON object"},
		{payload: `{"camera":"cam1","frame":1,"label":"fake"}{}`, errHas: "data after the JSON object"},
		{payload: `{"camera":"cam1","frame":1,"label":"fake"`, errHas: "label command: "},
		{payload: `{"camera":"cam1","frame":1,"label":"fake",}`, errHas: "invalid character"},
		{payload: `{"camera":"` + strings.Repeat("a", 1100) + `","frame":1,"label":"fake"}`, errHas: "at most 1024 allowed"},
	} {
		got, err := ParseLabelCommand([]byte(tc.payload))
		switch {
		case tc.errHas == "" && err != nil:
			t.Errorf("%s: %v", tc.payload, err)
		case tc.errHas == "" && got != tc.want:
			t.Errorf("%s: got %+v, want %+v", tc.payload, got, tc.want)
		case tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)):
			t.Errorf("%.80s: error %v, want one with %q", tc.payload, err, tc.errHas)
		}
	}
}

func FuzzParseLabelCommand(f *testing.F) {
	for _, s := range []string{`{"camera":"cam1","frame":123,"label":"fake"}`, `{"camera":"a","frame":0,"label":"real"}`,
		`{"camera":"a","frame":-1,"label":"real"}`, `{"camera":"a","camera":"b"}`, `{}`, `[]`, `{"frame":1e2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseLabelCommand(payload)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "label command: ") {
				t.Errorf("error %q does not say what it is about", err)
			}
			return
		}
		if len(payload) > MaxLabelCommand || !contract.ValidName(c.Camera) || c.Frame < 0 || checkLabel(c.Label) != nil {
			t.Fatalf("accepted %q as %+v", payload, c)
		}
		// What is accepted is plain JSON that means the same.
		var m map[string]any
		if err := json.Unmarshal(payload, &m); err != nil || len(m) != 3 || m["camera"] != c.Camera || m["label"] != c.Label {
			t.Fatalf("accepted %q as %+v, encoding/json reads %v (%v)", payload, c, m, err)
		}
		back, err := ParseLabelCommand(must(json.Marshal(c)))
		if err != nil || back != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
		}
	})
}

// FuzzLabelCommandStaysInState: whatever a label command's payload holds,
// what it moves or writes is inside the state folder (collect and dataset
// folders); nothing appears beside it.
func FuzzLabelCommandStaysInState(f *testing.F) {
	for _, s := range []string{`{"camera":"cam1","frame":1,"label":"fake"}`, `{"camera":"..","frame":0,"label":"real"}`,
		`{"camera":"../../x","frame":1,"label":"fake"}`, `{"camera":"cam1","frame":1,"label":"../fake"}`, `{"camera":"/etc","frame":1,"label":"real"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := ParseLabelCommand(payload)
		if err != nil {
			return
		}
		root := t.TempDir()
		state := filepath.Join(root, "state")
		folders := Folders{Collect: filepath.Join(state, "collect"), Dataset: filepath.Join(state, "dataset")}
		if err := os.MkdirAll(filepath.Join(folders.Collect, "cam1"), 0o750); err != nil {
			t.Fatal(err)
		}
		moved, _ := folders.Label(c.Camera, c.Frame, c.Label)
		for _, p := range moved {
			if rel, err := filepath.Rel(state, p); err != nil || strings.HasPrefix(rel, "..") {
				t.Fatalf("%q moved a file to %s, outside %s", payload, p, state)
			}
		}
		ents, err := os.ReadDir(root)
		if err != nil || len(ents) != 1 || ents[0].Name() != "state" {
			t.Fatalf("%q: beside the state folder: %v (%v)", payload, ents, err)
		}
	})
}
