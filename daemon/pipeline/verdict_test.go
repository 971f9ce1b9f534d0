package pipeline

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestVerdictJSONMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 11, 28, 12, 0, 0, 123456789, time.UTC)
	tests := []Verdict{
		{Device: "edge-01", Camera: "cam1", Frame: 0, TS: ts, Label: LabelNone, Threshold: 0.5, Faces: []FaceResult{},
			Model: ModelIDs{"0123456789ab", "ba9876543210"}, LatencyMS: 12.5},
		{Device: `we"ird\dev`, Camera: "c\n2", Frame: 1 << 40, TS: ts.Add(time.Hour), Label: LabelFake, PFake: 0.987654321,
			Threshold: 0.37, Faces: []FaceResult{{Box: [4]int{1, 2, 30, 40}, PFake: 0.987654321, Label: LabelFake},
				{Box: [4]int{100, 200, 50, 50}, PFake: 1e-9, Label: LabelReal}},
			Model: ModelIDs{"a", "b"}, LatencyMS: 0.001},
	}
	for i, v := range tests {
		got := v.AppendJSON(nil)
		var back Verdict
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("case %d: not valid JSON: %v\n%s", i, err, got)
		}
		if !reflect.DeepEqual(back, v) {
			t.Errorf("case %d: round trip differs\n got %+v\nwant %+v", i, back, v)
		}
		want, _ := json.Marshal(v)
		var a, b map[string]any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal(want, &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("case %d: differs from encoding/json\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestVerdictJSONNonFinite(t *testing.T) {
	v := Verdict{PFake: math.NaN(), LatencyMS: math.Inf(1), Faces: []FaceResult{}}
	var back map[string]any
	if err := json.Unmarshal(v.AppendJSON(nil), &back); err != nil {
		t.Fatalf("NaN/Inf must still give valid JSON: %v", err)
	}
}

func TestVerdictJSONNoAllocs(t *testing.T) {
	v := Verdict{Device: "edge-01", Camera: "cam1", TS: time.Now(), Label: LabelReal,
		Faces: []FaceResult{{Box: [4]int{1, 2, 3, 4}, PFake: 0.1, Label: LabelReal}}}
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = v.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON allocates %v times per verdict; want 0", n)
	}
}
