package contract

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/deepfaked/deepfaked/internal/testenv"
)

// TestBuildsWithoutCgo: the contract, and health and metrics which read
// the daemon's counters, build with CGO_ENABLED=0: subscribers' tools may
// take them, and the readers stay apart from OpenCV and ONNX Runtime.
func TestBuildsWithoutCgo(t *testing.T) {
	root := testenv.RepoRoot(t)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", os.DevNull,
		"./contract", "./daemon/health", "./daemon/metrics", "./daemon/livestat")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}

// enums are the words some fields take, from the constants above.
var enums = map[string][]string{
	"Verdict.Label":     {LabelFake, LabelReal, LabelNone},
	"FaceResult.Label":  {LabelFake, LabelReal},
	"Event.Type":        {EventNew, EventUpdate, EventEnd},
	"TrackInfo.State":   {TrackUncertain, TrackReal, TrackFake},
	"CameraStats.State": {CameraDelivering, CameraConnecting, CameraReconnecting, CameraEnded},
	// A map's keys: the words it counts.
	"CameraStats.Verdicts":   VerdictLabels(),
	"CameraStats.Events":     EventTypes(),
	"CameraStats.Events.key": TrackStates(),
}

// schemaOf is the JSON Schema (2020-12) of a payload type, from its fields
// and json tags: what encoding/json writes for it.
func schemaOf(t reflect.Type, path string) map[string]any {
	if t == reflect.TypeOf(time.Time{}) {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem(), path)
		s["type"] = []any{s["type"], "null"}
		return s
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e, ok := enums[path]; ok {
			s["enum"] = e
		}
		return s
	case reflect.Int, reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), path)}
	case reflect.Map: // string keys; nil is null (before the pipeline runs)
		s := map[string]any{"type": []any{"object", "null"}, "additionalProperties": schemaOf(t.Elem(), path+".key")}
		if e, ok := enums[path]; ok {
			s["propertyNames"] = map[string]any{"enum": e}
		}
		return s
	case reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), path), "minItems": t.Len(), "maxItems": t.Len()}
	case reflect.Struct:
		props, required := map[string]any{}, []string{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			props[name] = schemaOf(f.Type, t.Name()+"."+f.Name)
			if opts != "omitempty" {
				required = append(required, name)
			}
		}
		return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
	}
	panic("schemaOf: no schema for " + t.String())
}

// TestSchemas: docs/verdict.schema.json, docs/event.schema.json and
// docs/stats.schema.json are the JSON Schemas of Verdict, Event and Stats as
// encoding/json writes them. Run with
// DEEPFAKED_UPDATE_SCHEMAS=1 to write them after a change (and raise
// SchemaVersion when a field goes or changes meaning).
func TestSchemas(t *testing.T) {
	docs := filepath.Join(testenv.RepoRoot(t), "docs")
	for _, tc := range []struct {
		file, title, topic string
		v                  any
	}{
		{"verdict.schema.json", "deepfaked verdict", "<prefix>/<camera>/verdict", Verdict{}},
		{"event.schema.json", "deepfaked event", "<prefix>/<camera>/events", Event{}},
		{"stats.schema.json", "deepfaked stats", "<prefix>/stats (retained)", Stats{}},
		{"webhook.schema.json", "deepfaked webhook notification", "the POST to webhook.url", Notification{}},
	} {
		s := schemaOf(reflect.TypeOf(tc.v), "")
		s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
		s["$id"] = "https://github.com/deepfaked/deepfaked/docs/" + tc.file
		s["title"] = tc.title
		s["description"] = "The payload on " + tc.topic + ", schema version " + strings.TrimSpace(jsonOf(t, SchemaVersion)) +
			" (the retained <prefix>/stats report's \"schema\"). Generated from package contract by its TestSchemas."
		want := jsonOf(t, s)
		path := filepath.Join(docs, tc.file)
		if os.Getenv("DEEPFAKED_UPDATE_SCHEMAS") == "1" {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (DEEPFAKED_UPDATE_SCHEMAS=1 go test -run TestSchemas ./contract writes it)", err)
		}
		if string(got) != want {
			t.Errorf("docs/%s is not the schema of %T: run DEEPFAKED_UPDATE_SCHEMAS=1 go test -run TestSchemas ./contract", tc.file, tc.v)
		}
	}
}

// TestPayloadsMatchSchemas: a filled verdict and event encode to exactly the
// properties their schemas require, no more.
func TestPayloadsMatchSchemas(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	info := TrackInfo{Track: 3, State: TrackFake, Score: 0.9, Frames: 12, FirstSeen: now, LastSeen: now, Box: [4]int{1, 2, 3, 4}}
	for _, v := range []any{
		Verdict{Device: "d", Camera: "c", Label: LabelFake, Faces: []FaceResult{{Label: LabelFake}}, TS: now},
		Event{Type: EventUpdate, ID: EventID("r", "c", 3), Before: &info, After: info, TS: now},
		Stats{Schema: SchemaVersion, Time: now, Cameras: []CameraStats{{Name: "c", State: CameraDelivering, LastVerdict: &now}}},
	} {
		var got map[string]any
		if err := json.Unmarshal([]byte(jsonOf(t, v)), &got); err != nil {
			t.Fatal(err)
		}
		s := schemaOf(reflect.TypeOf(v), "")
		for _, k := range s["required"].([]string) {
			if _, ok := got[k]; !ok {
				t.Errorf("%T: %q required by the schema, not in the payload", v, k)
			}
		}
		for k := range got {
			if _, ok := s["properties"].(map[string]any)[k]; !ok {
				t.Errorf("%T: %q in the payload, not in the schema", v, k)
			}
		}
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
