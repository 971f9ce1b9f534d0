package config_test

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/configdoc"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func docKeys(t *testing.T) []configdoc.Key {
	t.Helper()
	keys, err := configdoc.Keys(filepath.Join(testenv.RepoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// yamlKeys lists the keys of a config struct by its yaml tags: mappings and
// lists as well as their keys, list entries as name[].
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		keys = append(keys, key)
		switch ft := t.Field(i).Type; {
		case ft.Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft, key+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft.Elem(), key+"[].")...)
		}
	}
	return keys
}

// TestDocsListEveryKey: docs/configuration.md documents every key the config
// takes, and no key it does not take.
func TestDocsListEveryKey(t *testing.T) {
	var documented []string
	for _, k := range docKeys(t) {
		if slices.Contains(documented, k.Name) {
			t.Errorf("docs line %d: %s documented twice", k.Line, k.Name)
		}
		documented = append(documented, k.Name)
	}
	code := yamlKeys(reflect.TypeFor[config.Config](), "")
	for _, k := range code {
		if !slices.Contains(documented, k) {
			t.Errorf("key %s is not documented in docs/configuration.md", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(code, k) {
			t.Errorf("docs/configuration.md documents %s, which the config does not take", k)
		}
	}
}

// valueAt is the field at a key path (dots and [i]) of c.
func valueAt(t *testing.T, c *config.Config, path string) reflect.Value {
	t.Helper()
	v := reflect.ValueOf(c).Elem()
	for part := range strings.SplitSeq(path, ".") {
		name, idx, list := strings.Cut(part, "[")
		found := false
		for i := range v.NumField() {
			if n, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); n == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("no key %s in %s", name, path)
		}
		if list {
			if idx != "0]" {
				t.Fatalf("only [0] is supported in %s", path)
			}
			v = v.Index(0)
		}
	}
	return v
}

// TestDocsDefaults holds the default column to the code: a key left out is
// an error when documented **required**; is unset (the zero value) when the
// default is in words; and else equals the documented value, i.e. writing
// the documented default changes nothing.
func TestDocsDefaults(t *testing.T) {
	// Keys that are only allowed with another key set.
	context := map[string][2]string{"mqtt.listen": {"mqtt.broker", config.EmbeddedBroker}}
	for _, k := range docKeys(t) {
		if k.Type == "mapping" {
			continue // its keys are checked one by one
		}
		t.Run(k.Name, func(t *testing.T) {
			path := k.Path()
			src := []byte(minimal)
			if c, ok := context[k.Name]; ok {
				src = mutateYAML(t, src, c[0], c[1])
			}
			left, err := config.Parse(mutateYAML(t, src, path, del{}), "/etc/deepfaked")
			if k.Required() {
				if err == nil || !strings.Contains(err.Error(), path) {
					t.Fatalf("documented required, but a config without it gives %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("a config without %s: %v", path, err)
			}
			text, ok := k.Value()
			if !ok {
				if v := valueAt(t, left, path); !v.IsZero() {
					t.Fatalf("docs line %d: default %q (unset), but the code's default is %#v", k.Line, k.Default, v.Interface())
				}
				return
			}
			text = strings.NewReplacer("<device_id>", left.DeviceID, "<state_dir>", left.StateDir, "<capture.decoder>", left.Capture.Decoder).Replace(text)
			var val any
			if err := yaml.Unmarshal([]byte(text), &val); err != nil {
				t.Fatalf("docs line %d: default %s is not a YAML value: %v", k.Line, k.Default, err)
			}
			set, err := config.Parse(mutateYAML(t, src, path, val), "/etc/deepfaked")
			if err != nil {
				t.Fatalf("docs line %d: the documented default %s is refused: %v", k.Line, k.Default, err)
			}
			if !reflect.DeepEqual(left, set) {
				t.Fatalf("docs line %d: default %s, but the code's default is %#v (written: %#v)",
					k.Line, k.Default, valueAt(t, left, path).Interface(), valueAt(t, set, path).Interface())
			}
		})
	}
}
