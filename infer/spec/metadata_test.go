package spec

import (
	"maps"
	"reflect"
	"strings"
	"testing"
)

// exported is what tools/export_model.py writes for a backbone at 128 pixels.
func exported() map[string]string {
	return map[string]string{
		KeyFormatVersion: "1",
		KeyRole:          "backbone",
		KeyInputSize:     "128",
		KeyMean:          "0.485,0.456,0.406",
		KeyStd:           "0.229,0.224,0.225",
		KeyColorOrder:    "RGB",
		KeyClassNames:    "real,fake",
		KeyFeatureShape:  "1280,4,4",
		KeyWeights:       "random:seed=0",
	}
}

func with(kv ...string) map[string]string {
	m := exported()
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		name    string
		props   map[string]string
		check   func(t *testing.T, m Metadata)
		wantErr string // substring naming the bad key
	}{
		{name: "export at 128", props: exported(), check: func(t *testing.T, m Metadata) {
			want := DefaultMetadata()
			want.Role, want.Weights = "backbone", "random:seed=0"
			if !reflect.DeepEqual(m, want) {
				t.Errorf("got %+v, want %+v", m, want)
			}
		}},
		{name: "no metadata gives defaults", props: map[string]string{"producer": "someone"}, check: func(t *testing.T, m Metadata) {
			if !m.Defaulted || m.InputSize != 128 || m.FeatureShape != [3]int{1280, 4, 4} || m.Mean[2] != 0.406 || m.Std[0] != 0.229 {
				t.Errorf("got %+v, want MnasNet-at-128 defaults", m)
			}
			if m.Extra["producer"] != "someone" {
				t.Errorf("Extra = %v, want the foreign key kept", m.Extra)
			}
		}},
		{name: "nil map gives defaults", props: nil, check: func(t *testing.T, m Metadata) {
			if !m.Defaulted || m.InputSize != 128 {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "224 derives feature shape when absent", props: with(KeyInputSize, "224", KeyFeatureShape, "<delete>"), check: func(t *testing.T, m Metadata) {
			if m.InputSize != 224 || m.FeatureShape != [3]int{1280, 7, 7} || m.FeatureSize() != 62720 || m.Defaulted {
				t.Errorf("got size %d shape %v", m.InputSize, m.FeatureShape)
			}
		}},
		{name: "head with threshold and extra", props: with(KeyRole, "head", KeyThreshold, " 0.37", "deepfaked.train.auc", "0.81"), check: func(t *testing.T, m Metadata) {
			if m.Role != "head" || m.Threshold != ThresholdOf(0.37) || m.Extra["deepfaked.train.auc"] != "0.81" {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "head storing threshold 0", props: with(KeyRole, "head", KeyThreshold, "0"), check: func(t *testing.T, m Metadata) {
			if v, ok := m.Threshold.Get(); !ok || v != 0 {
				t.Errorf("threshold = %v, %v; want 0 and set", v, ok)
			}
		}},
		{name: "no threshold stored", props: exported(), check: func(t *testing.T, m Metadata) {
			if _, ok := m.Threshold.Get(); ok {
				t.Errorf("threshold set from a backbone without one: %+v", m.Threshold)
			}
		}},
		{name: "BGR and other class names", props: with(KeyColorOrder, "BGR", KeyClassNames, "genuine, swapped", KeyMean, "0,0.5,1", KeyStd, "1, 2 ,3"), check: func(t *testing.T, m Metadata) {
			if m.ColorOrder != "BGR" || !reflect.DeepEqual(m.ClassNames, []string{"genuine", "swapped"}) ||
				m.Mean != [3]float32{0, 0.5, 1} || m.Std != [3]float32{1, 2, 3} {
				t.Errorf("got %+v", m)
			}
		}},
		{name: "future format", props: with(KeyFormatVersion, "2"), wantErr: KeyFormatVersion},
		{name: "unknown role", props: with(KeyRole, "neck"), wantErr: KeyRole},
		{name: "input size not a number", props: with(KeyInputSize, "12x8"), wantErr: KeyInputSize},
		{name: "input size zero", props: with(KeyInputSize, "0"), wantErr: KeyInputSize},
		{name: "input size huge", props: with(KeyInputSize, "100000"), wantErr: KeyInputSize},
		{name: "mean two values", props: with(KeyMean, "0.4,0.5"), wantErr: KeyMean},
		{name: "mean not a number", props: with(KeyMean, "0.4,x,0.5"), wantErr: KeyMean},
		{name: "mean NaN", props: with(KeyMean, "0.4,NaN,0.5"), wantErr: KeyMean},
		{name: "std zero", props: with(KeyStd, "0.2,0,0.2"), wantErr: KeyStd},
		{name: "std infinite", props: with(KeyStd, "0.2,inf,0.2"), wantErr: KeyStd},
		{name: "colour order lower case", props: with(KeyColorOrder, "rgb"), wantErr: KeyColorOrder},
		{name: "colour order unknown", props: with(KeyColorOrder, "YUV"), wantErr: KeyColorOrder},
		{name: "three class names", props: with(KeyClassNames, "real,fake,other"), wantErr: KeyClassNames},
		{name: "empty class name", props: with(KeyClassNames, "real,"), wantErr: KeyClassNames},
		{name: "same class names", props: with(KeyClassNames, "a,a"), wantErr: KeyClassNames},
		{name: "feature shape two dims", props: with(KeyFeatureShape, "1280,16"), wantErr: KeyFeatureShape},
		{name: "feature shape negative", props: with(KeyFeatureShape, "1280,-4,4"), wantErr: KeyFeatureShape},
		{name: "threshold above 1", props: with(KeyThreshold, "1.5"), wantErr: KeyThreshold},
		{name: "threshold NaN", props: with(KeyThreshold, "NaN"), wantErr: KeyThreshold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(tt.props)
			m, err := ParseMetadata(tt.props)
			if !maps.Equal(before, tt.props) {
				t.Errorf("ParseMetadata changed its input")
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add("128", "0.485,0.456,0.406", "0.229,0.224,0.225", "RGB", "real,fake", "1280,4,4", "0.5")
	f.Add("224", "1,2", "0,0,0", "BGR", "a,a", "1280,7", "x")
	f.Add("", "", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, size, mean, std, order, names, shape, thr string) {
		props := map[string]string{KeyInputSize: size, KeyMean: mean, KeyStd: std, KeyColorOrder: order,
			KeyClassNames: names, KeyFeatureShape: shape, KeyThreshold: thr}
		m, err := ParseMetadata(props)
		if err != nil {
			if !strings.Contains(err.Error(), "deepfaked.") {
				t.Fatalf("error %q names no key", err)
			}
			return
		}
		// Whatever parses must be usable as-is by preprocessing and the loaders.
		if m.InputSize < 32 || len(m.ClassNames) != 2 || (m.ColorOrder != "RGB" && m.ColorOrder != "BGR") ||
			!thresholdOK(m.Threshold) || m.FeatureSize() <= 0 {
			t.Fatalf("accepted unusable metadata %+v from %v", m, props)
		}
		for _, s := range m.Std {
			if !(s > 0) {
				t.Fatalf("accepted std %v", m.Std)
			}
		}
	})
}
