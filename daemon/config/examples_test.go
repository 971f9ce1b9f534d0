package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/deepfaked/deepfaked/capture/source"
	"github.com/deepfaked/deepfaked/daemon/config"
	"github.com/deepfaked/deepfaked/internal/testenv"
)

func exampleConfigs(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "configs", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestExampleConfigs parses every file in configs/.
func TestExampleConfigs(t *testing.T) {
	files := exampleConfigs(t)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := config.Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, want := range []string{"deepfaked.yaml", "demo.yaml", "dev-video.yaml", "jetson.yaml", "raspberry-pi.yaml"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("configs/%s missing (have %v)", want, names)
		}
	}
}

// TestDemoConfig checks that configs/demo.yaml names files that exist here, so
// that `make demo` can run.
func TestDemoConfig(t *testing.T) {
	root := testenv.RepoRoot(t)
	// The demo runs what `make models` installs (the shipped model by default).
	backbone := filepath.Join(root, "models", "backbone.int8.onnx")
	head := filepath.Join(root, "models", "head.onnx")
	c, err := config.Load(filepath.Join(root, "configs", "demo.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const video = "/usr/share/doc/opencv-doc/examples/data/Megamind.avi"
	if c.Model.Backbone != backbone || c.Model.Head != head {
		t.Errorf("models = %s, %s; want %s, %s", c.Model.Backbone, c.Model.Head, backbone, head)
	}
	want := []config.Camera{{Name: "megamind", Source: video, Decoder: config.DefaultDecoder}}
	if !reflect.DeepEqual(c.Cameras, want) {
		t.Errorf("cameras = %+v, want %+v", c.Cameras, want)
	}
	if c.MQTT.Broker != config.EmbeddedBroker || c.MQTT.Listen != "127.0.0.1:18830" || c.Faces.Detector != "haar" {
		t.Errorf("mqtt %q on %q, detector %q: want the embedded broker on 127.0.0.1:18830 (clear of a system mosquitto) and haar",
			c.MQTT.Broker, c.MQTT.Listen, c.Faces.Detector)
	}
	if _, err := os.Stat(video); err != nil {
		t.Fatalf("%s missing: run `make deps` (it installs opencv-doc): %v", video, err)
	}
	if err := c.CheckFiles(); err != nil {
		t.Errorf("CheckFiles: %v", err)
	}
}

// TestDefaultConfig checks configs/deepfaked.yaml, the /etc/deepfaked/deepfaked.yaml
// that the Debian package and `make install` install: it names no file but the
// models and the runtime they install (no password, TLS or detector model
// file), so check-config passes on a bare machine; its cameras are live (a
// missing one is a warning, not an error), its page is on loopback and its
// broker is this machine's.
func TestDefaultConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "configs", "deepfaked.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Point the installed paths into a folder holding just those files.
	dir := t.TempDir()
	text := strings.NewReplacer("/var/lib/deepfaked/models/", dir+"/", "/usr/lib/deepfaked/", dir+"/").Replace(string(b))
	for _, f := range []string{"backbone.int8.onnx", "head.onnx", "libonnxruntime.so.1"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "deepfaked.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckFiles(); err != nil {
		t.Errorf("names a file the package does not install: %v", err)
	}
	if c.Model.Backbone != filepath.Join(dir, "backbone.int8.onnx") || c.Model.Runtime != filepath.Join(dir, "libonnxruntime.so.1") {
		t.Errorf("backbone %s, runtime %s: want the installed INT8 backbone and ONNX Runtime", c.Model.Backbone, c.Model.Runtime)
	}
	for _, cam := range c.Cameras {
		if src, err := source.Parse(cam.Source); err != nil || !src.Live() {
			t.Errorf("camera %s: %s is not a live source", cam.Name, cam.Source)
		}
	}
	if c.StateDir != "/var/lib/deepfaked" || c.MQTT.Broker != "tcp://127.0.0.1:1883" || c.Faces.Detector != "haar" || c.Web.Listen != "127.0.0.1:9465" {
		t.Errorf("state_dir %s, broker %s, detector %s, web %s: want /var/lib/deepfaked, tcp://127.0.0.1:1883, haar, 127.0.0.1:9465",
			c.StateDir, c.MQTT.Broker, c.Faces.Detector, c.Web.Listen)
	}
}

// TestDocumentationCoversEveryKey keeps docs/configuration.md in step with the structs.
func TestDocumentationCoversEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" {
				continue
			}
			key := prefix + name
			keys = append(keys, key)
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[config.Duration]():
				walk(f.Type, key+".")
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(f.Type.Elem(), key+"[].")
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/configuration.md does not document `%s`", k)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	for _, file := range exampleConfigs(f) {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "- a", "a: [", "device_id: &a x\nmqtt: *a\n", "mqtt:\n  keepalive: -3h\n",
		"cameras: [{name: a, source: 0, width: 1, height: 1}]\n", "model: {threshold: .nan}\n",
		"? [a]\n: 1\n", "device_id: 1\ndevice_id: 2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, "/fuzz")
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v\n%s", err, data)
		}
		// What was accepted, written back out, reads the same.
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := config.Parse(out, "/fuzz")
		if err != nil {
			t.Fatalf("round trip rejected: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, again)
		}
	})
}
